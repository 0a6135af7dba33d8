"""The one typed record every result travels in: relaxation -> storage -> ranking -> report.

A :class:`Result` is one cluster with everything computed on it: the status of
its relaxation, the energy of the method that made its geometry, single-point
energies (and gaps) of other methods side by side, excitations, and the
provenance that regenerates its start (seed, separations, lineage). It holds
only built-in types and NumPy arrays, so it pickles back from MPI workers.

Units: Angstrom, eV, eV/Angstrom, seconds. Methods are named by their
canonical string (``tblite:GFN1-xTB``, ``chgnet:0.3.0``, ``pyscf:PBE/def2-SVP``);
see :mod:`airss_msc.calc.engines`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from ase import Atoms

from airss_msc.composition import canonical_formula


class Status(str, Enum):
    """The outcome of a relaxation, in report order; only ``RELAXED`` is ranked.

    String-valued: a status is stored as its value (``"relaxed"``), so databases written
    before the enum read back, and ``Status.RELAXED == "relaxed"`` holds.
    """

    RELAXED = "relaxed"
    MAX_STEPS = "max_steps"
    COLLAPSED = "collapsed"
    FRAGMENTED = "fragmented"
    SCF_FAILED = "scf_failed"
    ERROR = "error"

    def __str__(self) -> str:
        # the stored word, also inside f-strings and formatted tables
        return self.value

    @property
    def meaning(self) -> str:
        """What the status means, in words (shown by ``rank --all`` and the report)."""
        return _MEANING[self]

    @classmethod
    def parse(cls, text: str | Status) -> Status:
        """The status named ``text``; a :class:`ValueError` naming every status otherwise."""
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"unknown status {text!r}; statuses are {', '.join(s.value for s in cls)}") from None


_MEANING = {
    Status.RELAXED: "converged and physically sane",
    Status.MAX_STEPS: "step or wall-time limit reached before convergence (sane)",
    Status.COLLAPSED: "a pair closer than the sanity floor (unphysical hole)",
    Status.FRAGMENTED: "the cluster split or lost an atom",
    Status.SCF_FAILED: "the SCF did not converge, even after the recovery ladder",
    Status.ERROR: "anything else, with its message",
}

STATUSES: tuple[Status, ...] = tuple(Status)
"""Every status a result can have, in report order. Only ``relaxed`` is ranked."""

STATUS_MEANING: dict[Status, str] = {s: s.meaning for s in Status}
"""What each status means (shown by ``rank --all`` and the report); plain strings look up too."""


class JobStatus(str, Enum):
    """The outcome of a single point (:class:`~airss_msc.calc.single_point.SinglePoint`), an
    excitation run (:class:`Excitations`) or a sanity check: success has its own stored word
    (``ok`` in single-point records and benchmarks/reference, ``done`` in stored excitations);
    the failures are the relaxation's (:class:`Status`)."""

    OK = "ok"
    DONE = "done"
    SCF_FAILED = Status.SCF_FAILED.value
    ERROR = Status.ERROR.value

    def __str__(self) -> str:
        return self.value


INT_PROVENANCE = (
    "seed",
    "candidate",
    "attempts",
    "parent",
    "parent2",
    "multiplicity",
    "bare_parent",
    "refined_from",
    "ligands",
)
"""Provenance keys stored as integers; every provenance key not here or in FLOAT_PROVENANCE is text."""
FLOAT_PROVENANCE = ("parent_energy",)
"""Provenance keys stored as floats."""


def method_key(method: str) -> str:
    """Database-safe key of a canonical method: ``tblite:GFN2-xTB`` -> ``tblite_gfn2_xtb``."""
    return re.sub(r"[^a-z0-9]+", "_", str(method).lower()).strip("_")


