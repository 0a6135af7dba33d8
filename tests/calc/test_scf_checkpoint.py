"""A killed DFT single point resumes from the density of its last SCF cycle (SCFCheckpoint), a killed
TDA run from its converged ground state and last saved Davidson vectors (ExcitationCheckpoint)."""

import numpy as np
import pytest
from ase import Atoms

from airss_msc.calc.engines.pyscf import SCFCheckpoint, build_molecule

DIMER = Atoms("CdSe", positions=[[0, 0, 0], [2.45, 0.1, 0.05]])
#: the CHGNet Cd2Se2 ring of the reference set: closed shell, PBE gap 0.74 eV, plain DIIS converges (the
#: dimer's PBE ground state is a UKS one, whose Davidson vectors are not saved)
RING = Atoms("CdSeCdSe", positions=[[1.5533, 0, 0], [0, 2.0396, 0], [-1.5531, 0, 0], [0, -2.0395, 0]])


def _key(positions, xc="pbe"):
    return SCFCheckpoint.key_for(build_molecule(["Cd", "Se"], np.asarray(positions), "def2-svp"), xc, False)


def test_a_checkpoint_round_trips_and_only_matches_its_own_molecule(tmp_path):
    path = tmp_path / "sp.npz"
    dm = np.arange(16.0).reshape(4, 4)
    SCFCheckpoint(path, _key(DIMER.positions)).save("level shift", 7, dm)
    rung, cycles, back = SCFCheckpoint(path, _key(DIMER.positions)).load()
    assert (rung, cycles) == ("level shift", 7) and np.array_equal(back, dm)
    moved = DIMER.positions + [[0, 0, 0], [1e-3, 0, 0]]
    assert SCFCheckpoint(path, _key(moved)).load() is None  # another geometry
    assert SCFCheckpoint(path, _key(DIMER.positions, xc="pbe0")).load() is None  # another functional


def test_a_torn_or_absent_checkpoint_is_a_fresh_start_and_clear_removes_it(tmp_path):
    path = tmp_path / "sp.npz"
    check = SCFCheckpoint(path, _key(DIMER.positions))
    assert check.load() is None
    path.write_bytes(b"PK\x03\x04 cut short by a kill")
    assert check.load() is None
    check.save("DIIS", 1, np.eye(2))
    check.clear()
    assert not path.exists()
    check.clear()  # twice is fine


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_an_interrupted_scf_resumes_from_its_checkpoint_to_the_same_energy(tmp_path, monkeypatch):
    import airss_msc.calc.engines.pyscf as engine
    from airss_msc.calc.engines import make_calculator

    saves: list[tuple[str, int]] = []
    original_save = engine.SCFCheckpoint.save

    def counting(self, rung, cycles, dm):
        saves.append((rung, cycles))
        original_save(self, rung, cycles, dm)

    monkeypatch.setattr(engine.SCFCheckpoint, "save", counting)
    atoms = DIMER.copy()
    atoms.calc = make_calculator("pyscf:PBE/def2-SVP", checkpoint=str(tmp_path / "fresh.npz"))
    fresh = atoms.get_potential_energy()
    fresh_cycles = len(saves)  # the closed-shell SCF's cycles (the open-shell check keeps no checkpoint)
    assert fresh_cycles > 4 and not (tmp_path / "fresh.npz").exists()

    original_guard = engine.divergence_guard

    def interrupted(*args, **kwargs):
        guard, seen = original_guard(*args, **kwargs), [0]

        def callback(envs):
            guard(envs)
            seen[0] += 1
            if seen[0] == 4:  # the guard runs before the saver: cycles 1-3 are on disk
                raise KeyboardInterrupt

        return callback

    path = tmp_path / "CdSe.npz"
    saves.clear()
    monkeypatch.setattr(engine, "divergence_guard", interrupted)
    atoms = DIMER.copy()
    atoms.calc = make_calculator("pyscf:PBE/def2-SVP", checkpoint=str(path))
    with pytest.raises(KeyboardInterrupt):
        atoms.get_potential_energy()
    assert path.exists()  # an interrupted SCF keeps its checkpoint
    rung, cycles = saves[-1]  # on this dimer DIIS runs away at cycle 2: the level-shift rung
    monkeypatch.setattr(engine, "divergence_guard", original_guard)

    saves.clear()
    atoms = DIMER.copy()
    atoms.calc = make_calculator("pyscf:PBE/def2-SVP", checkpoint=str(path))
    resumed = atoms.get_potential_energy()
    assert resumed == pytest.approx(fresh, abs=1e-6)
    assert saves[0] == (rung, cycles + 1)  # it went on from the saved rung and density, counting on
    assert len(saves) < fresh_cycles
    assert not path.exists()  # converged: the checkpoint is gone


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_an_interrupted_tda_run_resumes_from_its_saved_vectors_to_the_same_states(tmp_path, monkeypatch):
    """A checkpointed TDA run killed after its Davidson's first product resumes from the saved ground
    state and Ritz vectors, gives the states of an uninterrupted run, and leaves no files behind."""
    import airss_msc.calc.engines.pyscf as engine
    from airss_msc.calc.excite import excite

    monkeypatch.setattr(engine, "TDA_SAVE_EVERY_S", 0.0)  # save the vectors after every product
    plain = excite(RING, "pyscf:TDA-PBE/def2-SVP", 3)
    assert plain.status == "done"

    saves: list[int] = []
    original_save = engine.ExcitationCheckpoint.save

    def killed_after_first_vectors(self, dm, vectors=None, products=0):
        original_save(self, dm, vectors, products)
        saves.append(int(products))
        if vectors is not None:
            raise KeyboardInterrupt  # as a kill right after the first save of vectors

    stem = tmp_path / "work" / "Cd2Se2-tda"
    monkeypatch.setattr(engine.ExcitationCheckpoint, "save", killed_after_first_vectors)
    with pytest.raises(KeyboardInterrupt):
        engine.PySCFEngine().excitations("TDA-PBE/def2-SVP", RING, 3, checkpoint=stem)
    assert saves == [0, 1]  # the converged ground state, then the Ritz vectors after one product
    assert (tmp_path / "work" / "Cd2Se2-tda.tda.npz").exists()
    monkeypatch.setattr(engine.ExcitationCheckpoint, "save", original_save)

    lines: list[str] = []
    resumed = excite(RING, "pyscf:TDA-PBE/def2-SVP", 3, log=lines.append, checkpoint=stem)
    assert resumed.status == "done"
    assert any("SCF starts from its converged density" in line for line in lines)
    assert any("Davidson resumed" in line and "after 1 products" in line for line in lines)
    assert resumed.ground_energy_eV == pytest.approx(plain.ground_energy_eV, abs=1e-5), (plain.message, resumed.message)
    # to the Davidson's tolerance (0.1 meV apart here: the resumed SCF's orbitals differ within 1e-8 Ha)
    assert np.allclose(resumed.energies_eV, plain.energies_eV, atol=1e-3)  # eV
    assert np.allclose(resumed.oscillator_strengths, plain.oscillator_strengths, atol=1e-3)
    assert not any((tmp_path / "work").iterdir())  # done: both progress files are gone
