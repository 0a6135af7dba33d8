"""Where the CPU time of a CHGNet relaxation goes: the model against everything around it.

For random Cd13Se13 starts (generator defaults, seeds 0..N-1) relaxed by the default protocol
(``relax_structure`` with CHGNet 0.3.0, fmax 0.05 eV/A, 500 steps, one thread), every force call
is timed in three nested parts (CPU seconds of this process, so other load on the machine does
not count): the model itself (``CHGNet.predict_graph`` on the graph: the floor, calls x seconds
per call on the geometries the relaxation actually visits), the calculator around it (box,
pymatgen ``Structure``, graph conversion, checks), and the optimizer and ASE outside the calculator.
The ratio total / model is the overhead the issue asks to bring to <= 1.3x.

    OMP_NUM_THREADS=1 python -m benchmarks.relax_cost [--starts 8]

Writes benchmarks/out/relax_cost.md with the commit it ran on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from airss_msc.calc.engines import chgnet as chgnet_engine
from airss_msc.calc.relax import RelaxSettings, relax_structure
from airss_msc.calc.threads import set_threads
from airss_msc.generation.generate import generate_cluster
from benchmarks.paths import OUT
from benchmarks.provenance import git_commit


class Timer:
    """CPU seconds spent inside a wrapped callable, and how often it ran."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - t0
                self.calls += 1

        return timed

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=8)
    ap.add_argument("--formula", default="Cd13Se13")
    args = ap.parse_args()
    set_threads(1)
    settings = RelaxSettings(method="chgnet", fmax=0.05, steps=500)
    model = chgnet_engine._model("0.3.0", "cpu")
    calculator, predict = Timer(), Timer()
    chgnet_engine.CHGNetCluster.calculate = calculator.wrap(chgnet_engine.CHGNetCluster.calculate)
    model.predict_graph = predict.wrap(model.predict_graph)
    relax_structure(generate_cluster(args.formula, seed=10_000), settings)  # load the model, warm caches

    rows = []
    for seed in range(args.starts):
        start = generate_cluster(args.formula, seed=seed)
        calculator.reset()
        predict.reset()
        t0 = time.process_time()
        result = relax_structure(start, settings)
        total = time.process_time() - t0
        rows.append(
            {
                "seed": seed,
                "status": result.status,
                "calls": predict.calls,
                "total": total,
                "model": predict.seconds,
                "calculator": calculator.seconds - predict.seconds,
                "outside": total - calculator.seconds,
            }
        )
        r = rows[-1]
        print(
            f"seed {seed}: {r['status']}, {r['calls']} calls, {r['total']:.2f} CPU s, model {r['model']:.2f}, "
            f"calculator {r['calculator']:.2f}, optimizer+ASE {r['outside']:.2f}, "
            f"ratio {r['total'] / r['model']:.2f}",
            flush=True,
        )

    calls = sum(r["calls"] for r in rows)
    total, model_s = sum(r["total"] for r in rows), sum(r["model"] for r in rows)
    lines = [
        f"# Relaxation cost: the model against the rest ({args.formula}, CHGNet 0.3.0, one thread)",
        "",
        (
            f"commit {git_commit()}; {args.starts} random starts (seeds 0-{args.starts - 1}), `relax_structure` "
            f"defaults (PreconLBFGS, fmax 0.05 eV/A, 500 steps); CPU seconds of the relaxing process."
        ),
        "",
        "| | per relaxation (median) | per force call (mean) | share |",
        "|---|---|---|---|",
        f"| force calls | {statistics.median(r['calls'] for r in rows):.0f} | | |",
        f"| total | {statistics.median(r['total'] for r in rows):.2f} s | {1e3 * total / calls:.1f} ms | 100 % |",
    ]
    for key, label in (
        ("model", "model (`predict_graph`: the floor)"),
        ("calculator", "calculator around it (box, Structure, graph)"),
        ("outside", "optimizer and ASE"),
    ):
        part = sum(r[key] for r in rows)
        lines.append(
            f"| {label} | {statistics.median(r[key] for r in rows):.2f} s | {1e3 * part / calls:.1f} ms | "
            f"{100 * part / total:.0f} % |"
        )
    ratios = sorted(r["total"] / r["model"] for r in rows)
    lines += [
        "",
        f"Total / model floor: {total / model_s:.2f}x over all {calls} calls (per relaxation "
        f"{ratios[0]:.2f}-{ratios[-1]:.2f}x); statuses: "
        + ", ".join(f"{s} {sum(r['status'] == s for r in rows)}" for s in sorted({r["status"] for r in rows}))
        + ".",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / "relax_cost.md").write_text(text)


if __name__ == "__main__":
    main()
