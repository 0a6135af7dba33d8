import numpy as np
import pytest
from ase.db import connect

from airss_msc.search.config import config_from_dict
from airss_msc.errors import InputError
from airss_msc.search.farm import run_search
from airss_msc.search.strategies import Parent, StrategySettings, derive_start, select_parent, shake, swap_atoms

LJ13 = -44.326801


def lj13_search(tmp_path, name, candidates=24, **strategy):
    db = tmp_path / f"{name}.db"
    cfg = config_from_dict({
        "search": {"compositions": ["X13"], "candidates": candidates, "seed": 21, "db": str(db)},
        "generate": {"radius": 1.3},  # dense starts (sigma): LJ13 relaxes to the icosahedron often
        "relax": {"method": "lj", "fmax": 1e-3, "steps": 3000},
        "strategy": {"name": name, "random_starts": 4, "amplitude": 0.4, **strategy},
    })
    out = run_search(cfg, log=lambda s: None)
    assert out.done == candidates
    return list(connect(db).select(sort="id"))


@pytest.mark.parametrize("name", ["random", "shake", "basin", "swap"])
def test_each_strategy_finds_the_lj13_icosahedron(tmp_path, name):
    rows = lj13_search(tmp_path, name)
    energies = [r.energy for r in rows if r.status == "relaxed"]
    assert min(energies) == pytest.approx(LJ13, abs=1e-4)
    assert min(energies) > LJ13 - 1e-4
    derived = [r for r in rows if r.get("parent") is not None]
    if name == "random":
        assert not derived
    else:
        # every candidate past the random starts descends from a stored relaxed row
        assert len(derived) == len(rows) - 4
        ids = {r.id: r for r in rows}
        for r in derived:
            assert ids[r.parent].status == "relaxed"
            assert r.parent_energy == pytest.approx(ids[r.parent].energy)
            assert r.move.startswith("shake")  # swap falls back to a shake for one species


def test_basin_always_moves_from_the_current_best(tmp_path):
    rows = lj13_search(tmp_path, "basin", candidates=12)
    by_id = {r.id: r for r in rows}
    for r in rows:
        if r.get("parent") is None:
            continue
        earlier = [x.energy for x in rows if x.id < r.id and x.status == "relaxed"]
        # serial search: the parent is the lowest minimum stored before this candidate
        assert by_id[r.parent].energy == pytest.approx(min(earlier))


def test_swap_exchanges_unlike_atoms_on_the_mixed_sublattice():
    symbols = ["Zn", "Zn", "Cd", "Cd", "Cd", "Se", "Se", "Se", "Se", "Se"]
    out, pairs = swap_atoms(symbols, 2, np.random.default_rng(0))
    assert len(pairs) == 2 and sorted(out) == sorted(symbols)
    state = list(symbols)
    for i, j in pairs:  # replay: each swap exchanged a Zn and a Cd at that moment
        assert {state[i], state[j]} == {"Zn", "Cd"}
        state[i], state[j] = state[j], state[i]
    assert state == out
    # anion mixing
    out, pairs = swap_atoms(["Cd", "Cd", "Te", "Se"], 1, np.random.default_rng(1))
    assert {"Cd"} not in [{out[i], out[j]} for i, j in pairs] and out.count("Te") == 1
    # nothing to swap on a binary: no pairs
    assert swap_atoms(["Cd", "Se"], 1, np.random.default_rng(0))[1] == []


def test_swap_move_on_an_alloy_keeps_composition_and_geometry_close():
    rng = np.random.default_rng(3)
    pos = rng.normal(size=(8, 3)) * 2
    parent = Parent(1, -10.0, ("Zn", "Cd", "Cd", "Cd", "Se", "Se", "Se", "Se"), pos)
    symbols, new, move = derive_start(parent, StrategySettings(name="swap", amplitude=0.4), rng)
    assert move.startswith("swap") and sorted(symbols) == sorted(parent.symbols)
    assert symbols != list(parent.symbols)
    assert np.linalg.norm(new - pos, axis=1).max() <= 0.1 + 1e-9  # 0.25 x amplitude


def test_shake_amplitude_bounds_the_displacement():
    pos = np.zeros((500, 3))
    moved = shake(pos, 0.7, np.random.default_rng(0))
    r = np.linalg.norm(moved, axis=1)
    assert r.max() <= 0.7 + 1e-12 and r.mean() > 0.4  # uniform in the ball: mean 3/4 amplitude


def test_parent_pool_skips_copies_of_one_minimum():
    mk = lambda row, e: Parent(row, e, ("X",) * 4, np.zeros((4, 3)))
    minima = [mk(1, -5.0), mk(2, -5.0), mk(3, -4.0), mk(4, -3.0)]
    rows = {select_parent(minima, 2, np.random.default_rng(s)).row for s in range(40)}
    assert rows == {1, 3}
    assert select_parent([], 3, np.random.default_rng(0)) is None


def test_strategy_config_errors():
    base = {"search": {"compositions": ["X7"]}, "relax": {"method": "lj"}}
    with pytest.raises(InputError, match="unknown strategy"):
        config_from_dict({**base, "strategy": {"name": "magic"}})
    with pytest.raises(InputError, match="amplitude"):
        config_from_dict({**base, "strategy": {"name": "shake", "amplitude": -1}})
