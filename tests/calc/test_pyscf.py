"""PySCF PBE/def2-SVP on the smallest systems (the row workflows run it on Cd2Se2: tests/search/test_rows.py)."""

import numpy as np
import pytest
from ase import Atoms

from airss_msc.calc.engines import make_calculator
from airss_msc.calc.engines.pyscf import BASES, build_molecule
from airss_msc.calc.excite import excite
from airss_msc.calc.single_point import single_point

pytestmark = pytest.mark.slow

RHOMBUS = Atoms("CdSeCdSe", positions=[[1.95, 0, 0], [0, 1.75, 0], [-1.95, 0, 0], [0, -1.75, 0]])


def test_def2_ecps_only_where_def2_has_them():
    mol = build_molecule(["Cd", "Se", "Te", "Zn"], np.eye(4, 3) * 3.0, "def2-svp")
    assert sorted(mol._ecp) == ["Cd", "Te"]  # Zn and Se are all-electron in def2


@pytest.mark.parametrize("basis", BASES)
def test_every_offered_basis_is_one_pyscf_has(basis):
    # a model the registry offers must build (def2-SV(P) was offered and is not in PySCF)
    mol = build_molecule(["Cd", "Se", "Zn", "Te", "N", "C", "H"], np.eye(7, 3) * 3.0 + np.arange(7)[:, None], basis)
    assert mol.nao > 0


@pytest.mark.timeout(1800)
def test_pbe_forces_are_the_energy_gradient_and_the_gap_is_physical():
    """On the CdSe dimer (63 basis functions): the analytic gradient against a central difference."""
    dimer = Atoms("CdSe", positions=[[0, 0, 0], [2.45, 0.1, 0.05]])
    atoms = dimer.copy()
    atoms.calc = make_calculator("pyscf:PBE/def2-SVP")
    forces = atoms.get_forces()
    assert atoms.get_potential_energy() < -6.9e4  # eV, with the Cd ECP
    assert np.abs(forces.sum(axis=0)).max() < 5e-3  # no net force (up to the DFT grid's error)
    assert 0.1 < atoms.calc.results["homo_lumo_gap"] < 3.0
    step = 0.005
    plus, minus = dimer.copy(), dimer.copy()
    plus.positions[1, 0] += step
    minus.positions[1, 0] -= step
    e = [single_point(a, "pyscf:PBE/def2-SVP").energy for a in (plus, minus)]
    assert forces[1, 0] == pytest.approx(-(e[0] - e[1]) / (2 * step), abs=0.02)


def test_a_method_without_excitations_is_a_status_not_a_crash():
    exc = excite(RHOMBUS, "GFN2-xTB", nstates=3)
    assert exc.status == "error" and "cannot compute excitations" in exc.message


@pytest.mark.timeout(1800)
def test_the_coarse_response_grid_keeps_the_excitation_energies(monkeypatch):
    """TDA's response kernel runs on a coarse grid (6x faster on Cd3Se3): the excitations must not move."""
    import airss_msc.calc.engines.pyscf as engine

    dimer = Atoms("CdSe", positions=[[0, 0, 0], [2.45, 0.1, 0.05]])
    coarse = excite(dimer, "pyscf:TDA-PBE/def2-SVP", 3)
    monkeypatch.setattr(engine, "RESPONSE_GRID_LEVEL", 3)
    fine = excite(dimer, "pyscf:TDA-PBE/def2-SVP", 3)
    assert coarse.status == fine.status == "done"
    assert np.allclose(coarse.energies_eV, fine.energies_eV, atol=0.005)  # eV
    assert np.allclose(coarse.oscillator_strengths, fine.oscillator_strengths, atol=1e-3)
    assert coarse.ground_energy_eV == pytest.approx(fine.ground_energy_eV, abs=1e-6)  # same ground state


