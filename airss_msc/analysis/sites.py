"""Which sites of a mixed sublattice each element takes: coordination by the other sublattice.

In an (MX)13 cluster a site of the mixing sublattice (the cations of Zn_xCd_(13-x)Se_13, the
anions of Cd13Te_ySe_(13-y)) is told apart by how many atoms of the other sublattice are bonded
to it (bond: closer than ``BOND_FACTOR`` x the covalent radii sum, as everywhere in this package):
4 is a core (bulk-like, tetrahedral) site, 3 or fewer a cage (surface) site. The distance from
the cluster's centroid (unweighted, so that it does not move when Cd replaces Zn) is given beside
it. A preference shows as an element on more of the
4-coordinated sites than a random deal of the same atoms over the same sites would give
(``expected_core``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from airss_msc.composition import ANIONS, CATIONS
from airss_msc.generation.geometry import BOND_FACTOR, bonds

#: A site with at least this many bonds to the other sublattice is a core site.
CORE_COORDINATION = 4


@dataclass(frozen=True)
class Site:
    """One site of the mixing sublattice."""

    element: str
    coordination: int  #: bonds to the other sublattice
    radius: float  #: distance from the centroid of all atoms, Angstrom


@dataclass(frozen=True)
class SiteOccupation:
    """Where ``element`` sits in one structure of a mixed sublattice."""

    formula: str
    row_id: int | None
    element: str
    sites: tuple[Site, ...]  #: every site of the mixing sublattice

    @property
    def mine(self) -> list[Site]:
        return [s for s in self.sites if s.element == self.element]

    @property
    def core_sites(self) -> int:
        return sum(s.coordination >= CORE_COORDINATION for s in self.sites)

    @property
    def on_core(self) -> int:
        """``element`` atoms on core (>= 4-coordinated) sites."""
        return sum(s.coordination >= CORE_COORDINATION for s in self.mine)

    @property
    def expected_core(self) -> float:
        """Core sites ``element`` would hold on average if its atoms were dealt at random."""
        return len(self.mine) * self.core_sites / len(self.sites) if self.sites else 0.0

    def mean_radius(self, element: str | None = None) -> float | None:
        """Mean distance from the centre of ``element``'s sites (default: this one's), Angstrom."""
        r = [s.radius for s in self.sites if s.element == (element or self.element)]
        return float(np.mean(r)) if r else None


def mixing_sites(atoms: Atoms, mixing: Sequence[str], factor: float = BOND_FACTOR) -> list[Site]:
    """The sites of the sublattice holding ``mixing`` (cations or anions) with their coordination
    by the other sublattice and their distance from the centroid of all atoms (Angstrom)."""
    symbols = atoms.get_chemical_symbols()
    lattice = CATIONS if set(mixing) <= CATIONS else ANIONS if set(mixing) <= ANIONS else None
    if lattice is None:
        raise ValueError(f"{', '.join(mixing)} are not on one sublattice")
    other = ANIONS if lattice is CATIONS else CATIONS
    count = np.zeros(len(atoms), dtype=int)
    for i, j in bonds(atoms, factor):
        if symbols[i] in lattice and symbols[j] in other:
            count[i] += 1
        elif symbols[j] in lattice and symbols[i] in other:
            count[j] += 1
    centre = atoms.positions.mean(axis=0)
    return [
        Site(s, int(count[i]), float(np.linalg.norm(atoms.positions[i] - centre)))
        for i, s in enumerate(symbols)
        if s in lattice
    ]


def site_occupation(
    atoms: Atoms, element: str, mixing: Sequence[str], formula: str = "", row_id: int | None = None
) -> SiteOccupation:
    """Where ``element`` (one of ``mixing``) sits in ``atoms``."""
    return SiteOccupation(formula or atoms.get_chemical_formula(), row_id, element, tuple(mixing_sites(atoms, mixing)))


__all__ = ["CORE_COORDINATION", "Site", "SiteOccupation", "mixing_sites", "site_occupation"]
