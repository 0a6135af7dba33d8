import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import all_changes
from ase.calculators.fd import calculate_numerical_forces

from airss_msc.calc.engines import (
    ENGINES,
    Method,
    capabilities,
    homo_lumo_gap,
    known_methods,
    make_calculator,
    parse_method,
    registry,
)
from airss_msc.calc.engines.base import Capabilities, Engine
from airss_msc.calc.engines.lj import LennardJonesCluster
from airss_msc.calc.engines.tightbinding import TightBindingCalculator
from airss_msc.errors import InputError
from airss_msc.results.record import JobStatus, Status


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


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("B3LYP", "unknown method"),
        ("r2scan", "needs its engine"),  # chgnet:r2scan? a bare functional name is ambiguous
        ("chgnet:0.4.0", "unknown model '0.4.0' for engine 'chgnet'"),
        ("gaussian:B3LYP", "unknown engine 'gaussian'"),
        ("tblite:GFN-FF", "unknown model"),
    ],
)
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
    code = (
        "from ase import Atoms; from airss_msc.calc.engines import make_calculator; "
        "a = Atoms('Cd2Se2', positions=[[0, 0, 0], [2.6, 0, 0], [2.6, 2.6, 0], [0, 2.6, 0]]); "
        "a.calc = make_calculator('xtb:GFN-FF'); e = a.get_potential_energy(); "
        "import os, airss_msc.calc.engines.xtb as x; print(x._SCRATCH, os.path.isdir(x._SCRATCH), e)"
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=300,
    )
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
    assert capabilities(DEFAULTS[Role.CAPPING]).gradients


class _SpringsCalculator(LennardJonesCluster):
    """Lennard-Jones scaled by ``depth`` (epsilon), with a constant 2 eV "gap": a toy with orbitals."""

    implemented_properties = ["energy", "free_energy", "forces", "homo_lumo_gap"]  # noqa: RUF012 (ASE types it as a list)

    def __init__(self, depth: float):
        super().__init__()
        self.depth = depth

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        for key in ("energy", "free_energy", "forces"):
            self.results[key] = self.results[key] * self.depth
        self.results["homo_lumo_gap"] = 2.0


class _ToyEngine(Engine):
    """A new engine is this class and one ENGINES entry: nothing else in the package changes."""

    name = "toy"
    distribution = "ase"
    install_hint = "pip install ase"
    models = ("shallow", "deep-springs")
    default_model = "shallow"
    aliases: ClassVar[dict[str, str]] = {"deep": "deep-springs"}
    legacy_keys: ClassVar[dict[str, str]] = {"toy_v0": "deep-springs"}

    def capabilities(self, model: str) -> Capabilities:
        # ranked above every real engine for gaps, so preferred_gap_method must pick it
        return Capabilities(gap=True, energy_unit="epsilon", gap_rank=-1, multithreaded=model == "deep-springs")

    def short_name(self, model: str) -> str:
        return f"toy/{model}"

    def _calculator(self, model: str, **parameters):
        return _SpringsCalculator(2.0 if model == "deep-springs" else 1.0)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(registry.ENGINES, "toy", _ToyEngine())
    registry.parse_method.cache_clear()  # names parsed before the engine existed must not stick
    yield
    registry.parse_method.cache_clear()


def test_a_new_engine_is_one_class_and_one_registry_entry(toy):
    from airss_msc.calc.relax import RelaxSettings, relax_structure
    from airss_msc.calc.single_point import single_point

    assert parse_method("toy") == Method("toy", "shallow")
    assert parse_method("deep") == Method("toy", "deep-springs")  # a bare alias no other engine owns
    assert {"toy:shallow", "toy:deep-springs"} <= set(known_methods())
    assert capabilities("toy:deep").multithreaded and not capabilities("toy").multithreaded
    assert registry.short_name("toy:deep") == "toy/deep-springs"
    assert registry.legacy_method_keys()["toy_v0"] == "toy:deep-springs"
    assert registry.preferred_gap_method(["pyscf:PBE0/def2-SVP", "toy:deep-springs"]) == "toy:deep-springs"
    dimer = Atoms("X2", positions=[[0, 0, 0], [0, 0, 1.3]])
    dimer.calc = make_calculator("toy:deep")
    assert dimer.get_potential_energy() == pytest.approx(2.0 * 4 * (1.3**-12 - 1.3**-6))
    relaxed = relax_structure(dimer, RelaxSettings(method="toy:deep", fmax=1e-4, steps=200))
    assert relaxed.status == Status.RELAXED and relaxed.method == "toy:deep-springs", relaxed.message
    assert relaxed.energy == pytest.approx(-2.0, abs=1e-6) and relaxed.gap == pytest.approx(2.0)
    point = single_point(relaxed.atoms, "toy")
    assert point.status == JobStatus.OK and point.energy == pytest.approx(-1.0, abs=1e-6)


