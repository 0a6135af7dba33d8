"""One typed record from relaxation to storage and back; old databases still read."""

import os

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect

from airss_msc.results.record import STATUS_MEANING, STATUSES, Excitations, Result, Status, method_key
from airss_msc.results.store import ResultsDB


def _result(**kw):
    base = {
        "symbols": ("Cd", "Se", "Cd", "Se"),
        "positions": np.arange(12.0).reshape(4, 3),
        "status": "relaxed",
        "method": "chgnet:0.3.0",
        "energy": -10.5,
        "gap": None,
        "energies": {"chgnet:0.3.0": -10.5, "tblite:GFN2-xTB": -600.25},
        "gaps": {"tblite:GFN2-xTB": 1.75},
        "steps": 40,
        "force_calls": 44,
        "wall_seconds": 3.2,
        "optimizer": "PreconLBFGS -> BFGS (line search failed at step 12)",
        "engine_version": "chgnet 0.4.2",
        "anion_bonds": 0,
        "provenance": {
            "formula": "Cd2Se2",
            "seed": 2**61 + 7,
            "minsep": "Cd-Se=2.4",
            "candidate": 3,
            "move": "shake amp=0.6",
            "parent": 5,
        },
        "initial_positions": np.zeros((4, 3)),
        "settings": {"fmax": 0.05},
    }
    base.update(kw)
    return Result(**base)


def test_result_round_trips_through_the_database(tmp_path):
    r = _result()
    r.excitations["pyscf:TDA-PBE0/def2-SVP"] = Excitations(
        "pyscf:TDA-PBE0/def2-SVP", np.array([2.9, 3.1]), np.array([0.0, 0.2])
    )
    with ResultsDB(tmp_path / "r.db", write=True) as db:
        row = db.add(r, extra={"search": "t"})
        db.set_single_point(row, "pyscf:PBE/def2-SVP", -139794.3, 1.01)
    back = ResultsDB(tmp_path / "r.db").get(row)
    assert back.status == "relaxed" and back.method == "chgnet:0.3.0" and back.energy == pytest.approx(-10.5)
    assert back.gap is None  # an ML row has no gap, not a zero one
    assert back.energies == pytest.approx(
        {"chgnet:0.3.0": -10.5, "tblite:GFN2-xTB": -600.25, "pyscf:PBE/def2-SVP": -139794.3}
    )
    assert back.gaps == pytest.approx({"tblite:GFN2-xTB": 1.75, "pyscf:PBE/def2-SVP": 1.01})
    assert back.seed == 2**61 + 7 and back.provenance["move"] == "shake amp=0.6"
    assert back.provenance["parent"] == 5 and back.provenance["search"] == "t"
    assert back.optimizer.endswith("(line search failed at step 12)")
    assert np.allclose(back.positions, r.positions) and back.composition == "Cd2Se2"
    exc = back.excitations["pyscf:TDA-PBE0/def2-SVP"]
    assert exc.first_bright() == pytest.approx((3.1, 0.2))
    # and `ase db` sees the energies side by side as plain columns
    kv = connect(tmp_path / "r.db").get(id=row).key_value_pairs
    assert kv["e_tblite_gfn2_xtb"] == -600.25 and kv["e_pyscf_pbe_def2_svp"] == -139794.3


def test_unknown_status_is_refused_and_statuses_are_one_list():
    assert STATUSES[0] == "relaxed" and "scf_failed" in STATUSES
    with pytest.raises(ValueError, match="unknown status 'relaxd'; statuses are relaxed, max_steps"):
        _result(status="relaxd")  # a typo must not become a row that is silently never ranked
    assert _result(status="max_steps").status is Status.MAX_STEPS  # stored strings become the enum
    assert all(s.meaning and STATUS_MEANING[s.value] == s.meaning for s in Status)


def test_every_status_round_trips_through_the_database(tmp_path):
    with ResultsDB(tmp_path / "s.db", write=True) as db:
        ids = {status: db.add(_result(status=status)) for status in Status}
    db = ResultsDB(tmp_path / "s.db")
    for status, row in ids.items():
        assert db.get(row).status is status
        assert [r.id for r in db.records(status=status)] == [row]
        assert connect(tmp_path / "s.db").get(id=row).status == status.value  # the plain word on disk
    with pytest.raises(ValueError, match="unknown status"):
        db.records(status="relaxd")  # not an empty selection that looks like "nothing relaxed"


def test_database_written_before_the_engine_registry_still_reads(tmp_path):
    """Rows of airss-msc 0.1 (method 'tblite:GFN1-xTB', rescore key 'e_gfn2_xtb', no optimizer)."""
    path = tmp_path / "old.db"
    atoms = Atoms("CdSe", positions=[[0, 0, 0], [2.6, 0, 0]])
    atoms.calc = SinglePointCalculator(atoms, energy=-120.0)
    connect(str(path)).write(
        atoms,
        composition="CdSe",
        status="relaxed",
        method="tblite:GFN1-xTB",
        steps=9,
        force_calls=10,
        wall_s=0.5,
        engine_version="tblite 0.4",
        airss_msc="0.1.0",
        seed=11,
        gap=2.2,
        e_gfn2_xtb=-118.5,
        anion_bonds=0,
    )
    (r,) = ResultsDB(path).records()
    assert r.energy == -120.0 and r.gap == 2.2 and r.seed == 11
    assert r.energies == {"tblite:GFN1-xTB": -120.0, "tblite:GFN2-xTB": -118.5}
    assert method_key("tblite:GFN2-xTB") == "tblite_gfn2_xtb"


