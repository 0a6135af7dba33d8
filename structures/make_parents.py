"""Rebuild the parent (template) clusters in this folder.

    python structures/make_parents.py

Each parent is a stoichiometric (MX)13 cut from the bulk zinc-blende crystal: the 13
cations and 13 anions nearest the midpoint of one M-X bond (a compact, Cd-Se
alternating 26-atom cluster), relaxed with `airss_msc.calc.relax.relax_structure`
(GFN1-xTB, tblite, BFGS, fmax 0.05 eV/A). They are templates for substitution
(`airss-msc generate --template structures/Cd13Se13.xyz --substitute Se:Te=2`), not
claims about the lowest-energy isomers. Lattice constants (A): CdSe 6.052,
ZnSe 5.668, CdTe 6.481 (zinc blende, room temperature).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.build import bulk

from airss_msc import __version__
from airss_msc.results.formats import write_structures
from airss_msc.calc.relax import RelaxSettings, relax_structure, summary_to_atoms
from airss_msc.build.geometry import anion_bonds

LATTICE = {("Cd", "Se"): 6.052, ("Zn", "Se"): 5.668, ("Cd", "Te"): 6.481}


def bulk_cut(cation: str, anion: str, a: float, n: int = 13):
    crystal = bulk(f"{cation}{anion}", "zincblende", a=a).repeat((6, 6, 6))
    pos = crystal.positions
    syms = np.array(crystal.get_chemical_symbols())
    # the midpoint of a bond near the middle of the supercell
    middle = pos.mean(axis=0)
    i = np.argmin(np.linalg.norm(pos - middle, axis=1) + 100 * (syms != cation))
    d = np.linalg.norm(pos - pos[i], axis=1) + 100 * (syms != anion)
    centre = 0.5 * (pos[i] + pos[np.argmin(d)])
    r = np.linalg.norm(pos - centre, axis=1)
    keep = np.concatenate([np.where(syms == el)[0][np.argsort(r[syms == el])[:n]] for el in (cation, anion)])
    cluster = crystal[keep]
    cluster.positions -= cluster.positions.mean(axis=0)
    cluster.pbc = False
    cluster.cell = None
    return cluster


def main() -> None:
    here = Path(__file__).parent
    for (cation, anion), a in LATTICE.items():
        start = bulk_cut(cation, anion, a)
        summary = relax_structure(start, RelaxSettings(method="GFN1-xTB", fmax=0.05, steps=800))
        atoms = summary_to_atoms(summary)
        atoms.info.update(
            name=f"{cation}13{anion}13", energy=summary["energy"], gap_eV=summary["gap"],
            status=summary["status"], method=summary["method"], engine=summary["engine_version"],
            anion_bonds=anion_bonds(atoms),
            provenance=(f"zinc-blende {cation}{anion} a={a} A, 13+13 atoms nearest a bond midpoint, "
                        f"relaxed by airss-msc {__version__} relax_structure (BFGS, fmax 0.05)"),
        )
        path = here / f"{cation}13{anion}13.xyz"
        write_structures(path, [atoms])
        print(f"{path.name}: {summary['status']} E={summary['energy']:.4f} eV gap={summary['gap']:.3f} eV "
              f"steps={summary['steps']} anion_bonds={atoms.info['anion_bonds']}")


if __name__ == "__main__":
    main()
