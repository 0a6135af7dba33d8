"""Energy engines behind one ASE calculator protocol.

``make_calculator(method)`` returns an :class:`ase.calculators.calculator.Calculator`
giving ``energy`` (eV), ``forces`` (eV/Angstrom) and, for tight-binding methods,
``homo_lumo_gap`` (eV). Engines:

- ``tblite`` (default; maintained): GFN1-xTB, GFN2-xTB, IPEA1-xTB.
- ``xtb`` (xtb-python, the ``[xtb]`` extra, CPython <= 3.11): GFN1-xTB, GFN2-xTB, GFN-FF.
- ``lj``: Lennard-Jones with epsilon = sigma = 1 and no cutoff, for tests and
  search benchmarks (energies in epsilon, lengths in sigma).

A method is written ``GFN1-xTB`` (default engine), ``tblite:GFN2-xTB``,
``xtb:GFN-FF`` or ``lj``. SCF failures are raised as :class:`SCFError` so the
relaxation stage can recover from them.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import tempfile
from dataclasses import dataclass

import numpy as np
from ase.calculators.calculator import Calculator, CalculationFailed, all_changes
from ase.units import Bohr, Hartree, kB

from airss_msc.errors import InputError

TBLITE_METHODS = {"GFN1-xTB", "GFN2-xTB", "IPEA1-xTB"}
XTB_METHODS = {"GFN1-xTB", "GFN2-xTB", "GFN-FF"}
_ALIASES = {m.lower(): m for m in TBLITE_METHODS | XTB_METHODS}
_ALIASES.update({"gfn1": "GFN1-xTB", "gfn2": "GFN2-xTB", "gfnff": "GFN-FF", "gfn-ff": "GFN-FF",
                 "ipea1": "IPEA1-xTB"})


class SCFError(CalculationFailed):
    """The self-consistent field did not converge (or the engine failed in the SCF)."""


@dataclass(frozen=True)
class MethodSpec:
    """An engine and a method of it, e.g. ``MethodSpec("tblite", "GFN1-xTB")``."""

    engine: str
    method: str

    def __str__(self) -> str:
        return self.method if self.engine == "lj" else f"{self.engine}:{self.method}"

    @property
    def is_lj(self) -> bool:
        return self.engine == "lj"


def parse_method(text: str) -> MethodSpec:
    """Parse ``GFN1-xTB``, ``tblite:GFN2-xTB``, ``xtb:GFN-FF`` or ``lj``."""
    raw = str(text).strip()
    if raw.lower() in ("lj", "lennard-jones", "lennardjones"):
        return MethodSpec("lj", "lj")
    engine, sep, name = raw.partition(":")
    if not sep:
        engine, name = "tblite", raw
    engine = engine.lower()
    method = _ALIASES.get(name.lower())
    if engine == "tblite" and method in TBLITE_METHODS:
        return MethodSpec("tblite", method)
    if engine == "xtb" and method in XTB_METHODS:
        return MethodSpec("xtb", method)
    if engine == "tblite" and method == "GFN-FF":
        raise InputError("GFN-FF is not in tblite; use method 'xtb:GFN-FF' (needs the [xtb] extra)")
    known = sorted(TBLITE_METHODS) + [f"xtb:{m}" for m in sorted(XTB_METHODS)] + ["lj"]
    raise InputError(f"unknown method {text!r}: choose one of {', '.join(known)}")


def engine_version(spec: MethodSpec) -> str:
    """Version string of the engine package (stored with every result)."""
    dist = {"tblite": "tblite", "xtb": "xtb", "lj": "ase"}[spec.engine]
    try:
        return f"{dist} {importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{dist} (not installed)"


def check_available(spec: MethodSpec) -> None:
    """Fail early, with an install hint, if the engine cannot be imported."""
    try:
        if spec.engine == "tblite":
            import tblite.interface  # noqa: F401
        elif spec.engine == "xtb":
            import xtb.interface  # noqa: F401
    except ImportError as exc:
        hint = "pip install tblite" if spec.engine == "tblite" else "pip install 'airss-msc[xtb]' (CPython <= 3.11)"
        raise InputError(f"engine {spec.engine!r} is not available ({exc}); {hint}") from None


def homo_lumo_gap(orbital_energies: np.ndarray, occupations: np.ndarray) -> float:
    """HOMO-LUMO gap (same unit as the orbital energies) from orbitals and occupations.

    Works for fractional (Fermi-smeared) occupations: the HOMO is the orbital holding
    the last of the electrons counted from the bottom, the LUMO the next one.
    Spin-resolved input (shape [2, norb]) uses the smaller of the two channel gaps.
    """
    eps = np.asarray(orbital_energies, dtype=float)
    occ = np.asarray(occupations, dtype=float)
    if eps.ndim == 2:
        gaps = [homo_lumo_gap(e, o * 2.0) for e, o in zip(eps, occ)]
        return float(min(gaps))
    order = np.argsort(eps)
    eps, occ = eps[order], occ[order]
    n_pairs = int(np.ceil(round(occ.sum(), 6) / 2.0))
    if n_pairs <= 0 or n_pairs >= len(eps):
        return float("nan")
    return float(eps[n_pairs] - eps[n_pairs - 1])


_SCRATCH: str | None = None


@contextlib.contextmanager
def _scratch_dir(active: bool):
    """Run in a per-process scratch directory: xtb's GFN-FF writes topology files
    (gfnff_topo, gfnff_adjacency) into the working directory, which MPI workers share."""
    global _SCRATCH
    if not active:
        yield
        return
    if _SCRATCH is None:
        _SCRATCH = tempfile.mkdtemp(prefix="airss-msc-gfnff-")
    here = os.getcwd()
    os.chdir(_SCRATCH)
    try:
        yield
    finally:
        os.chdir(here)


class TightBinding(Calculator):
    """ASE calculator over the tblite or xtb-python library API.

    Parameters (all optional): ``electronic_temperature`` (K), ``max_iterations``,
    ``mixer_damping`` (tblite only), ``accuracy``, ``charge``, ``uhf``.
    The library object is kept between geometry steps so the SCF restarts from
    the previous density; it is rebuilt when the atoms change identity.
    """

    implemented_properties = ["energy", "free_energy", "forces", "homo_lumo_gap", "charges"]
    default_parameters = {
        "electronic_temperature": 300.0,
        "max_iterations": 250,
        "mixer_damping": 0.4,
        "accuracy": 1.0,
        "charge": 0,
        "uhf": 0,
    }

    def __init__(self, spec: MethodSpec, **kwargs):
        self.spec = spec
        self._lib = None
        self._res = None
        super().__init__(**kwargs)

    def set(self, **kwargs):
        changed = super().set(**kwargs)
        if changed:
            self._lib = None
            self._res = None
        return changed

    def reset(self):
        super().reset()
        self._lib = None
        self._res = None

    def __getstate__(self):
        # Library handles cannot be pickled (an MPI worker must not ship them back).
        state = self.__dict__.copy()
        state["_lib"] = None
        state["_res"] = None
        state["atoms"] = None
        return state

    def _new_tblite(self, atoms):
        from tblite.interface import Calculator as TBCalc

        p = self.parameters
        lib = TBCalc(self.spec.method, atoms.numbers, atoms.positions / Bohr,
                     float(p.charge), int(p.uhf))
        lib.set("verbosity", 0)
        lib.set("accuracy", float(p.accuracy))
        lib.set("max-iter", int(p.max_iterations))
        lib.set("temperature", float(p.electronic_temperature) * kB / Hartree)
        lib.set("mixer-damping", float(p.mixer_damping))
        return lib

    def _new_xtb(self, atoms):
        from xtb.interface import Calculator as XCalc, Param
        from xtb.libxtb import VERBOSITY_MUTED

        param = {"GFN1-xTB": Param.GFN1xTB, "GFN2-xTB": Param.GFN2xTB, "GFN-FF": Param.GFNFF}
        p = self.parameters
        lib = XCalc(param[self.spec.method], atoms.numbers, atoms.positions / Bohr,
                    float(p.charge), int(p.uhf))
        lib.set_verbosity(VERBOSITY_MUTED)
        lib.set_accuracy(float(p.accuracy))
        lib.set_max_iterations(int(p.max_iterations))
        lib.set_electronic_temperature(float(p.electronic_temperature))
        return lib

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        # GFN-FF fixes its bond topology when the library object is built: rebuild it
        # at every geometry, or a relaxed structure is scored with its start's bonds.
        rebuild = (self._lib is None or self.spec.method == "GFN-FF"
                   or any(c in system_changes for c in ("numbers", "pbc", "cell", "initial_charges", "initial_magmoms")))
        try:
            if rebuild:
                with _scratch_dir(self.spec.method == "GFN-FF"):
                    self._lib = self._new_tblite(atoms) if self.spec.engine == "tblite" else self._new_xtb(atoms)
                self._res = None
            else:
                self._lib.update(atoms.positions / Bohr)
            if self.spec.engine == "tblite":
                self._res = self._lib.singlepoint(self._res)
                energy = float(self._res.get("energy"))
                gradient = np.asarray(self._res.get("gradient"))
                charges = np.asarray(self._res.get("charges"))
                gap = homo_lumo_gap(self._res.get("orbital-energies"), self._res.get("orbital-occupations"))
            else:
                with _scratch_dir(self.spec.method == "GFN-FF"):
                    self._res = self._lib.singlepoint(self._res)
                energy = float(self._res.get_energy())
                gradient = np.asarray(self._res.get_gradient())
                if self.spec.method == "GFN-FF":
                    # a force field: no orbitals, and the API holds no charges for it
                    charges = np.zeros(len(atoms))
                    gap = float("nan")
                else:
                    charges = np.asarray(self._res.get_charges())
                    gap = homo_lumo_gap(self._res.get_orbital_eigenvalues(), self._res.get_orbital_occupations())
        except Exception as exc:  # the libraries raise RuntimeError / XTBException
            # Drop the (possibly poisoned) density so a retry starts clean.
            self._lib = None
            self._res = None
            raise SCFError(f"{self.spec}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from exc
        if not np.isfinite(energy) or not np.all(np.isfinite(gradient)):
            self._lib = None
            self._res = None
            raise SCFError(f"{self.spec}: non-finite energy or gradient")
        self.results["energy"] = energy * Hartree
        self.results["free_energy"] = energy * Hartree
        self.results["forces"] = -gradient * Hartree / Bohr
        self.results["charges"] = charges
        self.results["homo_lumo_gap"] = gap * Hartree


class LennardJonesCluster(Calculator):
    """Lennard-Jones energy and forces without cutoff (epsilon = sigma = 1).

    Exact pair sums, so energies compare directly with the Cambridge Cluster
    Database (LJ13 -44.326801). O(N^2) NumPy, fast for N <= 100.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        pos = self.atoms.positions
        diff = pos[:, None, :] - pos[None, :, :]
        r2 = np.einsum("ijk,ijk->ij", diff, diff)
        np.fill_diagonal(r2, np.inf)
        inv6 = r2 ** -3
        energy = 2.0 * float(np.sum(inv6 * inv6 - inv6))  # 4 * sum_{i<j}, each pair counted twice
        # -dE/dr_i = sum_j 24 (2 r^-14 - r^-8) (r_i - r_j)
        coef = 24.0 * (2.0 * inv6 * inv6 - inv6) / r2
        forces = np.einsum("ij,ijk->ik", coef, diff)
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = forces


def make_calculator(spec: MethodSpec | str, **parameters) -> Calculator:
    """A fresh calculator for ``spec`` with SCF ``parameters`` (see :class:`TightBinding`)."""
    if isinstance(spec, str):
        spec = parse_method(spec)
    if spec.is_lj:
        return LennardJonesCluster()
    check_available(spec)
    return TightBinding(spec, **parameters)
