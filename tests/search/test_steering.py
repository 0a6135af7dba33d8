"""The search steers by the ranking energy, not by the relaxing engine's own energy (issue 19).

A toy ranking engine is registered for these tests only: Lennard-Jones plus a term that
rewards elongated clusters, so its order of LJ minima differs from LJ's own.
"""

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes

from airss_msc.calc.engines import registry
from airss_msc.calc.engines.base import Capabilities, Engine
from airss_msc.calc.engines.lj import LennardJonesCluster
from airss_msc.generation.moves import Parent
from airss_msc.results.record import Result
from airss_msc.results.store import ResultsDB
from airss_msc.search.candidates import as_parent, run_search
from airss_msc.search.config import config_from_dict
from airss_msc.search.pool import Pool


class Elongated(Calculator):
    """LJ energy minus 8 x the largest principal extent (epsilon, sigma = 1)."""

    implemented_properties = ["energy", "free_energy"]  # noqa: RUF012 (ASE types it as a list)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        lj = LennardJonesCluster()
        energy = float(lj.get_potential_energy(self.atoms.copy()))
        centred = self.atoms.positions - self.atoms.positions.mean(axis=0)
        extent = float(np.sqrt(np.linalg.eigvalsh(centred.T @ centred / len(centred))[-1]))
        self.results["energy"] = self.results["free_energy"] = energy - 8.0 * extent


class ToyRanking(Engine):
    name = "toyrank"
    distribution = "ase"
    install_hint = "none"
    models = ("elongated",)
    default_model = "elongated"

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(energy_unit="epsilon", gradients=False)

    def _calculator(self, model: str, **parameters):
        return Elongated()


@pytest.fixture
def toy_engine(monkeypatch):
    monkeypatch.setitem(registry.ENGINES, "toyrank", ToyRanking())
    registry.parse_method.cache_clear()
    yield "toyrank:elongated"
    registry.parse_method.cache_clear()


def _result(energy, ranked, status="relaxed"):
    pos = np.random.default_rng(0).normal(size=(4, 3))
    res = Result(symbols=("X",) * 4, positions=pos, status=status, method="lj", energy=energy)
    if ranked is not None:
        res.energies["toyrank:elongated"] = ranked
    return res


def test_a_parent_carries_the_ranking_energy_and_a_failed_single_point_keeps_it_out():
    parent = as_parent(_result(-5.0, -7.5), "toyrank:elongated", row=3)
    assert (parent.row, parent.energy, parent.geometry_energy) == (3, -7.5, -5.0)
    assert as_parent(_result(-5.0, -7.5), None, row=3).energy == -5.0  # no ranking energy: own
    assert as_parent(_result(-5.0, None), "toyrank:elongated", row=3) is None
    assert as_parent(_result(-5.0, -7.5, status="max_steps"), "toyrank:elongated", row=3) is None


def test_pool_windows_copies_on_the_geometry_energy_and_ranks_by_the_steering_energy():
    rng = np.random.default_rng(4)
    pos = rng.normal(size=(6, 3)) * 1.5
    # two copies of one minimum: the relaxing engine agrees to 1e-5, the single points
    # scatter by 5 meV/atom (more than the 1 meV/atom window): still one minimum, the lower kept
    a = Parent(1, -10.00, ("X",) * 6, pos, geometry_energy=-20.0)
    b = Parent(2, -10.03, ("X",) * 6, pos + 1e-3, geometry_energy=-20.00001)
    pool = Pool(size=5)
    assert pool.add("X6", a) and not pool.add("X6", b)
    assert [p.row for p in pool.lowest("X6")] == [2]
    # a distinct minimum lower in the steering energy but higher in the relaxing one comes first
    c = Parent(3, -11.0, ("X",) * 6, rng.normal(size=(6, 3)) * 1.5, geometry_energy=-19.0)
    assert pool.add("X6", c)
    assert [p.row for p in pool.lowest("X6")] == [3, 2]
    assert pool.walker("X6").row == 3


def test_search_parents_come_from_the_lowest_by_the_ranking_energy(tmp_path, toy_engine):
    db = tmp_path / "steer.db"
    config = config_from_dict(
        {
            "search": {"compositions": ["X9"], "candidates": 14, "seed": 5, "db": str(db), "rank_energy": toy_engine},
            "strategy": {"name": "shake", "random_starts": 6, "pool": 2},
            "relax": {"method": "lj", "fmax": 0.01, "steps": 500, "single_points": [toy_engine]},
        }
    )
    lines = []
    run_search(config, log=lines.append)
    assert any(f"E[{toy_engine}]=" in line for line in lines)
    with ResultsDB(str(db)) as store:
        rows = sorted(store.records(), key=lambda r: r.id)
    ranked = {r.id: r.energies[toy_engine] for r in rows if r.status == "relaxed"}
    own = {r.id: r.energy for r in rows if r.status == "relaxed"}
    assert len(ranked) >= 10
    # the two energies order these minima differently (else the test proves nothing)
    assert sorted(ranked, key=ranked.get)[:2] != sorted(own, key=own.get)[:2]
    checked = steered_differently = 0
    for r in rows[6:]:
        parent = r.provenance.get("parent")
        if parent is None:
            continue
        # serial search: the pool held the 2 lowest unique minima, by the ranking energy,
        # of the rows stored before this one
        pool = Pool(size=2)
        for earlier in rows:
            if earlier.id < r.id and earlier.status == "relaxed":
                pool.add("X9", as_parent(earlier, toy_engine))
        assert parent in [p.row for p in pool.lowest("X9")], (r.id, parent)
        assert ranked[parent] <= sorted({ranked[p.row] for p in pool.lowest("X9")})[-1]
        by_own = Pool(size=2)
        for earlier in rows:
            if earlier.id < r.id and earlier.status == "relaxed":
                by_own.add("X9", as_parent(earlier, None))
        steered_differently += parent not in [p.row for p in by_own.lowest("X9")]
        checked += 1
    assert checked >= 6
    assert steered_differently >= 1  # a parent the relaxing engine's own pool would not have held


def test_a_serial_search_is_reproducible_row_for_row(tmp_path):
    """Results finished together were stored in the order of a set (it varies between runs), so the
    pool, and every parent drawn from it, could differ between two runs of one config."""

    def run(db):
        config = config_from_dict(
            {
                "search": {"compositions": ["X9"], "candidates": 14, "seed": 5, "db": str(db)},
                "strategy": {"name": "shake", "random_starts": 6, "pool": 2},
                "relax": {"method": "lj", "fmax": 0.01, "steps": 500},
            }
        )
        run_search(config, log=lambda s: None)
        with ResultsDB(str(db)) as store:
            rows = sorted(store.records(), key=lambda r: r.id)
        seed_of = {r.id: r.seed for r in rows}
        return [(r.seed, round(r.energy, 8), seed_of.get(r.provenance.get("parent"))) for r in rows]

    assert run(tmp_path / "a.db") == run(tmp_path / "b.db")
