"""The search stage: generate and relax candidates, store each as it finishes.

The unit of work is :func:`run_candidate` — a :class:`CandidateTask` in, a
plain summary dict out — which knows nothing of databases or MPI. The
coordinator (:func:`run_search`) plans the tasks, skips those already stored
(resume), hands the rest to an executor (in-process by default) and writes one
row per result the moment it arrives.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from airss_msc.config import SearchConfig
from airss_msc.errors import InputError
from airss_msc.generate import GeneratorSettings, derive_seed, generate_cluster
from airss_msc.relax import RelaxSettings, relax_structure
from airss_msc.store import ResultsDB


@dataclass(frozen=True)
class CandidateTask:
    """Everything needed to build and relax one candidate (picklable)."""

    formula: str
    index: int
    seed: int
    generate: GeneratorSettings
    relax: RelaxSettings


def run_candidate(task: CandidateTask) -> dict:
    """Generate candidate ``task.index`` from its seed and relax it.

    Always returns a summary (see :func:`airss_msc.relax.relax_structure`); a
    generation failure becomes an ``error`` summary so the search goes on.
    """
    try:
        atoms = generate_cluster(task.formula, task.seed, task.generate)
    except InputError as exc:
        return {
            "status": "error", "message": f"generation failed: {exc}",
            "symbols": [], "positions": [], "energy": None, "energy_per_atom": None, "gap": None,
            "steps": 0, "force_calls": 0, "wall_seconds": 0.0, "method": task.relax.method,
            "engine_version": "", "airss_msc_version": "",
            "info": {"formula": task.formula, "seed": task.seed, "candidate": task.index},
        }
    atoms.info["candidate"] = task.index
    return relax_structure(atoms, task.relax)


def plan_tasks(config: SearchConfig) -> list[CandidateTask]:
    """All candidates of a search, in a fixed order (composition, index)."""
    return [
        CandidateTask(formula, index, derive_seed(config.seed, formula, index), config.generate, config.relax)
        for formula in config.compositions
        for index in range(config.candidates)
    ]


def set_threads(threads: int | None = None) -> int:
    """One OpenMP/BLAS thread per process unless told otherwise.

    Oversubscribed OpenMP threads are catastrophically slow for xTB on small
    clusters. Must run before the engine library is first loaded.
    """
    n = threads or int(os.environ.get("SLURM_CPUS_PER_TASK", "0") or 0) or 1
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("OMP_STACKSIZE", "1G")
    return n


@dataclass
class SearchOutcome:
    """Counts of one search invocation."""

    planned: int
    skipped: int
    done: int = 0
    failed: int = 0
    interrupted: bool = False

    @property
    def remaining(self) -> int:
        return self.planned - self.skipped - self.done


def _serial(tasks: Iterable[CandidateTask]) -> Iterator[tuple[CandidateTask, dict]]:
    for task in tasks:
        yield task, run_candidate(task)


def _pooled(tasks: list[CandidateTask], executor: Executor) -> Iterator[tuple[CandidateTask, dict]]:
    futures = {executor.submit(run_candidate, task): task for task in tasks}
    for future in as_completed(futures):
        yield futures[future], future.result()


def _progress_line(i: int, n: int, task: CandidateTask, summary: dict) -> str:
    energy = summary.get("energy")
    gap = summary.get("gap")
    parts = [f"[{i}/{n}] {task.formula} #{task.index}", summary["status"]]
    if energy is not None:
        parts.append(f"E={energy:.4f} eV")
    if gap is not None:
        parts.append(f"gap={gap:.2f} eV")
    parts.append(f"{summary['steps']} steps {summary['wall_seconds']:.1f} s")
    if summary.get("message") and summary["status"] != "relaxed":
        parts.append(f"({summary['message']})")
    return "  ".join(parts)


def run_search(
    config: SearchConfig,
    executor: Executor | None = None,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> SearchOutcome:
    """Run (or resume) a search; results go to ``config.db`` one row at a time."""
    tasks = plan_tasks(config)
    with ResultsDB(config.db, write=True) as db:
        done = db.done_seeds()
        pending = [t for t in tasks if (t.formula, t.seed) not in done]
        outcome = SearchOutcome(planned=len(tasks), skipped=len(tasks) - len(pending))
        log(f"search {config.name}: {len(tasks)} candidates over {len(config.compositions)} "
            f"composition(s), {outcome.skipped} already in {config.db}, {len(pending)} to run "
            f"({config.relax.method})")
        start = time.perf_counter()
        results = _pooled(pending, executor) if executor is not None else _serial(pending)
        try:
            for task, summary in results:
                db.add(summary, extra={"search": config.name})
                outcome.done += 1
                outcome.failed += summary["status"] != "relaxed"
                log(_progress_line(outcome.skipped + outcome.done, len(tasks), task, summary))
        except KeyboardInterrupt:
            outcome.interrupted = True
        elapsed = time.perf_counter() - start
    log(f"search {config.name}: {outcome.done} done ({outcome.failed} not relaxed) in {elapsed:.0f} s, "
        f"{outcome.remaining} remaining" + (" (interrupted; rerun to resume)" if outcome.interrupted else ""))
    return outcome
