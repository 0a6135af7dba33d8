"""MPI at the edge: launch detection, duplicate-launch guard, the task-farm executor.

``mpiexec -n N airss-msc search CONFIG`` runs one coordinator (rank 0, which
alone touches the database) and N-1 workers serving
:func:`airss_msc.search.farm` jobs through mpi4py.futures'
``MPICommExecutor``. Without a launcher, or with one rank, nothing here imports
mpi4py and the search runs in process.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

from airss_msc.errors import InputError

#: Environment variables through which launchers announce the job size.
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE")

#: Seconds between the coordinator's polls of its workers: long enough to keep
#: it under a few per cent of a core, short next to a relaxation (30-100 s).
POLL_SECONDS = 0.05


def launched_size() -> int:
    """Job size announced by an MPI launcher (1 when not launched by one)."""
    for var in _SIZE_VARS:
        value = os.environ.get(var)
        if value and value.isdigit():
            return int(value)
    return 1


def check_launch(comm_size: int) -> None:
    """Refuse launches in which every process would do all the work.

    Under SLURM, ``srun`` without PMI starts SLURM_NTASKS independent copies that
    each believe they are rank 0 of 1: they would all run the whole search.
    """
    ntasks = os.environ.get("SLURM_NTASKS") or os.environ.get("SLURM_NPROCS")
    step = os.environ.get("SLURM_STEP_ID")
    if comm_size == 1 and ntasks and ntasks.isdigit() and int(ntasks) > 1 and step is not None:
        raise InputError(
            f"this process is MPI rank 0 of 1 but SLURM started {ntasks} tasks: every task would do "
            f"all the work. Launch with 'srun --mpi=pmi2 ...' (or mpiexec), or run one task"
        )
    announced = launched_size()
    if comm_size == 1 and announced > 1:
        raise InputError(
            f"the launcher announced {announced} processes but MPI sees 1: the mpi4py/MPI library "
            f"does not match the launcher (use the mpiexec of the same MPI as mpi4py)"
        )


@contextlib.contextmanager
def task_executor(
    force_serial: bool = False, executor: str | None = None, threads: int = 1
) -> Iterator[tuple[object | None, int, bool]]:
    """Yield ``(executor, workers, is_coordinator)``.

    Serial (no launcher, one rank, or ``force_serial``): ``(None, 0, True)``.
    ``executor`` naming Dask (:mod:`airss_msc.search.distributed`): this process coordinates a
    Dask cluster whose workers run ``threads`` threads each.
    Under MPI with N ranks: rank 0 gets an ``MPICommExecutor`` with N-1 workers;
    worker ranks get ``(None, N-1, False)`` after serving tasks until the
    coordinator is done, and must then simply return.
    """
    from airss_msc.search.distributed import check_executor, dask_executor

    address = check_executor(executor)
    if address and not force_serial:
        if launched_size() > 1:
            raise InputError(
                f"executor = {address!r} under an MPI launcher: run one process (Dask "
                "starts or reaches the workers), or drop the executor setting to use MPI"
            )
        with dask_executor(address, threads) as (pool, workers):
            yield pool, workers, True
        return
    if force_serial or (launched_size() <= 1 and "SLURM_NTASKS" not in os.environ):
        yield None, 0, True
        return
    from mpi4py import MPI
    from mpi4py.futures import MPICommExecutor

    comm = MPI.COMM_WORLD
    check_launch(comm.Get_size())
    if comm.Get_size() == 1:
        yield None, 0, True
        return
    if comm.Get_rank() != 0:
        # Launchers forward SIGTERM/SIGINT to every rank; only the coordinator
        # decides to stop. A worker finishes its relaxation and is then released.
        for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
    # Rank 0 goes on (and prints the search's readiness line) only once every
    # worker ignores signals: a SIGTERM forwarded by the launcher then kills no one.
    comm.Barrier()
    with MPICommExecutor(comm, root=0, backoff=POLL_SECONDS) as pool:
        if pool is not None:
            yield pool, comm.Get_size() - 1, True
            return
    yield None, comm.Get_size() - 1, False
