"""Random-cluster generation speed and validity: airss-msc beside ASE-GA and PyXtal,
and the time to write what was generated.

Same composition (Cd13Se13), same per-pair minimum separations (airss-msc's
chemistry defaults: Cd-Se 2.42, Cd-Cd 3.02, Se-Se 3.42 Angstrom) and the same
radius cap (airss-msc's default sphere). "Valid" means every pair meets its
separation and every atom lies inside the sphere; for symmetric structures
also that pymatgen's PointGroupAnalyzer (tolerance 0.1 A) finds the requested
group or a supergroup. Validity is checked here, outside the timed region.
One core, in process. Peers are optional: install them with
`pip install ase-ga pyxtal` (they are not airss-msc dependencies).

Every airss-msc row is run ``--repeats`` times and the median run is reported
(wall-clock and CPU seconds of this process: on a shared machine the CPU rate
is the one-core rate). The writing rows generate ``--write-n`` structures with
``generate_many`` and write them with ``write_structures`` (and, for
comparison, ASE's extxyz writer); the CLI row times the ``airss-msc generate``
command of the issue in a subprocess (CPU of the child).

    python -m benchmarks.generator_speed [--n 2000] [--formula Cd13Se13] [--repeats 3]
        [--write-n 10000] [--no-cli] [--no-peers]

Prints a Markdown table, with the git commit it ran on, and writes it to
benchmarks/out/generator_speed.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from airss_msc.generation.generate import GeneratorSettings, generate_cluster, generate_many, prepare
from airss_msc.generation.separations import minsep_matrix
from benchmarks.paths import OUT
from benchmarks.provenance import git_commit

CLI_ARGS = ["-n", "2000", "--radius", "6.0", "--minsep", "Cd-Se=2.5", "--minsep", "Cd-Cd=3.0", "--minsep", "Se-Se=3.3"]


def is_valid(positions: np.ndarray, symbols, drawn: dict, radius: float, centre=(0.0, 0.0, 0.0)) -> tuple[bool, bool]:
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
    made, valid_sep, valid_all = 0, 0, 0
    structures = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        s = make(i)
        made += s is not None
        if s is not None:
            structures.append(s)
        if time.perf_counter() - t0 > budget_s:
            break
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    for s in structures:
        ok_sep, ok_all = check(s)
        valid_sep += ok_sep
        valid_all += ok_all
    return {
        "label": label,
        "tried": i + 1,
        "made": made,
        "seconds": elapsed,
        "cpu": cpu,
        "valid_sep": valid_sep / max(made, 1),
        "valid_all": valid_all / max(made, 1),
        "valid_per_s": valid_all / elapsed if elapsed else float("nan"),
        "valid_per_cpu_s": valid_all / cpu if cpu else float("nan"),
    }


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time, annotated with the range over all runs."""
    runs = sorted(runs, key=lambda r: r["seconds"])
    row = dict(runs[len(runs) // 2])
    row["runs"] = len(runs)
    rates = [r["valid_per_s"] for r in runs]
    row["range"] = (min(rates), max(rates))
    row["cpu_rate"] = statistics.median(r["valid_per_cpu_s"] for r in runs)
    return row


def writing_rows(formula: str, n: int, repeats: int) -> list[dict]:
    """Generate ``n`` structures with generate_many, write them with write_structures and
    with ASE's extxyz writer; median of ``repeats`` runs each. Round trip checked."""
    import ase.io

    from airss_msc.results.formats import read_structures, write_structures

    gen, ours, ase_w = [], [], []
    images: list[Atoms] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "many.extxyz"
        for r in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            images = generate_many(formula, n, base_seed=1 + r)
            gen.append((time.perf_counter() - t0, time.process_time() - c0))
            t0, c0 = time.perf_counter(), time.process_time()
            write_structures(path, images)
            ours.append((time.perf_counter() - t0, time.process_time() - c0))
            t0, c0 = time.perf_counter(), time.process_time()
            with open(Path(tmp) / "ase.extxyz", "w") as fh:
                ase.io.write(fh, images, format="extxyz", parallel=False)
            ase_w.append((time.perf_counter() - t0, time.process_time() - c0))
        back = read_structures(path)
        round_trip = len(back) == len(images) and all(
            a.get_chemical_symbols() == b.get_chemical_symbols()
            and np.abs(a.positions - b.positions).max() < 1e-6
            and a.info["seed"] == b.info["seed"]
            for a, b in zip(images, back, strict=True)  # the lengths are equal here (checked first)
        )
        size_mb = path.stat().st_size / 1e6

    def row(label, times, note):
        wall = statistics.median(t for t, _ in times)
        cpu = statistics.median(c for _, c in times)
        return {"label": label, "n": n, "wall": wall, "cpu": cpu, "note": note, "runs": len(times)}

    g = row(f"generate {n:,} {formula} (generate_many)", gen, "all constraints checked in the generator")
    w = row(
        f"write {n:,} to extxyz (write_structures)",
        ours,
        f"{size_mb:.1f} MB; round trip {'ok' if round_trip else 'FAILED'}",
    )
    a = row(f"write {n:,} with ASE's extxyz writer (ase.io.write)", ase_w, "for comparison")
    for r in (w, a):
        r["note"] += f"; {r['wall'] / g['wall']:.2f} x the generation wall time"
    return [g, w, a]


def cli_row(formula: str, repeats: int) -> dict | None:
    exe = shutil.which("airss-msc", path=str(Path(sys.executable).parent)) or shutil.which("airss-msc")
    if exe is None:
        return None
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(
                [exe, "generate", formula, "-o", str(Path(tmp) / "x.extxyz"), *CLI_ARGS],
                check=True,
                capture_output=True,
            )
            walls.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {
        "label": f"CLI: airss-msc generate {formula} {' '.join(CLI_ARGS)}",
        "n": 2000,
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "runs": repeats,
        "note": "whole command: start-up, generation and writing",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--formula", default="Cd13Se13")
    ap.add_argument("--repeats", type=int, default=3, help="runs of every airss-msc row; the median is reported")
    ap.add_argument("--write-n", type=int, default=10000, help="structures generated and written in the writing rows")
    ap.add_argument("--no-cli", action="store_true", help="skip the command-line row")
    ap.add_argument("--no-peers", action="store_true", help="skip ASE-GA and PyXtal")
    args = ap.parse_args()
    commit = git_commit()
    counts, rules, sphere = prepare(args.formula, GeneratorSettings())
    drawn = {p: r[0] for p, r in rules.ranges.items()}
    radius = sphere.radius
    rows = []

    def check_plain(atoms):
        seps, inside = is_valid(atoms.positions, atoms.get_chemical_symbols(), drawn, radius)
        return seps, seps and inside

    rows.append(
        median_run(
            [
                timed("airss-msc random (C1)", lambda i: generate_cluster(args.formula, i), args.n, check_plain)
                for _ in range(args.repeats)
            ]
        )
    )

    from pymatgen.core import Molecule
    from pymatgen.symmetry.analyzer import PointGroupAnalyzer

    from airss_msc.generation.symmetry import point_group_operations

    def check_symmetric(atoms):
        seps, inside = is_valid(atoms.positions, atoms.get_chemical_symbols(), drawn, radius)
        group = atoms.info["symmetry"]
        found = PointGroupAnalyzer(Molecule(atoms.get_chemical_symbols(), atoms.positions), tolerance=0.1)
        # a supergroup has at least as many operations (pymatgen counts them the same way)
        sym_ok = len(found.get_pointgroup()) >= len(point_group_operations(group))
        return seps, seps and inside and sym_ok

    sym_n = max(args.n // 4, 50)
    symmetric = GeneratorSettings(symmetry="random")
    rows.append(
        median_run(
            [
                timed(
                    "airss-msc --symmetry random",
                    lambda i: generate_cluster(args.formula, i, symmetric),
                    sym_n,
                    check_symmetric,
                )
                for _ in range(args.repeats)
            ]
        )
    )

    if args.no_peers:
        pass
    else:
        try:
            from ase_ga.startgenerator import StartGenerator

            blmin = {}
            for (a, b), d in drawn.items():
                za, zb = atomic_numbers[a], atomic_numbers[b]
                blmin[(za, zb)] = blmin[(zb, za)] = d
            slab = Atoms(cell=[4 * radius] * 3, pbc=False)
            # the cube holding the sphere: the closest a box generator gets to a radius cap
            box = [np.full(3, radius), np.eye(3) * 2 * radius]
            sg = StartGenerator(
                slab, [(el, n) for el, n in counts.items()], blmin, box_to_place_in=box, rng=np.random.default_rng(0)
            )

            def make_ga(i):
                return sg.get_new_candidate(maxiter=10000)

            def check_ga(atoms):  # the sphere inscribed in the placement cube
                seps, inside = is_valid(atoms.positions, atoms.get_chemical_symbols(), drawn, radius, box[0] + radius)
                return seps, seps and inside

            rows.append(
                timed("ASE-GA StartGenerator (cube around the sphere)", make_ga, max(args.n // 10, 20), check_ga)
            )
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

    lines = [
        (
            f"Commit {commit}; {args.formula}, separations "
            f"{' '.join(f'{a}-{b}={d}' for (a, b), d in sorted(drawn.items()))} A, "
            f"sphere radius {radius:.3f} A, one core (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}), "
            f"load average {os.getloadavg()[0]:.1f} at the start of the table"
        ),
        "",
        (
            "| generator | structures | wall s | CPU s | meet separations | meet all constraints | "
            "valid/s (wall) | valid/s (CPU) |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "made" not in r:
            lines.append(f"| {r['label']} | - | - | - | - | - | - | - |")
            continue
        wall_rate = f"{r['valid_per_s']:.1f}"
        cpu_rate = f"{r.get('cpu_rate', r['valid_per_cpu_s']):.1f}"
        if r.get("runs", 1) > 1:
            lo, hi = r["range"]
            wall_rate += f" (median of {r['runs']}: {lo:.1f}-{hi:.1f})"
        lines.append(
            f"| {r['label']} | {r['made']}/{r['tried']} | {r['seconds']:.2f} | {r['cpu']:.2f} | "
            f"{100 * r['valid_sep']:.0f} % | {100 * r['valid_all']:.0f} % | {wall_rate} | {cpu_rate} |"
        )

    extra = writing_rows(args.formula, args.write_n, args.repeats) if args.write_n > 0 else []
    if not args.no_cli:
        row = cli_row(args.formula, args.repeats)
        if row is not None:
            extra.append(row)
    if extra:
        lines += [
            "",
            f"Generating and writing (median of {args.repeats} runs)",
            "",
            "| step | structures | wall s | CPU s | structures/s (wall) | structures/s (CPU) | notes |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in extra:
            lines.append(
                f"| {r['label']} | {r['n']:,} | {r['wall']:.2f} | {r['cpu']:.2f} | "
                f"{r['n'] / r['wall']:.0f} | {r['n'] / r['cpu']:.0f} | {r['note']} |"
            )
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "generator_speed.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