@dataclass
class Excitations:
    """Vertical excitations of one structure by one method (eV, dimensionless f).

    ``energies_eV`` and ``oscillator_strengths`` are parallel arrays, lowest
    state first; ``status`` is ``done`` or a failure status with its ``message``;
    ``wall_seconds`` is the time taken.
    """

    method: str
    energies_eV: np.ndarray
    oscillator_strengths: np.ndarray
    status: str = JobStatus.DONE
    message: str = ""
    wall_seconds: float = 0.0
    ground_method: str = ""
    """The ground state the excitations were computed on (e.g. ``pyscf:PBE0/def2-SVP``)."""
    ground_energy_eV: float | None = None
    """Total energy of that ground state, eV."""
    ground_gap_eV: float | None = None
    """HOMO-LUMO gap of that ground state, eV."""

    def first_bright(self, threshold: float = 0.01) -> tuple[float, float] | None:
        """(energy eV, f) of the lowest excitation with f >= ``threshold``; None if none."""
        for e, f in zip(self.energies_eV, self.oscillator_strengths, strict=True):
            if f >= threshold:
                return float(e), float(f)
        return None

    def as_data(self) -> dict:
        """Plain built-in types and arrays, for storage (inverse of :meth:`from_data`)."""
        return {
            "method": self.method,
            "energies_eV": np.asarray(self.energies_eV, float),
            "oscillator_strengths": np.asarray(self.oscillator_strengths, float),
            "status": str(self.status),
            "message": self.message,
            "wall_seconds": float(self.wall_seconds),
            "ground_method": self.ground_method,
            "ground_energy_eV": self.ground_energy_eV,
            "ground_gap_eV": self.ground_gap_eV,
        }

    @classmethod
    def from_data(cls, data: dict) -> Excitations:
        """Rebuild from :meth:`as_data` output (missing optional keys take their defaults)."""
        return cls(
            str(data["method"]),
            np.asarray(data["energies_eV"], float),
            np.asarray(data["oscillator_strengths"], float),
            str(data.get("status", JobStatus.DONE)),
            str(data.get("message", "")),
            float(data.get("wall_seconds", 0.0)),
            str(data.get("ground_method", "")),
            _optional_float(data.get("ground_energy_eV")),
            _optional_float(data.get("ground_gap_eV")),
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass
class Result:
    """One cluster and what was computed on it.

    Made by :func:`airss_msc.calc.relax.relax_structure` (and the search,
    refine and cap stages), stored by :class:`airss_msc.results.store.ResultsDB`
    and read back by :func:`airss_msc.analysis.rank.load_results`. Units are
    Angstrom, eV, eV/Angstrom and seconds throughout.

    Structure:

    - ``symbols``: element symbols, one per atom (a tuple).
    - ``positions``: final Cartesian positions, shape (natoms, 3), Angstrom.
    - ``initial_positions``: the start geometry, Angstrom (None if not kept).

    Outcome:

    - ``status``: one of :data:`STATUSES`; only ``relaxed`` is ranked:

      - ``relaxed``: converged and physically sane;
      - ``max_steps``: step or wall-time limit reached before convergence
        (the geometry is sane);
      - ``collapsed``: a pair of atoms closer than the sanity floor;
      - ``fragmented``: the cluster split or lost an atom;
      - ``scf_failed``: the SCF did not converge, even after the recovery
        ladder;
      - ``error``: anything else (the default until a stage sets it).

      The same meanings, as text, are in :data:`STATUS_MEANING`.
    - ``message``: why it failed, or warnings of a successful run ("" if none).

    Energies (all eV, total energies of the whole cluster, not per atom):

    - ``method``: canonical name of the method that made the geometry
      (``chgnet:0.3.0``, ``tblite:GFN2-xTB``, ...).
    - ``energy``: total energy of ``method`` on the final geometry, eV (None
      if it could not be computed).
    - ``gap``: HOMO-LUMO gap of ``method``, eV; None for engines without
      orbitals (ML potentials, force fields), never 0 in their place.
    - ``energies``: single points of other methods on the same geometry,
      ``{canonical method: eV}``; ``method`` itself is included.
    - ``gaps``: HOMO-LUMO gaps of those single points, ``{method: eV}``.
    - ``excitations``: vertical excitations, ``{method: Excitations}``
      (energies in eV, oscillator strengths dimensionless).

    Run record:

    - ``fmax``: largest atomic force at the end, eV/Angstrom (None if unknown).
    - ``steps``: optimizer steps over all stages.
    - ``force_calls``: energy/force evaluations over all stages.
    - ``scf_retries``: rungs of the SCF recovery ladder climbed (0: none).
    - ``wall_seconds``: wall time of the relaxation, seconds.
    - ``optimizer``: the optimizer(s) used, one per stage, ``"; "``-separated.
    - ``engine_version``: version of the package behind ``method``.
    - ``protocol``: the stages run, e.g. ``chgnet fmax=0.05 steps=500``.
    - ``airss_msc_version``: version of this package that made the result.
    - ``anion_bonds``: number of anion-anion (S/Se/Te/O) bonds in the final
      geometry; None if not computed.
    - ``settings``: the :class:`~airss_msc.calc.relax.RelaxSettings` as a dict.

    Provenance and storage:

    - ``provenance``: how the start was made (``formula``, ``seed``,
      separations, shape, symmetry, parent rows, move, ...); integer and float
      keys are listed in :data:`INT_PROVENANCE` and :data:`FLOAT_PROVENANCE`.
    - ``id``: database row id of a stored result (None until stored).
    - ``source``: where a stored result was read from (database or file frame).

    Derived: ``natoms``, ``composition`` (canonical formula), ``energy_per_atom``
    (eV/atom), ``seed``, ``ok`` (``status == "relaxed"``) and ``atoms`` (the
    structure as :class:`ase.Atoms`); :meth:`energy_by` and :meth:`gap_by` look
    up a method's energy or gap, the geometry method's own when None.
    """

    symbols: tuple[str, ...]
    positions: np.ndarray
    status: Status = Status.ERROR
    message: str = ""
    method: str = ""
    energy: float | None = None
    gap: float | None = None
    energies: dict[str, float] = field(default_factory=dict)
    gaps: dict[str, float] = field(default_factory=dict)
    excitations: dict[str, Excitations] = field(default_factory=dict)
    fmax: float | None = None
    steps: int = 0
    force_calls: int = 0
    scf_retries: int = 0
    wall_seconds: float = 0.0
    optimizer: str = ""
    engine_version: str = ""
    protocol: str = ""
    airss_msc_version: str = ""
    anion_bonds: int | None = None
    provenance: dict = field(default_factory=dict)
    initial_positions: np.ndarray | None = None
    settings: dict = field(default_factory=dict)
    id: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        self.symbols = tuple(self.symbols)
        self.positions = np.asarray(self.positions, dtype=float).reshape(-1, 3)
        # a stored or typed string becomes the enum; a misspelt one is refused here, not ranked later
        self.status = Status.parse(self.status)

    # ------------------------------------------------------------------ derived
    @property
    def natoms(self) -> int:
        """Number of atoms."""
        return len(self.symbols)

    @property
    def composition(self) -> str:
        """Canonical formula (cations first), from the provenance or the symbols."""
        formula = self.provenance.get("formula")
        if formula:
            return canonical_formula(str(formula))
        if not self.symbols:
            return ""
        return canonical_formula(Atoms(self.symbols).get_chemical_formula())

    @property
    def energy_per_atom(self) -> float | None:
        """``energy`` divided by ``natoms``, eV/atom (None without an energy)."""
        return None if self.energy is None or not self.natoms else self.energy / self.natoms

    @property
    def seed(self) -> int | None:
        """The generator seed of the start (``provenance["seed"]``), or None."""
        seed = self.provenance.get("seed")
        return None if seed is None else int(seed)

    @property
    def ok(self) -> bool:
        """True when ``status`` is ``relaxed`` (the only status that is ranked)."""
        return self.status == Status.RELAXED

    @property
    def atoms(self) -> Atoms:
        """The structure as :class:`ase.Atoms` (no calculator; provenance in ``info``).

        A new object on every access: editing it does not change the result.
        """
        atoms = Atoms(self.symbols, positions=self.positions)
        atoms.info.update(self.provenance)
        return atoms

    def energy_by(self, method: str | None) -> float | None:
        """Energy (eV) of ``method`` on this geometry (None: ``method``'s own), or None."""
        if method is None or method == self.method:
            return self.energy if self.energy is not None else self.energies.get(self.method)
        return self.energies.get(method)

    def gap_by(self, method: str | None) -> float | None:
        """HOMO-LUMO gap (eV) of ``method`` on this geometry (None: ``method``'s own), or None."""
        if method is None or method == self.method:
            return self.gap
        return self.gaps.get(method)

    def with_single_point(self, method: str, energy: float | None, gap: float | None = None) -> Result:
        """Add (in place) a single point of ``method``; returns self."""
        if energy is not None:
            self.energies[method] = float(energy)
        if gap is not None and np.isfinite(gap):
            self.gaps[method] = float(gap)
        return self


__all__ = ["STATUSES", "STATUS_MEANING", "Excitations", "JobStatus", "Result", "Status", "method_key"]
