import numpy as np
import pytest

from airss_msc.errors import InputError
from airss_msc.generation.generate import GeneratorSettings, generate_cluster
from airss_msc.generation.geometry import distances
from airss_msc.generation.moves import (
    MOVES,
    CutAndSplice,
    Parent,
    Permute,
    Relocate,
    Shake,
    Swap,
    Twist,
    make_move,
    mixed_sublattice,
    rotation_about,
    shake_positions,
)
from airss_msc.generation.separations import minsep_matrix

SETTINGS = GeneratorSettings()


def _parent(formula, seed, row=1, energy=-10.0):
    atoms = generate_cluster(formula, seed)
    return Parent(row, energy, tuple(atoms.get_chemical_symbols()), atoms.positions)


def _meets_separations(atoms):
    drawn = {tuple(k.split("-")): float(v) for k, v in (p.split("=") for p in atoms.info["minsep"].split())}
    need = minsep_matrix(atoms.get_chemical_symbols(), drawn)
    d = distances(atoms.positions)
    np.fill_diagonal(d, np.inf)
    return bool((d >= need - 1e-6).all())


def test_every_move_is_registered_with_its_parent_count():
    assert {"random", "symmetric", "shake", "swap", "cut_splice"} <= set(MOVES)
    assert MOVES["cut_splice"].parents == 2 and MOVES["shake"].parents == 1 and MOVES["random"].parents == 0


@pytest.mark.parametrize(
    ("move", "parents"),
    [
        (Shake(amplitude=0.6), 1),
        (Swap(swaps=2), 1),
        (CutAndSplice(), 2),
        (Permute(), 1),
        (Twist(), 1),
        (Relocate(count=2), 1),
    ],
)
def test_moves_keep_composition_meet_separations_and_record_lineage(move, parents):
    ps = [_parent("Zn2Cd2Se4", 3, row=4), _parent("Zn2Cd2Se4", 8, row=9)][:parents]
    atoms = move.new_candidate("Zn2Cd2Se4", 123, ps, SETTINGS)
    assert sorted(atoms.get_chemical_symbols()) == sorted(ps[0].symbols)
    assert atoms.info["parent"] == 4 and atoms.info["seed"] == 123
    assert (atoms.info.get("parent2") == 9) == (parents == 2)
    assert _meets_separations(atoms)
    # the stored seed (and parents) reproduce the start exactly
    again = move.new_candidate("Zn2Cd2Se4", 123, ps, SETTINGS)
    assert np.array_equal(again.positions, atoms.positions)
    assert again.get_chemical_symbols() == atoms.get_chemical_symbols()


def test_swap_exchanges_unlike_atoms_on_the_mixed_sublattice_only():
    parent = _parent("Zn2Cd2Se4", 5)
    atoms = Swap(swaps=1, amplitude=0.0).new_candidate("Zn2Cd2Se4", 7, [parent], SETTINGS)
    i, j = map(int, atoms.info["move"].split()[1].split("<->"))
    assert {parent.symbols[i], parent.symbols[j]} == {"Zn", "Cd"}
    new = atoms.get_chemical_symbols()
    assert (new[i], new[j]) == (parent.symbols[j], parent.symbols[i])
    assert [s for k, s in enumerate(new) if k not in (i, j)] == [
        s for k, s in enumerate(parent.symbols) if k not in (i, j)
    ]
    assert mixed_sublattice(["Cd", "Cd", "Te", "Se"]) == ["Se", "Te"]
    assert mixed_sublattice(["Cd", "Se"]) is None


def test_cut_and_splice_takes_a_piece_of_each_parent():
    a, b = _parent("Cd6Se6", 1, row=1), _parent("Cd6Se6", 2, row=2)
    atoms = CutAndSplice(amplitude=0.0).new_candidate("Cd6Se6", 42, [a, b], SETTINGS)
    assert sorted(atoms.get_chemical_symbols()) == sorted(a.symbols)
    # some atoms come from each parent: neither parent alone is reproduced (up to a shift)
    pos = atoms.positions - atoms.positions.mean(axis=0)
    for p in (a, b):
        ref = p.positions - p.positions.mean(axis=0)
        assert not np.allclose(np.sort(distances(pos).ravel()), np.sort(distances(ref).ravel()), atol=1e-3)


def test_shake_amplitude_bounds_the_displacement():
    moved = shake_positions(np.zeros((500, 3)), 0.7, np.random.default_rng(0))
    r = np.linalg.norm(moved, axis=1)
    assert r.max() <= 0.7 + 1e-12 and r.mean() > 0.4  # uniform in the ball: mean 3/4 amplitude


def test_make_move_checks_names_and_settings():
    assert make_move("shake", amplitude=0.3).amplitude == 0.3
    with pytest.raises(InputError, match="unknown move"):
        make_move("teleport")
    with pytest.raises(InputError, match="unknown setting"):
        make_move("swap", amplitude=0.1, hops=3)
    with pytest.raises(InputError, match="amplitude"):
        make_move("shake", amplitude=0.0)


def test_permute_deals_the_mixed_sublattice_afresh_and_keeps_the_other():
    parent = _parent("Zn2Cd2Se4", 5)
    atoms = Permute(amplitude=0.0).new_candidate("Zn2Cd2Se4", 11, [parent], SETTINGS)
    new = atoms.get_chemical_symbols()
    assert [k for k, s in enumerate(new) if s == "Se"] == [k for k, s in enumerate(parent.symbols) if s == "Se"]
    assert sorted(new) == sorted(parent.symbols)
    # over a few seeds the homotops differ (a permute that never permutes is a bug)
    dealt = {
        tuple(Permute(amplitude=0.0).new_candidate("Zn2Cd2Se4", s, [parent], SETTINGS).get_chemical_symbols())
        for s in range(12)
    }
    assert len(dealt) > 1


