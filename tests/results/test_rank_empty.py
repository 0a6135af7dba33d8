"""`airss-msc rank` of a database with nothing to rank: one clear line and exit 1."""

import json

import numpy as np

from airss_msc.results.record import Result
from airss_msc.results.store import ResultsDB


def _fragmented_db(path):
    with ResultsDB(path, write=True) as db:
        db.add(
            Result(
                symbols=("Cd", "Se"),
                positions=np.array([[0, 0, 0], [2.6, 0, 0.0]]),
                status="fragmented",
                method="chgnet:0.3.0",
                energy=-3.0,
            )
        )
    return path


def test_rank_with_no_relaxed_structure_says_so_and_exits_1(tmp_path, run_cli):
    db = _fragmented_db(tmp_path / "r.db")
    code, out, err = run_cli("rank", db)
    assert code == 1 and out == ""  # no bare header for a person to puzzle over
    assert f"no relaxed structures in {db} (1 stored: 1 fragmented; 'rank --all' lists them)" in err
    code, out, err = run_cli("rank", db, "--format", "json")  # a script still gets a valid empty document
    assert code == 1 and json.loads(out) == [] and "no relaxed structures" in err
    code, out, err = run_cli("rank", db, "--all")  # the fragmented row is listed: something was ranked
    assert code == 0 and "fragmented" in out
