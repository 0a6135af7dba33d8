import os
from pathlib import Path

import numpy as np
import pytest
from ase.db import connect

from airss_msc.analysis.rank import load_results, rank_results
from airss_msc.errors import DatabaseBusyError, InputError
from airss_msc.generation.generate import generate_cluster
from airss_msc.results import store
from airss_msc.results.store import ResultsDB
from airss_msc.search.candidates import run_search
from airss_msc.search.config import config_from_dict, load_config


def lj_config(db, candidates=4, **search):
    return config_from_dict(
        {
            "search": {"compositions": ["X7", "X8"], "candidates": candidates, "seed": 3, "db": str(db), **search},
            "relax": {"method": "lj", "fmax": 0.01, "steps": 500},
        }
    )


def test_search_stores_one_row_per_candidate_and_resumes(tmp_path):
    db = tmp_path / "r.db"
    first = run_search(lj_config(db), log=lambda s: None)
    assert (first.done, first.skipped) == (8, 0)
    rows = list(connect(db).select())
    assert len(rows) == 8
    assert {r.composition for r in rows} == {"X7", "X8"}
    again = run_search(lj_config(db), log=lambda s: None)
    assert (again.done, again.skipped) == (0, 8)
    more = run_search(lj_config(db, candidates=6), log=lambda s: None)
    assert (more.done, more.skipped) == (4, 8)
    seeds = [r.seed for r in connect(db).select()]
    assert len(seeds) == len(set(seeds)) == 12


def test_stored_seed_reproduces_the_start(tmp_path):
    db = tmp_path / "r.db"
    run_search(lj_config(db, candidates=2), log=lambda s: None)
    for row in connect(db).select():
        start = generate_cluster(row.composition, row.seed)
        assert np.allclose(row.data["initial_positions"], start.positions)
        for key in ("status", "method", "steps", "force_calls", "wall_s", "engine_version", "airss_msc", "minsep"):
            assert key in row.key_value_pairs


def test_rank_sorts_per_composition_with_relative_energies(tmp_path):
    db = tmp_path / "r.db"
    run_search(lj_config(db, candidates=5), log=lambda s: None)
    rows = rank_results(load_results([str(db)]))
    for formula in ("X7", "X8"):
        mine = [r for r in rows if r.formula == formula]
        energies = [r.energy_eV for r in mine]
        assert energies == sorted(energies)
        assert [r.rank for r in mine] == list(range(1, len(mine) + 1))
        assert mine[0].delta_meV_per_atom == 0.0
        assert all(r.delta_meV_per_atom >= 0 for r in mine)
    # X7 (7 atoms) listed before X8
    assert rows[0].formula == "X7"
    # the LJ7 global minimum (-16.505384) is found among 5 random starts
    assert min(r.energy_eV for r in rows if r.formula == "X7") == pytest.approx(-16.505384, abs=1e-3)


@pytest.mark.slow
def test_real_xtb_search_on_cd2se2(tmp_path):
    db = tmp_path / "cd.db"
    cfg = config_from_dict(
        {
            "search": {"compositions": ["Cd2Se2"], "candidates": 2, "seed": 1, "db": str(db)},
            "relax": {"method": "GFN1-xTB", "fmax": 0.05, "steps": 300},
        }
    )
    out = run_search(cfg, log=lambda s: None)
    assert out.done == 2
    records = ResultsDB(db).records()
    assert all(r.method == "tblite:GFN1-xTB" for r in records)
    relaxed = [r for r in records if r.status == "relaxed"]
    assert relaxed, [r.message for r in records]
    assert all(r.gap is not None and r.gap > 0.3 for r in relaxed)


def test_second_writer_is_refused_while_first_holds_the_database(tmp_path):
    db = tmp_path / "r.db"
    with ResultsDB(db, write=True), pytest.raises(DatabaseBusyError, match="another airss-msc process"):
        ResultsDB(db, write=True)
    # released on close: a new writer gets in
    with ResultsDB(db, write=True):
        pass


class FakeClock:
    """The store's clock: wall time and monotonic time advance only when it sleeps (s)."""

    def __init__(self, now: float = 1.0e9, sleep_allowed: bool = True):
        self.now, self.mono, self.sleeps, self.sleep_allowed = now, 0.0, [], sleep_allowed

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        assert self.sleep_allowed, "waited on a stale ASE lock"
        self.sleeps.append(seconds)
        self.now += seconds
        self.mono += seconds


def test_stale_ase_lock_is_cleared_not_waited_on(tmp_path, monkeypatch):
    db = tmp_path / "r.db"
    run_search(lj_config(db, candidates=1), log=lambda s: None)
    clock = FakeClock(sleep_allowed=False)
    monkeypatch.setattr(store, "time", clock)
    lock = Path(str(db) + ".lock")
    lock.write_text("")
    stale = clock.now - store.STALE_LOCK_SECONDS - 1  # last touched by a writer that died
    os.utime(lock, (stale, stale))
    out = run_search(lj_config(db, candidates=2), log=lambda s: None)
    assert out.done == 2 and not lock.exists()


def test_a_fresh_ase_lock_is_waited_on_then_removed(tmp_path, monkeypatch, capsys):
    db = tmp_path / "r.db"
    clock = FakeClock()
    monkeypatch.setattr(store, "time", clock)
    lock = Path(str(db) + ".lock")
    lock.write_text("")
    os.utime(lock, (clock.now, clock.now))  # another ASE program wrote it just now
    with ResultsDB(db, write=True):
        assert not lock.exists()
    # it waited until the lock was STALE_LOCK_SECONDS old, saying once what it waited for
    assert sum(clock.sleeps) == pytest.approx(store.STALE_LOCK_SECONDS)
    err = capsys.readouterr().err
    assert err.count("waiting for ASE's lock file") == 1 and "removed stale ASE lock file" in err


def test_corrupt_database_is_an_input_error_and_left_untouched(tmp_path):
    db = tmp_path / "bad.db"
    db.write_bytes(b"this is not sqlite" * 10)
    before = db.read_bytes()
    with pytest.raises(InputError, match="not an SQLite"):
        ResultsDB(db)
    with pytest.raises(InputError):
        run_search(lj_config(db), log=lambda s: None)
    assert db.read_bytes() == before


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"search": {"compositions": ["Cd4Se4"], "candidates": -1}}, "negative"),
        ({"search": {"compositions": ["Cd4Zz4"]}}, "unknown element"),
        ({"search": {"compositions": ["Cd4Se4"]}, "relax": {"fmaxx": 0.1}}, "unknown key"),
        ({"search": {"compositions": ["Cd4Se4"]}, "generate": {"minsep": {"Cd-Se": 20.0}}}, "impossible"),
        ({"search": {"compositions": ["Cd4Se4"]}, "relax": {"method": "DFT"}}, "unknown method"),
        ({"search": {"candidates": 2}}, "compositions"),
        ({"search": {"compositions": ["Cd4Se4"], "walltime": "soon"}}, "walltime"),
        (
            {"search": {"compositions": ["Cd4Se4"], "rank_energy": "GFN2-xTB"}, "relax": {"method": "lj"}},
            "not computed by this search",
        ),
    ],
)
def test_config_errors(doc, match):
    with pytest.raises(InputError, match=match):
        config_from_dict(doc)


def test_config_file_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[search\ncompositions = ")
    with pytest.raises(InputError, match="unreadable config"):
        load_config(bad)
