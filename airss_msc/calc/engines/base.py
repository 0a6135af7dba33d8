"""What every energy engine is: a name, its models, its capabilities and one calculator factory.

An engine hands out ASE calculators (``get_potential_energy`` in eV,
``get_forces`` in eV/Angstrom, and ``results["homo_lumo_gap"]`` in eV when it
has orbitals). Everything an engine-agnostic caller needs to know about it is
in :class:`Capabilities`; nothing outside an engine's own module asks which
engine it is. Heavy libraries (torch, PySCF, tblite) are imported inside the
factory on purpose, so listing or parsing methods stays cheap.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import CalculationFailed, Calculator, all_changes

from airss_msc.errors import InputError


class SCFError(CalculationFailed):
    """The self-consistent field did not converge (or the engine failed inside it).
    ``ground_model``: set by an excitation run whose ground state failed (its model, e.g.
    ``PBE/def2-SVP``), so that the failure is recorded as that single point's too."""

    ground_model: str = ""


class ResponseRefused(CalculationFailed):
    """The ground state converged but its excitations were refused (the message says why, e.g. a
    smeared ground state without integer occupations for TDA-ris); the ground state (model, energy eV, gap eV) travels
    with it, so the SCF it cost is stored as a single point and not paid again."""

    def __init__(self, message: str, ground_model: str, ground_energy_eV: float, ground_gap_eV: float | None):
        super().__init__(message)
        self.ground_model = ground_model
        self.ground_energy_eV = ground_energy_eV
        self.ground_gap_eV = ground_gap_eV


@dataclass(frozen=True)
class Capabilities:
    """What an engine's calculators can do; callers branch on these, never on names.

    gap: results carry a HOMO-LUMO gap (eV).
    scf: energies come from an SCF that can fail; :meth:`Engine.scf_ladder` recovers it.
    can_collapse: known to fall into unphysical holes: relaxations watch the sanity floor.
    periodic_box: the model needs a periodic cell; the engine puts clusters in a box itself.
    gradients: forces are available (relaxation possible).
    excitations: can compute vertical excitations (see :mod:`airss_msc.calc.excite`).
    elements: symbols the model covers (None: any).
    energy_unit: "eV", or "epsilon" for reduced Lennard-Jones units.
    reference: a reference-level energy (DFT): where every minimum of a composition carries
        it, Boltzmann populations and mixing energies use it rather than the ranking energy.
    gap_rank: how much its HOMO-LUMO gap is trusted when the ranking energy has none, lower first
        (:func:`~airss_msc.calc.engines.registry.preferred_gap_method`): 0 hybrid DFT, 1 GGA DFT,
        2 GFN2-xTB, 3 GFN1-xTB; None: after every ranked method, by name.
    excitation_rank: the same for vertical excitations (the band estimate), lower first; None: by name.
    band_ready: its excitations are a band estimate as computed (False: they need a measured shift
        first, as TDA-ris without an XC kernel does; they are then never the report's band, only
        the input of a packaged map: :func:`~airss_msc.analysis.bands.load_gap_map`).
    multithreaded: the engine computes with every thread it is given (a DFT SCF); others run
        best on one thread per process beside other jobs.
    slow: minutes to hours a structure: a worker announces each job with an estimate and
        reports its iterations while it runs.
    """

    gap: bool = False
    scf: bool = False
    can_collapse: bool = False
    periodic_box: bool = False
    gradients: bool = True
    excitations: bool = False
    elements: frozenset[str] | None = None
    energy_unit: str = "eV"
    reference: bool = False
    gap_rank: int | None = None
    excitation_rank: int | None = None
    band_ready: bool = True
    multithreaded: bool = False
    slow: bool = False


