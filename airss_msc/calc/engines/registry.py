"""The one way engines are made: method names in, calculators and capabilities out.

Adding an engine is one module (a thin :class:`~airss_msc.calc.engines.base.Engine`
subclass) plus one line in :data:`ENGINES`. A method is written
``engine:model`` (``tblite:GFN2-xTB``, ``chgnet:r2scan``, ``sevennet:7net-0``,
``pyscf:PBE/def2-SVP``), as an engine alone for its default model
(``chgnet``), or as a bare model name that one engine owns (``GFN1-xTB`` is
tblite's; engines listed first win).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from functools import lru_cache
from typing import Any

from ase.calculators.calculator import Calculator

from airss_msc.calc.engines.accuracy import Accuracy, accuracy
from airss_msc.calc.engines.base import Capabilities, Engine, Method
from airss_msc.calc.engines.chgnet import CHGNetEngine
from airss_msc.calc.engines.lj import LennardJones
from airss_msc.calc.engines.pyscf import PySCFEngine
from airss_msc.calc.engines.sevennet import SevenNetEngine
from airss_msc.calc.engines.tblite import TBLite
from airss_msc.calc.engines.xtb import XTBPython
from airss_msc.errors import InputError


class Role(str, Enum):
    """The jobs a method is chosen for; :data:`DEFAULTS` names the default method of each."""

    GEOMETRY = "geometry"  #: relaxes the search's candidates
    RANKING = "ranking"  #: the single point that ranks isomers (validated against DFT)
    CROSS_CHECK = "cross_check"  #: the single point ``rescore`` adds by default (orbitals: a gap)
    REFINE = "refine"  #: the reference (DFT) refinement of the best
    EXCITATION = "excitation"  #: vertical excitations (TDA-TDDFT) of the best
    CAPPING = "capping"  #: relaxes amine-capped clusters (must keep the ligands bound)


#: The default method of each role: the one place outside the engine modules that names methods
#: (BENCHMARKS.md "Energy models against PBE/def2-SVP" for geometry and ranking; the README's
#: "Which energy model" for the rest; "Capping" for capping: SevenNet-0 kept every amine in 26 of 28
#: capped relaxations, CHGNet in 22, GFN1-xTB in 0 of 3). Everything else asks :func:`default_method`.
DEFAULTS: dict[Role, str] = {
    Role.GEOMETRY: "chgnet:0.3.0",
    Role.RANKING: "sevennet:7net-0",
    Role.CROSS_CHECK: "tblite:GFN2-xTB",
    Role.REFINE: "pyscf:PBE/def2-SVP",
    Role.EXCITATION: "pyscf:TDA-PBE0/def2-SVP",
    Role.CAPPING: "sevennet:7net-0",
}


def default_method(role: Role | str) -> str:
    """The canonical default method for ``role`` (a :class:`Role` or its value)."""
    return DEFAULTS[Role(role)]


#: The validated ranking energy: what ranks a database that does not name one, when its rows carry it.
VALIDATED_RANKING = DEFAULTS[Role.RANKING]

#: Every engine, by name. Order matters only for bare model names.
ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        TBLite(),
        XTBPython(),
        CHGNetEngine(),
        SevenNetEngine(),
        PySCFEngine(),
        LennardJones(),
    )
}


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
            raise InputError(f"unknown engine {engine_name!r} in method {raw!r}: engines are {', '.join(ENGINES)}")
        model = engine.canonical_model(model_text)
        if model is None:
            raise InputError(
                f"unknown model {model_text!r} for engine {engine.name!r}: choose {', '.join(engine.models)}"
            )
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


def method_accuracy(method: str | Method | None) -> Accuracy | None:
    """``method``'s measured accuracy against the DFT reference by size class (:mod:`.accuracy`;
    None: not measured, unknown, or the reference itself)."""
    if not method:
        return None
    try:
        m = parse_method(method)
    except InputError:
        return None
    return accuracy(str(m))


def measured_error(method: str | Method | None, natoms: int | None = None) -> str | None:
    """The measured error of ``method``'s energies against the DFT reference, in words, from the
    packaged validation numbers (None: not measured, or the method is the reference). With
    ``natoms``, only the size class holding that many atoms when one was measured."""
    record = method_accuracy(method)
    if record is None:
        return None
    return record.describe() if natoms is None else record.describe_at(natoms)


def is_reference(method: str | Method | None) -> bool:
    """Whether ``method`` is a reference-level (DFT) energy (see :class:`Capabilities`)."""
    if not method:
        return False
    try:
        return capabilities(method).reference
    except InputError:
        return False


def short_name(method: str | Method | None) -> str:
    """A compact display label (``tblite:GFN2-xTB`` -> ``GFN2-xTB``, ``chgnet:0.3.0`` -> ``chgnet``,
    ``xtb:GFN1-xTB`` stays); a name no engine knows (a structure file's) is shown as given."""
    if not method:
        return ""
    try:
        m = parse_method(method)
    except InputError:
        return str(method)
    return ENGINES[m.engine].short_name(m.model)


def legacy_method_keys() -> dict[str, str]:
    """Database keys written before methods named their engine -> canonical method (engines
    listed first win a key two engines claim)."""
    out: dict[str, str] = {}
    for engine in ENGINES.values():
        for key, model in engine.legacy_keys.items():
            out.setdefault(key, str(Method(engine.name, model)))
    return out


def _preferred(methods: Iterable[str], rank: Callable[[Capabilities], int | None]) -> str | None:
    """The method of ``methods`` with the lowest ``rank`` of its capabilities (ties: the engine
    listed first in :data:`ENGINES`), else the first unranked one by name (None: no methods)."""
    order = {name: k for k, name in enumerate(ENGINES)}
    ranked, unranked = [], []
    for method in methods:
        try:
            m = parse_method(method)
        except InputError:  # a name from an old database or a file: shown, never preferred
            unranked.append(str(method))
            continue
        value = rank(ENGINES[m.engine].capabilities(m.model))
        if value is None:
            unranked.append(str(method))
        else:
            ranked.append((value, order[m.engine], str(method)))
    if ranked:
        return min(ranked)[2]
    return min(unranked) if unranked else None


def preferred_gap_method(methods: Iterable[str]) -> str | None:
    """The method among ``methods`` whose HOMO-LUMO gap to show when the ranking energy has none
    (:attr:`Capabilities.gap_rank`, best first; unranked methods by name)."""
    return _preferred(methods, lambda c: c.gap_rank)


def band_ready(method: str) -> bool:
    """Whether ``method``'s excitations are a band estimate as computed
    (:attr:`Capabilities.band_ready`); a name no engine knows (an old database, a file) counts as one."""
    try:
        return capabilities(method).band_ready
    except InputError:  # as before: shown, and judged as a band
        return True


def preferred_excitation_method(methods: Iterable[str]) -> str | None:
    """The method among ``methods`` whose excitations give the band estimate
    (:attr:`Capabilities.excitation_rank`, best first; unranked methods by name), never one that is
    not :func:`band_ready` (its excitations need a measured shift first)."""
    return _preferred([m for m in methods if band_ready(m)], lambda c: c.excitation_rank)


def make_calculator(method: str | Method, **parameters: Any) -> Calculator:
    """A fresh ASE calculator for ``method`` (parameters: one rung of :func:`scf_ladder`)."""
    m = parse_method(method)
    return ENGINES[m.engine].calculator(m.model, **parameters)