def test_the_divergence_guard_stops_a_runaway_scf_and_lets_a_converging_one_be():
    from airss_msc.calc.engines.pyscf import SCFDiverged, divergence_guard

    converging = divergence_guard(1.0)
    for cycle, e in enumerate([-100.0, -130.5, -130.9, -130.95, -130.949]):  # big first drop, tiny rise: fine
        converging({"e_tot": e, "cycle": cycle})
    runaway = divergence_guard(1.0)
    runaway({"e_tot": -130.0, "cycle": 0})
    with pytest.raises(SCFDiverged, match="rose"):
        runaway({"e_tot": 870.0, "cycle": 1})  # the Cd13Se13 DIIS jump
    with pytest.raises(SCFDiverged, match="not finite"):
        divergence_guard()({"e_tot": float("nan"), "cycle": 0})


def test_the_level_shift_is_dropped_once_the_orbital_gradient_is_small():
    from types import SimpleNamespace

    from airss_msc.calc.engines.pyscf import divergence_guard

    mf = SimpleNamespace(level_shift=0.25)
    watch = divergence_guard(1.0, release_gradient=1e-2)
    watch({"e_tot": -10.0, "cycle": 0, "norm_gorb": 0.3, "mf": mf})
    assert mf.level_shift == 0.25  # early cycles keep it
    watch({"e_tot": -10.5, "cycle": 1, "norm_gorb": 5e-3, "mf": mf})
    assert mf.level_shift == 0.0
    watch({"e_tot": -10.4, "cycle": 2, "norm_gorb": 0.2, "mf": mf})  # unshifted DIIS runs away: back
    assert mf.level_shift == 0.25
    watch({"e_tot": -10.5, "cycle": 3, "norm_gorb": 1e-3, "mf": mf})  # and it stays
    assert mf.level_shift == 0.25
    plain = SimpleNamespace(level_shift=0.25)
    divergence_guard(1.0)({"e_tot": -10.0, "cycle": 0, "norm_gorb": 1e-6, "mf": plain})
    assert plain.level_shift == 0.25  # only the rung that asks for it


@pytest.mark.timeout(1800)
def test_a_diverging_first_rung_hands_over_with_the_density_fitting_tensor_built_once(monkeypatch):
    """A divergence on the DIIS rung (forced here) moves to the level-shift rung from the atomic
    guess, to the same energy; the rungs share one density-fitting object."""
    import airss_msc.calc.engines.pyscf as engine

    dimer = Atoms("CdSe", positions=[[0, 0, 0], [2.45, 0.1, 0.05]])
    plain = single_point(dimer, "pyscf:PBE/def2-SVP")
    guards, dfs = [], []
    original_guard, original_mf = engine.divergence_guard, engine._mean_field

    def first_rung_diverges(threshold=engine.DIVERGENCE_HARTREE, release_gradient=None):
        guards.append(threshold)
        return original_guard(-1e9 if len(guards) == 1 else threshold, release_gradient)  # any rise diverges

    def spy(*args, **kwargs):
        mf = original_mf(*args, **kwargs)
        dfs.append(mf)
        return mf

    monkeypatch.setattr(engine, "divergence_guard", first_rung_diverges)
    monkeypatch.setattr(engine, "_mean_field", spy)
    atoms = dimer.copy()
    atoms.calc = make_calculator("pyscf:PBE/def2-SVP")
    energy = atoms.get_potential_energy()
    assert len(guards) >= 2 and atoms.calc.notes[0] == "SCF converged by level shift"
    assert energy == pytest.approx(plain.energy, abs=1e-5)
    assert dfs[1].with_df is dfs[0].with_df and dfs[1].grids is dfs[0].grids
    assert dfs[1].init_guess == "atom"  # the runaway density is not the next rung's start


@pytest.mark.timeout(1800)
def test_consecutive_single_points_in_a_fresh_process(tmp_path):
    """PySCF imported for the first time inside a scratch directory kept that (deleted) directory
    as its TMPDIR: the second single point of the process failed."""
    import subprocess
    import sys

    code = (
        "from ase import Atoms\n"
        "from airss_msc.calc.single_point import single_point\n"
        "d = Atoms('CdSe', positions=[[0, 0, 0], [2.45, 0.1, 0.05]])\n"
        "for k in range(2):\n"
        "    sp = single_point(d, 'pyscf:PBE/def2-SVP')\n"
        "    print(sp.status, sp.message)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=1500)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["ok", "ok"], run.stdout
