"""`relax` over a file stops cleanly and resumes without relaxing or storing anything twice."""

from ase.db import connect
from ase.io import write

from airss_msc.calc.relax import RelaxSettings
from airss_msc.generation.generate import generate_cluster
from airss_msc.search.farm import StopFlag
from airss_msc.search.files import relax_file


def _starts(path, n=5):
    write(path, [generate_cluster("X7", seed) for seed in range(n)], format="extxyz")


def test_an_interrupted_relax_resumes_and_never_duplicates_rows(tmp_path):
    starts, db = tmp_path / "starts.extxyz", tmp_path / "r.db"
    _starts(starts)
    settings = RelaxSettings(method="lj", fmax=0.01, steps=300)
    stop, lines = StopFlag(), []

    def log(line):
        lines.append(line)
        if "-> row 2" in line:
            stop.set("signal")  # what Ctrl-C does

    first = relax_file(starts, db, settings, log=log, stop=stop)
    assert first.interrupted and first.done == 2 and first.remaining == 3
    again = relax_file(starts, db, settings, log=lines.append)
    assert (again.skipped, again.done, again.interrupted) == (2, 3, False)
    rows = list(connect(db).select())
    assert len(rows) == 5 and len({r.input_fingerprint for r in rows}) == 5
    assert relax_file(starts, db, settings, log=lines.append).done == 0
    # the same method with another optimizer: the same inputs, already stored, skipped
    assert (
        relax_file(
            starts, db, RelaxSettings(method="lj", fmax=0.01, steps=300, optimizer="BFGS"), log=lines.append
        ).done
        == 0
    )
    assert len(list(connect(db).select())) == 5


def test_relax_cli_says_what_it_skipped(tmp_path, run_cli):
    starts, db = tmp_path / "starts.extxyz", tmp_path / "r.db"
    _starts(starts, 3)
    code, out, _ = run_cli("relax", starts, "--db", db, "--method", "lj", "--serial")
    assert code == 0 and "relaxed 3 structure(s)" in out
    code, out, _err = run_cli("relax", starts, "--db", db, "--method", "lj", "--serial")
    assert code == 0 and "relaxed 0 structure(s)" in out and "3 already there" in out
