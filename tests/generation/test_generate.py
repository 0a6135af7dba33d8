import numpy as np
import pytest

from airss_msc.errors import InputError
from airss_msc.generation.confinement import Ellipsoid, Shell, Sphere
from airss_msc.generation.generate import GeneratorSettings, derive_seed, generate_cluster, generate_many, prepare
from airss_msc.generation.separations import SeparationRules, parse_minsep_spec, violations


def _drawn(info_minsep: str) -> dict:
    out = {}
    for item in info_minsep.split():
        pair, value = item.split("=")
        a, b = pair.split("-")
        out[(a, b)] = float(value)
    return out


@pytest.mark.parametrize("formula", ["Cd2Se2", "Cd4Se4", "Cd6Te2Se4", "Zn3Cd10Se13", "X19"])
def test_every_structure_meets_its_separations_and_radius(formula):
    settings = GeneratorSettings(minsep=("Cd-Se=2.4-2.7",))
    for atoms in generate_many(formula, 25, base_seed=5, settings=settings):
        drawn = _drawn(atoms.info["minsep"])
        assert violations(atoms.positions, atoms.get_chemical_symbols(), drawn) == []
        radius = float(atoms.info["shape"].split("=")[1])
        assert np.linalg.norm(atoms.positions, axis=1).max() <= radius + 1e-6
        if "Cd" in formula and "Se" in formula:
            assert 2.4 <= drawn[("Cd", "Se")] <= 2.7


def test_user_separations_override_defaults_and_bind():
    settings = GeneratorSettings(minsep={"Se-Se": 4.0, "Cd-Cd": 3.5})
    atoms = generate_cluster("Cd4Se4", 3, settings)
    drawn = _drawn(atoms.info["minsep"])
    assert drawn[("Se", "Se")] == 4.0 and drawn[("Cd", "Cd")] == 3.5
    d = atoms.get_all_distances()
    se = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Se"]
    assert min(d[i, j] for i in se for j in se if i < j) >= 4.0 - 1e-9


def test_same_seed_same_structure_different_seed_different():
    a = generate_cluster("Cd6Te2Se4", 1234)
    b = generate_cluster("Cd6Te2Se4", 1234)
    c = generate_cluster("Cd6Te2Se4", 1235)
    assert np.array_equal(a.positions, b.positions)
    assert a.get_chemical_symbols() == b.get_chemical_symbols()
    assert not np.allclose(a.positions, c.positions)


def test_stored_seed_regenerates_the_structure():
    images = generate_many("Cd4Se4", 4, base_seed=9)
    for k, atoms in enumerate(images):
        assert atoms.info["seed"] == derive_seed(9, "Cd4Se4", k)
        again = generate_cluster("Cd4Se4", atoms.info["seed"])
        assert np.array_equal(again.positions, atoms.positions)
    assert len({a.info["seed"] for a in images}) == 4


def test_derived_seeds_are_machine_independent():
    # SeedSequence + CRC32 of the formula: fixed numbers, the same everywhere.
    assert derive_seed(1, "Cd4Se4", 0) == derive_seed(1, "Cd4Se4", 0)
    assert derive_seed(1, "Cd4Se4", 0) != derive_seed(1, "Cd4Se4", 1)
    assert derive_seed(1, "Cd4Se4", 0) != derive_seed(1, "Cd4Te4", 0)
    assert derive_seed(399, "Cd6Se6", 0) == 1931907298392576751


@pytest.mark.parametrize(
    ("settings", "cls"),
    [
        (GeneratorSettings(shape="ellipsoid", axes=(6.0, 4.5, 3.5)), Ellipsoid),
        (GeneratorSettings(shape="shell", inner=2.0), Shell),
        (GeneratorSettings(shape="sphere", radius=6.5), Sphere),
    ],
)
def test_confinement_shapes_hold(settings, cls):
    from airss_msc.generation.generate import prepare

    _, _, conf = prepare("Cd8Se8", settings)
    assert isinstance(conf, cls)
    for atoms in generate_many("Cd8Se8", 10, 2, settings):
        assert conf.contains(atoms.positions).all()
        drawn = _drawn(atoms.info["minsep"])
        assert violations(atoms.positions, atoms.get_chemical_symbols(), drawn) == []
    if cls is Shell:
        assert np.linalg.norm(atoms.positions, axis=1).min() >= 2.0 - 1e-6


