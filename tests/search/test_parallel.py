"""The search under MPI (2-3 ranks on tiny Lennard-Jones clusters) and its stop/restart paths."""

import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ase.db import connect

from airss_msc.errors import InputError
from airss_msc.search.candidates import plan_tasks, run_search
from airss_msc.search.config import config_from_dict
from airss_msc.search.farm import StopFlag, stop_on_signals
from airss_msc.search.parallel import check_launch

BIN = Path(sys.executable).parent
MPIEXEC = shutil.which("mpiexec", path=str(BIN)) or shutil.which("mpiexec")

#: Seconds to wait for a line from a child search. Generous: under load (other jobs
#: on the two cores) start-up alone can take tens of seconds; nothing waits this long
#: when things work, because every wait ends at the line it waits for.
LINE_TIMEOUT = 300.0

#: The search's readiness line (the headline): printed once its stop handlers are in
#: place, and under mpiexec only once every worker rank ignores signals.
READY = r"^search \S+: \d+ candidates over"


def needs_mpi(test):
    """Runs mpiexec: skipped without one, and slow (``pytest -m "not slow"`` leaves it out)."""
    return pytest.mark.slow(pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")(test))


class StderrLines:
    """A child's stderr read line by line in a thread, so a test can wait for a given
    line (never for a fixed time) and still collect everything the child writes."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)  # end of file

    def wait_for(self, pattern: str, timeout: float = LINE_TIMEOUT) -> str:
        """The next line matching ``pattern``; fails the test at end of file or after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout:.0f} s; stderr so far:\n{self.text()}"
                ) from None
            if line is None:
                raise AssertionError(f"stderr ended without a line matching {pattern!r}:\n{self.text()}")
            if re.search(pattern, line):
                return line

    def text(self) -> str:
        return "".join(self.lines)

    def close(self, timeout: float = LINE_TIMEOUT) -> str:
        """Everything the child wrote, once its stderr is closed."""
        self._thread.join(timeout)
        return self.text()


