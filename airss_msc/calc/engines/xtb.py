"""xtb-python (the ``[xtb]`` extra; wheels only for CPython <= 3.11): GFN1-xTB, GFN2-xTB and GFN-FF.

No longer developed upstream (tblite is its successor) but about twice as fast
per call here, and the only source of GFN-FF.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.units import Bohr

from airss_msc.calc.engines.base import Capabilities, Engine, Method, homo_lumo_gap
from airss_msc.calc.engines.tightbinding import (
    FORCE_FIELD_CAPABILITIES,
    TightBindingCalculator,
    xtb_capabilities,
    xtb_ladder,
)

_SCRATCH: str | None = None


@contextlib.contextmanager
def _scratch_dir() -> Iterator[None]:
    """GFN-FF writes topology files (gfnff_topo, gfnff_adjacency) into the working
    directory, which MPI workers share: run it in a per-process scratch directory."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = tempfile.mkdtemp(prefix="airss-msc-gfnff-")
        # one directory per process for its whole life; removed when it exits (they piled up in /tmp)
        atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
    here = os.getcwd()
    os.chdir(_SCRATCH)
    try:
        yield
    finally:
        os.chdir(here)


class XTBCalculator(TightBindingCalculator):
    def _new_library(self, atoms: Atoms) -> Any:
        from xtb.interface import Calculator as Library
        from xtb.interface import Param
        from xtb.libxtb import VERBOSITY_MUTED

        param = {"GFN1-xTB": Param.GFN1xTB, "GFN2-xTB": Param.GFN2xTB, "GFN-FF": Param.GFNFF}[self.model]
        p = self.parameters
        with self._where():
            lib = Library(param, atoms.numbers, atoms.positions / Bohr, float(p["charge"]), int(p["uhf"]))
        lib.set_verbosity(VERBOSITY_MUTED)
        lib.set_accuracy(float(p["accuracy"]))
        lib.set_max_iterations(int(p["max_iterations"]))
        lib.set_electronic_temperature(float(p["electronic_temperature"]))
        return lib

    def _where(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def _singlepoint(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray, float]:
        with self._where():
            self._res = self._lib.singlepoint(self._res)
        res = self._res
        gap = homo_lumo_gap(res.get_orbital_eigenvalues(), res.get_orbital_occupations())
        return float(res.get_energy()), np.asarray(res.get_gradient()), np.asarray(res.get_charges()), gap


class GFNFFCalculator(XTBCalculator):
    """GFN-FF fixes its bond topology when the library object is built: rebuild it at
    every geometry, or a relaxed structure is scored with its start's bonds."""

    rebuild_every_step = True

    def _where(self) -> contextlib.AbstractContextManager[None]:
        return _scratch_dir()

    def _singlepoint(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray, float]:
        with self._where():
            self._res = self._lib.singlepoint(self._res)
        # a force field: no orbitals, and the API holds no charges for it
        return float(self._res.get_energy()), np.asarray(self._res.get_gradient()), np.zeros(len(atoms)), float("nan")


class XTBPython(Engine):
    name = "xtb"
    distribution = "xtb"
    install_hint = "pip install 'airss-msc[xtb]' (xtb-python; CPython <= 3.11)"
    models = ("GFN1-xTB", "GFN2-xTB", "GFN-FF")
    default_model = "GFN1-xTB"
    aliases: ClassVar[dict[str, str]] = {"gfn1": "GFN1-xTB", "gfn2": "GFN2-xTB", "gfnff": "GFN-FF"}
    physical_parameters = ("electronic_temperature",)
    requires = ("xtb.interface",)
    legacy_keys: ClassVar[dict[str, str]] = {"gfn_ff": "GFN-FF"}

    def capabilities(self, model: str) -> Capabilities:
        return FORCE_FIELD_CAPABILITIES if model == "GFN-FF" else xtb_capabilities(model)

    def short_name(self, model: str) -> str:
        # always qualified: the bare GFN1/GFN2 names are tblite's
        return str(Method(self.name, model))

    def scf_ladder(self, model: str, electronic_temperature: float) -> tuple[dict, ...]:
        if model == "GFN-FF":
            return ({},)
        return xtb_ladder(electronic_temperature)

    def _calculator(self, model: str, **parameters: Any) -> Calculator:
        cls = GFNFFCalculator if model == "GFN-FF" else XTBCalculator
        return cls(model, **parameters)
