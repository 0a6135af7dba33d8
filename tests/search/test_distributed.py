"""The task farm on a local Dask cluster of 2 worker processes (airss_msc.search.distributed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from ase.db import connect

pytest.importorskip("distributed")
import cloudpickle

import tests.search.test_distributed as this_module
from airss_msc.errors import InputError
from airss_msc.search.candidates import run_search
from airss_msc.search.config import config_from_dict
from airss_msc.search.distributed import check_executor, dask_executor
from airss_msc.search.farm import Farm, run_farm

# Dask workers are fresh processes: ship this module's task functions by value.
cloudpickle.register_pickle_by_value(this_module)

pytestmark = pytest.mark.slow  # starts worker processes (like the mpiexec tests)


def threads_seen(task: int) -> str:
    return os.environ.get("OMP_NUM_THREADS", "")


def die_once(task: tuple[int, str]) -> tuple[int, int]:
    """Kill this worker process the first time task 2 runs; every attempt leaves a file."""
    number, folder = task
    attempts = Path(folder) / f"task{number}"
    attempts.mkdir(exist_ok=True)
    n = len(list(attempts.iterdir()))
    (attempts / f"{n}-{os.getpid()}").touch()
    if number == 2 and n == 0:
        os._exit(1)  # the worker dies mid-task, as on a lost node
    return number, os.getpid()


def test_a_worker_killed_mid_task_has_its_task_redone_once_and_stored_once(tmp_path):
    stored: list[int] = []

    def store(task, result):
        stored.append(result[0])
        return f"task {result[0]}", True

    farm = Farm(work=die_once, store=store, on_error=lambda task, msg: (task[0], -1))
    with dask_executor("dask", threads=1) as (executor, workers):
        assert workers == 2
        outcome = run_farm(
            farm,
            [(k, str(tmp_path)) for k in range(5)],
            planned=5,
            executor=executor,
            workers=workers,
            say=lambda line: None,
        )
    assert sorted(stored) == [0, 1, 2, 3, 4]  # each stored once, the killed one too
    assert outcome.done == 5 and outcome.failed == 0
    assert len(list((tmp_path / "task2").iterdir())) == 2  # redone once, on a worker that lived
    # a task that had finished on the dead worker, its result not yet handed over, is rerun too
    # (Dask keeps results on the worker until fetched); it is still stored once
    assert all(len(list((tmp_path / f"task{k}").iterdir())) <= 2 for k in (0, 1, 3, 4))


def test_each_task_runs_with_the_threads_asked_for_not_the_launching_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # worker processes inherit this environment
    with dask_executor("dask", threads=1) as (executor, _workers):
        seen = {executor.submit(threads_seen, k).result() for k in range(4)}
    assert seen == {"1"}


def test_a_search_on_dask_stores_what_a_serial_search_stores_and_resumes(tmp_path):
    def config(db, candidates=3):
        return config_from_dict(
            {
                "search": {"compositions": ["X7"], "candidates": candidates, "seed": 3, "db": str(db)},
                "relax": {"method": "lj", "fmax": 0.01, "steps": 500},
            }
        )

    serial_db, dask_db = tmp_path / "serial.db", tmp_path / "dask.db"
    run_search(config(serial_db), log=lambda s: None)
    with dask_executor("dask", threads=1) as (executor, workers):
        first = run_search(config(dask_db), executor=executor, workers=workers, log=lambda s: None)
        again = run_search(config(dask_db, candidates=4), executor=executor, workers=workers, log=lambda s: None)
    assert (first.done, again.done, again.skipped) == (3, 1, 3)
    serial = {r.seed: r.energy for r in connect(serial_db).select()}
    dask = {r.seed: r.energy for r in connect(dask_db).select()}
    assert len(dask) == 4 and len(list(connect(dask_db).select())) == 4  # no duplicates
    for seed, energy in serial.items():  # random starts: the same minimum from the same seed
        assert dask[seed] == pytest.approx(energy, abs=1e-6)
    assert np.isfinite(list(dask.values())).all()


def test_an_unreachable_scheduler_is_one_line(run_cli, tmp_path, monkeypatch):
    import airss_msc.search.distributed as distributed

    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT", 1.0)
    with (
        pytest.raises(InputError, match=r"cannot reach the Dask scheduler at dask://127\.0\.0\.1:9"),
        dask_executor("dask://127.0.0.1:9"),
    ):
        pass
    config = tmp_path / "s.toml"
    config.write_text(
        '[search]\ncompositions = ["X7"]\ncandidates = 1\nexecutor = "dask://127.0.0.1:9"\n[relax]\nmethod = "lj"\n'
    )
    code, _out, err = run_cli("search", config, "--db", tmp_path / "r.db")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("value", ["dask:", "dask://", "ray", "dask:/x"])
def test_unknown_executors_are_refused(value):
    with pytest.raises(InputError, match="executor"):
        check_executor(value)