@pytest.mark.parametrize(
    "settings",
    [
        GeneratorSettings(minsep={"Cd-Se": 9.0}, radius=3.0),
        GeneratorSettings(radius=1.0),
        GeneratorSettings(shape="shell", inner=5.0, radius=4.0),
    ],
)
def test_impossible_requests_are_refused(settings):
    with pytest.raises(InputError, match="impossible"):
        generate_cluster("Cd13Se13", 1, settings)


def test_a_cation_anion_separation_beyond_bonding_is_refused_not_fragmented():
    # Cd-Se = 9 A with the radius left free: the generator used to enlarge the sphere and write a
    # Cd3 fragment beside an Se3 one (exit 0)
    with pytest.raises(InputError, match=r"impossible separation Cd-Se.*fall apart"):
        prepare("Cd3Se3", GeneratorSettings(minsep={"Cd-Se": 9.0}))
    with pytest.raises(InputError, match="impossible"):
        prepare("Cd3Se3", GeneratorSettings(minsep={"Cd-Se": 3.0}, slack=1.3))  # 3.9 A after the slack
    # wide like-pair separations are the point (no Se-Se bonds), and a pair the cluster lacks is ignored
    _, rules, _ = prepare("Cd3Se3", GeneratorSettings(minsep=("Se-Se=4.0", "Zn-Se=2.4")))
    assert rules.ranges[("Se", "Se")] == (4.0, 4.0) and rules.ignored == ("Se-Zn",)


def test_generate_warns_about_a_pair_the_formula_lacks(tmp_path, run_cli):
    code, _out, err = run_cli("generate", "Cd3Se3", "--minsep", "Zn-Se=2.4", "-o", tmp_path / "a.xyz")
    assert code == 0 and "warning: --minsep Se-Zn ignored" in err


@pytest.mark.parametrize("spec", ["Cd-Se", "Cd-Se=abc", "Cd-Se=2.7-2.4", "Cd-Se=0", "Qq-Se=2.4"])
def test_bad_separation_specs(spec):
    with pytest.raises(InputError):
        parse_minsep_spec(spec)


def test_default_separations_follow_chemistry():
    rules = SeparationRules.build({"Cd", "Te", "Se"})
    lo = {p: r[0] for p, r in rules.ranges.items()}
    # unlike ions may approach closer than like ions; anion pairs widest
    assert lo[("Cd", "Se")] < lo[("Cd", "Cd")] < lo[("Se", "Se")]
    assert lo[("Cd", "Se")] < lo[("Cd", "Te")]
    assert 2.3 < lo[("Cd", "Se")] < 2.63


def test_negative_count_refused():
    with pytest.raises(InputError, match="negative"):
        generate_many("Cd4Se4", -1, 1)


# Structures as airss-msc generated them before the generator was sped up (commit
# 1e95f91): a stored seed must keep giving the same structure.
def test_stored_seeds_give_the_structures_earlier_versions_gave():
    a = generate_cluster("Cd13Se13", 3)
    assert a.info["minsep"] == "Cd-Cd=3.024 Cd-Se=2.42 Se-Se=3.419" and a.info["attempts"] == 1
    assert np.allclose(
        a.positions[:3],
        [
            [4.22682652950185, 1.35340389179563, -2.1228065933421947],
            [1.1684632407257485, 2.530578577274792, 1.8926832422871733],
            [3.3362645997988505, -4.685558984679765, 0.8936866696889425],
        ],
        rtol=0,
        atol=1e-9,
    )
    b = generate_cluster("Cd6Te2Se4", 5, GeneratorSettings(minsep=("Cd-Se=2.4-2.7",)))
    assert b.info["minsep"] == "Cd-Cd=3.128 Cd-Se=2.642 Cd-Te=2.585 Se-Se=3.419 Se-Te=3.536 Te-Te=3.653"
    assert b.info["shape"] == "sphere r=4.769"
    assert np.allclose(
        b.positions[:2],
        [
            [1.899836957930812, 2.9885864505508812, -2.7165561443862853],
            [1.8854248647808016, 0.7394905563421883, 3.1647338332649912],
        ],
        rtol=0,
        atol=1e-9,
    )


