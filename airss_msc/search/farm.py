"""The search stage: generate and relax candidates, store each as it finishes.

The unit of work is :func:`run_candidate` — a :class:`CandidateTask` in, a
plain summary dict out — which knows nothing of databases or MPI. The
coordinator (:func:`run_search`) plans the tasks, skips those already stored
(resume), hands the rest to an executor (in-process by default) and writes one
row per result the moment it arrives.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from ase import Atoms

from airss_msc.search.config import SearchConfig
from airss_msc.errors import InputError
from airss_msc.build.confinement import Sphere
from airss_msc.build.generate import GeneratorSettings, derive_seed, generate_cluster, prepare, push_apart
from airss_msc.build.separations import format_minsep, minsep_matrix
from airss_msc.search.strategies import Parent, StrategySettings, derive_start, select_parent
from airss_msc.search.progress import Progress
from airss_msc.calc.relax import RelaxSettings, relax_structure
from airss_msc.results.store import ResultsDB


@dataclass(frozen=True)
class CandidateTask:
    """Everything needed to build and relax one candidate (picklable).

    A task with a ``parent`` starts from that relaxed structure moved as
    ``strategy`` says (the move is drawn from ``seed``); otherwise it is a
    random structure from ``seed``.
    """

    formula: str
    index: int
    seed: int
    generate: GeneratorSettings
    relax: RelaxSettings
    strategy: StrategySettings = StrategySettings()
    parent: Parent | None = None


def derived_start(task: CandidateTask) -> Atoms:
    """The start of a derived candidate: the parent moved, overlaps pushed apart."""
    rng = np.random.default_rng(task.seed)
    symbols, positions, move = derive_start(task.parent, task.strategy, rng)
    counts, rules, _ = prepare(task.formula, task.generate)
    drawn = rules.draw(rng)
    positions = positions - positions.mean(axis=0)
    # no confinement for moves: the parent already has its shape
    free = Sphere(float(np.linalg.norm(positions, axis=1).max()) + 10.0)
    positions, ok = push_apart(positions, minsep_matrix(symbols, drawn), free, rng, task.generate.push_iterations)
    atoms = Atoms(symbols, positions=positions)
    atoms.info.update(seed=task.seed, formula=task.formula, minsep=format_minsep(drawn),
                      strategy=task.strategy.name, move=move, parent=task.parent.row,
                      parent_energy=task.parent.energy, generator=f"{task.strategy.name} move")
    return atoms


def run_candidate(task: CandidateTask) -> dict:
    """Build candidate ``task.index`` (random or derived) and relax it.

    Always returns a summary (see :func:`airss_msc.calc.relax.relax_structure`); a
    generation failure becomes an ``error`` summary so the search goes on.
    """
    try:
        if task.parent is not None:
            atoms = derived_start(task)
        else:
            atoms = generate_cluster(task.formula, task.seed, task.generate)
            atoms.info["strategy"] = task.strategy.name
    except InputError as exc:
        return _error_summary(task, f"generation failed: {exc}")
    atoms.info["candidate"] = task.index
    return relax_structure(atoms, task.relax)


def plan_tasks(config: SearchConfig) -> list[CandidateTask]:
    """All candidates of a search, in a fixed order (composition, index), as random
    starts; :func:`with_parent` turns later ones into moves at submission time."""
    return [
        CandidateTask(formula, index, derive_seed(config.seed, formula, index), config.generate, config.relax,
                      config.strategy)
        for formula in config.compositions
        for index in range(config.candidates)
    ]


def with_parent(task: CandidateTask, minima: dict[str, list[Parent]]) -> CandidateTask:
    """Attach a parent when the strategy moves from minima and this index is past
    the random starts (and some minimum exists); else keep it random."""
    st = task.strategy
    if st.name == "random" or task.index < st.random_starts:
        return task
    # parent choice from its own stream, so the move's stream is untouched
    rng = np.random.default_rng([task.seed, 1])
    parent = select_parent(minima.get(task.formula, []), st.effective_pool, rng)
    return task if parent is None else replace(task, parent=parent)


def set_threads(threads: int | None = None) -> int:
    """One OpenMP/BLAS thread per process unless told otherwise
    (:func:`airss_msc.search.parallel.threads_per_rank` decides how many).

    Oversubscribed OpenMP threads are catastrophically slow for xTB on small
    clusters. Must run before the engine library is first loaded.
    """
    from airss_msc.search.parallel import threads_per_rank

    n = threads_per_rank(threads)
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
    reason: str = ""
    wall_seconds: float = 0.0
    coordinator_cpu_seconds: float = 0.0

    @property
    def remaining(self) -> int:
        return self.planned - self.skipped - self.done


class InProcessExecutor(Executor):
    """Runs each task at submission: the serial engine behind the same loop."""

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future


class StopFlag:
    """Set by SIGTERM/SIGUSR1/SIGINT (batch systems signal before the walltime)."""

    def __init__(self):
        self.reason = ""

    def __bool__(self) -> bool:
        return bool(self.reason)

    def set(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason


@contextlib.contextmanager
def _signals(flag: StopFlag):
    """Turn the first SIGTERM/SIGUSR1/SIGINT into a graceful stop (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        if flag and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        flag.set(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _error_summary(task: CandidateTask, message: str) -> dict:
    """A stored ``error`` row for a task that could not run (the search goes on)."""
    return {
        "status": "error", "message": message,
        "symbols": [], "positions": [], "energy": None, "energy_per_atom": None, "gap": None,
        "steps": 0, "force_calls": 0, "wall_seconds": 0.0, "method": task.relax.method,
        "engine_version": "", "airss_msc_version": "",
        "info": {"formula": task.formula, "seed": task.seed, "candidate": task.index},
    }


def _progress_line(task: CandidateTask, summary: dict) -> str:
    energy = summary.get("energy")
    gap = summary.get("gap")
    parts = [f"{task.formula} #{task.index}", summary["status"]]
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
    workers: int = 1,
    log: Callable[[str], None] | None = None,
    stop: StopFlag | None = None,
    progress_every: float = 60.0,
) -> SearchOutcome:
    """Run (or resume) a search; results go to ``config.db`` one row at a time.

    executor: where :func:`run_candidate` runs (in process when None); at most
        ``2 * workers`` tasks are in flight so a stop leaves little unfinished.
    stop: set it (signals do) to stop handing out work; tasks in flight are
        collected and stored, the rest stay for the next run.
    config.walltime: seconds after which the same happens.
    """
    tasks = plan_tasks(config)
    stop = stop if stop is not None else StopFlag()
    deadline = time.monotonic() + config.walltime if config.walltime else None
    cpu0 = time.process_time()
    with ResultsDB(config.db, write=True) as db, _signals(stop):
        done = db.done_seeds()
        pending = deque(t for t in tasks if (t.formula, t.seed) not in done)
        minima: dict[str, list[Parent]] = {}
        if config.strategy.name != "random":
            for rec in db.records(status="relaxed"):
                minima.setdefault(rec.composition, []).append(
                    Parent(rec.id, rec.energy, tuple(rec.atoms.get_chemical_symbols()), rec.atoms.positions))
        outcome = SearchOutcome(planned=len(tasks), skipped=len(tasks) - len(pending))
        progress = Progress(len(pending), every=progress_every)
        say = log or progress.line
        say(f"search {config.name}: {len(tasks)} candidates over {len(config.compositions)} "
            f"composition(s), {outcome.skipped} already in {config.db}, {len(pending)} to run "
            f"({config.relax.method}, strategy {config.strategy.name}, {max(workers, 1)} worker(s))")
        pool = executor if executor is not None else InProcessExecutor()
        inflight: dict[Future, CandidateTask] = {}
        limit = 2 * max(workers, 1)
        try:
            while pending or inflight:
                if deadline is not None and time.monotonic() >= deadline:
                    stop.set("walltime")
                while pending and not stop and len(inflight) < limit:
                    task = with_parent(pending.popleft(), minima)
                    inflight[pool.submit(run_candidate, task)] = task
                if not inflight:
                    break
                finished, _ = wait(list(inflight), timeout=1.0, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = inflight.pop(future)
                    try:
                        summary = future.result()
                    except Exception as exc:  # the worker raised: store it, go on
                        summary = _error_summary(task, f"{type(exc).__name__}: {exc}")
                    row = db.add(summary, extra={"search": config.name})
                    if summary["status"] == "relaxed" and config.strategy.name != "random":
                        minima.setdefault(task.formula, []).append(Parent(
                            row, summary["energy"], tuple(summary["symbols"]), np.asarray(summary["positions"])))
                    outcome.done += 1
                    outcome.failed += summary["status"] != "relaxed"
                    say(f"[{outcome.skipped + outcome.done}/{len(tasks)}] " + _progress_line(task, summary))
                    progress.advance(summary["status"] == "relaxed")
        except KeyboardInterrupt:
            stop.set("interrupt")
            for future in inflight:
                future.cancel()
        finally:
            progress.close()
        outcome.interrupted = bool(stop)
        outcome.reason = stop.reason
        outcome.wall_seconds = time.monotonic() - progress.start
        # In process, this includes the relaxations; under MPI it is the coordinator alone.
        outcome.coordinator_cpu_seconds = time.process_time() - cpu0
    tail = f" (stopped by {stop.reason}; rerun the same command to resume)" if stop else ""
    say(f"search {config.name}: {outcome.done} done ({outcome.failed} not relaxed) in "
        f"{outcome.wall_seconds:.0f} s, {outcome.remaining} remaining{tail}; "
        f"coordinator CPU {outcome.coordinator_cpu_seconds:.1f} s")
    return outcome
