"""The task farm every parallel workflow runs on: tasks out to an executor, results stored as they arrive.

``run_farm`` knows nothing of structures or engines. It hands tasks to an
executor (in process, or mpi4py's ``MPICommExecutor`` under ``mpiexec``) with
a bounded number in flight, calls ``store`` for each result the moment it
arrives (only here, on the coordinator, does anything touch the database),
and stops handing out work on SIGTERM/SIGUSR1/SIGINT or at the walltime:
tasks in flight are collected and stored, the rest stay for the next run.
The structure search, ``rescore``, ``refine`` and ``spectrum`` all run on it.

A farm with a ``work_batch`` job can hand a worker up to ``batch`` tasks at once (the search's
batched relaxation, one model call per optimizer step for all of them): the batch is one
submission, each of its tasks is prepared just before it and stored, counted and reported on
its own when the batch comes back, so storage, resume and progress are those of single tasks.
A stop or the walltime hands out no new batch; batches in flight are collected and stored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

from airss_msc.search.progress import Progress

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class FarmOutcome:
    """Counts of one farm run (seconds wall and coordinator CPU)."""

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
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future


class StopFlag:
    """Set by SIGTERM/SIGUSR1/SIGINT (batch systems signal before the walltime) or the walltime."""

    def __init__(self):
        self.reason = ""

    def __bool__(self) -> bool:
        return bool(self.reason)

    def set(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason


#: The signals that stop a farm gracefully (batch systems send SIGTERM or SIGUSR1 before the walltime).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class _StopHandler:
    """The signal handler of :func:`stop_on_signals`: sets ``stop_flag`` (a nested call finds it)."""

    def __init__(self, flag: StopFlag):
        self.stop_flag = flag

    def __call__(self, signum: int, frame: object) -> None:
        if self.stop_flag and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.stop_flag.set(signal.Signals(signum).name)


@contextlib.contextmanager
def stop_on_signals(flag: StopFlag):
    """Turn the first SIGTERM/SIGUSR1/SIGINT into a graceful stop (main thread only).

    Nests: a stop that reached an enclosing ``stop_on_signals`` before this one
    was entered carries over to ``flag``, so a command can install its handlers
    first thing and the job's own handlers lose nothing. On exit the previous
    handlers come back, unless something else replaced these meanwhile (an MPI
    worker's SIG_IGN stays).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    handler = _StopHandler(flag)
    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, handler)
    for old in previous.values():
        outer = getattr(old, "stop_flag", None)
        if outer:
            flag.set(outer.reason)
    try:
        yield
    finally:
        for sig, old in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, old)


@dataclass
class Farm(Generic[T, R]):
    """How to run one kind of task.

    work: the job (a picklable top-level function: task in, result out; it must
        not raise, but if it does, ``on_error`` turns the exception into a result).
    store: called on the coordinator with each (task, result); returns the
        progress line and whether the result counts as a success.
    prepare: called on each task just before submission (e.g. to pick a parent
        from the minima stored so far); None keeps tasks as planned.
    work_batch: the job for several tasks at once (a picklable top-level function: a list of
        tasks in, one result per task out, in order); None: tasks go out one at a time
        whatever ``run_farm``'s ``batch`` says.
    """

    work: Callable[[T], R]
    store: Callable[[T, R], tuple[str, bool]]
    on_error: Callable[[T, str], R]
    prepare: Callable[[T], T] | None = None
    work_batch: Callable[[list[T]], list[R]] | None = None


