"""tblite: the maintained xTB library (GFN1-xTB, GFN2-xTB, IPEA1-xTB); needs the system libgomp1."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.units import Bohr, Hartree, kB

from airss_msc.calc.engines.base import Capabilities, Engine, homo_lumo_gap
from airss_msc.calc.engines.tightbinding import (
    TightBindingCalculator,
    xtb_capabilities,
    xtb_ladder,
)


class TBLiteCalculator(TightBindingCalculator):
    def _new_library(self, atoms: Atoms) -> Any:
        from tblite.interface import Calculator as Library

        p = self.parameters
        lib = Library(self.model, atoms.numbers, atoms.positions / Bohr, float(p["charge"]), int(p["uhf"]))
        lib.set("verbosity", 0)
        lib.set("accuracy", float(p["accuracy"]))
        lib.set("max-iter", int(p["max_iterations"]))
        lib.set("temperature", float(p["electronic_temperature"]) * kB / Hartree)
        lib.set("mixer-damping", float(p["mixer_damping"]))
        return lib

    def _singlepoint(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray, float]:
        self._res = self._lib.singlepoint(self._res)
        res = self._res
        gap = homo_lumo_gap(res.get("orbital-energies"), res.get("orbital-occupations"))
        return float(res.get("energy")), np.asarray(res.get("gradient")), np.asarray(res.get("charges")), gap


class TBLite(Engine):
    name = "tblite"
    distribution = "tblite"
    install_hint = "pip install tblite (and the system package libgomp1)"
    models = ("GFN1-xTB", "GFN2-xTB", "IPEA1-xTB")
    default_model = "GFN1-xTB"
    aliases: ClassVar[dict[str, str]] = {"gfn1": "GFN1-xTB", "gfn2": "GFN2-xTB", "ipea1": "IPEA1-xTB"}
    physical_parameters = ("electronic_temperature",)
    requires = ("tblite.interface",)
    legacy_keys: ClassVar[dict[str, str]] = {"gfn1_xtb": "GFN1-xTB", "gfn2_xtb": "GFN2-xTB", "ipea1_xtb": "IPEA1-xTB"}

    def capabilities(self, model: str) -> Capabilities:
        return xtb_capabilities(model)

    def short_name(self, model: str) -> str:
        # the bare model names are tblite's (parse_method), so the model alone says it all
        return model

    def scf_ladder(self, model: str, electronic_temperature: float) -> tuple[dict, ...]:
        return xtb_ladder(electronic_temperature)

    def _calculator(self, model: str, **parameters: Any) -> Calculator:
        return TBLiteCalculator(model, **parameters)
