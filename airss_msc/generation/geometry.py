"""Geometry of clusters (pure functions): covalent radii, contacts, bonds, fragments, point groups.

Shared by the generator, the sanity guards, ranking and the report, so each
rule is written once. Lengths in Angstrom; the Lennard-Jones dummy ``X`` has
radius 2^(1/6)/2 sigma.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii
from pymatgen.core import Composition, Element, Molecule
from pymatgen.symmetry.analyzer import PointGroupAnalyzer
from scipy.sparse.csgraph import connected_components

from airss_msc.composition import ANIONS

#: Half the LJ pair minimum 2^(1/6) sigma: the "covalent radius" of dummy X.
LJ_RADIUS = 0.5 * 2 ** (1 / 6)
#: Two atoms are bonded (same fragment; a bond in pictures) within this multiple of the radii sum.
BOND_FACTOR = 1.35
#: Anion-anion contacts within this multiple of the radii sum count as bonds
#: (Se-Se 2.64, Se-Te 2.84, Te-Te 3.04 Angstrom).
ANION_BOND_FACTOR = 1.10


def radius(symbol: str) -> float:
    """Covalent radius (Angstrom; sigma for the LJ dummy ``X``)."""
    return LJ_RADIUS if symbol == "X" else float(covalent_radii[atomic_numbers[symbol]])


def radii_sums(symbols) -> np.ndarray:
    r = np.array([radius(s) for s in symbols])
    return r[:, None] + r[None, :]


def distances(positions: np.ndarray) -> np.ndarray:
    """All pair distances (Angstrom), zero diagonal."""
    diff = positions[:, None, :] - positions[None, :, :]
    return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))


def bonds(atoms: Atoms, factor: float = BOND_FACTOR) -> list[tuple[int, int]]:
    """Pairs (i < j) closer than ``factor`` x the sum of covalent radii."""
    if len(atoms) < 2:
        return []
    close = np.triu(distances(atoms.positions) < factor * radii_sums(atoms.get_chemical_symbols()), k=1)
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(close), strict=True)]


def anion_bonds(atoms: Atoms, factor: float = ANION_BOND_FACTOR) -> int:
    """Number of anion-anion bonds (S/Se/Te/O pairs within ``factor`` x radii sum).

    II-VI clusters are expected to alternate cations and anions; GFN1-xTB instead
    favours Se-Se / Te-Te bonded, segregated structures, so every result carries
    this count and the ranking can exclude them.
    """
    idx = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s in ANIONS]
    return len(bonds(atoms[idx], factor)) if len(idx) >= 2 else 0


def shortest_contact(atoms: Atoms) -> tuple[float, int, int, float]:
    """Smallest ratio d_ij / (r_i + r_j) with its pair and distance (Angstrom)."""
    if len(atoms) < 2:
        return float("inf"), -1, -1, float("inf")
    d = distances(atoms.positions)
    ratio = d / radii_sums(atoms.get_chemical_symbols())
    np.fill_diagonal(ratio, np.inf)
    i, j = np.unravel_index(np.argmin(ratio), ratio.shape)
    return float(ratio[i, j]), int(min(i, j)), int(max(i, j)), float(d[i, j])


def fragments(atoms: Atoms, bond_factor: float = BOND_FACTOR) -> list[list[int]]:
    """Connected pieces of the bond graph (bond: d < bond_factor * radii sum)."""
    if len(atoms) < 2:
        return [list(range(len(atoms)))]
    bonded = distances(atoms.positions) < bond_factor * radii_sums(atoms.get_chemical_symbols())
    n, labels = connected_components(bonded, directed=False)
    return [list(np.nonzero(labels == k)[0]) for k in range(n)]


def coordination(atoms: Atoms, factor: float = BOND_FACTOR) -> np.ndarray:
    """Number of bonded neighbours of each atom."""
    out = np.zeros(len(atoms), dtype=int)
    for i, j in bonds(atoms, factor):
        out[i] += 1
        out[j] += 1
    return out


@functools.cache
def _species(symbol: str) -> Composition:
    """One shared pymatgen Composition per element, its mass already a plain float.

    PointGroupAnalyzer weighs every site by ``site.species.weight``, which pymatgen
    computes with unit-carrying arithmetic for every site of every molecule (a fifth
    of the analysis time). The value is the same float either way, so sharing one
    Composition per element with the weight cached as a float changes no result.
    pymatgen has no dummy element: Ar stands in for the Lennard-Jones particle X.
    """
    comp = Composition({Element("Ar" if symbol == "X" else symbol): 1})
    weight = float(comp.weight)
    if isinstance(getattr(type(comp), "weight", None), functools.cached_property):
        comp.__dict__["weight"] = weight  # where cached_property keeps its value
    return comp


#: Closures of pymatgen's operations beyond this many matrices are not a point group
#: (the largest has 120): pymatgen warns and, left alone, can run for hours.
_PYMATGEN_RUNAWAY = "matrices have been generated"


@contextlib.contextmanager
def _runaway_is_an_error():
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=f".*{_PYMATGEN_RUNAWAY}")
        yield


def point_group_analyzer(symbols, positions: np.ndarray, tolerance: float = 0.1) -> PointGroupAnalyzer | None:
    """pymatgen's PointGroupAnalyzer of a cluster (``tolerance`` Angstrom), the one wrapper of it here;
    None where pymatgen gives up or runs away (an operation true only within the tolerance)."""
    mol = Molecule([_species(s) for s in symbols], np.asarray(positions, dtype=float))
    try:
        with _runaway_is_an_error():
            return PointGroupAnalyzer(mol, tolerance=tolerance)
    except Exception:  # pymatgen fails on some degenerate geometries
        return None


def point_group_order(analyzer: PointGroupAnalyzer) -> int | None:
    """Number of operations pymatgen's analyzer found (None if it fails or runs away)."""
    try:
        with _runaway_is_an_error():
            return len(analyzer.get_pointgroup())
    except Exception:
        return None


def point_group(atoms: Atoms, tolerance: float = 0.1) -> str:
    """Schoenflies point group (pymatgen, ``tolerance`` in Angstrom); '?' if undetermined."""
    if len(atoms) < 2:
        return "Kh"
    analyzer = point_group_analyzer(atoms.get_chemical_symbols(), atoms.positions, tolerance)
    if analyzer is None:
        return "?"
    try:
        return str(analyzer.sch_symbol)
    except Exception:
        return "?"
