"""Random-cluster generation speed and validity: airss-msc beside ASE-GA and PyXtal.

Same composition (Cd13Se13), same per-pair minimum separations (airss-msc's
chemistry defaults: Cd-Se 2.42, Cd-Cd 3.02, Se-Se 3.42 Angstrom) and the same
radius cap (airss-msc's default sphere). "Valid" means every pair meets its
separation and every atom lies inside the sphere; for symmetric structures
also that pymatgen's PointGroupAnalyzer (tolerance 0.1 A) finds the requested
group or a supergroup. One core, in process. Peers are optional: install them
with `pip install ase-ga pyxtal` (they are not airss-msc dependencies).

    python benchmarks/generator_speed.py [--n 2000] [--formula Cd13Se13]

Prints a Markdown table and writes benchmarks/out/generator_speed.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.data import atomic_numbers  # noqa: E402

from airss_msc.composition import symbols_of  # noqa: E402
from airss_msc.build.generate import GeneratorSettings, generate_cluster, prepare  # noqa: E402
from airss_msc.build.separations import minsep_matrix  # noqa: E402


def is_valid(positions: np.ndarray, symbols, drawn: dict, radius: float,
             centre=(0.0, 0.0, 0.0)) -> tuple[bool, bool]:
    """(separations hold, inside the sphere of ``radius`` about ``centre``), 1e-6 A slack."""
    pos = np.asarray(positions, float)
    need = minsep_matrix(symbols, drawn)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    seps = bool((d >= need - 1e-6).all())
    centred = pos - np.asarray(centre)
    inside = bool((np.linalg.norm(centred, axis=1) <= radius + 1e-6).all())
    return seps, inside


def timed(label: str, make, n: int, check, budget_s: float = 120.0) -> dict:
    made, valid_sep, valid_all, t0 = 0, 0, 0, time.perf_counter()
    structures = []
    for i in range(n):
        s = make(i)
        made += s is not None
        if s is not None:
            structures.append(s)
        if time.perf_counter() - t0 > budget_s:
            break
    elapsed = time.perf_counter() - t0
    for s in structures:
        ok_sep, ok_all = check(s)
        valid_sep += ok_sep
        valid_all += ok_all
    return {"label": label, "tried": i + 1, "made": made, "seconds": elapsed,
            "per_s": made / elapsed if elapsed else float("nan"),
            "valid_sep": valid_sep / max(made, 1), "valid_all": valid_all / max(made, 1),
            "valid_per_s": valid_all / elapsed if elapsed else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--formula", default="Cd13Se13")
    args = ap.parse_args()
    counts, rules, sphere = prepare(args.formula, GeneratorSettings())
    symbols = symbols_of(counts)
    drawn = {p: r[0] for p, r in rules.ranges.items()}
    radius = sphere.radius
    rows = []

    def check_plain(atoms):
        seps, inside = is_valid(atoms.positions, atoms.get_chemical_symbols(), drawn, radius)
        return seps, seps and inside

    rows.append(timed("airss-msc random (C1)", lambda i: generate_cluster(args.formula, i), args.n, check_plain))

    from pymatgen.core import Molecule
    from pymatgen.symmetry.analyzer import PointGroupAnalyzer

    from airss_msc.build.symmetry import point_group_operations

    def check_symmetric(atoms):
        seps, inside = is_valid(atoms.positions, atoms.get_chemical_symbols(), drawn, radius)
        group = atoms.info["symmetry"]
        found = PointGroupAnalyzer(Molecule(atoms.get_chemical_symbols(), atoms.positions), tolerance=0.1)
        # a supergroup has at least as many operations (pymatgen counts them the same way)
        sym_ok = len(found.get_pointgroup()) >= len(point_group_operations(group))
        return seps, seps and inside and sym_ok

    sym_n = max(args.n // 4, 50)
    rows.append(timed("airss-msc --symmetry random", lambda i: generate_cluster(
        args.formula, i, GeneratorSettings(symmetry="random")), sym_n, check_symmetric))

    try:
        from ase_ga.startgenerator import StartGenerator

        blmin = {}
        for (a, b), d in drawn.items():
            za, zb = atomic_numbers[a], atomic_numbers[b]
            blmin[(za, zb)] = blmin[(zb, za)] = d
        slab = Atoms(cell=[4 * radius] * 3, pbc=False)
        # the cube holding the sphere: the closest a box generator gets to a radius cap
        box = [np.full(3, radius), np.eye(3) * 2 * radius]
        sg = StartGenerator(slab, [(el, n) for el, n in counts.items()], blmin, box_to_place_in=box,
                            rng=np.random.default_rng(0))

        def make_ga(i):
            return sg.get_new_candidate(maxiter=10000)

        def check_ga(atoms):  # the sphere inscribed in the placement cube
            seps, inside = is_valid(atoms.positions, atoms.get_chemical_symbols(), drawn, radius, box[0] + radius)
            return seps, seps and inside

        rows.append(timed("ASE-GA StartGenerator (cube around the sphere)", make_ga, max(args.n // 10, 20), check_ga))
    except ImportError:
        rows.append({"label": "ASE-GA StartGenerator: not installed (pip install ase-ga)"})

    try:
        from pyxtal import pyxtal
        from pyxtal.tolerance import Tol_matrix

        tm = Tol_matrix(prototype="atomic")
        for (a, b), d in drawn.items():
            tm.set_tol(a, b, d)

        def make_px(i):
            c = pyxtal()
            try:
                c.from_random(0, 1, list(counts), list(counts.values()), tm=tm, seed=i)
            except Exception:  # pyxtal raises when it gives up
                return None
            if not c.valid:
                return None
            mol = c.to_pymatgen()
            return Atoms([str(s.specie) for s in mol], positions=mol.cart_coords)

        # PyXtal needs minutes per 26-atom cluster at these separations: a few attempts only
        rows.append(timed("PyXtal from_random(dim=0, C1)", make_px, 3, check_plain, budget_s=600))
    except ImportError:
        rows.append({"label": "PyXtal: not installed (pip install pyxtal)"})

    lines = [f"{args.formula}, separations {' '.join(f'{a}-{b}={d}' for (a, b), d in sorted(drawn.items()))} A, "
             f"sphere radius {radius:.3f} A, one core", "",
             "| generator | structures | seconds | structures/s | meet separations | meet all constraints | valid/s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "made" not in r:
            lines.append(f"| {r['label']} | - | - | - | - | - | - |")
            continue
        lines.append(f"| {r['label']} | {r['made']}/{r['tried']} | {r['seconds']:.2f} | {r['per_s']:.1f} | "
                     f"{100 * r['valid_sep']:.0f} % | {100 * r['valid_all']:.0f} % | {r['valid_per_s']:.1f} |")
    table = "\n".join(lines)
    print(table)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "generator_speed.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
