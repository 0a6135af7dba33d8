"""Throughput of `airss-msc search` with 1 and 2 MPI worker ranks, and coordinator CPU.

Runs the same set of real GFN1-xTB relaxations (random Cd4Se4 starts) three ways:
in process, under `mpiexec -n 2` (1 worker) and `mpiexec -n 3` (2 workers), each
into a fresh database. Prints a Markdown table and writes it to
benchmarks/out/parallel_scaling.md (BENCHMARKS.md quotes it).

    python -m benchmarks.parallel_scaling [--candidates 16] [--formula Cd4Se4]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.paths import OUT
from benchmarks.provenance import git_commit

BIN = Path(sys.executable).parent


def run(ranks: int | None, config: Path) -> tuple[float, float, int]:
    cmd = [str(BIN / "airss-msc"), "search", str(config)]
    if ranks:
        cmd = [shutil.which("mpiexec", path=str(BIN)) or "mpiexec", "-n", str(ranks)] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    last = proc.stderr.strip().splitlines()[-1]
    cpu = float(re.search(r"coordinator CPU ([0-9.]+) s", last).group(1))
    done = int(re.search(r": (\d+) done", last).group(1))
    return wall, cpu, done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--formula", default="Cd4Se4")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, ranks in (("in process", None), ("mpiexec -n 2 (1 worker)", 2), ("mpiexec -n 3 (2 workers)", 3)):
            cfg = Path(tmp) / f"c{ranks}.toml"
            cfg.write_text(
                f'[search]\ncompositions = ["{args.formula}"]\ncandidates = {args.candidates}\n'
                f'seed = 7\ndb = "{tmp}/r{ranks}.db"\n[relax]\nmethod = "GFN1-xTB"\nfmax = 0.05\nsteps = 400\n'
            )
            wall, cpu, done = run(ranks, cfg)
            rows.append((label, done, wall, done / wall * 60, cpu, 100 * cpu / wall if ranks else float("nan")))
    base = next(r for r in rows if "1 worker" in r[0])[3]
    lines = [
        (
            f"{args.candidates} GFN1-xTB relaxations of random {args.formula} starts, "
            f"{os.cpu_count()} cores, OMP_NUM_THREADS=1; commit {git_commit()}, load average "
            f"{os.getloadavg()[0]:.1f} at the end"
        ),
        "",
        (
            "| run | relaxations | wall s | per minute | speed-up vs 1 worker | coordinator CPU s "
            "| coordinator CPU % of a core |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for label, done, wall, rate, cpu, pct in rows:
        pct_s = "-" if pct != pct else f"{pct:.2f}"
        cpu_s = "(all work)" if pct != pct else f"{cpu:.2f}"
        lines.append(f"| {label} | {done} | {wall:.1f} | {rate:.1f} | {rate / base:.2f} | {cpu_s} | {pct_s} |")
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "parallel_scaling.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