def test_generate_many_gives_each_seed_its_own_structure_exactly():
    settings = GeneratorSettings(radius=6.0, minsep=("Cd-Se=2.5", "Cd-Cd=3.0", "Se-Se=3.3"))
    images = generate_many("Cd13Se13", 5, base_seed=11, settings=settings, start=3)
    for k, atoms in enumerate(images, start=3):
        single = generate_cluster("Cd13Se13", derive_seed(11, "Cd13Se13", k), settings)
        assert np.array_equal(single.positions, atoms.positions)
        assert single.get_chemical_symbols() == atoms.get_chemical_symbols()
        assert atoms.info["candidate"] == k and atoms.info["seed"] == single.info["seed"]


def test_prepared_requests_are_reused_but_never_shared_or_confused():
    from airss_msc.generation.generate import prepare

    settings = GeneratorSettings(minsep={"Cd-Se": 2.5})
    counts, rules, _conf = prepare("Cd4Se4", settings)
    counts["Cd"] = 99  # the caller's copy
    assert prepare("Cd4Se4", settings)[0] == {"Cd": 4, "Se": 4}
    assert prepare("Cd4Se4", GeneratorSettings(minsep={"Cd-Se": 2.5}))[1] is rules
    # equal as Python values but not as settings: True is not a separation
    with pytest.raises(InputError):
        prepare("Cd4Se4", GeneratorSettings(minsep={"Cd-Se": True}))
    with pytest.raises(InputError):  # refused every time, not remembered as valid
        prepare("Cd4Se4", GeneratorSettings(radius=0.5))
    with pytest.raises(InputError):
        prepare("Cd4Se4", GeneratorSettings(radius=0.5))
    # unhashable settings values still work
    odd = GeneratorSettings(extra={"note": ["a", {"b"}]})
    assert prepare("Cd4Se4", odd)[0] == {"Cd": 4, "Se": 4}


def test_push_displacement_is_the_documented_rule():
    from airss_msc.generation.separations import push_displacement

    rng = np.random.default_rng(0)
    need = np.array([[0.0, 2.0], [2.0, 0.0]])
    apart = np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0]])
    assert push_displacement(apart, need, rng) is None
    close = np.array([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0]])
    disp = push_displacement(close, need, rng)
    # each atom moves half of 1.05 x the overlap (+1e-6 A in all), away from the other
    assert np.allclose(disp, [[-(0.525 * 0.5 + 1e-6), 0, 0], [0.525 * 0.5 + 1e-6, 0, 0]], rtol=0, atol=1e-15)
    moved = close + disp
    assert np.linalg.norm(moved[1] - moved[0]) >= 2.0
    # coincident atoms: a random direction from the generator, the same for the same stream
    same = np.zeros((2, 3))
    d1 = push_displacement(same, need, np.random.default_rng(5))
    d2 = push_displacement(same, need, np.random.default_rng(5))
    assert np.array_equal(d1, d2) and np.allclose(d1[0], -d1[1])
    assert np.linalg.norm(d1[0] - d1[1]) == pytest.approx(1.05 * 2.0 + 2e-6)
    # many atoms: pairwise pushes cancel in total (no drift of the cluster)
    pos = np.random.default_rng(1).normal(size=(20, 3))
    big = np.full((20, 20), 1.5)
    np.fill_diagonal(big, 0.0)
    assert np.abs(push_displacement(pos, big, rng).sum(axis=0)).max() < 1e-12


def test_start_positions_take_the_least_overlapping_trial_for_each_atom():
    from airss_msc.generation.confinement import Sphere
    from airss_msc.generation.generate import start_positions

    conf = Sphere(5.0)
    need = np.full((12, 12), 2.6)
    for seed in range(5):
        pos = start_positions(np.random.default_rng(seed), need, conf, trials=8)
        # the same choice made step by step, the obvious way
        rng = np.random.default_rng(seed)
        order = rng.permutation(12)
        trial = conf.sample(rng, 12 * 8).reshape(12, 8, 3)
        expected = np.empty((12, 3))
        for k, i in enumerate(order):
            placed = expected[order[:k]]
            dist = np.linalg.norm(trial[k][:, None, :] - placed[None, :, :], axis=2)
            overlap = np.maximum(need[i, order[:k]][None, :] - dist, 0.0).sum(axis=1)
            expected[i] = trial[k][np.argmin(overlap)]
        assert np.array_equal(pos, expected)
