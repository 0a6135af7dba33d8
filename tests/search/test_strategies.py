import numpy as np
import pytest
from ase.db import connect

from airss_msc.errors import InputError
from airss_msc.generation.moves import Parent
from airss_msc.search.candidates import run_search
from airss_msc.search.config import config_from_dict
from airss_msc.search.pool import Pool

LJ13 = -44.326801


def lj13_search(tmp_path, name, candidates=24, **strategy):
    db = tmp_path / f"{name}.db"
    cfg = config_from_dict(
        {
            "search": {"compositions": ["X13"], "candidates": candidates, "seed": 21, "db": str(db)},
            "generate": {"radius": 1.3},  # dense starts (sigma): LJ13 relaxes to the icosahedron often
            "relax": {"method": "lj", "fmax": 1e-3, "steps": 3000},
            "strategy": {"name": name, "random_starts": 4, "amplitude": 0.4, **strategy},
        }
    )
    out = run_search(cfg, log=lambda s: None)
    assert out.done == candidates
    return list(connect(db).select(sort="id"))


@pytest.mark.parametrize("name", ["random", "shake", "basin", "swap", "ga", "mix"])
def test_each_strategy_finds_the_lj13_icosahedron(tmp_path, name):
    rows = lj13_search(tmp_path, name)
    energies = [r.energy for r in rows if r.status == "relaxed"]
    assert min(energies) == pytest.approx(LJ13, abs=1e-4)
    assert min(energies) > LJ13 - 1e-4
    derived = [r for r in rows if r.get("parent") is not None]
    if name == "random":
        assert not derived
        return
    # every candidate past the random starts descends from stored relaxed rows
    assert len(derived) == len(rows) - 4
    ids = {r.id: r for r in rows}
    for r in derived:
        assert ids[r.parent].status == "relaxed"
        assert r.parent_energy == pytest.approx(ids[r.parent].energy)
        if r.move == "cut_splice":
            assert ids[r.parent2].status == "relaxed" and r.parent2 != r.parent
        elif name == "mix":
            assert r.move.split()[0] in {"shake", "twist", "relocate"}  # no homotops in one element
        else:
            assert r.move.startswith("shake")  # a swap does not apply to one element: its shakes run
    if name in ("ga", "mix"):
        assert any(r.move == "cut_splice" for r in derived)


def test_basin_at_zero_temperature_moves_from_the_best_so_far(tmp_path):
    rows = lj13_search(tmp_path, "basin", candidates=12, temperature=0.0)
    by_id = {r.id: r for r in rows}
    for r in rows:
        if r.get("parent") is None:
            continue
        earlier = [x.energy for x in rows if x.id < r.id and x.status == "relaxed"]
        # serial search at T = 0: the walker is the lowest minimum stored before this candidate
        assert by_id[r.parent].energy == pytest.approx(min(earlier))


def _lj_parent(row, energy, seed):
    rng = np.random.default_rng(seed)
    return Parent(row, energy, ("X",) * 6, rng.normal(size=(6, 3)) * 1.5)


def test_pool_keeps_one_copy_of_a_minimum_species_aware():
    pool = Pool(size=3)
    a = _lj_parent(1, -10.0, 0)
    rot = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    copy = Parent(2, -10.0 + 1e-4, a.symbols, a.positions @ rot.T + 3.0)  # rotated, shifted: same minimum
    assert pool.add("X6", a) and not pool.add("X6", copy)
    assert [p.row for p in pool.lowest("X6")] == [1]
    lower_copy = Parent(3, -10.0 - 1e-4, a.symbols, a.positions[::-1])  # same structure, lower: replaces
    assert not pool.add("X6", lower_copy) and [p.row for p in pool.lowest("X6")] == [3]
    for k in range(4, 8):
        assert pool.add("X6", _lj_parent(k, -9.0 + k, k))
    assert [p.row for p in pool.lowest("X6")] == [3, 4, 5]  # the size lowest
    # homotops are different structures: a Zn/Cd swap on one frame is kept
    frame = np.random.default_rng(9).normal(size=(4, 3)) * 2
    zn = Parent(10, -5.0, ("Zn", "Cd", "Se", "Se"), frame)
    cd = Parent(11, -5.0, ("Cd", "Zn", "Se", "Se"), frame)
    alloy = Pool()
    assert alloy.add("ZnCdSe2", zn) and alloy.add("ZnCdSe2", cd)


def test_metropolis_accepts_downhill_always_and_uphill_by_temperature():
    low, high = _lj_parent(1, -10.0, 1), _lj_parent(2, -9.0, 2)
    cold = Pool(temperature=0.0)
    cold.add("X6", low)
    assert not cold.metropolis("X6", high, np.random.default_rng(0))
    assert cold.walker("X6").row == 1
    warm = Pool(temperature=1.0)  # exp(-1) = 37 % acceptance of a 1-unit climb
    accepted = 0
    for seed in range(400):
        warm.current = {}
        warm.add("X6", low)
        accepted += warm.metropolis("X6", high, np.random.default_rng(seed))
    assert 0.30 < accepted / 400 < 0.44
    assert Pool(temperature=5.0).metropolis("X6", low, np.random.default_rng(0))  # downhill or empty: accept


@pytest.mark.parametrize(
    ("strategy", "match"),
    [
        ({"name": "magic"}, "unknown strategy"),
        ({"name": "shake", "amplitude": -1}, "amplitude"),
        ({"name": "ga", "moves": {"teleport": 1.0}}, "unknown move"),
        ({"name": "ga", "shake": {"amplitud": 0.3}}, "unknown setting"),
        ({"name": "basin", "temperature": -0.1}, "temperature"),
        ({"name": "ga", "moves": {"shake": 0.0}}, "positive sum"),
    ],
)
def test_strategy_config_errors(strategy, match):
    base = {"search": {"compositions": ["X7"]}, "relax": {"method": "lj"}}
    with pytest.raises(InputError, match=match):
        config_from_dict({**base, "strategy": strategy})
