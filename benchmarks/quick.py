"""Headline figures in a few minutes (`make bench-quick`): compare them with BENCHMARKS.md.

One core, in process. Rates are per second of CPU time (time.process_time) as well
as wall time, so a busy machine shows in the wall column but not in the CPU one:

- random Cd13Se13 (generator defaults) and point-group symmetric Cd13Se13 per second;
- writing 10,000 structures to extxyz against generating them;
- a CHGNet relaxation of random Cd13Se13 starts (median seconds, force calls);
- a GFN2-xTB single point of a relaxed Cd13Se13 (seconds);
- a PBE/def2-SVP single point of Cd2Se2 (seconds; skip with --no-dft).

    OMP_NUM_THREADS=1 python -m benchmarks.quick [--no-dft]

Prints a Markdown table and writes benchmarks/out/quick.md with the commit it ran on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from ase import Atoms

from airss_msc.calc.relax import RelaxSettings, relax_structure
from airss_msc.calc.single_point import single_point
from airss_msc.calc.threads import set_threads
from airss_msc.generation.generate import GeneratorSettings, generate_cluster, generate_many
from airss_msc.results.formats import write_structures
from benchmarks.paths import OUT
from benchmarks.provenance import git_commit


def clock(fn):
    """(result, wall s, cpu s) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def show(row: dict) -> dict:
    print(f"  {row['figure']}: wall {row['wall']}, CPU {row['cpu']} ({row['note']})", flush=True)
    return row


def rate(label: str, count: int, make) -> dict:
    _, wall, cpu = clock(lambda: [make(i) for i in range(count)])
    return {
        "figure": label,
        "wall": f"{count / wall:,.0f} /s",
        "cpu": f"{count / cpu:,.0f} /s",
        "note": f"{count} structures, every constraint checked",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-dft", action="store_true", help="skip the PBE single point")
    ap.add_argument("--relaxations", type=int, default=3)
    args = ap.parse_args()
    set_threads(1)
    rows = [
        show(r)
        for r in [
            rate("random Cd13Se13 generated", 1000, lambda i: generate_cluster("Cd13Se13", i)),
            rate(
                "symmetric Cd13Se13 generated (random point group)",
                200,
                lambda i: generate_cluster("Cd13Se13", i, GeneratorSettings(symmetry="random")),
            ),
        ]
    ]
    images, g_wall, g_cpu = clock(lambda: generate_many("Cd13Se13", 10_000, 7))
    with tempfile.TemporaryDirectory() as tmp:
        _, w_wall, w_cpu = clock(lambda: write_structures(Path(tmp) / "x.extxyz", images))
    rows.append(
        show(
            {
                "figure": "write 10,000 Cd13Se13 to extxyz / generate them",
                "wall": f"{w_wall / g_wall:.2f} x",
                "cpu": f"{w_cpu / g_cpu:.2f} x",
                "note": f"write {w_cpu:.2f} s CPU, generate {g_cpu:.2f} s CPU",
            }
        )
    )
    relaxed = []
    for seed in range(args.relaxations):
        res, wall, cpu = clock(
            lambda seed=seed: relax_structure(generate_cluster("Cd13Se13", 100 + seed), RelaxSettings(method="chgnet"))
        )
        relaxed.append((res, wall, cpu))
    ok = sum(r.status == "relaxed" for r, _, _ in relaxed)
    rows.append(
        show(
            {
                "figure": "CHGNet relaxation of a random Cd13Se13 (median)",
                "wall": f"{statistics.median(w for _, w, _ in relaxed):.1f} s",
                "cpu": f"{statistics.median(c for _, _, c in relaxed):.1f} s",
                "note": f"{ok}/{len(relaxed)} relaxed, median "
                f"{statistics.median(r.force_calls for r, _, _ in relaxed):.0f}"
                f" force calls (first includes loading the model)",
            }
        )
    )
    best = min((r for r, _, _ in relaxed if r.energy is not None), key=lambda r: r.energy)
    sp, wall, cpu = clock(lambda: single_point(best.atoms, "GFN2-xTB"))
    rows.append(
        show(
            {
                "figure": "GFN2-xTB single point of a relaxed Cd13Se13",
                "wall": f"{wall:.2f} s",
                "cpu": f"{cpu:.2f} s",
                "note": sp.status,
            }
        )
    )
    if not args.no_dft:
        start = Atoms("CdSeCdSe", positions=[[1.95, 0, 0], [0, 1.75, 0], [-1.95, 0, 0], [0, -1.75, 0]])
        # a relaxed rhombus: this distorted start needs the SCF recovery ladder (minutes)
        rhombus = relax_structure(start, RelaxSettings(method="chgnet", fmax=0.01)).atoms
        sp, wall, cpu = clock(lambda: single_point(rhombus, "pyscf:PBE/def2-SVP"))
        rows.append(
            show(
                {
                    "figure": "PBE/def2-SVP single point of Cd2Se2 (PySCF)",
                    "wall": f"{wall:.1f} s",
                    "cpu": f"{cpu:.1f} s",
                    "note": f"{sp.status}, 126 basis functions",
                }
            )
        )
    load = os.getloadavg()[0]
    lines = [
        (
            f"Commit {git_commit()}, one core, load average {load:.1f} when it finished "
            f"(`OMP_NUM_THREADS=1 python -m benchmarks.quick`)."
        ),
        "",
        "| figure | wall | CPU | note |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['figure']} | {r['wall']} | {r['cpu']} | {r['note']} |" for r in rows]
    text = "\n".join(lines)
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / "quick.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
