"""rescore, refine, spectrum and cap over stored rows (real engines on Cd2Se2)."""

import csv
import io

import numpy as np
import pytest

from airss_msc.results.store import ResultsDB

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cd2se2_db(tmp_path_factory):
    from airss_msc.cli import main

    tmp = tmp_path_factory.mktemp("rows")
    src, db = tmp / "s.extxyz", tmp / "r.db"
    for args in (
        ["generate", "Cd2Se2", "-n", "2", "-o", src, "--seed", "4"],
        ["relax", src, "--db", db, "--method", "chgnet", "--steps", "300"],
    ):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code
        assert code in (0, None)
    return db


@pytest.mark.timeout(1800)
def test_refine_stores_pbe_single_points_and_rank_uses_them(cd2se2_db, run_cli):
    code, out, err = run_cli("refine", cd2se2_db, "--top", "1", "--method", "pyscf:PBE/def2-SVP")
    assert code == 0, err
    refined = [r for r in ResultsDB(cd2se2_db).records() if "pyscf:PBE/def2-SVP" in r.energies]
    assert len(refined) == 1 and refined[0].gaps["pyscf:PBE/def2-SVP"] > 0.3
    code, out, err = run_cli("rank", cd2se2_db, "--energy", "pyscf:PBE/def2-SVP", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 1 and rows[0]["method"] == "pyscf:PBE/def2-SVP"
    assert float(rows[0]["energy_eV"]) == pytest.approx(refined[0].energies["pyscf:PBE/def2-SVP"])
    # resumable: nothing left to do on a rerun
    code, out, err = run_cli("refine", cd2se2_db, "--top", "1", "--method", "pyscf:PBE/def2-SVP")
    assert code == 0 and out.startswith("0 single point(s)") and "1 already done" in err


@pytest.mark.timeout(1800)
def test_spectrum_stores_excitations_and_the_report_shows_them(cd2se2_db, run_cli, tmp_path):
    code, _out, err = run_cli("spectrum", cd2se2_db, "--top", "1", "--states", "4")
    assert code == 0, err
    (row,) = [r for r in ResultsDB(cd2se2_db).records() if r.excitations]
    exc = row.excitations["pyscf:TDA-PBE0/def2-SVP"]
    assert exc.status == "done" and len(exc.energies_eV) == 4
    # the ground state under the excitations is kept as a PBE0 single point (no second SCF for it)
    assert exc.ground_method == "pyscf:PBE0/def2-SVP" and row.energies[exc.ground_method] == exc.ground_energy_eV
    assert row.gaps[exc.ground_method] > 0.5 and exc.energies_eV[0] > 0.5 * row.gaps[exc.ground_method]
    # the run kept its progress beside the database (a killed one resumes) and removed it when done
    work = cd2se2_db.parent / f"{cd2se2_db.name}.work"
    assert work.is_dir() and not any(work.iterdir())
    code, _out, err = run_cli("report", cd2se2_db, "-o", tmp_path / "rep")
    assert code == 0, err
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Computed absorption" in md and "TDA-PBE0" in md and (tmp_path / "rep" / "absorption.png").exists()


@pytest.mark.timeout(1800)
def test_a_ris_spectrum_is_stored_with_its_pbe_ground_state_and_says_it_is_no_band(cd2se2_db, run_cli):
    ris = "pyscf:TDA-ris-PBE/def2-SVP"
    code, out, err = run_cli("spectrum", cd2se2_db, "--top", "1", "--states", "4", "--method", ris)
    assert code == 0, err
    (row,) = [r for r in ResultsDB(cd2se2_db).records() if ris in r.excitations]
    exc = row.excitations[ris]
    assert exc.status == "done" and len(exc.energies_eV) == 4 and "TDA-ris response" in exc.message
    # the PBE ground state is stored as the PBE single point it is (what refine would compute)
    assert exc.ground_method == "pyscf:PBE/def2-SVP" and row.energies[exc.ground_method] == exc.ground_energy_eV
    assert exc.first_bright() is not None  # the rhombus has a bright state among its lowest four
    assert "not a band" in out + err


def test_cap_adds_ligands_and_links_the_bare_parent(cd2se2_db, run_cli):
    code, _out, err = run_cli("cap", cd2se2_db, "--ligand", "NH3", "--top", "1", "--method", "chgnet")
    assert code == 0, err
    results = ResultsDB(cd2se2_db).records()
    (capped,) = [r for r in results if r.provenance.get("ligand") == "NH3"]
    bare = next(r for r in results if r.id == capped.provenance["bare_parent"])
    assert capped.status == "relaxed" and capped.composition == "Cd2Se2H6N2"  # both Cd were two-coordinated
    symbols = np.array(capped.symbols)
    d = np.linalg.norm(capped.positions[symbols == "Cd"][:, None] - capped.positions[symbols == "N"][None], axis=-1)
    assert np.all((d.min(axis=1) > 2.1) & (d.min(axis=1) < 2.7))  # every Cd holds one amine at a Cd-N bond
    assert bare.provenance.get("ligand") is None
    code, _out, err = run_cli("cap", cd2se2_db, "--ligand", "NH3", "--top", "1", "--method", "chgnet")
    assert code == 0 and "1 already done" in err


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["spectrum", "{db}", "--method", "GFN2-xTB"], "cannot compute excitations"),
        (["cap", "{db}", "--ligand", "PPh3"], "unknown ligand"),
        (["refine", "{db}", "--method", "pyscf:PBE/def2-QZVPPD"], "unknown model"),
        (["refine", "{db}", "--method", "pyscf:TDA-PBE0/def2-SVP", "--relax"], "gives no forces"),
    ],
)
def test_bad_row_workflow_input_is_one_line(cd2se2_db, run_cli, args, match):
    code, _out, err = run_cli(*[a.format(db=cd2se2_db) for a in args])
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1


@pytest.mark.timeout(600)
def test_a_failed_scf_under_a_spectrum_is_the_single_points_failure_too(cd2se2_db, run_cli, tmp_path, monkeypatch):
    """The ris step of a study runs before its refinement so that one SCF serves both; when that SCF
    fails, the refinement must not pay the same ladder again (an hour at 26 atoms): it finds the failure
    stored as the single point's and reports it."""
    import shutil

    from airss_msc.calc.engines import SCFError
    from airss_msc.calc.engines.pyscf import PySCFCluster

    db = tmp_path / "copy.db"
    shutil.copyfile(cd2se2_db, db)
    calls = []

    def fail(self, *args, **kwargs):
        calls.append(self.parameters["xc"])
        raise SCFError("no SCF rung converged (forced)")

    monkeypatch.setattr(PySCFCluster, "calculate", fail)
    ris = "pyscf:TDA-ris-BP86/def2-SVP"  # a functional no other test here has run
    code, out, err = run_cli("spectrum", db, "--top", "1", "--states", "3", "--method", ris)
    # the lowest of each composition (the other tests of this module may have added capped ones)
    rows = [r for r in ResultsDB(db).records() if ris in r.excitations]
    assert rows and calls == ["bp86"] * len(rows)
    assert all(r.excitations[ris].status == "scf_failed" for r in rows)
    assert all(r.excitations[ris].ground_method == "pyscf:BP86/def2-SVP" for r in rows)
    code, out, err = run_cli("refine", db, "--top", "1", "--method", "pyscf:BP86/def2-SVP", "--no-depth")
    assert calls == ["bp86"] * len(rows)  # no second SCF
    # and it says so: the stored failure is the row's, and the command exits non-zero for it
    assert code == 1 and out.startswith("0 single point(s)") and "scf_failed" in out + err
