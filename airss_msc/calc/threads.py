"""One place decides how many threads a process computes with (OpenMP, BLAS and torch alike).

One thread per process unless told otherwise: oversubscribed OpenMP threads
are catastrophically slow for xTB on small clusters, and MPI runs one process
per core. :func:`set_threads` must run before an engine library is first
loaded; engines that keep their own thread pool (torch, PySCF) read
:func:`current_threads` when they build a calculator.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from airss_msc.errors import InputError

_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def threads_per_process(requested: int | None, processes_on_node: int = 1) -> int:
    """Threads per process: the request, SLURM_CPUS_PER_TASK, or 1.

    A request that would oversubscribe the node's cores is refused.
    """
    if requested is not None and requested < 1:
        raise InputError(f"threads must be >= 1, got {requested}")
    cores = available_cores()
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    n = requested or (int(slurm) if slurm.isdigit() else 1)
    if requested and n * processes_on_node > cores:
        raise InputError(f"{n} threads x {processes_on_node} processes would oversubscribe the {cores} cores available")
    return max(1, n)


def set_threads(requested: int | None = None) -> int:
    """Fix this process's thread count (environment for OpenMP/BLAS); returns it."""
    n = threads_per_process(requested)
    for var in _VARIABLES:
        os.environ[var] = str(n)
    os.environ.setdefault("OMP_STACKSIZE", "1G")
    return n


def current_threads() -> int:
    """The thread count :func:`set_threads` fixed (1 if it never ran)."""
    value = os.environ.get("OMP_NUM_THREADS", "1")
    return int(value) if value.isdigit() and int(value) > 0 else 1


@contextlib.contextmanager
def threads_for(n: int) -> Iterator[int]:
    """Compute with ``n`` threads inside the block, then with the previous count again.

    Engines that keep their own pool read :func:`current_threads` on every call (torch
    through ``chgnet.use_threads``, PySCF at every SCF), so the change takes effect in
    this process at once; an OpenMP runtime already started (xTB) keeps its count, and
    MPI workers (other processes) are not affected.
    """
    if n < 1:
        raise InputError(f"threads must be >= 1, got {n}")
    saved = {var: os.environ.get(var) for var in _VARIABLES}
    for var in _VARIABLES:
        os.environ[var] = str(n)
    try:
        yield n
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
