"""The search under MPI (2-3 ranks on tiny Lennard-Jones clusters) and its stop/restart paths."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ase.db import connect

from airss_msc.search.config import config_from_dict
from airss_msc.errors import InputError
from airss_msc.search.parallel import check_launch
from airss_msc.search.candidates import plan_tasks, run_search
from airss_msc.search.farm import StopFlag

BIN = Path(sys.executable).parent
MPIEXEC = shutil.which("mpiexec", path=str(BIN)) or shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")


def write_config(path: Path, db: Path, candidates: int, formulas=("X13", "X19"), **search) -> Path:
    extra = "".join(f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v}\n" for k, v in search.items())
    path.write_text(
        "[search]\n"
        f"compositions = {list(formulas)!r}\n".replace("'", '"')
        + f'candidates = {candidates}\nseed = 11\ndb = "{db}"\n{extra}'
        "[relax]\nmethod = \"lj\"\nfmax = 0.001\nsteps = 3000\n"
    )
    return path


def airss(*args, ranks=None, **kw):
    cmd = [str(BIN / "airss-msc"), *map(str, args)]
    if ranks:
        cmd = [MPIEXEC, "-n", str(ranks)] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, **kw)


def stored_keys(db: Path) -> list[tuple[str, int]]:
    return [(r.composition, r.seed) for r in connect(db).select()]


@needs_mpi
def test_mpi_search_stores_every_candidate_once_and_resumes(tmp_path):
    db = tmp_path / "r.db"
    cfg = write_config(tmp_path / "c.toml", db, 8)
    proc = airss("search", cfg, ranks=3)
    assert proc.returncode == 0, proc.stderr
    assert "2 worker(s)" in proc.stderr
    keys = stored_keys(db)
    assert len(keys) == len(set(keys)) == 16
    again = airss("search", cfg, ranks=3)
    assert again.returncode == 0 and "16 already in" in again.stderr
    assert len(stored_keys(db)) == 16


@needs_mpi
def test_kill_9_at_a_random_moment_then_rerun_gives_each_candidate_exactly_once(tmp_path):
    db = tmp_path / "r.db"
    cfg = write_config(tmp_path / "c.toml", db, 30, formulas=("X38",))
    cmd = [MPIEXEC, "-n", "3", str(BIN / "airss-msc"), "search", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    time.sleep(random.uniform(2.0, 4.0))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = stored_keys(db) if db.exists() else []
    assert len(partial) < 30  # killed before the end
    rerun = airss("search", cfg, ranks=3)
    assert rerun.returncode == 0, rerun.stderr
    keys = stored_keys(db)
    planned = {(t.formula, t.seed) for t in plan_tasks(config_from_dict(
        {"search": {"compositions": ["X38"], "candidates": 30, "seed": 11, "db": str(db)},
         "relax": {"method": "lj"}}))}
    assert len(keys) == len(set(keys)) == 30
    assert set(keys) == planned


@needs_mpi
def test_sigterm_stops_handing_out_work_and_exits_cleanly(tmp_path):
    db = tmp_path / "r.db"
    cfg = write_config(tmp_path / "c.toml", db, 60, formulas=("X38",))
    proc = subprocess.Popen([MPIEXEC, "-n", "3", str(BIN / "airss-msc"), "search", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    time.sleep(3.0)
    proc.send_signal(signal.SIGTERM)  # hydra forwards it to the ranks
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "stopped by SIGTERM" in err and "remaining" in err
    n = len(stored_keys(db))
    assert 0 < n < 60
    rerun = airss("search", cfg, ranks=3)
    assert rerun.returncode == 0 and f"{n} already in" in rerun.stderr
    assert len(set(stored_keys(db))) == len(stored_keys(db)) == 60


def test_walltime_in_config_stops_the_search(tmp_path):
    db = tmp_path / "r.db"
    cfg = config_from_dict({"search": {"compositions": ["X38"], "candidates": 400, "seed": 2,
                                       "db": str(db), "walltime": "0:00:02"},
                            "relax": {"method": "lj", "fmax": 0.001, "steps": 3000}})
    lines = []
    out = run_search(cfg, log=lines.append)
    assert out.interrupted and out.reason == "walltime"
    assert 0 < out.done < 400 and out.remaining == 400 - out.done
    assert "stopped by walltime" in lines[-1]


def test_stop_flag_before_start_runs_nothing(tmp_path):
    cfg = config_from_dict({"search": {"compositions": ["X7"], "candidates": 3, "db": str(tmp_path / "r.db")},
                            "relax": {"method": "lj"}})
    flag = StopFlag()
    flag.set("SIGUSR1")
    out = run_search(cfg, stop=flag, log=lambda s: None)
    assert out.done == 0 and out.remaining == 3 and out.interrupted


def test_worker_exception_becomes_an_error_row(tmp_path, monkeypatch):
    import airss_msc.search.candidates as search

    original = search.relax_structure

    def flaky(atoms, settings):
        if atoms.info["candidate"] == 1:
            raise RuntimeError("segfault-like failure in the engine")
        return original(atoms, settings)

    monkeypatch.setattr(search, "relax_structure", flaky)
    cfg = config_from_dict({"search": {"compositions": ["X7"], "candidates": 3, "db": str(tmp_path / "r.db")},
                            "relax": {"method": "lj"}})
    out = run_search(cfg, log=lambda s: None)
    assert out.done == 3
    rows = {r.candidate: r for r in connect(tmp_path / "r.db").select()}
    assert rows[1].status == "error" and "segfault-like" in rows[1].message
    assert rows[0].status == rows[2].status == "relaxed"


def test_srun_without_pmi_is_refused(monkeypatch):
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    with pytest.raises(InputError, match="srun --mpi=pmi2"):
        check_launch(1)
    monkeypatch.delenv("SLURM_NTASKS")
    monkeypatch.setenv("PMI_SIZE", "4")
    with pytest.raises(InputError, match="does not match the launcher"):
        check_launch(1)
    check_launch(4)  # a real 4-rank launch is fine


def test_srun_without_pmi_exits_2_from_the_command(tmp_path):
    cfg = write_config(tmp_path / "c.toml", tmp_path / "r.db", 2)
    env = dict(os.environ, SLURM_NTASKS="2", SLURM_STEP_ID="0", SLURM_PROCID="0")
    proc = subprocess.run([str(BIN / "airss-msc"), "search", str(cfg)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "srun --mpi=pmi2" in proc.stderr
    assert not (tmp_path / "r.db").exists()


@needs_mpi
def test_shake_strategy_under_mpi_records_lineage(tmp_path):
    db = tmp_path / "r.db"
    cfg = write_config(tmp_path / "c.toml", db, 16, formulas=("X13",))
    cfg.write_text(cfg.read_text() + '[strategy]\nname = "shake"\nrandom_starts = 4\namplitude = 0.5\n')
    proc = airss("search", cfg, ranks=3)
    assert proc.returncode == 0, proc.stderr
    assert "strategy shake" in proc.stderr
    rows = list(connect(db).select())
    derived = [r for r in rows if r.get("parent") is not None]
    assert len(rows) == 16 and len(derived) == 12
    ids = {r.id for r in rows}
    assert all(r.parent in ids and r.move.startswith("shake") for r in derived)
