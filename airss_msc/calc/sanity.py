"""Physical-sanity checks on cluster geometries (pure functions).

GFN2-xTB relaxations of bare Cd13Se13 fall into unphysical "holes" (Cd-Se
1.8-2.0 Angstrom, Cd-Cd 2.0-2.3 Angstrom) while the energy keeps dropping (see
shared/science.md). A structure that breaks these floors, splits into pieces or
loses an atom must get a status, never a rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii
from scipy.sparse.csgraph import connected_components

#: Pair distance floor as a fraction of the sum of covalent radii.
DISTANCE_FLOOR = 0.80
#: Two atoms are bonded (same fragment) within this multiple of the radii sum.
BOND_FACTOR = 1.35
#: Half the LJ pair minimum 2^(1/6) sigma: the "covalent radius" of dummy X.
LJ_RADIUS = 0.5 * 2 ** (1 / 6)


def radius(symbol: str) -> float:
    """Covalent radius (Angstrom; sigma for the LJ dummy ``X``)."""
    return LJ_RADIUS if symbol == "X" else float(covalent_radii[atomic_numbers[symbol]])


#: Anion-anion contacts within this multiple of the radii sum count as bonds
#: (Se-Se 2.64, Se-Te 2.84, Te-Te 3.04 Angstrom).
ANION_BOND_FACTOR = 1.10
_ANIONS = ("O", "S", "Se", "Te")


def anion_bonds(atoms: Atoms, factor: float = ANION_BOND_FACTOR) -> int:
    """Number of anion-anion bonds (S/Se/Te/O pairs within ``factor`` x radii sum).

    II-VI clusters are expected to alternate cations and anions; GFN1-xTB instead
    favours Se-Se / Te-Te bonded, segregated structures (benchmarks/method_validation.md),
    so every result carries this count and the ranking can exclude them.
    """
    idx = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s in _ANIONS]
    if len(idx) < 2:
        return 0
    sub = atoms[idx]
    d = _distances(sub.positions)
    bonded = np.triu(d < factor * _radii_sums(sub.get_chemical_symbols()), k=1)
    return int(bonded.sum())


@dataclass(frozen=True)
class Verdict:
    """Outcome of a sanity check: ``status`` is ``ok``, ``collapsed`` or ``fragmented``."""

    status: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _radii_sums(symbols) -> np.ndarray:
    r = np.array([radius(s) for s in symbols])
    return r[:, None] + r[None, :]


def _distances(positions: np.ndarray) -> np.ndarray:
    diff = positions[:, None, :] - positions[None, :, :]
    return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))


def shortest_contact(atoms: Atoms) -> tuple[float, int, int, float]:
    """Smallest ratio d_ij / (r_i + r_j) with its pair and distance (Angstrom)."""
    n = len(atoms)
    if n < 2:
        return float("inf"), -1, -1, float("inf")
    d = _distances(atoms.positions)
    ratio = d / _radii_sums(atoms.get_chemical_symbols())
    np.fill_diagonal(ratio, np.inf)
    i, j = np.unravel_index(np.argmin(ratio), ratio.shape)
    return float(ratio[i, j]), int(min(i, j)), int(max(i, j)), float(d[i, j])


def fragments(atoms: Atoms, bond_factor: float = BOND_FACTOR) -> list[list[int]]:
    """Connected pieces of the bond graph (bond: d < bond_factor * radii sum)."""
    if len(atoms) < 2:
        return [list(range(len(atoms)))]
    bonded = _distances(atoms.positions) < bond_factor * _radii_sums(atoms.get_chemical_symbols())
    n, labels = connected_components(bonded, directed=False)
    return [list(np.nonzero(labels == k)[0]) for k in range(n)]


def check_geometry(atoms: Atoms, floor: float = DISTANCE_FLOOR,
                   bond_factor: float = BOND_FACTOR) -> Verdict:
    """Collapsed if any pair is closer than ``floor`` x radii sum; fragmented if the
    bond graph falls apart (an atom flying off is a one-atom fragment)."""
    ratio, i, j, d = shortest_contact(atoms)
    syms = atoms.get_chemical_symbols()
    if ratio < floor:
        return Verdict("collapsed", f"{syms[i]}{i}-{syms[j]}{j} at {d:.2f} A, below "
                                    f"{floor:.2f} x covalent radii ({floor * (radius(syms[i]) + radius(syms[j])):.2f} A)")
    pieces = fragments(atoms, bond_factor)
    if len(pieces) > 1:
        sizes = sorted((len(p) for p in pieces), reverse=True)
        lone = [syms[p[0]] + str(p[0]) for p in pieces if len(p) == 1]
        detail = f"; detached atoms {', '.join(lone)}" if lone else ""
        return Verdict("fragmented", f"{len(pieces)} fragments of sizes {sizes}{detail}")
    return Verdict("ok")