@dataclass(frozen=True)
class Method:
    """An engine and one of its models, e.g. ``Method("tblite", "GFN1-xTB")``.

    ``str(method)`` is the canonical name stored with every energy
    (``tblite:GFN1-xTB``, ``chgnet:0.3.0``, ``pyscf:PBE/def2-SVP``, ``lj``).
    """

    engine: str
    model: str

    def __str__(self) -> str:
        return self.engine if self.model == self.engine else f"{self.engine}:{self.model}"


class Engine:
    """Base of every engine: a thin subclass sets the class attributes and :meth:`_calculator`.

    models: canonical model names; aliases: lower-case alias -> canonical model.
    distribution: the pip distribution whose version is stored with results.
    """

    name: ClassVar[str]
    distribution: ClassVar[str]
    install_hint: ClassVar[str]
    models: ClassVar[tuple[str, ...]]
    default_model: ClassVar[str]
    aliases: ClassVar[dict[str, str]] = {}
    #: Models accepted only as ``engine:model`` (a bare name would be ambiguous).
    qualified_only: ClassVar[tuple[str, ...]] = ()
    #: Calculator parameters that change the physics (energies differ with them): SCF
    #: recovery may change every other parameter, never these, when energies are compared.
    physical_parameters: ClassVar[tuple[str, ...]] = ()
    #: Modules imported by :meth:`check_available`.
    requires: ClassVar[tuple[str, ...]] = ()
    #: Database key (``e_<key>``, ``gap_<key>``) written before methods named their engine ->
    #: this engine's model, so old databases read back (``rescore`` once stored ``e_gfn2_xtb``).
    legacy_keys: ClassVar[dict[str, str]] = {}

    def capabilities(self, model: str) -> Capabilities:
        raise NotImplementedError

    def canonical_model(self, text: str) -> str | None:
        """The canonical model for ``text`` (case-insensitive, aliases), or None."""
        low = text.strip().lower()
        for model in self.models:
            if model.lower() == low:
                return model
        return self.aliases.get(low)

    def short_name(self, model: str) -> str:
        """A compact display label of ``model``: the engine's name for its default model
        (``chgnet``), else the canonical method (``chgnet:r2scan``); engines whose model names
        say it all override this with the model alone."""
        return self.name if model == self.default_model else str(Method(self.name, model))

    def version(self) -> str:
        try:
            return f"{self.distribution} {importlib.metadata.version(self.distribution)}"
        except importlib.metadata.PackageNotFoundError:
            return f"{self.distribution} (not installed)"

    def check_available(self) -> None:
        """Fail early, with an install hint, if the engine's library cannot be imported."""
        for module in self.requires:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise InputError(
                    f"engine {self.name!r} is not available ({exc}); install it: {self.install_hint}"
                ) from None

    def scf_ladder(self, model: str, electronic_temperature: float) -> tuple[dict, ...]:
        """Calculator parameters for the first SCF attempt and each recovery rung."""
        return ({},)

    def comparable(self, model: str, rung: dict, electronic_temperature: float) -> dict:
        """``rung`` with its physical parameters reset to the first rung's, so its energy
        compares with every other row's."""
        first = self.scf_ladder(model, electronic_temperature)[0]
        return {**rung, **{k: first[k] for k in self.physical_parameters if k in first}}

    def calculator(self, model: str, **parameters: Any) -> Calculator:
        """A fresh calculator for ``model`` (parameters from :meth:`scf_ladder` or the caller)."""
        self.check_available()
        return self._calculator(model, **parameters)

    def _calculator(self, model: str, **parameters: Any) -> Calculator:
        raise NotImplementedError

    def excitations(
        self, model: str, atoms: Atoms, nstates: int, checkpoint: str | os.PathLike[str] | None = None
    ) -> ExcitedStates:
        """Vertical excitations, lowest first, and the ground state they were computed on.

        Only engines whose capabilities say ``excitations`` implement it. ``checkpoint``: a path
        stem where a long run may keep its progress, so that a rerun with it resumes (an engine
        may ignore it).
        """
        raise InputError(f"{self.name}:{model} cannot compute excitations")


