"""benchmarks/capped_excitations.py: a capped relaxation that loses its ligands is stored as not
run (no traceback, no excitations of another cluster), and the table says so."""

from __future__ import annotations

from types import SimpleNamespace

from ase import Atoms

import benchmarks.capped_excitations as ce


def _bare() -> Atoms:
    return Atoms("Cd2Se2", positions=[[0, 0, 0], [2.7, 0, 0], [1.35, 2.3, 0], [1.35, -2.3, 0]])


def test_a_relaxation_that_ends_fragmented_gives_a_not_run_row(monkeypatch):
    monkeypatch.setattr(ce, "cap", lambda atoms, ligand, sites, seed: atoms + Atoms("N", positions=[[0, 0, 2.3]]))
    monkeypatch.setattr(
        ce, "relax_structure", lambda atoms, settings: SimpleNamespace(status="fragmented", message="NH3 left")
    )
    pair = ce.Pair("Cd2Se2", "NH3", "1", True)
    made = ce.structures(pair, _bare())[pair.names[1]]()
    assert isinstance(made, ce.Failed)
    row = ce.not_run(pair.names[1], made)
    assert (row["status"], row["formula"], row["first_bright_eV"]) == ("not run", "Cd2NSe2", None)
    assert "fragmented" in row["message"]


def test_the_table_shows_a_not_run_capped_twin_without_a_shift(monkeypatch):
    pair = ce.Pair("Cd2Se2", "NH3", "1", True)
    monkeypatch.setattr(ce, "PAIRS", (pair,))
    bare = {"name": pair.names[0], "first_bright_eV": 2.5, "first_bright_f": 0.05, "nstates": 5, "status": "done"}
    bare |= {"cpu_s": 10.0, "commit": "abc"}
    capped = ce.not_run(pair.names[1], ce.Failed(_bare(), "sevennet relaxation ended fragmented: NH3 left"))
    line = next(x for x in ce.report([bare, capped]).splitlines() if x.startswith("| Cd2Se2"))
    assert "not run: sevennet relaxation ended fragmented" in line
    assert "2.500 (0.050), 496 nm" in line
    assert "| - | - |" in line


def test_none_bright_among_the_first_states_reruns_with_more_and_stops_at_a_failure(monkeypatch):
    """STATES[0] singlets, all dark: one rerun with STATES[1], whose bright state is the row's; a failed
    run is not rerun (its status is the row's)."""
    import numpy as np

    from airss_msc.results.record import Excitations

    asked = []

    def fake(atoms, method, nstates):
        asked.append(nstates)
        f = np.full(nstates, 0.001)
        f[-1] = 0.05 if nstates == ce.STATES[1] else 0.001
        return Excitations(method, np.linspace(2.0, 3.0, nstates), f)

    monkeypatch.setattr(ce, "excite", fake)
    row = ce.run_one("x", _bare())
    assert asked == list(ce.STATES) and row["nstates"] == ce.STATES[1]
    assert row["first_bright_eV"] == 3.0 and row["first_bright_f"] == 0.05
    asked.clear()
    monkeypatch.setattr(
        ce,
        "excite",
        lambda atoms, method, nstates: (
            asked.append(nstates) or Excitations(method, np.zeros(0), np.zeros(0), "scf_failed", "no SCF")
        ),
    )
    row = ce.run_one("x", _bare())
    assert asked == [ce.STATES[0]] and row["status"] == "scf_failed" and row["first_bright_eV"] is None


def test_a_rerun_retries_an_error_row_and_the_table_reads_the_newer_row(monkeypatch):
    pair = ce.Pair("Cd2Se2", "NH3", "1", True)
    monkeypatch.setattr(ce, "PAIRS", (pair,))
    old = {"name": pair.names[0], "status": "error", "message": "needs a closed-shell ground state", "commit": "x"}
    new = {"name": pair.names[0], "first_bright_eV": 2.5, "first_bright_f": 0.05, "nstates": 5, "status": "done"}
    capped = ce.not_run(pair.names[1], ce.Failed(_bare(), "sevennet relaxation ended fragmented"))
    assert ce.finished([old, capped]) == {pair.names[1]}  # the error is retried, the fragmented twin is not
    assert ce.finished([old, new, capped]) == set(pair.names)
    line = next(
        x
        for x in ce.report([old, new | {"cpu_s": 1.0, "commit": "abc"}, capped]).splitlines()
        if x.startswith("| Cd2Se2")
    )
    assert "2.500 (0.050)" in line
