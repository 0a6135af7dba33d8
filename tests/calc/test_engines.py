import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.fd import calculate_numerical_forces

from airss_msc.calc.engines import (
    ENGINES, Method, capabilities, homo_lumo_gap, known_methods, make_calculator, parse_method,
)
from airss_msc.calc.engines.lj import LennardJonesCluster
from airss_msc.calc.engines.tightbinding import TightBindingCalculator
from airss_msc.errors import InputError


def _cd2se2():
    return Atoms("CdSeCdSe", positions=[[1.9, 0, 0], [0, 1.8, 0.1], [-1.9, 0, 0], [0, -1.8, -0.1]])


def test_parse_method_names():
    assert parse_method("GFN1-xTB") == Method("tblite", "GFN1-xTB")
    assert parse_method("gfn2") == Method("tblite", "GFN2-xTB")
    assert parse_method("xtb:GFN-FF") == Method("xtb", "GFN-FF")
    assert parse_method("GFN-FF") == Method("xtb", "GFN-FF")  # only xtb-python has it
    assert str(parse_method("lj")) == "lj"
    assert str(parse_method("chgnet")) == "chgnet:0.3.0"
    assert str(parse_method("chgnet:R2SCAN")) == "chgnet:r2scan"
    assert str(parse_method("sevennet")) == "sevennet:7net-0"
    assert str(parse_method("pyscf")) == "pyscf:PBE/def2-SVP"
    assert str(parse_method("pyscf:pbe0/DEF2-svp")) == "pyscf:PBE0/def2-SVP"
    # canonical names parse to themselves
    assert all(str(parse_method(m)) == m for m in known_methods())


@pytest.mark.parametrize("text,match", [
    ("B3LYP", "unknown method"),
    ("r2scan", "needs its engine"),          # chgnet:r2scan? a bare functional name is ambiguous
    ("chgnet:0.4.0", "unknown model '0.4.0' for engine 'chgnet'"),
    ("gaussian:B3LYP", "unknown engine 'gaussian'"),
    ("tblite:GFN-FF", "unknown model"),
])
def test_unknown_methods_are_refused_with_the_known_names(text, match):
    with pytest.raises(InputError, match=match):
        parse_method(text)


def test_capabilities_come_from_the_registry():
    assert capabilities("GFN2-xTB").gap and capabilities("GFN2-xTB").scf and capabilities("GFN2-xTB").can_collapse
    ml = capabilities("chgnet")
    assert not ml.gap and not ml.scf and ml.periodic_box and ml.gradients
    assert capabilities("sevennet") == ml
    dft = capabilities("pyscf:PBE/def2-SVP")
    assert dft.gap and dft.scf and dft.gradients and dft.excitations
    assert not capabilities("pyscf:TDA-PBE0/def2-SVP").gradients  # an excitation method does not relax
    assert capabilities("lj").energy_unit == "epsilon"
    # every engine declares every field for every model
    for engine in ENGINES.values():
        for model in engine.models:
            assert engine.capabilities(model) is not None and engine.version()


@pytest.mark.slow
def test_tblite_forces_match_finite_differences_and_gap_is_physical():
    atoms = _cd2se2()
    atoms.calc = make_calculator("GFN1-xTB")
    forces = atoms.get_forces()
    numeric = calculate_numerical_forces(atoms, eps=1e-4)
    assert np.abs(forces - numeric).max() < 5e-3  # eV/A
    gap = atoms.calc.results["homo_lumo_gap"]
    assert 0.1 < gap < 5.0  # eV: a closed-shell Cd2Se2 has a real gap
    assert np.isclose(atoms.get_potential_energy(), atoms.calc.results["energy"])


@pytest.mark.slow
def test_calculator_pickles_without_library_handles():
    atoms = _cd2se2()
    calc = make_calculator("GFN1-xTB")
    atoms.calc = calc
    atoms.get_potential_energy()
    clone = pickle.loads(pickle.dumps(calc))
    assert isinstance(clone, TightBindingCalculator) and clone._lib is None


