"""Dask at the edge: the task farm on a Dask cluster, for machines without MPI.

``[search] executor = "dask://HOST:PORT"`` (or ``--executor``) sends the farm's tasks to a
running Dask scheduler; ``"dask"`` starts a local cluster of one single-threaded worker process
per ``threads`` cores of this machine. Nothing else changes: this process stays the coordinator,
the only one that touches the database, so a result is stored exactly once however often Dask
runs its task. A worker that dies mid-task has its task run again on another worker (Dask's
rescheduling), and so does one that had finished there but whose result the worker still held
(Dask hands results over when they are fetched); a task that kills workers repeatedly ends as
Dask's ``KilledWorker``, which the farm stores as that task's failure. Walltime, signals and
resume are the farm's, as under MPI.

Each task sets its worker's threads (OpenMP, BLAS, torch) before it runs: worker processes are
started elsewhere, so the launching process's environment does not reach them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future

from airss_msc.calc.threads import available_cores, set_threads
from airss_msc.errors import InputError

#: Seconds to wait for a scheduler before giving up with one line.
CONNECT_TIMEOUT = 10.0


def is_dask(executor: str | None) -> bool:
    """Whether an executor setting names Dask (``dask`` or ``dask://HOST:PORT``)."""
    return executor is not None and (executor == "dask" or executor.startswith("dask://"))


def check_executor(executor: str | None) -> str | None:
    """The setting, checked: None/``mpi`` (the default: MPI when launched so, else in process) or Dask."""
    if executor in (None, "", "mpi"):
        return None
    if not is_dask(executor) or executor == "dask://":
        raise InputError(
            f"executor = {executor!r}: use 'mpi' (the default), 'dask' (a local cluster) "
            "or 'dask://HOST:PORT' (a running scheduler)"
        )
    return executor


def in_worker(threads: int, fn: Callable, *args):
    """Run ``fn(*args)`` with this worker process's threads fixed first (a no-op after the first task)."""
    set_threads(threads)
    return fn(*args)


class DaskExecutor(Executor):
    """A ``concurrent.futures`` executor over a Dask client: each task carries its thread count."""

    def __init__(self, client, threads: int):
        self._inner = client.get_executor(pure=False)
        self.threads = threads

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if kwargs:
            raise TypeError("the farm submits positional tasks only")
        return self._inner.submit(in_worker, self.threads, fn, *args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._inner.shutdown(wait=wait)


@contextlib.contextmanager
def dask_executor(address: str, threads: int = 1) -> Iterator[tuple[DaskExecutor, int]]:
    """Yield ``(executor, workers)`` on the Dask cluster ``address`` names (see the module docstring).

    ``workers`` is the number of tasks the cluster runs at once (its worker threads), which sets
    how many the farm keeps in flight.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("executor = 'dask' needs the dask extra: pip install 'airss-msc[dask]'") from None
    threads = max(int(threads), 1)
    with contextlib.ExitStack() as stack:
        if address == "dask":
            n = max(available_cores() // threads, 1)
            cluster = stack.enter_context(
                LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40)
            )
            target = cluster
        else:
            target = "tcp://" + address.removeprefix("dask://")
        try:
            client = stack.enter_context(Client(target, timeout=CONNECT_TIMEOUT, set_as_default=False))
        except (OSError, TimeoutError) as exc:
            raise InputError(
                f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'no answer'})"
            ) from None
        workers = sum(client.nthreads().values())
        if not workers:
            raise InputError(f"the Dask scheduler at {address} has no workers")
        executor = DaskExecutor(client, threads)
        yield executor, workers


__all__ = ["DaskExecutor", "check_executor", "dask_executor", "in_worker", "is_dask"]