def run_farm(
    farm: Farm,
    tasks: Iterable[T],
    *,
    planned: int,
    skipped: int = 0,
    executor: Executor | None = None,
    workers: int = 1,
    stop: StopFlag | None = None,
    walltime: float | None = None,
    say: Callable[[str], None] | None = None,
    progress_every: float = 60.0,
    headline: str = "",
    batch: int = 1,
) -> FarmOutcome:
    """Run ``tasks`` (those not yet done) through ``farm``; see the module docstring.

    At most ``2 * workers`` submissions are in flight, so a stop leaves little unfinished.
    ``batch`` > 1 with a ``farm.work_batch``: each submission is up to ``batch`` tasks, run by
    ``work_batch`` (a batch of one at the end too, so every task takes the same path); in process
    one batch is in flight at a time, so each is prepared from every result stored before it.
    The caller installs signal handlers (:func:`stop_on_signals`) around this call.
    """
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    size = batch if farm.work_batch is not None else 1
    pending = deque(tasks)
    stop = stop if stop is not None else StopFlag()
    deadline = time.monotonic() + walltime if walltime else None
    cpu0 = time.process_time()
    outcome = FarmOutcome(planned=planned, skipped=skipped)
    progress = Progress(len(pending), every=progress_every)
    say = say or progress.line
    if headline:
        say(headline)
    pool = executor if executor is not None else InProcessExecutor()
    inflight: dict[Future, list[T]] = {}
    limit = 2 * max(workers, 1)
    if size > 1 and isinstance(pool, InProcessExecutor):
        # in process a submission runs at once: a second batch in flight would be prepared before
        # the first is stored (its parents a whole batch behind) and gain nothing
        limit = 1
    try:
        while pending or inflight:
            if deadline is not None and time.monotonic() >= deadline:
                stop.set("walltime")
            while pending and not stop and len(inflight) < limit:
                group: list[T] = []
                while pending and len(group) < size:
                    task = pending.popleft()
                    if farm.prepare is not None:
                        task = farm.prepare(task)
                    group.append(task)
                if size == 1:
                    inflight[pool.submit(farm.work, group[0])] = group
                else:
                    assert farm.work_batch is not None
                    inflight[pool.submit(farm.work_batch, group)] = group
            if not inflight:
                break
            finished, _ = wait(list(inflight), timeout=1.0, return_when=FIRST_COMPLETED)
            # in submission order: ``wait`` returns a set, whose order varies from run to run, and the
            # order results are stored in is what the next parents are drawn from (a serial search
            # must be reproducible)
            for future in [f for f in inflight if f in finished]:
                group = inflight.pop(future)
                for task, result in zip(group, _results(farm, group, future, size > 1), strict=True):
                    line, ok = farm.store(task, result)
                    outcome.done += 1
                    outcome.failed += not ok
                    say(f"[{outcome.skipped + outcome.done}/{outcome.planned}] {line}")
                    progress.advance(ok)
    except KeyboardInterrupt:
        stop.set("interrupt")
        for future in inflight:
            future.cancel()
    finally:
        progress.close()
    outcome.interrupted = bool(stop)
    outcome.reason = stop.reason
    outcome.wall_seconds = time.monotonic() - progress.start
    # In process, this includes the jobs themselves; under MPI it is the coordinator alone.
    outcome.coordinator_cpu_seconds = time.process_time() - cpu0
    return outcome


def _results(farm: Farm, group: list, future: Future, batched: bool) -> list:
    """One result per task of ``group`` from its finished ``future``; a worker that raised (or
    returned the wrong number of results) gives each task ``farm.on_error``'s result."""
    try:
        out = future.result()
        if not batched:
            return [out]
        if not isinstance(out, list) or len(out) != len(group):
            got = len(out) if isinstance(out, list) else type(out).__name__
            raise RuntimeError(f"a batch of {len(group)} tasks returned {got} results")
        return out
    except Exception as exc:  # the worker raised: store it, go on
        return [farm.on_error(task, f"{type(exc).__name__}: {exc}") for task in group]


def summary_line(name: str, outcome: FarmOutcome, failed_word: str = "not relaxed") -> str:
    tail = f" (stopped by {outcome.reason}; rerun the same command to resume)" if outcome.interrupted else ""
    return (
        f"{name}: {outcome.done} done ({outcome.failed} {failed_word}) in {outcome.wall_seconds:.0f} s, "
        f"{outcome.remaining} remaining{tail}; coordinator CPU {outcome.coordinator_cpu_seconds:.1f} s"
    )
