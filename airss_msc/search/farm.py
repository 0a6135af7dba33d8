"""The task farm every parallel workflow runs on: tasks out to an executor, results stored as they arrive.

``run_farm`` knows nothing of structures or engines. It hands tasks to an
executor (in process, or mpi4py's ``MPICommExecutor`` under ``mpiexec``) with
a bounded number in flight, calls ``store`` for each result the moment it
arrives (only here, on the coordinator, does anything touch the database),
and stops handing out work on SIGTERM/SIGUSR1/SIGINT or at the walltime:
tasks in flight are collected and stored, the rest stay for the next run.
The structure search, ``rescore``, ``refine`` and ``spectrum`` all run on it.
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

    def handler(signum, frame):
        if flag and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        flag.set(signal.Signals(signum).name)

    handler.stop_flag = flag
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
    """

    work: Callable[[T], R]
    store: Callable[[T, R], tuple[str, bool]]
    on_error: Callable[[T, str], R]
    prepare: Callable[[T], T] | None = None


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
) -> FarmOutcome:
    """Run ``tasks`` (those not yet done) through ``farm``; see the module docstring.

    At most ``2 * workers`` tasks are in flight, so a stop leaves little unfinished.
    The caller installs signal handlers (:func:`stop_on_signals`) around this call.
    """
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
    inflight: dict[Future, T] = {}
    limit = 2 * max(workers, 1)
    try:
        while pending or inflight:
            if deadline is not None and time.monotonic() >= deadline:
                stop.set("walltime")
            while pending and not stop and len(inflight) < limit:
                task = pending.popleft()
                if farm.prepare is not None:
                    task = farm.prepare(task)
                inflight[pool.submit(farm.work, task)] = task
            if not inflight:
                break
            finished, _ = wait(list(inflight), timeout=1.0, return_when=FIRST_COMPLETED)
            # in submission order: ``wait`` returns a set, whose order varies from run to run, and the
            # order results are stored in is what the next parents are drawn from (a serial search
            # must be reproducible)
            for future in [f for f in inflight if f in finished]:
                task = inflight.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # the worker raised: store it, go on
                    result = farm.on_error(task, f"{type(exc).__name__}: {exc}")
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


def summary_line(name: str, outcome: FarmOutcome, failed_word: str = "not relaxed") -> str:
    tail = f" (stopped by {outcome.reason}; rerun the same command to resume)" if outcome.interrupted else ""
    return (
        f"{name}: {outcome.done} done ({outcome.failed} {failed_word}) in {outcome.wall_seconds:.0f} s, "
        f"{outcome.remaining} remaining{tail}; coordinator CPU {outcome.coordinator_cpu_seconds:.1f} s"
    )
