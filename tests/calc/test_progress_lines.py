"""Progress lines from long calculations: a start line with an estimate, SCF cycles, Davidson iterations."""

import numpy as np
import pytest
from ase import Atoms

from airss_msc.calc import progress


def test_iteration_lines_are_rate_limited_but_start_lines_always_come():
    lines, now = [], [0.0]
    reporter = progress.Reporter(lines.append, "  X: ", every=10.0, clock=lambda: now[0])
    reporter.say("start")  # does not delay the first iteration line
    for t in (0.0, 3.0, 9.0, 10.5, 11.0):
        now[0] = t
        reporter.say(f"cycle at {t}", always=False)
    reporter.say("next phase")
    now[0] = 12.0
    reporter.say("its first cycle", always=False)  # not held back by the last phase's rate
    assert lines == ["  X: start", "  X: cycle at 0.0", "  X: cycle at 10.5", "  X: next phase", "  X: its first cycle"]
    progress.report("nobody listens")  # nothing installed: a no-op, not an error
    assert progress.scf_callback(None, "DIIS") is None  # and no wrapper on the SCF
    seen = []
    with progress.reporting(lines.append, every=0.0):
        callback = progress.scf_callback(seen.append, "second-order SCF")
        callback({"imacro": 3, "e_tot": -1.5, "norm_gorb": 0.1})  # what PySCF's Newton solver passes
    assert lines[-1].startswith("SCF (second-order SCF) cycle 3: E=-1.50000000 Ha  |g|=1.0e-01")
    assert len(seen) == 1  # the wrapped callback (the divergence guard) still runs


def test_excitations_of_h2_report_scf_cycles_and_davidson_iterations(monkeypatch):
    pytest.importorskip("pyscf")
    from airss_msc.calc.excite import excite

    monkeypatch.setattr(progress, "DEFAULT_EVERY", 0.0)  # every iteration line, for the test
    lines: list[str] = []
    h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    result = excite(h2, "pyscf:TDA-PBE/def2-SVP", 2, log=lines.append)
    assert result.status == "done" and len(result.energies_eV) == 2
    assert lines[0] == "SCF pbe/def2-svp: 2 atoms, 10 basis functions, 2 electrons"
    cycles = [x for x in lines if x.startswith("SCF (DIIS) cycle ")]
    assert len(cycles) >= 3 and " Ha  |g|=" in cycles[0] and cycles[-1].endswith(" s/cycle")
    energies = [float(x.split("E=")[1].split()[0]) for x in cycles]
    assert energies[-1] == pytest.approx(result.ground_energy_eV / 27.211386, abs=1e-6)  # Hartree, the SCF's
    assert "TDA: 2 singlets on the pbe ground state" in lines
    iterations = [x for x in lines if x.startswith("TDA Davidson iteration ")]
    assert (
        iterations and iterations[0].startswith("TDA Davidson iteration 1: ") and "/2 roots converged" in iterations[0]
    )
    assert lines[-1].startswith("TDA Davidson converged: 2/2 roots after ")
    # at the default rate (one iteration line per 15 s) each phase still shows its first iteration
    monkeypatch.setattr(progress, "DEFAULT_EVERY", 15.0)
    lines.clear()
    excite(h2, "pyscf:TDA-PBE/def2-SVP", 2, log=lines.append)
    assert sum(x.startswith("SCF (DIIS) cycle 0:") for x in lines) == 1
    assert sum(x.startswith("TDA Davidson iteration 1:") for x in lines) == 1
    # nothing leaks into the next run: quiet without a log
    lines.clear()
    excite(h2, "pyscf:TDA-PBE/def2-SVP", 2)
    assert lines == []


def test_a_dft_row_job_says_when_it_starts_with_an_estimate_from_the_previous_one(capsys):
    from airss_msc.search import rows

    task = rows.RowTask(7, "Cd4Se4", ("Cd", "Se") * 4, np.zeros((8, 3)), "pyscf:PBE/def2-SVP")
    rows._LAST_JOB.pop("pyscf:PBE/def2-SVP single point", None)
    assert "no estimate before the first one" in rows.start_line(task, "pyscf:PBE/def2-SVP single point")
    rows._LAST_JOB["pyscf:PBE/def2-SVP single point"] = (4, 20.0)  # 4 atoms took 20 s
    line = rows.start_line(task, "pyscf:PBE/def2-SVP single point")
    assert line == (
        "Cd4Se4 row 7: pyscf:PBE/def2-SVP single point started (8 atoms); expect about 2m40s "
        "(the previous, 4 atoms, took 20s)"
    )  # 20 s x (8/4)^3
    rows._LAST_JOB.clear()


def test_a_dft_single_point_row_prints_its_start_and_scf_lines_and_times_itself(capsys):
    pytest.importorskip("pyscf")
    from airss_msc.search import rows

    rows._LAST_JOB.clear()
    task = rows.RowTask(3, "H2", ("H", "H"), np.array([[0, 0, 0], [0, 0, 0.74]]), "pyscf:PBE/def2-SVP")
    point = rows.run_row(task)
    err = capsys.readouterr().err.splitlines()
    assert point.status == "ok" and err[0].startswith("H2 row 3: pyscf:PBE/def2-SVP single point started (2 atoms)")
    assert err[1] == "  H2 row 3: SCF pbe/def2-svp: 2 atoms, 10 basis functions, 2 electrons"
    assert set(rows._LAST_JOB) == {"pyscf:PBE/def2-SVP single point"}  # the next one's estimate
    rows._LAST_JOB.clear()