def test_gap_and_excitation_preferences_come_from_the_engines():
    # DFT hybrid, then GGA, then GFN2 before GFN1; tblite before xtb-python; unranked ones by name
    assert registry.preferred_gap_method(["xtb:GFN2-xTB", "tblite:GFN1-xTB", "tblite:GFN2-xTB"]) == "tblite:GFN2-xTB"
    assert registry.preferred_gap_method(["tblite:GFN2-xTB", "pyscf:PBE/def2-SVP"]) == "pyscf:PBE/def2-SVP"
    assert registry.preferred_gap_method(["tblite:IPEA1-xTB", "old-unknown", "xtb:GFN1-xTB"]) == "xtb:GFN1-xTB"
    assert registry.preferred_gap_method(["zz:thing", "tblite:IPEA1-xTB"]) == "tblite:IPEA1-xTB"
    assert registry.preferred_gap_method([]) is None
    assert (
        registry.preferred_excitation_method(["pyscf:TDA-PBE/def2-SVP", "pyscf:TDA-B3LYP/def2-SVP"])
        == "pyscf:TDA-B3LYP/def2-SVP"
    )
    # the default excitation method is the one the engines prefer most
    default = registry.default_method(registry.Role.EXCITATION)
    assert registry.preferred_excitation_method(["pyscf:TDA-B3LYP/def2-SVP", default]) == default
    # TDA-ris energies sit a measured shift below TDA-PBE0: never the band, even when alone
    ris = "pyscf:TDA-ris-PBE0/def2-SVP"
    assert not registry.capabilities(ris).band_ready and registry.capabilities(ris).excitations
    assert registry.preferred_excitation_method([ris, "pyscf:TDA-PBE/def2-SVP"]) == "pyscf:TDA-PBE/def2-SVP"
    assert registry.preferred_excitation_method([ris]) is None


def test_short_names_and_legacy_keys():
    labels = {
        m: registry.short_name(m)
        for m in (
            "tblite:GFN2-xTB",
            "xtb:GFN1-xTB",
            "chgnet:0.3.0",
            "chgnet:r2scan",
            "sevennet:7net-0",
            "pyscf:PBE/def2-SVP",
            "lj",
            "",
            "mystery:x",
        )
    }
    assert labels == {
        "tblite:GFN2-xTB": "GFN2-xTB",
        "xtb:GFN1-xTB": "xtb:GFN1-xTB",
        "chgnet:0.3.0": "chgnet",
        "chgnet:r2scan": "chgnet:r2scan",
        "sevennet:7net-0": "sevennet",
        "pyscf:PBE/def2-SVP": "PBE/def2-SVP",
        "lj": "lj",
        "": "",
        "mystery:x": "mystery:x",
    }
    # a short name never collides with another method's (the report's columns are labelled by them)
    shorts = [registry.short_name(m) for m in known_methods()]
    assert len(shorts) == len(set(shorts))
    legacy = registry.legacy_method_keys()
    assert legacy["gfn2_xtb"] == "tblite:GFN2-xTB" and legacy["gfn_ff"] == "xtb:GFN-FF"
    assert all(str(parse_method(m)) == m for m in legacy.values())


def test_only_the_reference_engine_keeps_every_thread_and_reports_progress():
    for method in known_methods():
        caps = capabilities(method)
        assert caps.multithreaded == caps.slow == (parse_method(method).engine == "pyscf"), method
