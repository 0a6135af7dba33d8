"""The search with batched relaxation (issue 23 item 1): ``[search] batch = N`` hands a worker up to
N candidates, relaxed together (one model call per FIRE step) and stored one row each, exactly as
one at a time: same rows, statuses and seeds, exactly-once resume after a stop; ``batch = 1``, a
staged protocol and engines without a batched call keep the one-at-a-time path.

Lennard-Jones (the toy engine with a batched call) keeps every test in seconds.
"""

from __future__ import annotations

from collections import Counter

import pytest
from ase.db import connect

import airss_msc.search.candidates as candidates
from airss_msc.errors import InputError
from airss_msc.results.store import ResultsDB
from airss_msc.search.candidates import CandidateTask, plan_tasks, run_candidates, run_search
from airss_msc.search.config import SearchConfig, config_from_dict
from airss_msc.search.farm import Farm, StopFlag, run_farm


def lj_config(db, candidates: int = 4, relax: dict | None = None, strategy: dict | None = None, **search):
    doc = {
        "search": {"compositions": ["X7", "X8"], "candidates": candidates, "seed": 3, "db": str(db), **search},
        "relax": {"method": "lj", "fmax": 0.01, "steps": 500, **(relax or {})},
    }
    if strategy:
        doc["strategy"] = strategy
    return config_from_dict(doc)


def _rows(db) -> list:
    return sorted(connect(db).select(), key=lambda r: (r.composition, r.candidate))


def test_a_batched_search_stores_the_rows_of_an_unbatched_one(tmp_path):
    one, four = tmp_path / "one.db", tmp_path / "four.db"
    lines: list[str] = []
    a = run_search(lj_config(one), log=lambda s: None)
    b = run_search(lj_config(four, batch=3), log=lines.append)
    assert (a.done, a.failed) == (b.done, b.failed) == (8, 0)
    assert "batches of up to 3 relaxed together" in lines[0]
    # one result line per candidate, counted one by one
    assert [line.split("]")[0] for line in lines if line.startswith("[")] == [f"[{k}/8" for k in range(1, 9)]
    ra, rb = _rows(one), _rows(four)
    key = [(r.composition, r.candidate, r.seed, r.status, r.search) for r in ra]
    assert key == [(r.composition, r.candidate, r.seed, r.status, r.search) for r in rb]
    assert all(r.status == "relaxed" for r in rb)
    assert all("PreconLBFGS" in ResultsDB(one).get(r.id).optimizer for r in ra)
    assert all(ResultsDB(four).get(r.id).optimizer.startswith("FIRE (batched") for r in rb)
    # the same records otherwise: method, protocol, the start the seed gives, an energy and fmax below fmax
    for x, y in zip(ResultsDB(one).records(), ResultsDB(four).records(), strict=True):
        assert (x.method, x.protocol, x.composition) == (y.method, y.protocol, y.composition)
        assert x.initial_positions == pytest.approx(y.initial_positions)
        assert y.energy is not None and y.fmax is not None and y.fmax < 0.01


def test_a_stopped_batched_search_resumes_without_duplicating_rows(tmp_path):
    db = tmp_path / "r.db"
    config = lj_config(db, candidates=8, batch=3)  # 16 candidates: batches of 3, 3, ..., 1
    stop = StopFlag()

    def log(line: str) -> None:
        if line.startswith("[1/"):
            stop.set("SIGTERM")

    first = run_search(config, stop=stop, log=log)
    assert first.interrupted and first.reason == "SIGTERM"
    # the batch in flight when the stop came (in process, one at a time) is stored whole, no more
    assert first.done == 3 and first.remaining == 13
    again = run_search(config, log=lambda s: None)
    assert (again.done, again.skipped, again.remaining) == (13, 3, 0)
    rows = list(connect(db).select())
    seeds = Counter((r.composition, r.seed) for r in rows)
    assert len(rows) == 16 and set(seeds.values()) == {1}
    assert {(t.formula, t.seed) for t in plan_tasks(config)} == set(seeds)


def test_a_batched_search_stopped_by_its_walltime_resumes_to_the_same_rows(tmp_path):
    db, whole = tmp_path / "r.db", tmp_path / "whole.db"
    run_search(lj_config(whole, candidates=6, batch=4), log=lambda s: None)
    lines: list[str] = []
    out = run_search(lj_config(db, candidates=6, batch=4, walltime=1e-6), log=lines.append)
    assert out.interrupted and out.reason == "walltime" and out.done == 0 and "stopped by walltime" in lines[-1]
    run_search(lj_config(db, candidates=6, batch=4), log=lambda s: None)
    key = [(r.composition, r.candidate, r.seed, r.status) for r in _rows(db)]
    assert key == [(r.composition, r.candidate, r.seed, r.status) for r in _rows(whole)] and len(key) == 12


