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