@dataclass(frozen=True)
class ExcitedStates:
    """What an excitation run gives: energies (eV), oscillator strengths, a note, and the
    ground state's model, energy and HOMO-LUMO gap (eV), so the SCF is not paid twice."""

    energies_eV: np.ndarray
    strengths: np.ndarray
    note: str
    ground_model: str
    ground_energy_eV: float
    ground_gap_eV: float | None


def homo_lumo_gap(orbital_energies: np.ndarray, occupations: np.ndarray) -> float:
    """HOMO-LUMO gap (unit of the orbital energies) from orbitals and occupations.

    Works for fractional (Fermi-smeared) occupations: the HOMO is the orbital
    holding the last of the electrons counted from the bottom, the LUMO the
    next one. Spin-resolved input (shape [2, norb], occupations <= 1) gives
    the gap between the highest occupied and lowest empty level of either spin.
    """
    eps = np.asarray(orbital_energies, dtype=float)
    occ = np.asarray(occupations, dtype=float)
    if eps.ndim == 2:
        homo = max(_frontier(e, o, 1.0)[0] for e, o in zip(eps, occ, strict=True))
        lumo = min(_frontier(e, o, 1.0)[1] for e, o in zip(eps, occ, strict=True))
        return float(lumo - homo)
    homo, lumo = _frontier(eps, occ, 2.0)
    return float(lumo - homo)


def _frontier(eps: np.ndarray, occ: np.ndarray, per_orbital: float) -> tuple[float, float]:
    order = np.argsort(eps)
    eps, occ = eps[order], occ[order]
    n_filled = int(np.ceil(round(occ.sum(), 6) / per_orbital))
    if n_filled <= 0 or n_filled >= len(eps):
        return float("nan"), float("nan")
    return float(eps[n_filled - 1]), float(eps[n_filled])


def box_side(atoms: Atoms, cutoff: float, margin: float = 2.0) -> float:
    """Side (Angstrom) of a cubic box in which no atom sees a periodic image within ``cutoff``."""
    extent = np.ptp(atoms.positions, axis=0).max() if len(atoms) else 0.0
    return float(extent + 2.0 * cutoff + margin)


def calculated_atoms(calc: Calculator) -> Atoms:
    """The copy of the atoms that ``Calculator.calculate`` (the base class's) has just stored on ``calc``."""
    assert calc.atoms is not None, "calculate() called without atoms"  # the base class has set them
    return calc.atoms


class ClusterInBox(Calculator):
    """Runs a periodic-only model on a bare cluster by boxing a copy of it.

    The cluster is centred in a cube of :func:`box_side`, recomputed at every call
    (atoms move): every periodic image lies farther than twice the model's cutoff,
    so the energy is the isolated cluster's (images stop mattering beyond span +
    cutoff; the second cutoff is margin). Users pass plain clusters.
    Users pass plain clusters; the box never leaves this calculator.
    """

    implemented_properties = ["energy", "free_energy", "forces"]  # noqa: RUF012 (ASE types it as a list)

    def __init__(self, inner: Calculator, cutoff: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner = inner
        self.cutoff = float(cutoff)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        current = calculated_atoms(self)
        if not np.all(np.isfinite(current.positions)):
            # ML models return a finite energy and zero forces for NaN coordinates
            raise CalculationFailed("non-finite positions")
        boxed = Atoms(current.get_chemical_symbols(), positions=current.positions)
        boxed.set_cell([box_side(boxed, self.cutoff)] * 3)
        boxed.center()
        boxed.pbc = True
        boxed.calc = self.inner
        energy = float(boxed.get_potential_energy())
        forces = np.asarray(boxed.get_forces(), dtype=float)
        if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
            raise CalculationFailed("non-finite energy or forces")
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}

    def __getstate__(self) -> dict[str, Any]:
        # Model weights are not shipped between MPI ranks: each process loads its own.
        state = self.__dict__.copy()
        state["inner"] = None
        state["atoms"] = None
        return state