def test_batch_1_is_the_one_at_a_time_path(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("relax_batch called")

    monkeypatch.setattr(candidates, "relax_batch", refuse)
    lines: list[str] = []
    out = run_search(lj_config(tmp_path / "r.db"), log=lines.append)
    assert out.done == 8 and out.failed == 0 and "relaxed together" not in lines[0] and "not used" not in lines[0]
    assert lj_config(tmp_path / "x.db").batch == 1


def test_a_staged_protocol_or_an_engine_without_a_batched_call_relaxes_one_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(candidates, "relax_batch", lambda *a, **k: pytest.fail("relax_batch called"))
    lines: list[str] = []
    staged = lj_config(tmp_path / "s.db", candidates=2, batch=4, relax={"stage": [{"fmax": 0.1}, {}]})
    assert run_search(staged, log=lines.append).failed == 0
    assert "batch = 4 not used: a staged protocol, one at a time" in lines[0]
    monkeypatch.setattr(candidates, "can_batch", lambda method: False)
    lines.clear()
    assert run_search(lj_config(tmp_path / "n.db", candidates=2, batch=4), log=lines.append).failed == 0
    assert "batch = 4 not used: lj has no batched call" in lines[0]


def test_a_batch_that_raises_stores_an_error_row_per_candidate_and_goes_on(tmp_path, monkeypatch):
    original = candidates.relax_batch

    def flaky(starts, settings, **kwargs):
        if any(a.info["candidate"] == 1 and a.info["formula"] == "X7" for a in starts):
            raise RuntimeError("segfault-like failure in the engine")
        return original(starts, settings, **kwargs)

    monkeypatch.setattr(candidates, "relax_batch", flaky)
    out = run_search(lj_config(tmp_path / "r.db", batch=3), log=lambda s: None)
    assert (out.done, out.failed) == (8, 3)  # the first batch: X7 #0-#2
    rows = _rows(tmp_path / "r.db")
    failed = [(r.composition, r.candidate) for r in rows if r.status == "error"]
    assert failed == [("X7", 0), ("X7", 1), ("X7", 2)]
    assert all("segfault-like" in r.message for r in rows if r.status == "error")


def test_a_generation_failure_fails_its_candidate_alone(tmp_path, monkeypatch):
    config = lj_config(tmp_path / "r.db", batch=4)
    tasks = plan_tasks(config)[:4]
    original = candidates.build_start

    def broken(task: CandidateTask):
        if task.index == 2:
            raise InputError("no room")
        return original(task)

    monkeypatch.setattr(candidates, "build_start", broken)
    results = run_candidates(tasks)
    assert [r.status for r in results] == ["relaxed", "relaxed", "error", "relaxed"]
    assert results[2].message == "generation failed: no room" and results[2].provenance["seed"] == tasks[2].seed
    assert [r.provenance["seed"] for r in results] == [t.seed for t in tasks]


@pytest.mark.parametrize("strategy", ["basin", "ga"])
def test_strategies_with_parents_run_batched_with_lineage(tmp_path, strategy):
    db = tmp_path / "r.db"
    config = lj_config(db, candidates=6, batch=3, strategy={"name": strategy, "random_starts": 3})
    out = run_search(config, log=lambda s: None)
    assert out.done == 12
    rows = list(connect(db).select())
    assert len({(r.composition, r.seed) for r in rows}) == len(rows) == 12
    derived = [r for r in rows if r.get("parent") is not None]
    ids = {r.id: r for r in rows}
    assert derived and all(r.candidate >= 3 and ids[r.parent].status == "relaxed" for r in derived)


@pytest.mark.parametrize(("value", "match"), [(0, "batch = 0: need an integer >= 1"), (True, "wrong type")])
def test_a_bad_batch_is_one_line(tmp_path, value, match):
    with pytest.raises(InputError, match=match):
        lj_config(tmp_path / "r.db", batch=value)


def test_the_farm_hands_out_batches_and_stores_each_task_once():
    stored: list[int] = []
    calls: list[list[int]] = []

    def work_batch(group: list[int]) -> list[int]:
        calls.append(group)
        return [10 * t for t in group]

    farm: Farm[int, int] = Farm(
        work=lambda t: pytest.fail("one at a time"),
        store=lambda t, r: (stored.append(r) or f"{t}", r != 30),
        on_error=lambda t, msg: -t,
        prepare=lambda t: t + 1,
        work_batch=work_batch,
    )
    out = run_farm(farm, range(7), planned=7, batch=3, say=lambda s: None)
    assert calls == [[1, 2, 3], [4, 5, 6], [7]]
    assert stored == [10, 20, 30, 40, 50, 60, 70] and (out.done, out.failed, out.remaining) == (7, 1, 0)
    with pytest.raises(ValueError, match="batch"):
        run_farm(farm, [], planned=0, batch=0)


def test_search_config_batch_is_a_documented_search_key():
    from airss_msc.settings import spec

    s = spec(SearchConfig, "batch")
    assert s.key == "batch" and s.default == 1 and "FIRE" in s.help


@pytest.mark.slow  # starts Dask worker processes
def test_a_batched_search_on_dask_stores_what_a_serial_batched_search_stores(tmp_path):
    from airss_msc.search.distributed import dask_executor

    serial, dask = tmp_path / "serial.db", tmp_path / "dask.db"
    run_search(lj_config(serial, candidates=5, batch=3), log=lambda s: None)
    with dask_executor("dask", threads=1) as (executor, workers):
        out = run_search(lj_config(dask, candidates=5, batch=3), executor=executor, workers=workers, log=lambda s: None)
        again = run_search(
            lj_config(dask, candidates=6, batch=3), executor=executor, workers=workers, log=lambda s: None
        )
    assert (out.done, again.done, again.skipped) == (10, 2, 10)
    rows = {(r.composition, r.seed): r for r in connect(dask).select()}
    assert len(rows) == len(list(connect(dask).select())) == 12
    # the batches are dealt in the same order and each structure walks its own FIRE path
    for r in connect(serial).select():
        assert rows[(r.composition, r.seed)].energy == pytest.approx(r.energy, abs=1e-9)
        assert rows[(r.composition, r.seed)].status == r.status
