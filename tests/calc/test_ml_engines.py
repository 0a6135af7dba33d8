"""CHGNet and SevenNet on tiny clusters: weights from the wheels, the box is the engine's business."""

import subprocess
import sys

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.fd import calculate_numerical_forces

from airss_msc.calc.engines import make_calculator
from airss_msc.calc.relax import RelaxSettings, relax_structure
from airss_msc.generation.generate import generate_cluster

pytestmark = pytest.mark.slow

ML = ["chgnet", "chgnet:r2scan", "sevennet"]


def _cd2se2():
    return Atoms("CdSeCdSe", positions=[[1.9, 0, 0], [0, 1.8, 0.1], [-1.9, 0, 0], [0, -1.8, -0.1]])


@pytest.mark.parametrize("method", ML)
def test_forces_are_the_energy_gradient_and_no_gap_is_invented(method):
    atoms = _cd2se2()
    atoms.calc = make_calculator(method)
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    assert np.isfinite(energy) and forces.shape == (4, 3)
    numeric = calculate_numerical_forces(atoms, eps=1e-3)
    assert np.abs(forces - numeric).max() < 0.02  # eV/A (float32 models)
    assert "homo_lumo_gap" not in atoms.calc.results  # no orbitals: store none, not 0
    assert not atoms.pbc.any() and np.allclose(atoms.cell, 0)  # the user's atoms stay a bare cluster


@pytest.mark.parametrize("method", ML)
def test_energy_does_not_depend_on_where_the_cluster_sits(method):
    a, b = _cd2se2(), _cd2se2()
    b.positions += [37.0, -12.0, 5.0]
    b.rotate(40, "z", center="COM")
    a.calc, b.calc = make_calculator(method), make_calculator(method)
    assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=2e-4)


def test_ml_relaxation_stores_no_gap_but_the_scored_gfn2_gap():
    result = relax_structure(
        generate_cluster("Cd3Se3", 2), RelaxSettings(method="chgnet", steps=300, single_points=("GFN2-xTB",))
    )
    assert result.status == "relaxed" and result.method == "chgnet:0.3.0"
    assert result.gap is None and result.engine_version.startswith("chgnet ")
    assert set(result.energies) == {"chgnet:0.3.0", "tblite:GFN2-xTB"}
    assert result.gaps["tblite:GFN2-xTB"] > 0.3


def test_models_load_from_the_wheels_without_the_network():
    """Any socket connection raises: CHGNet and SevenNet must still load and compute."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network access attempted')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
        "from ase import Atoms\nfrom airss_msc.calc.engines import make_calculator\n"
        "for m in ('chgnet', 'chgnet:r2scan', 'sevennet'):\n"
        "    a = Atoms('CdSe', positions=[[0, 0, 0], [2.5, 0, 0]]); a.calc = make_calculator(m)\n"
        "    print(m, a.get_potential_energy())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("\n") == 3
