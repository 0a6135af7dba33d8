"""The structure search: plan candidates, make each start by a move, relax it, store it.

The unit of work is :func:`run_candidate`, a :class:`CandidateTask` in and a
:class:`~airss_msc.results.record.Result` out, which knows nothing of
databases or MPI. :func:`run_search` plans every candidate of a config, skips
those already stored (resume: a candidate is its composition and seed),
chooses moves and parents from the pool at submission and runs the rest on
the task farm, storing each result as it arrives.

The search steers by ``config.rank_energy`` (the validated ranking energy, a
single point scored in the worker right after each relaxation): the pool, its
duplicate replacement, parent choice and the Metropolis rule all use it; the
relaxing engine's energy only drives the relaxation and the duplicate window.
Without a ``rank_energy`` the relaxing engine's energy steers.

``[search] batch = N`` (N > 1) hands a worker up to N candidates at once where the relaxing
engine has a batched call and the protocol has one stage: :func:`run_candidates` builds their
starts and relaxes them together with :func:`~airss_msc.calc.relax_batch.relax_batch` (FIRE, one
model call per optimizer step for all of them), each then scored by ``single_points`` and stored
on its own as above: one row per candidate, the same resume by (composition, seed), walltime and
stop (no new batch is handed out; batches in flight are stored). A row's ``wall_s`` and
``[relax] max_seconds`` count from its batch's start. Otherwise (N = 1, an engine
without a batched call, a staged protocol) each candidate is relaxed alone by
:func:`~airss_msc.calc.relax.relax_structure`, as it always was. Moves with parents are chosen
per candidate when its batch is handed out, from the minima stored by then: the candidates of a
batch share that pool (a basin-hopping walk makes N moves from the same current minimum, the
Metropolis rule then taking their results in order), as N workers would.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace

import numpy as np

from airss_msc.calc.engines.batched import can_batch
from airss_msc.calc.relax import RelaxSettings, relax_structure
from airss_msc.calc.relax_batch import relax_batch
from airss_msc.errors import InputError
from airss_msc.generation.generate import GeneratorSettings, derive_seed
from airss_msc.generation.moves import Move, Parent, RandomStart
from airss_msc.results.record import Result, Status
from airss_msc.results.store import ResultsDB
from airss_msc.search.config import SearchConfig
from airss_msc.search.farm import Farm, FarmOutcome, StopFlag, run_farm, stop_on_signals, summary_line
from airss_msc.search.pool import Pool
from airss_msc.search.strategy import StrategySettings


@dataclass(frozen=True)
class CandidateTask:
    """Everything needed to build and relax one candidate (picklable).

    ``move`` makes the start from ``parents`` (none for a random start), drawing
    from ``seed``; the stored seed and parent rows reproduce the start.
    """

    formula: str
    index: int
    seed: int
    generate: GeneratorSettings
    relax: RelaxSettings
    strategy: StrategySettings = StrategySettings()
    move: Move = RandomStart()
    parents: tuple[Parent, ...] = ()


def build_start(task: CandidateTask):
    """The start of ``task`` as :class:`ase.Atoms` (lineage and seed in ``info``)."""
    atoms = task.move.new_candidate(task.formula, task.seed, task.parents, task.generate)
    atoms.info.update(candidate=task.index, strategy=task.strategy.name)
    return atoms


def run_candidate(task: CandidateTask) -> Result:
    """Build candidate ``task.index`` and relax it. Always returns a :class:`Result`;
    a generation failure becomes an ``error`` result so the search goes on."""
    try:
        atoms = build_start(task)
    except InputError as exc:
        return failed_candidate(task, f"generation failed: {exc}")
    return relax_structure(atoms, task.relax)


def run_candidates(tasks: list[CandidateTask]) -> list[Result]:
    """Build candidates ``tasks`` and relax them together (:func:`relax_batch`, one model call per
    optimizer step for all of them); one :class:`Result` per task, in order. A generation failure
    is that candidate's ``error`` result; tasks with different relax settings relax apart."""
    results: list[Result | None] = [None] * len(tasks)
    groups: list[tuple[RelaxSettings, list[int], list]] = []
    for k, task in enumerate(tasks):
        try:
            atoms = build_start(task)
        except InputError as exc:
            results[k] = failed_candidate(task, f"generation failed: {exc}")
            continue
        group = next((g for g in groups if g[0] == task.relax), None)
        if group is None:
            group = (task.relax, [], [])
            groups.append(group)
        group[1].append(k)
        group[2].append(atoms)
    for settings, where, starts in groups:
        for k, result in zip(where, relax_batch(starts, settings, batch_size=len(starts)), strict=True):
            results[k] = result
    return [r if r is not None else failed_candidate(t, "not relaxed") for r, t in zip(results, tasks, strict=True)]


def batches(relax: RelaxSettings, batch: int) -> bool:
    """Whether a search with these relax settings relaxes ``batch`` > 1 candidates together (an
    engine with a batched call, one stage); otherwise it relaxes one at a time."""
    return batch > 1 and not relax.stages and can_batch(relax.method)


def failed_candidate(task: CandidateTask, message: str) -> Result:
    """An ``error`` result for a task that could not run (stored, so it is not retried forever)."""
    return Result(
        symbols=(),
        positions=np.zeros((0, 3)),
        status=Status.ERROR,
        message=message,
        method=task.relax.method,
        provenance={"formula": task.formula, "seed": task.seed, "candidate": task.index, "move": task.move.name},
    )