def test_moves_that_need_a_mixed_sublattice_say_where_they_apply():
    assert not Swap().applies(["Cd", "Cd", "Se", "Se"]) and not Permute().applies(["Cd", "Se"])
    assert Swap().applies(["Zn", "Cd", "Se", "Se"]) and Permute().applies(["Cd", "Cd", "Te", "Se"])
    assert Twist().applies(["Cd", "Se"]) and Relocate().applies(["Cd", "Se"])


def test_twist_turns_one_half_rigidly_about_the_plane_normal():
    r = rotation_about(np.array([0.0, 0.0, 1.0]), np.pi / 2)
    assert np.allclose(r @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    assert np.allclose(r @ r.T, np.eye(3))
    parent = _parent("Cd6Se6", 2)
    atoms = Twist(amplitude=0.0).new_candidate("Cd6Se6", 4, [parent], SETTINGS)
    # every interatomic distance within each half survives; only distances across the cut change
    before = distances(parent.positions - parent.positions.mean(axis=0))
    after = distances(atoms.positions)
    same = np.isclose(before, after, atol=1e-6)
    assert same.sum() > len(parent.symbols)  # more than the diagonal: rigid halves
    assert not same.all()  # something turned


def test_relocate_moves_only_the_requested_number_of_atoms_to_the_surface():
    parent = _parent("Cd6Se6", 2)
    atoms = Relocate(count=1).new_candidate("Cd6Se6", 9, [parent], SETTINGS)
    moved = [int(k) for k in atoms.info["move"].split()[1].split(",")]
    assert len(moved) == 1
    assert atoms.get_chemical_symbols() == list(parent.symbols)


def test_frame_start_deals_the_formula_over_the_parent_sublattices(tmp_path):
    from pathlib import Path

    from airss_msc.composition import ANIONS, CATIONS
    from airss_msc.errors import InputError
    from airss_msc.generation.geometry import distances
    from airss_msc.generation.moves import make_move

    root = Path(__file__).resolve().parents[2] / "structures"
    parents = (str(root / "Cd13Se13.xyz"), str(root / "Zn13Se13.xyz"))
    move = make_move("frame", templates=list(parents), amplitude=0.0)
    assert isinstance(move.templates, tuple)
    assert move.applies(["Zn"] * 4 + ["Cd"] * 9 + ["Se"] * 13) and not move.applies(["Cd"] * 7 + ["Se"] * 4)
    from ase.io import read

    frames = {str(p): read(p) for p in parents}
    seen = set()
    for seed in range(6):
        a = move.new_candidate("Zn4Cd9Se13", seed, [], GeneratorSettings())
        assert sorted(a.get_chemical_symbols()) == sorted(["Zn"] * 4 + ["Cd"] * 9 + ["Se"] * 13)
        frame = frames[next(p for p in parents if Path(p).name == a.info["template"])]
        # each site keeps its sublattice: cations where the parent had cations
        for s, t in zip(a.get_chemical_symbols(), frame.get_chemical_symbols(), strict=True):
            assert (s in CATIONS) == (t in CATIONS) and (s in ANIONS) == (t in ANIONS)
        d = distances(a.positions)
        assert d[np.triu_indices(len(a), 1)].min() > 2.0  # no overlaps handed to the relaxation
        again = move.new_candidate("Zn4Cd9Se13", seed, [], GeneratorSettings())
        assert list(again.symbols) == list(a.symbols) and np.allclose(again.positions, a.positions)
        seen.add(tuple(a.get_chemical_symbols()))
    assert len(seen) > 1  # different seeds deal differently
    with pytest.raises(InputError, match="not found"):
        make_move("frame", templates=[str(tmp_path / "missing.xyz")])
    with pytest.raises(InputError, match="templates"):
        make_move("frame")


def test_order_weighted_symmetric_start_is_reproducible_symmetric_and_favours_high_order():
    from airss_msc.generation import symmetry
    from airss_msc.generation.moves import SymmetricStart

    move = make_move("symmetric", order_power=1.0)
    starts = [move.new_candidate("X13", s, [], SETTINGS) for s in range(12)]
    for s, atoms in zip(range(12), starts, strict=True):
        group = atoms.info["symmetry"]
        assert atoms.get_chemical_symbols() == ["X"] * 13
        assert atoms.info["move"] == f"symmetric {group}"
        assert symmetry.is_symmetric(atoms.get_chemical_symbols(), atoms.positions, group)
        assert _meets_separations(atoms)
        if s < 3:  # the stored seed reproduces the start
            again = move.new_candidate("X13", s, [], SETTINGS)
            assert again.info["symmetry"] == group and np.array_equal(again.positions, atoms.positions)
    uniform = [SymmetricStart().new_candidate("X13", s, [], SETTINGS).info["symmetry"] for s in range(12)]
    weighted_mean = np.mean([symmetry.group_order(a.info["symmetry"]) for a in starts])
    assert weighted_mean > np.mean([symmetry.group_order(g) for g in uniform])


def test_symmetric_start_settings_are_checked():
    with pytest.raises(InputError):
        make_move("symmetric", order_power=-1.0)
    with pytest.raises(InputError):
        make_move("symmetric", group="Td", order_power=1.0)  # a fixed group has nothing to weight
    with pytest.raises(InputError):
        make_move("symmetric", group="Q7")
    assert make_move("symmetric", group="td").new_candidate("Cd4Se4", 5, [], SETTINGS).info["symmetry"] == "Td"
