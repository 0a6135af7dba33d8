"""The one way engines are made: method names in, calculators and capabilities out.

Adding an engine is one module (a thin :class:`~airss_msc.calc.engines.base.Engine`
subclass) plus one line in :data:`ENGINES`. A method is written
``engine:model`` (``tblite:GFN2-xTB``, ``chgnet:r2scan``, ``sevennet:7net-0``,
``pyscf:PBE/def2-SVP``), as an engine alone for its default model
(``chgnet``), or as a bare model name that one engine owns (``GFN1-xTB`` is
tblite's; engines listed first win).
"""

from __future__ import annotations

from functools import lru_cache

from ase.calculators.calculator import Calculator

from airss_msc.calc.engines.base import Capabilities, Engine, Method
from airss_msc.calc.engines.chgnet import CHGNetEngine
from airss_msc.calc.engines.lj import LennardJones
from airss_msc.calc.engines.pyscf import PySCFEngine
from airss_msc.calc.engines.sevennet import SevenNetEngine
from airss_msc.calc.engines.tblite import TBLite
from airss_msc.calc.engines.xtb import XTBPython
from airss_msc.errors import InputError

#: The validated ranking energy (BENCHMARKS.md "Energy models against PBE/def2-SVP"): what ranks
#: a database that does not name one, when its rows carry it.
VALIDATED_RANKING = "sevennet:7net-0"

#: Every engine, by name. Order matters only for bare model names.
ENGINES: dict[str, Engine] = {engine.name: engine for engine in (
    TBLite(),
    XTBPython(),
    CHGNetEngine(),
    SevenNetEngine(),
    PySCFEngine(),
    LennardJones(),
)}


def known_methods() -> list[str]:
    """Every canonical method name, for help texts and error messages."""
    return [str(Method(e.name, m)) for e in ENGINES.values() for m in e.models]


@lru_cache(maxsize=256)
def parse_method(text: str | Method) -> Method:
    """``GFN1-xTB``, ``tblite:GFN2-xTB``, ``chgnet``, ``sevennet:7net-0``, ``pyscf:PBE/def2-SVP``, ``lj``
    -> :class:`Method`; unknown names are an :class:`InputError` listing the known ones."""
    if isinstance(text, Method):
        return text
    raw = str(text).strip()
    engine_name, sep, model_text = raw.partition(":")
    if sep:
        engine = ENGINES.get(engine_name.strip().lower())
        if engine is None:
            raise InputError(f"unknown engine {engine_name!r} in method {raw!r}: engines are "
                             f"{', '.join(ENGINES)}")
        model = engine.canonical_model(model_text)
        if model is None:
            raise InputError(f"unknown model {model_text!r} for engine {engine.name!r}: choose "
                             f"{', '.join(engine.models)}")
        return Method(engine.name, model)
    if raw.lower() in ENGINES:
        engine = ENGINES[raw.lower()]
        return Method(engine.name, engine.default_model)
    for engine in ENGINES.values():
        model = engine.canonical_model(raw)
        if model is not None and model not in engine.qualified_only:
            return Method(engine.name, model)
    hints = [f"{e.name}:{m}" for e in ENGINES.values() for m in e.models if m.lower() == raw.lower()]
    if hints:
        raise InputError(f"method {raw!r} needs its engine: use {' or '.join(hints)}")
    raise InputError(f"unknown method {raw!r}: choose one of {', '.join(known_methods())}")


def engine_of(method: str | Method) -> Engine:
    return ENGINES[parse_method(method).engine]


def capabilities(method: str | Method) -> Capabilities:
    m = parse_method(method)
    return ENGINES[m.engine].capabilities(m.model)


def engine_version(method: str | Method) -> str:
    """``<distribution> <version>`` of the engine behind ``method`` (stored with every energy)."""
    return engine_of(method).version()


def check_available(method: str | Method) -> None:
    """An :class:`InputError` with an install hint if the engine cannot be imported."""
    engine_of(method).check_available()


def scf_ladder(method: str | Method, electronic_temperature: float = 300.0) -> tuple[dict, ...]:
    m = parse_method(method)
    return ENGINES[m.engine].scf_ladder(m.model, electronic_temperature)


def comparable_rung(method: str | Method, rung: dict, electronic_temperature: float = 300.0) -> dict:
    """``rung`` of the SCF ladder with the first rung's physical parameters (comparable energies)."""
    m = parse_method(method)
    return ENGINES[m.engine].comparable(m.model, rung, electronic_temperature)


def measured_error(method: str | Method | None) -> str | None:
    """The measured error of ``method``'s energies against the DFT reference, in words (None: not
    measured, or the method is the reference)."""
    if not method:
        return None
    try:
        m = parse_method(method)
    except InputError:
        return None
    return ENGINES[m.engine].measured_error.get(m.model)


def is_reference(method: str | Method | None) -> bool:
    """Whether ``method`` is a reference-level (DFT) energy (see :class:`Capabilities`)."""
    if not method:
        return False
    try:
        return capabilities(method).reference
    except InputError:
        return False


def make_calculator(method: str | Method, **parameters) -> Calculator:
    """A fresh ASE calculator for ``method`` (parameters: one rung of :func:`scf_ladder`)."""
    m = parse_method(method)
    return ENGINES[m.engine].calculator(m.model, **parameters)
