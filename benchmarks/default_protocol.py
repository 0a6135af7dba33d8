"""The default relaxation protocol on the frozen validation starts, beside `xtb --opt`.

    python -m benchmarks.default_protocol [--method chgnet] [--optimizers PreconLBFGS,BFGS] [--xtb]

Starts: benchmarks/reference/method_validation_starts.extxyz (24 random 12-atom CdSe/CdTeSe/CdTe
starts and 10 random Cd13Se13 starts, frozen). Each optimizer relaxes every start
with ``--method`` (default: the default geometry engine) to fmax 0.05 eV/A through
`airss_msc.calc.relax.relax_structure`;
`--xtb` also runs the Debian xtb binary's own optimizer (`xtb --opt --gfn 1`, counting
one force call per optimisation cycle) on the Cd13Se13 starts. Prints a Markdown
table and writes benchmarks/out/default_protocol.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from ase.io import read, write

from airss_msc.calc.relax import DEFAULT_METHOD, RelaxSettings, relax_structure
from airss_msc.calc.sanity import check_geometry
from benchmarks.paths import METHOD_VALIDATION_STARTS, OUT
from benchmarks.provenance import git_commit


def xtb_cycles(atoms) -> tuple[str, int | None]:
    """Status and optimisation cycles of `xtb --opt --gfn 1` from ``atoms``."""
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp) / "start.xyz", atoms, parallel=False)
        proc = subprocess.run(
            ["xtb", "start.xyz", "--opt", "--gfn", "1"],
            cwd=tmp,
            capture_output=True,
            text=True,
            env=dict(os.environ, OMP_NUM_THREADS="1"),
            timeout=1800,
        )
        m = re.search(r"GEOMETRY OPTIMIZATION CONVERGED AFTER (\d+) ITERATIONS", proc.stdout)
        if not m:
            return "not converged", None
        final = read(Path(tmp) / "xtbopt.xyz", parallel=False)
        verdict = check_geometry(final)
        return ("relaxed" if verdict.ok else verdict.status), int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default=DEFAULT_METHOD)
    ap.add_argument("--optimizers", default="PreconLBFGS,BFGS")
    ap.add_argument("--xtb", action="store_true", help="also run `xtb --opt` (Debian package xtb)")
    args = ap.parse_args()
    frames = read(METHOD_VALIDATION_STARTS, index=":", parallel=False)
    sets = {"12-atom": [f for f in frames if len(f) < 26], "Cd13Se13": [f for f in frames if len(f) == 26]}
    lines = [
        (
            "| method | optimizer | set | starts | relaxed | other statuses | median force calls (relaxed) | "
            "median CPU s |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for opt in args.optimizers.split(","):
        for name, starts in sets.items():
            statuses, calls, secs = [], [], []
            for atoms in starts:
                t0 = time.process_time()
                s = relax_structure(atoms, RelaxSettings(method=args.method, optimizer=opt, fmax=0.05, steps=500))
                secs.append(time.process_time() - t0)
                statuses.append(s.status)
                if s.status == "relaxed":
                    calls.append(s.force_calls)
            other = {k: statuses.count(k) for k in sorted(set(statuses)) if k != "relaxed"}
            lines.append(
                f"| {s.method} | {opt} | {name} | {len(starts)} | {statuses.count('relaxed')} | {other or '-'} | "
                f"{np.median(calls) if calls else '-'} | {np.median(secs):.1f} |"
            )
            print(lines[-1], flush=True)
    if args.xtb and shutil.which("xtb"):
        statuses, calls, secs = [], [], []
        for atoms in sets["Cd13Se13"]:
            t0 = time.perf_counter()  # a child process: its wall time on one thread
            status, n = xtb_cycles(atoms)
            secs.append(time.perf_counter() - t0)
            statuses.append(status)
            if status == "relaxed" and n:
                calls.append(n)
        other = {k: statuses.count(k) for k in sorted(set(statuses)) if k != "relaxed"}
        lines.append(
            f"| GFN1-xTB | xtb --opt --gfn 1 (xtb 6.5.1) | Cd13Se13 | {len(statuses)} | {statuses.count('relaxed')} | "
            f"{other or '-'} | {np.median(calls) if calls else '-'} | {np.median(secs):.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "default_protocol.md").write_text(f"Commit {git_commit()}, one core.\n\n{table}\n")


if __name__ == "__main__":
    main()
