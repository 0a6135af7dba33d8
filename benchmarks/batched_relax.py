"""Batched relaxation against one at a time: relaxations per second, force calls and agreement.

Random Cd13Se13 starts (generator defaults, seeds 0..N-1) are relaxed by CHGNet 0.3.0 (fmax
0.05 eV/A, 500 steps) three ways: today's one-at-a-time path (``relax_structure``, PreconLBFGS),
the one-at-a-time path with ASE's FIRE (the batched optimizer's own algorithm, one structure per
model call), and ``relax_batch`` (FIRE, one model call per step for up to B structures) at each
batch size B. A batch size above N runs on B starts (seeds 0..B-1), so the batch is full.

Wall and CPU seconds (``time.process_time`` of this process: the machine may be loaded) per
relaxation; agreement on the first N starts: the batched minimum against the one-at-a-time FIRE
minimum (same optimizer: the same path up to float32 summation order) and against today's
PreconLBFGS minimum (another path: a different basin is possible). Same minimum: energy within
5 meV and aligned RMSD below 0.1 Angstrom.

    OMP_NUM_THREADS=1 python -m benchmarks.batched_relax [--starts 16] [--sizes 1,4,16,64]

Writes benchmarks/out/batched_relax.md with the commit it ran on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from ase import Atoms

from airss_msc.analysis.duplicates import alignment_rmsd
from airss_msc.calc.engines import Role, default_method
from airss_msc.calc.engines.batched import batch_model
from airss_msc.calc.relax import RelaxSettings, relax_structure
from airss_msc.calc.relax_batch import relax_batch
from airss_msc.calc.threads import set_threads
from airss_msc.generation.generate import generate_cluster
from airss_msc.results.record import Result
from benchmarks.paths import OUT
from benchmarks.provenance import git_commit

#: Same minimum: energies within this (eV) and aligned RMSD below SAME_RMSD (Angstrom).
SAME_ENERGY = 0.005
SAME_RMSD = 0.1


def _timed(run: Callable[[], list[Result]]) -> tuple[list[Result], float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    results = run()
    return results, time.perf_counter() - wall, time.process_time() - cpu


def _same(a: Result, b: Result) -> tuple[bool, float, float]:
    """(same minimum, energy a - b in eV, aligned RMSD in Angstrom)."""
    if a.energy is None or b.energy is None:
        return False, float("nan"), float("nan")
    de = a.energy - b.energy
    rmsd = alignment_rmsd(a.atoms, b.atoms)
    return abs(de) < SAME_ENERGY and rmsd < SAME_RMSD, de, rmsd


def _row(label: str, results: Sequence[Result], wall: float, cpu: float) -> dict:
    n = len(results)
    calls = [r.force_calls for r in results]
    statuses = {str(r.status) for r in results}
    return {
        "label": label,
        "n": n,
        "per_s": n / wall,
        "wall": wall / n,
        "cpu": cpu / n,
        "calls": statistics.median(calls),
        "calls_mean": statistics.mean(calls),
        "status": ", ".join(f"{s} {sum(str(r.status) == s for r in results)}" for s in sorted(statuses)),
    }


def _agreement(batched: Sequence[Result], reference: Sequence[Result]) -> str:
    pairs = [_same(b, r) for b, r in zip(batched, reference, strict=False)]
    same = sum(p[0] for p in pairs)
    de = [1e3 * p[1] for p in pairs]
    lower = sum(d < -1e3 * SAME_ENERGY for d in de)
    higher = sum(d > 1e3 * SAME_ENERGY for d in de)
    same_de = [abs(d) for (ok, _, _), d in zip(pairs, de, strict=True) if ok]
    same_rmsd = [p[2] for p in pairs if p[0]]
    detail = ""
    if same_de:
        detail = f" (max {max(same_de):.2f} meV, RMSD <= {max(same_rmsd):.3f} A)"
    return f"{same}/{len(pairs)} same{detail}; lower {lower}, higher {higher}"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--starts", type=int, default=16)
    ap.add_argument("--sizes", default="1,4,16,64", help="batch sizes, comma-separated")
    ap.add_argument("--formula", default="Cd13Se13")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    set_threads(1)
    method = default_method(Role.GEOMETRY)
    settings = RelaxSettings(method=method, fmax=0.05, steps=500)
    fire = RelaxSettings(method=method, fmax=0.05, steps=500, optimizer="FIRE")
    model = batch_model(method)
    assert model is not None, f"{method} has no batched call"
    starts: list[Atoms] = [generate_cluster(args.formula, seed=s) for s in range(max([args.starts, *sizes]))]
    first = starts[: args.starts]
    relax_batch([generate_cluster(args.formula, seed=10_000)], settings, model=model)  # load the model

    default, wall, cpu = _timed(lambda: [relax_structure(a, settings) for a in first])
    rows = [_row("one at a time, PreconLBFGS (today)", default, wall, cpu)]
    print(rows[-1], flush=True)
    alone, wall, cpu = _timed(lambda: [relax_structure(a, fire) for a in first])
    rows.append(_row("one at a time, FIRE", alone, wall, cpu))
    rows[-1]["fire"] = "(itself)"
    rows[-1]["default"] = _agreement(alone, default)
    print(rows[-1], flush=True)
    for size in sizes:
        batch = starts[: max(args.starts, size)]
        out, wall, cpu = _timed(
            lambda batch=batch, size=size: relax_batch(batch, settings, batch_size=size, model=model)
        )
        rows.append(_row(f"batched FIRE, {size} per call", out, wall, cpu))
        rows[-1]["fire"] = _agreement(out, alone)
        rows[-1]["default"] = _agreement(out, default)
        print(rows[-1], flush=True)
        # after every batch size, so that a run stopped before its largest batch keeps the others
        _write_table(args.formula, args.starts, method, str(model.device), rows)


def _write_table(formula: str, n_starts: int, method: str, device: str, rows: list[dict]) -> None:
    """benchmarks/out/batched_relax.md from the rows measured so far."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    base = rows[0]
    lines = [
        f"# Batched relaxation: {formula}, {method}, CPU, one thread",
        "",
        (
            f"commit {git_commit()}; {n_starts} random starts (seeds 0-{n_starts - 1}; a batch size above "
            f"that runs on as many starts), fmax 0.05 eV/A, 500 steps, device {device}. Load average "
            f"{load} (1/5/15 min) when the table was written, on {os.cpu_count()} cores: CPU seconds of this "
            "process are the comparable numbers, wall seconds are not where the load exceeds one. Same minimum: "
            "energy within 5 meV and aligned RMSD < 0.1 A; lower/higher: the row's minimum is more than 5 meV "
            "below/above the reference's; the agreement columns compare the first "
            f"{n_starts} starts."
        ),
        "",
        (
            "| path | starts | relaxations / s (wall) | CPU s / relaxation | speed vs today (CPU) | force calls / "
            "relaxation (median, mean) | statuses | vs one-at-a-time FIRE | vs today (PreconLBFGS) |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['n']} | {r['per_s']:.3f} | {r['cpu']:.2f} | {base['cpu'] / r['cpu']:.2f}x | "
            f"{r['calls']:.0f}, {r['calls_mean']:.0f} | {r['status']} | {r.get('fire', '')} | {r.get('default', '')} |"
        )
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "batched_relax.md").write_text(text)


if __name__ == "__main__":
    main()