@pytest.mark.slow
def test_xtb_python_engine_agrees_with_tblite():
    pytest.importorskip("xtb.interface")
    a, b = _cd2se2(), _cd2se2()
    a.calc = make_calculator("tblite:GFN1-xTB")
    b.calc = make_calculator("xtb:GFN1-xTB")
    # Same Hamiltonian in two implementations: energies agree to a few meV.
    assert abs(a.get_potential_energy() - b.get_potential_energy()) < 0.01


def test_lennard_jones_dimer_minimum_and_forces():
    r0 = 2 ** (1 / 6)
    dimer = Atoms("X2", positions=[[0, 0, 0], [r0, 0, 0]])
    dimer.calc = LennardJonesCluster()
    assert dimer.get_potential_energy() == pytest.approx(-1.0)
    assert np.abs(dimer.get_forces()).max() < 1e-10
    rng = np.random.default_rng(0)
    blob = Atoms("X6", positions=rng.normal(size=(6, 3)) * 1.2)
    blob.calc = LennardJonesCluster()
    assert np.allclose(blob.get_forces(), calculate_numerical_forces(blob, eps=1e-6), atol=1e-4)


def test_homo_lumo_gap_from_occupations():
    eps = np.array([-3.0, -2.0, -1.0, 0.5, 1.0])
    assert homo_lumo_gap(eps, [2, 2, 2, 0, 0]) == pytest.approx(1.5)
    # Fermi smearing: fractional occupations still count 6 electrons
    assert homo_lumo_gap(eps, [2, 2, 1.9, 0.1, 0]) == pytest.approx(1.5)
    # unsorted input
    assert homo_lumo_gap(eps[::-1], [0, 0, 2, 2, 2]) == pytest.approx(1.5)


@pytest.mark.slow
def test_gfnff_scores_the_current_geometry_and_leaves_no_files(tmp_path, monkeypatch):
    pytest.importorskip("xtb.interface")
    monkeypatch.chdir(tmp_path)
    a = _cd2se2()
    a.calc = make_calculator("xtb:GFN-FF")
    e0 = a.get_potential_energy()
    a.positions[1] += [0.0, 0.6, 0.0]  # stretch a bond: the topology must follow the geometry
    fresh = a.copy()
    fresh.calc = make_calculator("xtb:GFN-FF")
    assert a.get_potential_energy() == pytest.approx(fresh.get_potential_energy(), abs=1e-8)
    assert np.isfinite(e0) and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_gfnff_scratch_directory_is_removed_when_the_process_exits(tmp_path):
    pytest.importorskip("xtb.interface")
    code = ("from ase import Atoms; from airss_msc.calc.engines import make_calculator; "
            "a = Atoms('Cd2Se2', positions=[[0, 0, 0], [2.6, 0, 0], [2.6, 2.6, 0], [0, 2.6, 0]]); "
            "a.calc = make_calculator('xtb:GFN-FF'); e = a.get_potential_energy(); "
            "import os, airss_msc.calc.engines.xtb as x; print(x._SCRATCH, os.path.isdir(x._SCRATCH), e)")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TMPDIR": str(scratch)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    where, existed, energy = proc.stdout.split()[-3:]
    assert np.isfinite(float(energy)) and existed == "True" and Path(where).parent == scratch
    assert list(scratch.iterdir()) == []


def test_install_hints_name_only_extras_that_exist():
    """A hint that sends a user to ``airss-msc[ml]`` when no such extra exists is a dead end."""
    import re

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    extras = set(project["optional-dependencies"])
    for name, engine in ENGINES.items():
        for extra in re.findall(r"(?:airss-msc|\.)\[([\w,-]+)\]", engine.install_hint):
            assert set(extra.split(",")) <= extras, (name, engine.install_hint)


def test_each_role_defaults_to_a_canonical_method_that_can_do_the_job():
    from airss_msc.calc.engines import DEFAULTS, Role, is_reference

    assert set(DEFAULTS) == set(Role)
    for role, method in DEFAULTS.items():
        assert str(parse_method(method)) == method, role  # stored names are canonical
    assert capabilities(DEFAULTS[Role.GEOMETRY]).gradients
    assert capabilities(DEFAULTS[Role.CROSS_CHECK]).gap
    assert is_reference(DEFAULTS[Role.REFINE]) and not is_reference(DEFAULTS[Role.RANKING])
    assert capabilities(DEFAULTS[Role.EXCITATION]).excitations
