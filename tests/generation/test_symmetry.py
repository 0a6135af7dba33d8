"""Point-group symmetric random clusters: groups, orbits, feasibility, structures."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
from pymatgen.core import Molecule
from pymatgen.symmetry.analyzer import PointGroupAnalyzer

from airss_msc.composition import parse_formula
from airss_msc.errors import InputError
from airss_msc.generation import geometry, symmetry
from airss_msc.generation.confinement import Shell, Sphere
from airss_msc.generation.generate import GeneratorSettings, generate_cluster, prepare
from airss_msc.generation.separations import violations

CDSE13 = {"Cd": 13, "Se": 13}


# ---------------------------------------------------------------------------
# helpers


def drawn_of(atoms) -> dict[tuple[str, str], float]:
    """The separations stored with a structure (``Cd-Se=2.42 ...``)."""
    out = {}
    for item in atoms.info["minsep"].split():
        pair, value = item.split("=")
        a, b = pair.split("-")
        out[(a, b)] = float(value)
    return out


def maps_onto_itself(symbols, positions, ops, tol: float = 0.1) -> bool:
    """Every operation sends every atom within ``tol`` (Angstrom) of an atom of its species."""
    symbols = np.asarray(symbols)
    for op in ops:
        moved = positions @ op.T
        for el in set(symbols.tolist()):
            a, b = moved[symbols == el], positions[symbols == el]
            if np.linalg.norm(a[:, None] - b[None], axis=2).min(axis=1).max() > tol:
                return False
    return True


def detected_order(symbols, positions) -> tuple[str, int]:
    """pymatgen's point group (tolerance 0.1) and its order.

    The Lennard-Jones dummy X becomes Ar scaled to argon's sigma (3.4 Angstrom), so
    0.1 Angstrom is a sensible tolerance. pymatgen lists only half the operations of
    S2n groups, so the order of a group this module knows is taken from its name.
    """
    scale = 3.4 if "X" in symbols else 1.0
    mol = Molecule(["Ar" if s == "X" else s for s in symbols], np.asarray(positions) * scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pg = PointGroupAnalyzer(mol, tolerance=0.1).get_pointgroup()
    order = len(pg)
    if pg.sch_symbol in symmetry.GROUP_NAMES:
        order = max(order, symmetry.group_order(pg.sch_symbol))
    return pg.sch_symbol, order


def assert_valid_symmetric(atoms, group: str, settings: GeneratorSettings, formula: str) -> None:
    symbols = atoms.get_chemical_symbols()
    pos = atoms.positions
    assert Counter(symbols) == Counter(parse_formula(formula))
    assert atoms.info["symmetry"] == group
    # The real check: every operation of the requested group maps the cluster onto itself.
    assert maps_onto_itself(symbols, pos, symmetry.point_group_operations(group))
    name, order = detected_order(symbols, pos)
    assert order >= symmetry.group_order(group), (group, name)
    assert violations(pos, symbols, drawn_of(atoms)) == []
    _, _, confinement = prepare(formula, settings)
    assert confinement.contains(pos).all()


# ---------------------------------------------------------------------------
# groups and site kinds


@pytest.mark.parametrize("name", symmetry.GROUP_NAMES)
def test_operations_form_the_named_group(name):
    ops = symmetry.point_group_operations(name)
    assert len(ops) == symmetry.group_order(name)
    assert np.allclose(np.einsum("nji,njk->nik", ops, ops), np.eye(3), atol=1e-9)
    keys = {tuple(np.round(op, 6).ravel() + 0.0) for op in ops}
    products = np.einsum("aij,bjk->abik", ops, ops).reshape(-1, 3, 3)
    assert {tuple(np.round(p, 6).ravel() + 0.0) for p in products} == keys


def _contains_op(ops, m) -> bool:
    return any(np.allclose(op, m, atol=1e-9) for op in ops)


def test_orientation_conventions():
    c2x = np.diag([1.0, -1.0, -1.0])
    c2z = np.diag([-1.0, -1.0, 1.0])
    c3_111 = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert _contains_op(symmetry.point_group_operations("D3"), c2x)
    assert _contains_op(symmetry.point_group_operations("D5d"), c2x)
    assert _contains_op(symmetry.point_group_operations("C2v"), np.diag([1.0, -1.0, 1.0]))
    assert _contains_op(symmetry.point_group_operations("Cs"), np.diag([1.0, 1.0, -1.0]))
    for name in ("T", "Td", "O", "Oh", "I", "Ih"):
        ops = symmetry.point_group_operations(name)
        assert _contains_op(ops, c2x) and _contains_op(ops, c2z) and _contains_op(ops, c3_111)


@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("Cs", [1, 2]),
        ("Ci", [1, 2]),
        ("C2v", [1, 2, 2, 4]),
        ("D3", [1, 2, 3, 6]),
        ("S4", [1, 2, 4]),
        ("Td", [1, 4, 6, 12, 24]),
        ("Oh", [1, 6, 8, 12, 24, 24, 48]),
        ("Ih", [1, 12, 20, 30, 60, 120]),
        ("I", [1, 12, 20, 30, 60]),
    ],
)
def test_orbit_sizes(name, sizes):
    assert sorted(k.size for k in symmetry.orbit_options(name)) == sizes


def test_only_groups_without_a_fixed_axis_have_a_centre_site():
    assert "origin" not in [k.label for k in symmetry.orbit_options("C3v")]
    assert "origin" not in [k.label for k in symmetry.orbit_options("Cs")]
    assert symmetry.orbit_options("Td")[0].label == "origin"


@pytest.mark.parametrize("name", ["C2v", "D3h", "D4d", "S6", "Td", "Th", "Oh", "Ih"])
def test_drawn_site_points_give_closed_orbits_of_the_right_size(name):
    rng = np.random.default_rng(0)
    conf = Sphere(5.0)
    ops = symmetry.point_group_operations(name)
    for kind in symmetry.orbit_options(name):
        p = kind.draw(rng, conf)
        assert np.allclose(kind.projector @ p, p)  # on its site
        assert conf.contains(p[None]).all()
        orbit = kind.orbit(p)
        assert len(orbit) == kind.size
        d = np.linalg.norm(orbit[:, None] - orbit[None], axis=2)
        assert d[np.triu_indices(len(orbit), 1)].min(initial=np.inf) > 1e-6  # distinct
        for op in ops:  # closed under the group
            moved = orbit @ op.T
            assert np.linalg.norm(moved[:, None] - orbit[None], axis=2).min(axis=1).max() < 1e-9


def test_canonical_names_and_unknown_names():
    assert symmetry.canonical_group("c2v") == "C2v"
    assert symmetry.canonical_group(" TD ") == "Td"
    assert symmetry.canonical_group("S2") == "Ci"
    with pytest.raises(InputError, match="unknown point group"):
        symmetry.canonical_group("C2x")
    with pytest.raises(InputError, match="unknown point group"):
        symmetry.check_request(CDSE13, "Q7")


# ---------------------------------------------------------------------------
# feasibility


def test_td_refused_for_cd13se13_because_of_the_single_centre():
    with pytest.raises(InputError, match="centre") as err:
        symmetry.check_request(CDSE13, "Td")
    assert "\n" not in str(err.value)
    for name in ("Ih", "I", "O", "Oh", "T", "Th", "Ci", "D2h"):
        with pytest.raises(InputError):
            symmetry.check_request(CDSE13, name)


def test_feasible_requests_pass():
    symmetry.check_request({"Cd": 4, "Se": 4}, "Td")
    symmetry.check_request({"Cd": 16, "Se": 16}, "Td")
    for name in ("I", "Ih", "O", "Oh"):
        symmetry.check_request({"X": 13}, name)
    symmetry.check_request(CDSE13, "random")
    symmetry.check_request(CDSE13, "C2v")


def test_crowded_axis_is_refused():
    # C5v puts 13 = 10 + 3 atoms of each species on the axis: 6 cannot fit.
    with pytest.raises(InputError, match="axis"):
        symmetry.check_request(CDSE13, "C5v")


def test_feasible_groups_for_cd13se13():
    groups = symmetry.feasible_groups(CDSE13)
    assert {"Cs", "C2", "C2v", "C3v"} <= set(groups)
    assert not {"C1", "Td", "Ih", "Oh", "Ci", "C2h", "D2h"} & set(groups)
    for name in groups:
        symmetry.check_request(CDSE13, name)


def test_choose_group():
    assert symmetry.choose_group(CDSE13, "c3v", np.random.default_rng(0)) == "C3v"
    picks = [symmetry.choose_group(CDSE13, "random", np.random.default_rng(s)) for s in range(40)]
    again = [symmetry.choose_group(CDSE13, "random", np.random.default_rng(s)) for s in range(40)]
    assert picks == again
    assert set(picks) <= set(symmetry.feasible_groups(CDSE13))
    assert len(set(picks)) >= 4


# ---------------------------------------------------------------------------
# structures


@pytest.mark.parametrize(
    ("formula", "group"),
    [
        ("Cd13Se13", "Cs"),
        ("Cd13Se13", "C2"),
        ("Cd13Se13", "C2v"),
        ("Cd13Se13", "C3v"),
        ("Cd13Se13", "C4v"),
        ("Cd13Se13", "C6v"),
        ("Zn3Cd10Se13", "C3v"),
        ("Cd4Se4", "Td"),
        ("Cd16Se16", "Td"),
        ("Cd16Se16", "T"),
        ("Cd16Se16", "D4d"),
        ("Cd6Se6", "D3d"),
        ("Cd6Se6", "S6"),
        ("Cd6Se6", "C2h"),
        ("Cd6Se6", "D3h"),
        ("X13", "Ih"),
        ("X13", "I"),
        ("X13", "O"),
        ("X13", "Oh"),
        ("X13", "Th"),
        ("X38", "Oh"),
        ("X38", "D6h"),
        ("X38", "S12"),
        ("X26", "S8"),
    ],
)
def test_structures_have_the_requested_symmetry(formula, group):
    settings = GeneratorSettings(symmetry=group)
    for seed in (1, 2):
        atoms = generate_cluster(formula, seed, settings)
        assert_valid_symmetric(atoms, group, settings, formula)


def test_random_symmetry_for_cd13se13_gives_valid_varied_groups():
    settings = GeneratorSettings(symmetry="random")
    groups = set()
    for seed in range(24):
        atoms = generate_cluster("Cd13Se13", seed, settings)
        group = atoms.info["symmetry"]
        groups.add(group)
        symbols, pos = atoms.get_chemical_symbols(), atoms.positions
        assert maps_onto_itself(symbols, pos, symmetry.point_group_operations(group))
        assert violations(pos, symbols, drawn_of(atoms)) == []
    assert len(groups) >= 4


@pytest.mark.parametrize("group", ["random", "C2v", "Td"])
def test_same_seed_same_structure(group):
    formula = "Cd13Se13" if group != "Td" else "Cd16Se16"
    settings = GeneratorSettings(symmetry=group)
    a = generate_cluster(formula, 7, settings)
    b = generate_cluster(formula, 7, settings)
    c = generate_cluster(formula, 8, settings)
    assert a.get_chemical_symbols() == b.get_chemical_symbols()
    assert np.array_equal(a.positions, b.positions)
    assert a.info == b.info
    assert not np.allclose(a.positions, c.positions)


def test_stored_seeds_give_the_symmetric_structures_earlier_versions_gave():
    # As generated before the generator was sped up (commit 1e95f91).
    a = generate_cluster("Cd13Se13", 7, GeneratorSettings(symmetry="random"))
    assert a.info["symmetry"] == "C6v" and a.info["attempts"] == 1
    assert np.allclose(
        a.positions[:3],
        [
            [0.0, 0.0, -3.7229990194514353],
            [-5.642862850881348, -1.5120000081151217, -0.8368844449692353],
            [-1.5120010078907016, -5.642862582992288, -0.8368844449692353],
        ],
        rtol=0,
        atol=1e-9,
    )
    b = generate_cluster("Cd4Se4", 2, GeneratorSettings(symmetry="Td"))
    assert b.info["attempts"] == 2
    assert np.allclose(
        b.positions[:2],
        [
            [1.7340175898416494, 1.7340175898416497, 1.73401758984165],
            [-1.7340175898416494, -1.7340175898416497, 1.73401758984165],
        ],
        rtol=0,
        atol=1e-9,
    )


def test_symmetric_cluster_direct_call_is_deterministic_and_honest():
    counts, rules, conf = prepare("Cd13Se13", GeneratorSettings())
    drawn = rules.draw(np.random.default_rng(0))
    seen_ok = seen_fail = 0
    for seed in range(12):
        for iterations in (0, 300):
            syms, pos, ok = symmetry.symmetric_cluster(
                counts, "C3v", drawn, conf, np.random.default_rng(seed), iterations
            )
            again = symmetry.symmetric_cluster(counts, "C3v", drawn, conf, np.random.default_rng(seed), iterations)
            assert syms == again[0] and np.array_equal(pos, again[1]) and ok == again[2]
            assert Counter(syms) == Counter(counts)
            # Symmetry holds at every stage, converged or not.
            assert maps_onto_itself(syms, pos, symmetry.point_group_operations("C3v"), tol=1e-6)
            valid = violations(pos, syms, drawn) == [] and bool(conf.contains(pos).all())
            assert ok == valid
            seen_ok += ok
            seen_fail += not ok
    assert seen_ok >= 10 and seen_fail >= 1


def test_exact_symmetry_check_accepts_generated_and_rejects_broken_clusters():
    atoms = generate_cluster("Cd13Se13", 3, GeneratorSettings(symmetry="C3v"))
    symbols, pos = atoms.get_chemical_symbols(), atoms.positions
    assert symmetry.is_symmetric(symbols, pos, "C3v")
    assert symmetry.is_symmetric(symbols, pos, "C3")  # a subgroup holds too
    assert not symmetry.is_symmetric(symbols, pos, "C6v")
    moved = pos.copy()
    moved[np.argmax(np.linalg.norm(pos[:, :2], axis=1))] += [0.0, 0.0, 1e-3]
    assert not symmetry.is_symmetric(symbols, moved, "C3v")
    swapped = list(symbols)
    off_axis = [i for i in range(len(pos)) if np.linalg.norm(pos[i, :2]) > 1e-6]
    i = next(i for i in off_axis if swapped[i] == "Cd")
    j = next(j for j in off_axis if swapped[j] == "Se")
    swapped[i], swapped[j] = swapped[j], swapped[i]
    assert not symmetry.is_symmetric(swapped, pos, "C3v")


def test_pymatgen_check_sees_what_stock_pymatgen_sees():
    # The check builds its Molecule from shared per-element species with the mass
    # cached as a float; pymatgen's analysis must come out exactly as on a plain Molecule.
    for formula, group, seeds in [
        ("Cd13Se13", "random", range(10)),
        ("X13", "Ih", range(2)),
        ("Cd6Se6", "D3d", range(2)),
    ]:
        for seed in seeds:
            atoms = generate_cluster(formula, seed, GeneratorSettings(symmetry=group))
            symbols = ["Ar" if s == "X" else s for s in atoms.get_chemical_symbols()]
            stock = PointGroupAnalyzer(Molecule(symbols, atoms.positions), tolerance=0.1)
            shared = PointGroupAnalyzer(
                Molecule([geometry._species(s) for s in symbols], atoms.positions), tolerance=0.1
            )
            assert shared.sch_symbol == stock.sch_symbol
            assert np.array_equal(shared.eigvals, stock.eigvals)
            assert [op.affine_matrix.tolist() for op in shared.symmops] == [
                op.affine_matrix.tolist() for op in stock.symmops
            ]
            assert symmetry.detected_by_pymatgen(atoms.get_chemical_symbols(), atoms.positions, atoms.info["symmetry"])


@pytest.mark.timeout(120)
def test_pymatgen_runaway_counts_as_not_detected_and_the_generator_moves_on():
    # Seed 83 of X38 with a random group first draws an exact S12 cluster on which
    # pymatgen finds D6d with an operation that holds only within its tolerance;
    # closing the operations then never ends (it ran for hours before this check).
    settings = GeneratorSettings(symmetry="random")
    counts, rules, conf = prepare("X38", settings)
    rng = np.random.default_rng(83)
    drawn = rules.draw(rng)
    group = symmetry.choose_group(counts, "random", rng, drawn=drawn, confinement=conf)
    syms, pos, ok = symmetry.symmetric_cluster(counts, group, drawn, conf, rng)
    assert group == "S12" and ok and symmetry.is_symmetric(syms, pos, group)
    assert not symmetry.detected_by_pymatgen(syms, pos, group)
    atoms = generate_cluster("X38", 83, settings)
    assert atoms.info["symmetry"] == "S12" and atoms.info["attempts"] == 2
    assert_valid_symmetric(atoms, "S12", settings, "X38")


def test_special_positions_are_kept():
    # 13 is odd, so C2v needs an atom of each species on the C2 axis; Ih puts one at the centre.
    settings = GeneratorSettings(symmetry="C2v")
    for seed in range(5):
        atoms = generate_cluster("Cd13Se13", seed, settings)
        on_axis = np.linalg.norm(atoms.positions[:, :2], axis=1) < 1e-9
        symbols = np.array(atoms.get_chemical_symbols())
        assert (symbols[on_axis] == "Cd").sum() % 2 == 1
        assert (symbols[on_axis] == "Se").sum() % 2 == 1
    atoms = generate_cluster("X13", 0, GeneratorSettings(symmetry="Ih"))
    assert (np.linalg.norm(atoms.positions, axis=1) < 1e-9).sum() == 1


def test_at_most_one_atom_at_the_centre():
    for formula, group in [("Cd6Se6", "D3d"), ("Cd6Se6", "S6"), ("Cd4Se4", "Td"), ("X38", "Oh")]:
        for seed in range(3):
            atoms = generate_cluster(formula, seed, GeneratorSettings(symmetry=group))
            assert (np.linalg.norm(atoms.positions, axis=1) < 1e-6).sum() <= 1


# ---------------------------------------------------------------------------
# confinement shapes


def test_ellipsoid_keeps_only_compatible_groups():
    settings = GeneratorSettings(shape="ellipsoid", symmetry="C2v")
    counts, _, conf = prepare("Cd13Se13", settings)
    allowed = symmetry.feasible_groups(counts, confinement=conf)
    assert "C2v" in allowed and "C3v" not in allowed
    for seed in range(3):
        assert_valid_symmetric(generate_cluster("Cd13Se13", seed, settings), "C2v", settings, "Cd13Se13")
    with pytest.raises(InputError, match="ellipsoid"):
        generate_cluster("Cd13Se13", 0, GeneratorSettings(shape="ellipsoid", symmetry="C3v"))
    picks = {symmetry.choose_group(counts, "random", np.random.default_rng(s), confinement=conf) for s in range(20)}
    assert picks <= set(allowed)


def test_shell_excludes_the_centre():
    settings = GeneratorSettings(shape="shell", symmetry="C3v")
    for seed in range(3):
        assert_valid_symmetric(generate_cluster("Cd13Se13", seed, settings), "C3v", settings, "Cd13Se13")
    with pytest.raises(InputError, match="centre"):
        generate_cluster("X13", 0, GeneratorSettings(shape="shell", symmetry="Ih"))
    counts, _, conf = prepare("X13", GeneratorSettings(shape="shell"))
    assert isinstance(conf, Shell)
    assert "Ih" not in symmetry.feasible_groups(counts, confinement=conf)
    assert "Ih" in symmetry.feasible_groups({"X": 12}, confinement=conf)


def test_order_weighted_group_draws_favour_high_order_groups():
    groups = symmetry.feasible_groups(CDSE13)
    p = symmetry.group_weights(groups, 1.0)
    orders = np.array([symmetry.group_order(g) for g in groups], dtype=float)
    assert np.allclose(p, orders / orders.sum())
    assert np.allclose(symmetry.group_weights(groups, 0.0), 1.0 / len(groups))
    with pytest.raises(InputError):
        symmetry.group_weights(groups, -1.0)
    draws = [symmetry.choose_group(CDSE13, "random", np.random.default_rng(s), order_power=2.0) for s in range(300)]
    assert draws == [
        symmetry.choose_group(CDSE13, "random", np.random.default_rng(s), order_power=2.0) for s in range(300)
    ]
    assert set(draws) <= set(groups)
    mean_order = np.mean([symmetry.group_order(g) for g in draws])
    assert mean_order > orders.mean() + 2  # weighted draws sit well above the uniform mean order
    # order_power 0 is exactly the old uniform draw
    assert [symmetry.choose_group(CDSE13, "random", np.random.default_rng(s), order_power=0.0) for s in range(20)] == [
        symmetry.choose_group(CDSE13, "random", np.random.default_rng(s)) for s in range(20)
    ]
