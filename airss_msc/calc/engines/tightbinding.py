"""What the two xTB engines share: one ASE calculator over a tight-binding library, and the SCF ladder.

The library object is kept between geometry steps so each SCF restarts from the
previous density; it is rebuilt when the atoms change identity. Any library
failure becomes :class:`SCFError` so a relaxation can climb the ladder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.units import Bohr, Hartree

from airss_msc.calc.engines.base import Capabilities, SCFError, calculated_atoms

#: GFN1/GFN2/IPEA1-xTB: orbitals (a gap) and an SCF that can fail. GFN2-xTB relaxations
#: of bare Cd clusters fall into unphysical holes (airss_msc.calc.sanity), so the
#: collapse guard is on for every SCF method.
XTB_CAPABILITIES = Capabilities(gap=True, scf=True, can_collapse=True, excitations=False)
#: Gap preference of the xTB models (the scale of :class:`Capabilities`): GFN2 is parametrised
#: on more properties than GFN1; IPEA1 is for ionisation energies, not gaps (unranked).
XTB_GAP_RANK = {"GFN2-xTB": 2, "GFN1-xTB": 3}
#: GFN-FF: a force field, no orbitals, no SCF.
FORCE_FIELD_CAPABILITIES = Capabilities(gap=False, scf=False, can_collapse=True)

#: Recovery rungs after the first attempt: a hotter electronic temperature smooths
#: level crossings; stronger damping and more iterations tame charge sloshing.
LADDER_RUNGS = (
    {"electronic_temperature": 1000.0, "mixer_damping": 0.2, "max_iterations": 500},
    {"electronic_temperature": 3000.0, "mixer_damping": 0.1, "max_iterations": 1000},
)


def xtb_capabilities(model: str) -> Capabilities:
    """:data:`XTB_CAPABILITIES` with the gap preference of ``model``."""
    return replace(XTB_CAPABILITIES, gap_rank=XTB_GAP_RANK.get(model))


def xtb_ladder(electronic_temperature: float) -> tuple[dict, ...]:
    """The first attempt at ``electronic_temperature`` (K), then :data:`LADDER_RUNGS`."""
    return ({"electronic_temperature": float(electronic_temperature)},) + LADDER_RUNGS


class TightBindingCalculator(Calculator):
    """Energy, forces, charges and HOMO-LUMO gap from an xTB library (subclasses bind one).

    Parameters: ``electronic_temperature`` (K), ``max_iterations``,
    ``mixer_damping``, ``accuracy``, ``charge``, ``uhf`` (unpaired electrons).
    """

    implemented_properties = ["energy", "free_energy", "forces", "homo_lumo_gap", "charges"]  # noqa: RUF012 (ASE types it as a list)
    default_parameters = {  # noqa: RUF012 (ASE types it as a dict)
        "electronic_temperature": 300.0,
        "max_iterations": 250,
        "mixer_damping": 0.4,
        "accuracy": 1.0,
        "charge": 0,
        "uhf": 0,
    }
    #: The model rebuilds its library at every geometry (GFN-FF fixes its topology at build).
    rebuild_every_step = False

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.model = model
        #: The library's calculator and its last result (xtb-python or tblite objects, untyped).
        self._lib: Any = None
        self._res: Any = None
        super().__init__(**kwargs)

    def set(self, **kwargs: Any) -> dict[str, Any]:
        changed = super().set(**kwargs)
        if changed:
            self._forget()
        return changed

    def reset(self) -> None:
        super().reset()
        self._forget()

    def _forget(self) -> None:
        self._lib = None
        self._res = None

    def __getstate__(self) -> dict[str, Any]:
        # Library handles cannot be pickled (an MPI worker must not ship them back).
        state = self.__dict__.copy()
        state.update(_lib=None, _res=None, atoms=None)
        return state

    def _new_library(self, atoms: Atoms) -> Any:
        raise NotImplementedError

    def _singlepoint(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray, float]:
        """(energy Hartree, gradient Hartree/Bohr, charges, gap Hartree) at the current geometry."""
        raise NotImplementedError

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = calculated_atoms(self)
        rebuild = (
            self._lib is None
            or self.rebuild_every_step
            or any(c in system_changes for c in ("numbers", "pbc", "cell", "initial_charges", "initial_magmoms"))
        )
        try:
            if rebuild:
                self._lib = self._new_library(atoms)
                self._res = None
            else:
                self._lib.update(atoms.positions / Bohr)
            energy, gradient, charges, gap = self._singlepoint(atoms)
        except Exception as exc:  # the libraries raise RuntimeError / XTBException
            self._forget()  # a poisoned density must not seed the retry
            text = str(exc).strip()
            raise SCFError(f"{self.model}: {text.splitlines()[0] if text else type(exc).__name__}") from exc
        if not np.isfinite(energy) or not np.all(np.isfinite(gradient)):
            self._forget()
            raise SCFError(f"{self.model}: non-finite energy or gradient")
        self.results["energy"] = energy * Hartree
        self.results["free_energy"] = energy * Hartree
        self.results["forces"] = -gradient * Hartree / Bohr
        self.results["charges"] = charges
        self.results["homo_lumo_gap"] = gap * Hartree
