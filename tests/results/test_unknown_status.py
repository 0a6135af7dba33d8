"""A status word that is not a :class:`Status` (a typo such as ``relaxd``, or another program's word)
is refused or flagged where records are read, never ranked as if the structure were relaxed."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.db import connect
from ase.io import write

from airss_msc.analysis.rank import load_results, rank_results
from airss_msc.errors import InputError
from airss_msc.results.record import Result, Status
from airss_msc.results.store import ResultsDB

POSITIONS = np.array([[0.0, 0.0, 0.0], [2.6, 0.0, 0.0], [0.0, 2.6, 0.0], [2.6, 2.6, 0.0]])


def _frame(status: str, energy: float) -> Atoms:
    atoms = Atoms("CdCdSeSe", positions=POSITIONS)
    atoms.info.update(status=status, energy=energy, method="lj")
    return atoms


def test_a_result_refuses_an_unknown_status_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown status 'relaxd'; statuses are relaxed, max_steps"):
        Result(symbols=("Cd", "Cd", "Se", "Se"), positions=POSITIONS, status="relaxd")


def test_a_structure_file_with_an_unknown_status_is_an_input_error_naming_the_frame(tmp_path):
    path = tmp_path / "x.extxyz"
    write(path, [_frame("relaxed", -2.0), _frame("relaxd", -1.0)])
    with pytest.raises(InputError, match=r"x\.extxyz frame 2: unknown status 'relaxd'; statuses are relaxed"):
        load_results([str(path)])


def test_rank_says_so_in_one_line_and_exits_2(tmp_path, run_cli):
    path = tmp_path / "x.extxyz"
    write(path, [_frame("relaxd", -1.0)])
    code, out, err = run_cli("rank", path)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "unknown status 'relaxd'" in err


def test_a_database_row_with_an_unknown_status_reads_as_error_saying_so(tmp_path):
    db_path = tmp_path / "r.db"
    with ResultsDB(db_path, write=True) as db:
        for k, energy in enumerate((-2.0, -1.0)):
            db.add(
                Result(
                    symbols=("Cd", "Cd", "Se", "Se"),
                    positions=POSITIONS + 0.1 * k,
                    status=Status.RELAXED,
                    method="lj",
                    energy=energy,
                    provenance={"formula": "Cd2Se2", "seed": k},
                )
            )
    connect(db_path, serial=True).update(1, status="relaxd")  # edited by hand, or another program's word
    first, second = ResultsDB(db_path).records()
    # one bad row leaves the database readable; the row is not ranked and says why
    assert first.status is Status.ERROR and "unknown stored status 'relaxd'" in first.message
    assert second.status is Status.RELAXED and second.message == ""
    assert [r.result.id for r in rank_results([first, second])] == [2]
    with pytest.raises(ValueError, match="unknown status 'relaxd'"):
        ResultsDB(db_path).records(status="relaxd")
