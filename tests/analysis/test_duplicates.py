"""Species-aware duplicate detection: copies merge, homotops never do."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase import Atoms
from scipy.spatial.transform import Rotation

from airss_msc.analysis.duplicates import (
    alignment_rmsd,
    descriptor_difference,
    distance_descriptor,
    group_duplicates,
    same_structure,
)
from airss_msc.generation.generate import generate_cluster


def moved_copy(atoms: Atoms, seed: int, noise: float = 0.02, mirror: bool = False) -> Atoms:
    """Rotated, translated, atom-permuted within species, Gaussian-perturbed copy."""
    rng = np.random.default_rng(seed)
    pos = atoms.get_positions()
    if mirror:
        pos = pos * np.array([-1.0, 1.0, 1.0])
    rot = Rotation.random(random_state=seed).as_matrix()
    pos = pos @ rot.T + rng.normal(scale=5.0, size=3) + rng.normal(scale=noise, size=pos.shape)
    symbols = np.array(atoms.get_chemical_symbols())
    perm = np.arange(len(atoms))
    for el in set(symbols):
        idx = np.flatnonzero(symbols == el)
        perm[idx] = rng.permutation(idx)
    out = Atoms(symbols[perm], positions=pos[perm])
    return out


def swapped(atoms: Atoms, el1: str, el2: str) -> Atoms:
    """Homotop: the first el1 and the first el2 exchange places on the same frame."""
    symbols = atoms.get_chemical_symbols()
    i, j = symbols.index(el1), symbols.index(el2)
    symbols[i], symbols[j] = symbols[j], symbols[i]
    out = atoms.copy()
    out.set_chemical_symbols(symbols)
    return out


@pytest.fixture(scope="module")
def zncd():
    return generate_cluster("Zn6Cd7Se13", 11)


def test_identical_copy_merges(zncd):
    assert same_structure(zncd, zncd.copy())
    assert alignment_rmsd(zncd, zncd.copy()) < 1e-8
    assert group_duplicates([zncd, zncd.copy()], [-50.0, -50.0]) == [[0, 1]]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_moved_permuted_perturbed_copy_merges(zncd, seed):
    b = moved_copy(zncd, seed)
    # 0.02 A noise per coordinate -> RMSD about 0.02 * sqrt(3) = 0.035 A.
    assert 0.02 < alignment_rmsd(zncd, b) < 0.06
    assert same_structure(zncd, b)


def test_descriptor_bounded_by_twice_rmsd(zncd):
    # The property that makes descriptor_tol = 2 * rmsd_tol a safe pre-filter.
    for seed in range(4):
        b = moved_copy(zncd, seed, noise=0.08)
        assert descriptor_difference(zncd, b) <= 2 * alignment_rmsd(zncd, b) + 1e-12


def test_zn_cd_homotop_does_not_merge(zncd):
    h = swapped(zncd, "Zn", "Cd")
    # cryan's species-blind sorted distance list cannot tell them apart ...
    blind = lambda at: np.sort(at.get_all_distances()[np.triu_indices(len(at), 1)])
    assert np.allclose(blind(zncd), blind(h))
    # ... the species-resolved one can, and the alignment confirms it.
    assert not np.allclose(distance_descriptor(zncd)[("Cd", "Se")], distance_descriptor(h)[("Cd", "Se")])
    assert alignment_rmsd(zncd, moved_copy(h, 5, noise=0.0)) > 0.5
    assert not same_structure(zncd, moved_copy(h, 5, noise=0.0))
    assert group_duplicates([zncd, h], [-80.0, -80.0]) == [[0], [1]]


def test_te_se_homotop_does_not_merge():
    a = generate_cluster("Cd6Te2Se4", 3)
    h = swapped(a, "Te", "Se")
    assert not same_structure(a, h)
    assert group_duplicates([a, h], [-30.0, -30.0]) == [[0], [1]]


def test_symmetry_equivalent_homotop_merges():
    # Zn4Cd4 on cube corners (tetrahedral sets), Se6 on octahedron: putting Zn on
    # the other tetrahedron is a 90-degree rotation of the same cluster, so it must
    # merge; Zn on one face is a genuinely different homotop.
    cube = np.array(list(itertools.product([-1, 1], repeat=3))) * 1.5
    octa = np.vstack([np.eye(3), -np.eye(3)]) * 2.6
    pos = np.vstack([cube, octa])
    even = np.prod(np.sign(cube), axis=1) > 0
    tet1 = Atoms([("Zn" if e else "Cd") for e in even] + ["Se"] * 6, positions=pos)
    tet2 = Atoms([("Cd" if e else "Zn") for e in even] + ["Se"] * 6, positions=pos)
    face = Atoms([("Zn" if c[0] > 0 else "Cd") for c in cube] + ["Se"] * 6, positions=pos)
    assert same_structure(tet1, moved_copy(tet2, 7, noise=0.01))
    assert not same_structure(tet1, moved_copy(face, 7, noise=0.0))


def test_different_random_clusters_do_not_merge():
    images = [generate_cluster("Zn6Cd7Se13", s) for s in range(6)]
    assert not same_structure(images[0], images[1])
    assert group_duplicates(images, [-80.0] * 6) == [[i] for i in range(6)]


def test_mirror_image_merges_only_when_allowed(zncd):
    m = moved_copy(zncd, 4, noise=0.01, mirror=True)
    assert same_structure(zncd, m)
    # A random cluster is chiral: without reflections its mirror image is different.
    assert not same_structure(zncd, m, allow_mirror=False)


def test_different_compositions_never_merge():
    a = generate_cluster("Zn6Cd7Se13", 2)
    b = a.copy()
    b.set_chemical_symbols(["Cd" if s == "Zn" and i == 0 else s for i, s in enumerate(b.get_chemical_symbols())])
    assert not same_structure(a, b)
    assert group_duplicates([a, b], [-1.0, -1.0]) == [[0], [1]]


def test_energy_window_and_representative(zncd):
    n = len(zncd)
    copies = [moved_copy(zncd, s) for s in range(3)]
    # Energies (eV): copy 2 is lowest -> representative; copy 1 is just inside
    # the 1 meV/atom window of it, the original is outside.
    energies = [-80.0, -80.1 + 0.9e-3 * n, -80.1]
    assert group_duplicates([zncd, copies[0], copies[1]], energies) == [[2, 1], [0]]
    # A wider window merges all three, lowest first.
    assert group_duplicates([zncd, copies[0], copies[1]], energies, energy_tol=0.01) == [[2, 1, 0]]


def test_groups_many_structures_correctly():
    # 30 distinct frames x 8 moved copies (half mirrored), all in one energy
    # window: the worst case for the number of comparisons.
    rng = np.random.default_rng(0)
    base = [generate_cluster("Zn6Cd7Se13", 100 + k) for k in range(30)]
    images, energies, truth = [], [], []
    for k, a in enumerate(base):
        for c in range(8):
            images.append(moved_copy(a, 1000 * k + c, noise=0.01, mirror=bool(c % 2)))
            energies.append(-100.0 + rng.uniform(0.0, 0.01))
            truth.append(k)
    groups = group_duplicates(images, energies)
    assert len(groups) == 30
    assert sorted(i for g in groups for i in g) == list(range(len(images)))
    for g in groups:
        assert len({truth[i] for i in g}) == 1
        assert [energies[i] for i in g] == sorted(energies[i] for i in g)


def test_bad_input():
    with pytest.raises(ValueError, match="1 images but 0 energies"):
        group_duplicates([Atoms("Cd")], [])
    with pytest.raises(ValueError, match="energies must be finite"):
        group_duplicates([Atoms("Cd")], [float("nan")])


def test_isotropic_cluster_without_principal_axes_aligns():
    # Quasi-spherical cages have (nearly) degenerate principal axes, so the axes
    # of a perturbed copy point anywhere; alignment must not depend on them.
    for seed in range(10):
        a = generate_cluster("Zn6Cd7Se13", seed)
        p = a.get_positions() - a.get_positions().mean(axis=0)
        w, v = np.linalg.eigh(p.T @ p)
        a.positions = p @ v @ np.diag(np.sqrt(w.mean() / w)) @ v.T  # gyration tensor ~ identity
        assert same_structure(a, moved_copy(a, seed, noise=0.02))
