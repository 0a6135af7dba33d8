import itertools
from dataclasses import FrozenInstanceError

import numpy as np
import pytest
from ase import Atoms

from airss_msc.errors import InputError
from airss_msc.generation.substitute import (
    SubstitutedStructures,
    Substitution,
    arrangements,
    atom_permutations,
    parse_substitution,
    substituted_structures,
)


def cube(symbol="Se", a=3.5):
    return Atoms([symbol] * 8, positions=[np.array(p) * a for p in itertools.product((-0.5, 0.5), repeat=3)])


def cd4se4_cube(a=2.9):
    # alternating Cd/Se on a cube: point group Td
    pos = [np.array(p) * a for p in itertools.product((-0.5, 0.5), repeat=3)]
    syms = ["Cd" if (i + j + k) % 2 == 0 else "Se" for i, j, k in itertools.product((0, 1), repeat=3)]
    return Atoms(syms, positions=pos)


def test_parse_substitution():
    s = parse_substitution("Se:Te=2")
    assert (s.old, s.new, s.count) == ("Se", "Te", 2)
    f = parse_substitution("Cd:Zn=0.3")
    assert f.fraction == 0.3 and f.resolve(13) == 4
    for bad in ("Se-Te=2", "Se:Te=", "Se:Qq=1", "Se:Se=1", "Cd:Zn=1.5"):
        with pytest.raises(InputError):
            parse_substitution(bad)


def test_cube_has_48_symmetry_permutations():
    perms = atom_permutations(cube())
    assert len(perms) == 48  # Oh
    assert all(sorted(p) == list(range(8)) for p in perms.tolist())


def test_two_of_eight_cube_vertices_give_edge_face_and_body_diagonals():
    found, mode = arrangements(cube(), parse_substitution("Se:Te=2"))
    assert mode == "enumerated"
    assert len(found) == 3
    assert sorted(a.multiplicity for a in found) == [4, 12, 12]
    assert sum(a.multiplicity for a in found) == 28  # C(8, 2)
    dist = sorted(
        round(float(np.linalg.norm(cube().positions[a.sites[0]] - cube().positions[a.sites[1]])), 3) for a in found
    )
    assert dist == pytest.approx([3.5, 3.5 * 2**0.5, 3.5 * 3**0.5], abs=1e-3)


def test_four_of_eight_cube_vertices_give_six_patterns():
    # 2-colourings of the cube with 4+4 vertices under Oh: 6 classes
    found, _ = arrangements(cube(), parse_substitution("Se:Te=4"))
    assert len(found) == 6 and sum(a.multiplicity for a in found) == 70


def test_substitution_keeps_the_parent_geometry_and_replaces_exactly_n():
    parent = cd4se4_cube()
    found = substituted_structures(parent, [parse_substitution("Se:Te=2")])
    out = found.structures
    assert (
        found.mode == "enumerated" and found.enumerated and len(out) == len(found) == 1
    )  # all Se pairs equivalent in Td
    for atoms in out:
        assert np.array_equal(atoms.positions, parent.positions)
        assert atoms.get_chemical_symbols().count("Te") == 2
        assert atoms.get_chemical_symbols().count("Se") == 2
        assert atoms.info["formula"] == "Cd4Te2Se2"
        changed = [
            i
            for i, (a, b) in enumerate(zip(parent.get_chemical_symbols(), atoms.get_chemical_symbols(), strict=True))
            if a != b
        ]
        assert changed == [int(i) for i in atoms.info["sites"].split()]


def test_sampling_when_arrangements_are_too_many(monkeypatch):
    import airss_msc.generation.substitute as sub

    monkeypatch.setattr(sub, "ENUMERATION_LIMIT", 10)
    a, mode_a = arrangements(cube(), parse_substitution("Se:Te=4"), np.random.default_rng(1), max_count=6)
    b, _ = arrangements(cube(), parse_substitution("Se:Te=4"), np.random.default_rng(1), max_count=6)
    assert mode_a == "sampled"
    assert [x.sites for x in a] == [x.sites for x in b]  # reproducible from the seed
    assert len({x.sites for x in a}) == len(a) <= 6


def test_the_result_is_typed_and_not_a_tuple(monkeypatch):
    import airss_msc.generation.substitute as sub

    found = substituted_structures(cd4se4_cube(), [parse_substitution("Se:Te=2")])
    assert isinstance(found, SubstitutedStructures) and not isinstance(found, tuple)
    assert all(isinstance(a, Atoms) for a in found.structures)
    with pytest.raises(TypeError):  # the old `images, mode = ...` fails loudly
        _images, _mode = found
    with pytest.raises(FrozenInstanceError):
        found.mode = "sampled"
    monkeypatch.setattr(sub, "ENUMERATION_LIMIT", 1)
    sampled = substituted_structures(cube(), [parse_substitution("Se:Te=4")], seed=3, max_count=4)
    assert sampled.mode == "sampled" and not sampled.enumerated
    assert {a.info["mode"] for a in sampled.structures} == {"sampled"} and 0 < len(sampled) <= 4


def test_too_many_replacements_refused():
    with pytest.raises(InputError, match="has 4 Se"):
        substituted_structures(cd4se4_cube(), [parse_substitution("Se:Te=5")])
    with pytest.raises(InputError, match="no Zn"):
        substituted_structures(cd4se4_cube(), [parse_substitution("Zn:Cd=1")])


def test_a_substitution_without_count_or_fraction_is_an_input_error():
    # parse_substitution always gives one; a Substitution built in code may give neither
    with pytest.raises(InputError, match="neither a count nor a fraction"):
        Substitution("Se", "Te").resolve(4)
