"""Search efficiency on Lennard-Jones clusters: relaxations and force calls to the global minimum.

LJ13, LJ19, LJ26 and LJ38 (epsilon = sigma = 1, the dummy element ``X``,
method ``lj``; airss-msc's default optimizer, curvature-safe PreconLBFGS, to
fmax 1e-3, at most 3000 steps) have known global minima (Cambridge Cluster
Database). For each cluster and method this runs independent seeded searches
and stops each at its first relaxed energy within 1e-3 epsilon of the global
minimum (a hit) or when its force-call budget is spent. airss-msc strategies
run through the real ``run_search`` (a fresh database per run); the peers (ASE
BasinHopping, ASE-GA, AGOX random search and basin hopping; GOFEE is tried and
reported) use the same calculator, the same local optimizer and the same
budget (``search_common.py``).

Resumable: every finished run is a line of benchmarks/runs/search_efficiency_runs.jsonl
(committed, so a later session or machine resumes it); a rerun skips it. The tables
are rebuilt from that file and written to benchmarks/out/search_efficiency.md.

    LOG=benchmarks/out/logs/search_efficiency.log
    OMP_NUM_THREADS=1 nohup nice -n 5 python -m benchmarks.search_efficiency > $LOG 2>&1 &
    python -m benchmarks.search_efficiency --report            # tables only, from the stored runs
    python -m benchmarks.search_efficiency --cases 19 --methods "airss: mix;ASE-GA" --runs 20
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.paths import OUT, RUNS
from benchmarks.search_common import (
    RunStore,
    System,
    Tally,
    Target,
    fmt_summary,
    git_commit,
    oracle_relaxer,
    run_agox,
    run_airss,
    run_ase_bh,
    run_ase_ga,
    run_method,
    table_rows,
)

#: Cambridge Cluster Database global minima (epsilon).
GLOBAL_MINIMA = {13: -44.326801, 19: -72.659782, 26: -108.315616, 38: -173.928427}
HIT_TOL = 1e-3
FMAX, STEPS = 1e-3, 3000

#: cluster -> (runs per method, force-call budget per run)
CASES = {13: (20, 5_000), 19: (20, 15_000), 26: (12, 30_000), 38: (10, 60_000)}

#: Shake amplitude (sigma) of the LJ strategies: every atom moves uniformly within a
#: ball of this radius (RMS 0.77 x); 0.7 sigma was best of 0.3/0.45/0.7 on LJ26 (old table).
AMP = 0.7


def _st(name: str, **kw) -> dict:
    return {"name": name, **kw}


#: airss-msc methods: name -> (strategy table, generate table). The strategy
#: tables are what a user writes under [strategy] (moves and their settings).
AIRSS = {
    "airss: random": (_st("random"), {}),
    "airss: random, symmetric starts": (_st("random"), {"symmetry": "random"}),
    "airss: shake": (_st("shake", random_starts=10, pool=5, amplitude=AMP), {}),
    "airss: basin (T=0.8)": (_st("basin", random_starts=1, amplitude=AMP, temperature=0.8), {}),
    "airss: ga": (_st("ga", random_starts=10, pool=8), {}),
    "airss: mix": (_st("mix", random_starts=10, pool=8, amplitude=AMP), {}),
    # every start symmetric, the group drawn with probability proportional to its order
    # (Oh 48, Td 24, ... against Cs 2): AIRSS-style high-symmetry random starts
    "airss: symmetric starts, order-weighted": (
        _st("random", moves={"symmetric": 1.0}, symmetric={"order_power": 1.0}),
        {},
    ),
}

#: Peers: name -> callable(system, seed, tally, workdir) -> timing
PEERS = {
    "ASE BasinHopping (kT=0.8, dr=0.36)": lambda s, seed, t, w: run_ase_bh(s, seed, t, kT=0.8, dr=0.36),
    "ASE-GA": lambda s, seed, t, w: run_ase_ga(s, seed, t, w, rattle=0.35),
    "AGOX random search": lambda s, seed, t, w: run_agox(s, seed, t, w, "rss"),
    "AGOX basin hopping (kT=0.8)": lambda s, seed, t, w: run_agox(s, seed, t, w, "bh", kT=0.8),
    "AGOX GOFEE": lambda s, seed, t, w: run_agox(s, seed, t, w, "gofee", oracle=oracle_relaxer(s)),
}
PEER_SETTINGS = {
    "ASE BasinHopping (kT=0.8, dr=0.36)": {"kT": 0.8, "dr": 0.36},
    "ASE-GA": {"population": 20, "mutation": 0.3, "rattle": 0.35},
    "AGOX random search": {"box": "2.5 r"},
    "AGOX basin hopping (kT=0.8)": {"kT": 0.8, "box": "2.5 r"},
    "AGOX GOFEE": {"collector": "10 random, then 3 random + 7 rattle", "kappa": 2},
}


def system(n: int) -> System:
    return System(f"LJ{n}", f"X{n}", "lj", FMAX, STEPS, f"Ar{n}", lj=True)


def methods() -> list[str]:
    return list(AIRSS) + list(PEERS)


def run_cell(store: RunStore, n: int, method: str, runs: int, budget: int, workdir: Path, say, deadline=None):
    sys_ = system(n)
    target = Target(GLOBAL_MINIMA[n], HIT_TOL)
    if method in AIRSS:
        strategy, generate = AIRSS[method]
        settings = {"strategy": strategy, "generate": generate, "relax": sys_.relax_table(), "budget": budget}

        def runner(seed, tally):
            return run_airss(sys_, strategy, generate, 1000 + seed, tally, workdir)
    else:
        settings = {"peer": PEER_SETTINGS[method], "relax": sys_.relax_table(), "budget": budget}

        def runner(seed, tally):
            return PEERS[method](sys_, seed, tally, workdir)

    return run_method(
        store,
        sys_.name,
        method,
        settings,
        range(1, runs + 1),
        runner,
        lambda: Tally(target, budget),
        say=say,
        deadline=deadline,
    )


def report(store: RunStore, cases: dict, header: list[str]) -> str:
    lines = list(header)
    for n, (_runs, budget) in cases.items():
        lines += [
            f"### LJ{n} (global minimum {GLOBAL_MINIMA[n]} epsilon), budget {budget:,} force calls per run",
            "",
            (
                "| method | runs hit (95 % CI) | median relaxations to hit [95 % CI] | median force calls to hit "
                "[95 % CI] | force calls / relaxation | not relaxed | median best (epsilon) | CPU s / run | "
                "wall s / run |"
            ),
            "|---|---|---|---|---|---|---|---|---|",
        ]
        notes = []
        for method in methods():
            cell = [
                r
                for r in store.runs.values()
                if r["case"] == f"LJ{n}" and r["method"] == method and r["budget"] == budget
            ]
            if not cell:
                continue
            # the newest settings of the method only
            tag = max(cell, key=lambda r: r["date"])["tag"]
            cell = sorted((r for r in cell if r["tag"] == tag), key=lambda r: r["seed"])
            t = table_rows(cell)
            if t["errors"] and t["hits"] == 0 and all(r.get("error") for r in cell):
                notes.append(f"- {method}: did not run: {t['errors'][0][:300]}")
                continue
            lo, hi = t["wilson"]
            lines.append(
                f"| {method} | {t['hits']}/{t['n']} ({100 * lo:.0f}-{100 * hi:.0f} %) "
                f"| {fmt_summary(t['rel'], 'budget')} | {fmt_summary(t['fc'], f'{budget:,}')} "
                f"| {t['fc_per_relax']:.0f} | {t['failed']} | {t['median_best']:.4f} "
                f"| {t['cpu'] / t['n']:.1f} | {t['wall'] / t['n']:.1f} |"
            )
        lines += [""] + notes + ([""] if notes else [])
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(str(n) for n in CASES), help="comma-separated sizes (13,19,26,38)")
    ap.add_argument("--methods", default="", help="semicolon-separated method names (default: all)")
    ap.add_argument("--runs", type=int, default=None, help="runs per method (default per case)")
    ap.add_argument("--results", default=str(RUNS / "search_efficiency_runs.jsonl"))
    ap.add_argument("--out", default=str(OUT / "search_efficiency.md"))
    ap.add_argument("--report", action="store_true", help="only rebuild the tables from the stored runs")
    ap.add_argument("--hours", type=float, default=None, help="stop starting new runs after this many hours")
    ap.add_argument("--workdir", default="/tmp/airss_msc_search_bench")
    args = ap.parse_args()
    store = RunStore(Path(args.results))
    wanted = [int(x) for x in args.cases.split(",") if x]
    chosen = [m.strip() for m in args.methods.split(";") if m.strip()] or methods()
    t0 = time.time()
    deadline = t0 + 3600 * args.hours if args.hours else None

    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    cases = {n: (args.runs or CASES[n][0], CASES[n][1]) for n in wanted}
    if not args.report:
        for n, (runs, budget) in cases.items():
            for method in chosen:
                run_cell(store, n, method, runs, budget, Path(args.workdir), say, deadline)
    header = [
        "# Search efficiency on Lennard-Jones clusters",
        "",
        f"Code: git commit `{git_commit()}`; tables written {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        (
            "Commands: `OMP_NUM_THREADS=1 nohup nice -n 5 python -m benchmarks.search_efficiency > "
            "benchmarks/out/logs/search_efficiency.log 2>&1 &` (resumable: runs in "
            "`benchmarks/runs/search_efficiency_runs.jsonl` are skipped), then "
            "`python -m benchmarks.search_efficiency --report`."
        ),
        "",
        (
            "LJ: epsilon = sigma = 1, no cutoff; every method relaxes with airss-msc's default optimizer "
            f"(curvature-safe PreconLBFGS, maxstep 0.2 sigma) to fmax {FMAX:g}, at most {STEPS} steps. A hit is a "
            f"relaxed energy within {HIT_TOL:g} epsilon of the Cambridge Cluster Database minimum. Each run is an "
            "independent seeded search stopped at its first hit or when its force-call budget (same for every "
            "method of a cluster) is spent. airss-msc runs are real `run_search` calls into a fresh database."
        ),
        "",
        (
            "Medians: runs that missed count as longer than every hit (censored); a median that falls on a miss is "
            "shown as '> budget' or '> N' (N: fewest relaxations among the missing runs). Intervals: 95 % "
            "distribution-free order-statistic interval of the median over runs ('*': fewer than 6 runs, the range "
            "instead); hit fractions with a Wilson 95 % interval. CPU = `time.process_time()` of the run (one core, "
            "one thread); wall time is inflated by other jobs on the shared 2-core machine."
        ),
        "",
    ]
    text = report(store, cases, header)
    if not args.report:
        text += f"\nThis invocation: {time.time() - t0:.0f} s wall.\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
