"""Physical-sanity verdicts on cluster geometries (pure functions).

GFN2-xTB relaxations of bare Cd13Se13 fall into unphysical "holes" (Cd-Se
1.8-2.0 Angstrom, Cd-Cd 2.0-2.3 Angstrom) while the energy keeps dropping (one such
onset is kept in tests/data/cd13se13_gfn2_collapse_onset.xyz). A structure that breaks
these floors, splits into pieces or loses an atom must get a status, never a rank.
"""

from __future__ import annotations

from dataclasses import dataclass

from ase import Atoms

from airss_msc.generation.geometry import BOND_FACTOR, fragments, radius, shortest_contact
from airss_msc.results.record import JobStatus, Status

#: Pair distance floor as a fraction of the sum of covalent radii.
DISTANCE_FLOOR = 0.80


@dataclass(frozen=True)
class Verdict:
    """Outcome of a sanity check: ``status`` is ``ok``, ``collapsed`` or ``fragmented``."""

    status: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == JobStatus.OK


def check_geometry(atoms: Atoms, floor: float = DISTANCE_FLOOR, bond_factor: float = BOND_FACTOR) -> Verdict:
    """Collapsed if any pair is closer than ``floor`` x radii sum; fragmented if the
    bond graph falls apart (an atom flying off is a one-atom fragment)."""
    ratio, i, j, d = shortest_contact(atoms)
    syms = atoms.get_chemical_symbols()
    if ratio < floor:
        return Verdict(
            Status.COLLAPSED,
            f"{syms[i]}{i}-{syms[j]}{j} at {d:.2f} A, below "
            f"{floor:.2f} x covalent radii ({floor * (radius(syms[i]) + radius(syms[j])):.2f} A)",
        )
    pieces = fragments(atoms, bond_factor)
    if len(pieces) > 1:
        sizes = sorted((len(p) for p in pieces), reverse=True)
        lone = [syms[p[0]] + str(p[0]) for p in pieces if len(p) == 1]
        detail = f"; detached atoms {', '.join(lone)}" if lone else ""
        return Verdict(Status.FRAGMENTED, f"{len(pieces)} fragments of sizes {sizes}{detail}")
    return Verdict(JobStatus.OK)