def test_the_searchs_ranking_energy_ranks_by_default_and_own_overrides_it(tmp_path):
    from airss_msc.analysis.rank import load_results, rank_results, ranking_energy

    db_path = str(tmp_path / "r.db")
    # two Cd2Se2 minima on which CHGNet and GFN2 disagree about the order
    a = _result(
        positions=np.array([[0, 0, 0], [2.6, 0, 0], [2.6, 2.6, 0], [0, 2.6, 0.0]]),
        energy=-10.5,
        energies={"chgnet:0.3.0": -10.5, "tblite:GFN2-xTB": -600.0},
    )
    b = _result(
        positions=np.array([[0, 0, 0], [2.5, 0, 0], [5.0, 0.3, 0], [7.5, 0, 0.0]]),
        energy=-10.0,
        energies={"chgnet:0.3.0": -10.0, "tblite:GFN2-xTB": -601.0},
    )
    with ResultsDB(db_path, write=True) as db:
        ids = [db.add(a), db.add(b)]
        assert db.rank_energy is None
        db.set_rank_energy("tblite:GFN2-xTB")
    assert ResultsDB(db_path).rank_energy == "tblite:GFN2-xTB"
    assert ranking_energy(None, [db_path]) == "tblite:GFN2-xTB"
    assert ranking_energy("own", [db_path]) is None
    assert ranking_energy("pyscf:PBE/def2-SVP", [db_path]) == "pyscf:PBE/def2-SVP"
    results = load_results([db_path])
    first = [r for r in rank_results(results, energy=ranking_energy(None, [db_path]), symmetry_tol=None) if r.rank == 1]
    own = [r for r in rank_results(results, energy=None, symmetry_tol=None) if r.rank == 1]
    assert first[0].result.id == ids[1] and own[0].result.id == ids[0]


# --------------------------------------------------------------------------- locks
def test_the_writer_file_names_its_holder_and_goes_on_a_clean_close(tmp_path):

    from airss_msc.errors import DatabaseBusyError
    from airss_msc.results.store import writer_path

    path = tmp_path / "r.db"
    with ResultsDB(path, write=True) as db:
        db.add(_result())
        text = writer_path(path).read_text()
        assert text.startswith(f"pid {os.getpid()} on ") and " since " in text
        with pytest.raises(DatabaseBusyError, match=f"another airss-msc process \\(pid {os.getpid()} on .* since "):
            ResultsDB(path, write=True)
    assert not writer_path(path).exists()
    with ResultsDB(path, write=True):  # and the next writer gets it
        assert writer_path(path).exists()
    assert not writer_path(path).exists()


def test_a_writer_that_locked_the_file_a_closing_writer_unlinked_locks_the_new_one(tmp_path, monkeypatch):
    """The race of unlinking a lock file: B opens the old file, A unlinks it and unlocks, B locks it."""
    import airss_msc.results.store as store
    from airss_msc.errors import DatabaseBusyError

    path = tmp_path / "r.db"
    opened = []

    def open_then_unlink(name, mode="r", *a, **k):
        fh = open(name, mode, *a, **k)  # noqa: SIM115 (a stand-in for open(): the caller closes it)
        if not opened:  # the first open: the previous writer closes right after it
            os.unlink(name)
        opened.append(fh)
        return fh

    monkeypatch.setattr(store, "open", open_then_unlink, raising=False)
    b = ResultsDB(path, write=True)
    monkeypatch.undo()
    assert len(opened) == 2  # it noticed its lock was on an unlinked file and locked the new one
    assert os.stat(store.writer_path(path)).st_ino == os.fstat(b._lock_fh.fileno()).st_ino
    with pytest.raises(DatabaseBusyError):  # so it really excludes the next writer
        ResultsDB(path, write=True)
    b.close()


def test_a_wait_on_sqlites_lock_says_at_once_what_it_waits_for(tmp_path, monkeypatch, capsys):
    import sqlite3
    import time

    import airss_msc.results.store as store
    from airss_msc.errors import DatabaseBusyError

    path = tmp_path / "r.db"
    with ResultsDB(path, write=True) as db:
        db.add(_result())
    store.writer_path(path).write_text(f"pid {os.getpid()} on {os.uname().nodename} since 2025-01-01 10:00:00")
    monkeypatch.setattr(store, "BUSY_QUIET_SECONDS", 0.05)
    monkeypatch.setattr(store, "BUSY_TIMEOUT_SECONDS", 0.5)
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    start = time.monotonic()
    try:
        with pytest.raises(DatabaseBusyError, match="locked by another process"):
            ResultsDB(path)
    finally:
        holder.rollback()
        holder.close()
    err = capsys.readouterr().err
    assert f"waiting for SQLite's lock on {path}, held by another process (the writer is pid {os.getpid()}" in err
    assert "giving up after 0 s" in err or "giving up after 1 s" in err
    assert time.monotonic() - start < 5
    assert len(ResultsDB(path)) == 1  # once released, it reads


def test_a_fresh_ase_lock_file_is_announced_then_removed_when_stale(tmp_path, capsys):
    from airss_msc.results.store import _clear_stale_ase_lock

    lock = tmp_path / "r.db.lock"
    lock.touch()
    _clear_stale_ase_lock(tmp_path / "r.db", wait=0.3)
    err = capsys.readouterr().err
    assert err.index("waiting for ASE's lock file") < err.index("removed stale ASE lock file") and not lock.exists()
