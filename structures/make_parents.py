"""Rebuild the parent (template) clusters in this folder: the lowest (MX)13 found.

    python structures/make_parents.py [--starts 24] [--only Cd13Se13] [--db search.db --top 5]

For (CdSe)13, (ZnSe)13 and (CdTe)13 the candidates are

* the core-cage isomer of the literature, (MX)1@(MX)12: an M-X pair inside the (MX)12
  sodalite cage (a truncated octahedron, 6 four- and 8 six-membered rings, M and X
  alternating), the lowest (MX)13 of DFT studies of CdSe and ZnSe clusters;
* a zinc-blende cut: the 13 cations and 13 anions nearest one bulk M-X bond midpoint;
* the previous parent file (kept only if it is still the lowest);
* ``--starts`` random starts, half of them point-group symmetric (seeds 0..N-1, stored);
* for (ZnSe)13 and (CdTe)13, the (CdSe)13 parent with its species mapped (a frame that is
  low for CdSe may be low for the others);
* with ``--db``, the ``--top`` lowest unique structures of that formula in a search database
  (``airss-msc search`` with this formula), by the ranking energy.

Each is relaxed with the default geometry engine (CHGNet 0.3.0, PreconLBFGS, fmax 0.05
eV/A) with single points of the ranking energy (``--rank-by``, default SevenNet-0, the
validated ranking energy of README "Which energy model") and GFN2-xTB on the result. The
lowest relaxed, sane, alternating structure by the ranking energy is written with its
provenance, the energies, its rank by CHGNet and the runner-up margin.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.io import read

from airss_msc import __version__
from airss_msc.analysis.rank import load_results, rank_results
from airss_msc.calc.relax import DEFAULT_METHOD, RelaxSettings, relax_structure
from airss_msc.generation.generate import GeneratorSettings, generate_cluster
from airss_msc.generation.geometry import anion_bonds, point_group
from airss_msc.results.formats import write_structures

HERE = Path(__file__).parent
#: zinc-blende lattice constants (A, room temperature) and typical cluster M-X bonds (A)
LATTICE = {("Cd", "Se"): 6.052, ("Zn", "Se"): 5.668, ("Cd", "Te"): 6.481}
BOND = {("Cd", "Se"): 2.60, ("Zn", "Se"): 2.42, ("Cd", "Te"): 2.80}
#: single points on every candidate: the ranking energy (``--rank-by``) and these beside it
BESIDE = ("sevennet:7net-0", "tblite:GFN2-xTB")


def bulk_cut(cation: str, anion: str, a: float, n: int = 13) -> Atoms:
    """The ``n`` cations and ``n`` anions of zinc blende nearest the midpoint of one bond."""
    crystal = bulk(f"{cation}{anion}", "zincblende", a=a).repeat((6, 6, 6))
    pos = crystal.positions
    syms = np.array(crystal.get_chemical_symbols())
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


def core_cage(cation: str, anion: str, bond: float) -> Atoms:
    """(MX)1@(MX)12: an M-X pair at the centre of the (MX)12 truncated-octahedron cage."""
    verts = {
        tuple(p)
        for perm in itertools.permutations((0, 1, 2))
        for signs in itertools.product((1, -1), repeat=3)
        for p in [np.array(perm) * np.array(signs)]
    }
    verts = np.array(sorted(verts), dtype=float)  # 24 vertices, edge sqrt(2)
    # two-colour the (bipartite) cage graph so that every edge joins a cation and an anion
    d = np.linalg.norm(verts[:, None] - verts[None], axis=2)
    colour = {0: 0}
    todo = [0]
    while todo:
        i = todo.pop()
        for j in np.where(np.isclose(d[i], np.sqrt(2.0)))[0]:
            if int(j) not in colour:
                colour[int(j)] = 1 - colour[i]
                todo.append(int(j))
    cage = verts * bond / np.sqrt(2.0)
    symbols = [cation if colour[k] == 0 else anion for k in range(len(verts))]
    inner = np.array([[0.0, 0.0, bond / 2], [0.0, 0.0, -bond / 2]])
    return Atoms(symbols + [cation, anion], positions=np.vstack([cage, inner]))


def candidates(
    cation: str, anion: str, starts: int, db: str = "", top: int = 5, rank_by: str = BESIDE[0]
) -> list[tuple[str, Atoms]]:
    formula = f"{cation}13{anion}13"
    out = [
        ("core-cage (MX)1@(MX)12 prototype", core_cage(cation, anion, BOND[(cation, anion)])),
        ("zinc-blende cut", bulk_cut(cation, anion, LATTICE[(cation, anion)])),
    ]
    old = HERE / f"{formula}.xyz"
    if old.exists():
        out.append((f"previous parent ({old.name})", read(old)))
    for k in range(starts):
        settings = GeneratorSettings(symmetry="random") if k % 2 else GeneratorSettings()
        kind = "symmetric random start" if k % 2 else "random start"
        out.append((f"{kind}, seed {k}", generate_cluster(formula, k, settings)))
    frame = HERE / "Cd13Se13.xyz"
    if formula != "Cd13Se13" and frame.exists():
        mapped = read(frame)
        mapped.set_chemical_symbols([cation if s == "Cd" else anion for s in mapped.get_chemical_symbols()])
        out.append(("(CdSe)13 parent frame, species mapped", mapped))
    if db:
        rows = [r for r in load_results([db]) if r.composition == formula]
        for row in rank_results(rows, energy=rank_by, top=top, symmetry_tol=None):
            out.append((f"search {Path(db).name} row {row.result.id} (rank {row.rank})", row.result.atoms()))
    return out


def best_parent(cation: str, anion: str, starts: int, db: str = "", top: int = 5, rank_by: str = BESIDE[0]) -> Atoms:
    scores = tuple(dict.fromkeys((rank_by, *BESIDE)))
    settings = RelaxSettings(method=DEFAULT_METHOD, fmax=0.05, steps=800, single_points=scores)
    rank_key = str(settings.validate().single_points[0])  # canonical spelling: the key of res.energies
    done = []
    for label, start in candidates(cation, anion, starts, db, top, rank_by):
        t0 = time.process_time()
        res = relax_structure(start, settings)
        atoms = res.atoms()
        ranked = res.status == "relaxed" and rank_key in res.energies and anion_bonds(atoms) == 0
        print(
            f"  {label:<40} {res.status:<10} E({res.method})={res.energy:10.4f}  "
            + "  ".join(f"E({m})={res.energies.get(m, float('nan')):11.4f}" for m in res.energies if m != res.method)
            + f"  anion bonds {anion_bonds(atoms)}  "
            f"{time.process_time() - t0:5.1f} CPU s",
            flush=True,
        )
        if ranked:
            done.append((label, res, atoms))
    if not done:
        raise SystemExit(f"no relaxed alternating (MX)13 candidate for {cation}{anion}")
    done.sort(key=lambda t: t[1].energies[rank_key])
    label, res, atoms = done[0]
    by_ml = sorted(done, key=lambda t: t[1].energy)
    ml_rank = 1 + [t[0] for t in by_ml].index(label)
    margin = (done[1][1].energies[rank_key] - res.energies[rank_key]) if len(done) > 1 else float("nan")
    atoms.info.clear()
    atoms.info.update(
        name=f"{cation}13{anion}13",
        status=res.status,
        method=res.method,
        energy=res.energy,
        **{
            "energy_" + m.removeprefix("tblite:").lower().replace(":", "_").replace("-", "_"): e
            for m, e in res.energies.items()
            if m != res.method
        },
        gap_gfn2_xtb=res.gaps.get("tblite:GFN2-xTB"),
        engine=res.engine_version,
        anion_bonds=anion_bonds(atoms),
        point_group=point_group(atoms),
        provenance=(
            f"lowest by {rank_key} single point of {len(done)} relaxed alternating candidates "
            f"({label}); relaxed by airss-msc {__version__} with {res.method} (fmax 0.05); "
            f"rank {ml_rank} by {res.method}; next candidate {margin:.3f} eV higher in {rank_key}"
        ),
    )
    return atoms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=24, help="random starts per parent (half symmetric)")
    ap.add_argument("--only", default="", help="one formula, e.g. Cd13Se13")
    ap.add_argument("--db", default="", help="a search database whose lowest structures are candidates too")
    ap.add_argument("--top", type=int, default=5, help="how many unique structures of --db")
    ap.add_argument("--rank-by", default=BESIDE[0], help="ranking single point (default SevenNet-0)")
    args = ap.parse_args()
    for cation, anion in LATTICE:
        formula = f"{cation}13{anion}13"
        if args.only and args.only != formula:
            continue
        print(formula, flush=True)
        atoms = best_parent(cation, anion, args.starts, args.db, args.top, args.rank_by)
        write_structures(HERE / f"{formula}.xyz", [atoms])
        print(f"-> {formula}.xyz: {atoms.info['provenance']}; point group {atoms.info['point_group']}", flush=True)


if __name__ == "__main__":
    main()