def plan_tasks(config: SearchConfig) -> list[CandidateTask]:
    """All candidates of a search in a fixed order (composition, index), as random starts;
    moves and parents are chosen at submission, from the minima stored by then."""
    return [
        CandidateTask(
            formula, index, derive_seed(config.seed, formula, index), config.generate, config.relax, config.strategy
        )
        for formula in config.compositions
        for index in range(config.candidates)
    ]


def _line(task: CandidateTask, result: Result, steer_energy: str | None = None) -> str:
    parts = [f"{task.formula} #{task.index}", result.status]
    if task.move.name != "random":
        parts.append(f"({task.move.name})")
    if result.energy is not None:
        parts.append(f"E={result.energy:.4f} eV")
    if steer_energy and steer_energy != result.method and result.status == Status.RELAXED:
        ranked = result.energy_by(steer_energy)
        parts.append(f"E[{steer_energy}]={ranked:.4f} eV" if ranked is not None else f"E[{steer_energy}]=failed")
    if result.gap is not None:
        parts.append(f"gap={result.gap:.2f} eV")
    parts.append(f"{result.steps} steps {result.wall_seconds:.1f} s")
    if result.message and result.status != Status.RELAXED:
        parts.append(f"({result.message})")
    return "  ".join(parts)


def as_parent(result: Result, steer_energy: str | None, row: int | None = None) -> Parent | None:
    """``result`` as a pool member steered by ``steer_energy`` (None: the relaxing engine's own
    energy); None when that energy is missing (a failed single point keeps the row out of the
    pool, never mixes two energies in one ranking)."""
    if result.status != Status.RELAXED or result.energy is None:
        return None
    energy = result.energy_by(steer_energy)
    row = result.id if row is None else row
    if energy is None or not np.isfinite(energy) or row is None:
        return None
    return Parent(
        row,
        float(energy),
        result.symbols,
        result.positions,
        geometry_energy=float(result.energy),
    )


def _pool_from(db: ResultsDB, config: SearchConfig) -> Pool:
    """The population as stored: relaxed rows of the search's compositions and final method,
    by the search's steering energy."""
    pool = Pool(size=config.strategy.pool, temperature=config.strategy.temperature)
    if not config.strategy.uses_parents:
        return pool
    method = config.relax.protocol()[-1].method
    wanted = set(config.compositions)
    for res in db.records(status=Status.RELAXED):
        if res.composition in wanted and res.method == method:
            parent = as_parent(res, config.rank_energy)
            if parent is not None:
                pool.add(res.composition, parent)
    return pool


def run_search(
    config: SearchConfig,
    executor: Executor | None = None,
    workers: int = 1,
    log: Callable[[str], None] | None = None,
    stop: StopFlag | None = None,
    progress_every: float = 60.0,
) -> FarmOutcome:
    """Run (or resume) a search; results go to ``config.db`` one row at a time.

    executor: where :func:`run_candidate` runs (in process when None).
    stop: set it (signals do) to stop handing out work; tasks in flight are
        stored, the rest stay for the next run. ``config.walltime`` does the same.
    """
    stop = stop if stop is not None else StopFlag()
    # Handlers first: planning and reading a large database take a while. The
    # headline run_farm prints is the readiness line: from then on a signal stops cleanly.
    with stop_on_signals(stop), ResultsDB(config.db, write=True) as db:
        if config.rank_energy:
            db.set_rank_energy(config.rank_energy)
        tasks = plan_tasks(config)
        strategy = config.strategy
        done = db.done_seeds()
        pending = [t for t in tasks if (t.formula, t.seed) not in done]
        pool = _pool_from(db, config)

        def prepare(task: CandidateTask) -> CandidateTask:
            # parents from their own stream, so the move's stream (the seed) is untouched
            move, parents = strategy.choose(task.formula, task.index, pool, np.random.default_rng([task.seed, 1]))
            return replace(task, move=move, parents=tuple(parents))

        def store(task: CandidateTask, result: Result) -> tuple[str, bool]:
            row = db.add(result, extra={"search": config.name})
            parent = as_parent(result, config.rank_energy, row) if strategy.uses_parents else None
            if parent is not None:
                pool.add(task.formula, parent)
                if strategy.walks and task.parents:
                    pool.metropolis(task.formula, parent, np.random.default_rng([task.seed, 2]))
            return _line(task, result, config.rank_energy), result.status == Status.RELAXED

        batch = config.batch if batches(config.relax, config.batch) else 1
        farm = Farm(
            work=run_candidate,
            store=store,
            on_error=failed_candidate,
            prepare=prepare if strategy.uses_parents else None,
            work_batch=run_candidates if batch > 1 else None,
        )
        say_ = log
        headline = (
            f"search {config.name}: {len(tasks)} candidates over {len(config.compositions)} "
            f"composition(s), {len(tasks) - len(pending)} already in {config.db}, {len(pending)} to run "
            f"({config.relax.method}, strategy {strategy.name}, {max(workers, 1)} worker(s)"
            f"{_batch_note(config, batch)})"
        )
        outcome = run_farm(
            farm,
            pending,
            planned=len(tasks),
            skipped=len(tasks) - len(pending),
            executor=executor,
            workers=workers,
            stop=stop,
            walltime=config.walltime,
            say=say_,
            progress_every=progress_every,
            headline=headline,
            batch=batch,
        )
    (log or _stderr)(summary_line(f"search {config.name}", outcome))
    return outcome


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _batch_note(config: SearchConfig, batch: int) -> str:
    """The headline's word on batching: how many per batch, or why ``[search] batch`` is not used."""
    if batch > 1:
        return f", batches of up to {batch} relaxed together (FIRE)"
    if config.batch > 1:
        why = "a staged protocol" if config.relax.stages else f"{config.relax.method} has no batched call"
        return f", batch = {config.batch} not used: {why}, one at a time"
    return ""