def start_search(cfg: Path, ranks: int = 3, **kw) -> tuple[subprocess.Popen, StderrLines]:
    proc = subprocess.Popen(
        [MPIEXEC, "-n", str(ranks), str(BIN / "airss-msc"), "search", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        **kw,
    )
    return proc, StderrLines(proc)


def write_config(path: Path, db: Path, candidates: int, formulas=("X13", "X19"), **search) -> Path:
    extra = "".join(f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v}\n" for k, v in search.items())
    path.write_text(
        f"[search]\ncompositions = {list(formulas)!r}\n".replace("'", '"')
        + f'candidates = {candidates}\nseed = 11\ndb = "{db}"\n{extra}'
        '[relax]\nmethod = "lj"\nfmax = 0.001\nsteps = 3000\n'
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
    proc, err = start_search(cfg, start_new_session=True)
    try:
        # a random moment, counted in stored results (0 to 5), not in seconds
        err.wait_for(READY)
        for k in range(1, random.randint(0, 5) + 1):
            err.wait_for(rf"^\[{k}/30\] ")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        err.close()
    partial = stored_keys(db) if db.exists() else []
    assert len(partial) < 30  # killed before the end
    rerun = airss("search", cfg, ranks=3)
    assert rerun.returncode == 0, rerun.stderr
    keys = stored_keys(db)
    planned = {
        (t.formula, t.seed)
        for t in plan_tasks(
            config_from_dict(
                {
                    "search": {"compositions": ["X38"], "candidates": 30, "seed": 11, "db": str(db)},
                    "relax": {"method": "lj"},
                }
            )
        )
    }
    assert len(keys) == len(set(keys)) == 30
    assert set(keys) == planned


@needs_mpi
def test_sigterm_stops_handing_out_work_and_exits_cleanly(tmp_path):
    db = tmp_path / "r.db"
    cfg = write_config(tmp_path / "c.toml", db, 30, formulas=("X38",))
    proc, lines = start_search(cfg)
    try:
        lines.wait_for(READY)  # stop handlers installed on every rank
        lines.wait_for(r"^\[1/30\] ")  # and one result stored, so the stop has something to keep
        proc.send_signal(signal.SIGTERM)  # hydra forwards it to the ranks
        proc.wait(timeout=LINE_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = lines.close()
    assert proc.returncode == 3, err
    assert "stopped by SIGTERM" in err and "remaining" in err
    n = len(stored_keys(db))
    assert 0 < n < 30
    rerun = airss("search", cfg, ranks=3)
    assert rerun.returncode == 0 and f"{n} already in" in rerun.stderr
    assert len(set(stored_keys(db))) == len(stored_keys(db)) == 30


@needs_mpi
def test_sigterm_right_at_the_readiness_line_stops_cleanly(tmp_path):
    """The readiness line promises handlers on every rank: a signal at once is a clean stop."""
    db = tmp_path / "r.db"
    cfg = write_config(tmp_path / "c.toml", db, 30, formulas=("X38",))
    proc, lines = start_search(cfg)
    try:
        lines.wait_for(READY)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=LINE_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = lines.close()
    assert proc.returncode == 3, err
    assert "stopped by SIGTERM" in err
    assert len(stored_keys(db)) < 30


def test_sigterm_at_the_readiness_line_of_a_serial_search_stops_cleanly(tmp_path):
    db = tmp_path / "r.db"
    cfg = write_config(tmp_path / "c.toml", db, 30, formulas=("X38",))
    proc = subprocess.Popen(
        [str(BIN / "airss-msc"), "search", str(cfg), "--serial"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    lines = StderrLines(proc)
    try:
        lines.wait_for(READY)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=LINE_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = lines.close()
    assert proc.returncode == 3, err
    assert "stopped by SIGTERM" in err
    assert len(stored_keys(db)) < 30


def test_walltime_in_config_stops_the_search(tmp_path):
    db = tmp_path / "r.db"
    cfg = config_from_dict(
        {
            "search": {"compositions": ["X38"], "candidates": 400, "seed": 2, "db": str(db), "walltime": "0:00:02"},
            "relax": {"method": "lj", "fmax": 0.001, "steps": 3000},
        }
    )
    lines = []
    out = run_search(cfg, log=lines.append)
    assert out.interrupted and out.reason == "walltime"
    assert 0 < out.done < 400 and out.remaining == 400 - out.done
    assert "stopped by walltime" in lines[-1]


def test_stop_flag_before_start_runs_nothing(tmp_path):
    cfg = config_from_dict(
        {"search": {"compositions": ["X7"], "candidates": 3, "db": str(tmp_path / "r.db")}, "relax": {"method": "lj"}}
    )
    flag = StopFlag()
    flag.set("SIGUSR1")
    out = run_search(cfg, stop=flag, log=lambda s: None)
    assert out.done == 0 and out.remaining == 3 and out.interrupted


def test_a_stop_caught_before_the_job_installs_its_handlers_carries_over():
    """The command installs handlers first (cli._farmed); the job's own handlers must keep
    a signal that arrived in between, and must not undo a worker's SIG_IGN on exit."""
    before = signal.getsignal(signal.SIGUSR1)
    try:
        outer, inner = StopFlag(), StopFlag()
        with stop_on_signals(outer):
            signal.raise_signal(signal.SIGUSR1)  # handled before raise_signal returns
            assert outer.reason == "SIGUSR1"
            with stop_on_signals(inner):
                assert inner.reason == "SIGUSR1"
        assert signal.getsignal(signal.SIGUSR1) is before
        with stop_on_signals(StopFlag()):
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # what a worker rank does
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR1, before)


def test_worker_exception_becomes_an_error_row(tmp_path, monkeypatch):
    import airss_msc.search.candidates as search

    original = search.relax_structure

    def flaky(atoms, settings):
        if atoms.info["candidate"] == 1:
            raise RuntimeError("segfault-like failure in the engine")
        return original(atoms, settings)

    monkeypatch.setattr(search, "relax_structure", flaky)
    cfg = config_from_dict(
        {"search": {"compositions": ["X7"], "candidates": 3, "db": str(tmp_path / "r.db")}, "relax": {"method": "lj"}}
    )
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
