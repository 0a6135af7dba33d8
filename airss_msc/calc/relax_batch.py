"""Batched relaxation: many clusters, one model call per optimizer step (issue 23 item 1).

``relax_batch(structures, settings)`` gives one :class:`~airss_msc.results.record.Result` per
structure, with the statuses, sanity floors, convergence criterion (largest atomic force below
``fmax``), step limit and stored fields of :func:`~airss_msc.calc.relax.relax_structure`. Each
step evaluates every structure still relaxing in one call of the engine's
:class:`~airss_msc.calc.engines.batched.BatchModel`, then moves each by its own FIRE state
(Bitzek et al., PRL 97, 170201 (2006); the parameters of ASE's FIRE); a structure that converges,
reaches its step limit, collapses or fails leaves the batch and the others go on.

The optimizer is FIRE, not the one-at-a-time default (PreconLBFGS with a line search): FIRE needs
one force call per step and no line search, so every structure advances in lockstep. The two
reach the same minimum from most starts, not all (a different path can end in a different basin:
benchmarks/batched_relax.py measures how often). The result's ``optimizer`` and ``settings`` say
FIRE.

A call that runs out of device memory is repeated with half as many structures, and at one
structure on the CPU, each time with a :class:`BatchFallbackWarning`; nothing computed in a failed
call is used. A call that fails otherwise is repeated one structure at a time, so the structure
that fails gets ``error`` and the others go on. Protocols with several stages, and engines without
a batched call, are relaxed one at a time by ``relax_structure`` (same results as before).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from ase import Atoms

from airss_msc import __version__
from airss_msc.calc.engines import capabilities, engine_version
from airss_msc.calc.engines.batched import BatchModel, Evaluation, batch_model, can_batch, is_out_of_memory
from airss_msc.calc.relax import COLLAPSE_PERSISTENCE, HARD_FLOOR, RelaxSettings, relax_structure
from airss_msc.calc.sanity import check_geometry
from airss_msc.calc.single_point import single_point
from airss_msc.generation.geometry import anion_bonds, shortest_contact
from airss_msc.results.record import Result, Status

#: Structures per model call unless the caller says otherwise (a GPU holds many 26-atom graphs).
DEFAULT_BATCH = 64


class BatchFallbackWarning(RuntimeWarning):
    """A batched call ran out of memory: the batch was halved or moved to the CPU."""


@dataclass(frozen=True)
class FireParameters:
    """FIRE's constants (ASE's defaults; ``maxstep`` comes from the settings).

    dt, dtmax: initial and largest time step; nmin: downhill steps before dt may grow;
    finc, fdec: its growth and cut; astart, fa: the velocity mixing and its decay.
    """

    dt: float = 0.1
    dtmax: float = 1.0
    nmin: int = 5
    finc: float = 1.1
    fdec: float = 0.5
    astart: float = 0.1
    fa: float = 0.99


class Fire:
    """One structure's FIRE state: velocity, time step, mixing and downhill count."""

    def __init__(self, natoms: int, maxstep: float, parameters: FireParameters):
        self.p = parameters
        self.maxstep = maxstep
        self.velocity: np.ndarray | None = None
        self.dt = parameters.dt
        self.a = parameters.astart
        self.downhill = 0
        self.natoms = natoms

    def step(self, positions: np.ndarray, forces: np.ndarray) -> np.ndarray:
        """The next positions from ``positions`` and the forces on them (the move of the whole
        structure is capped at ``maxstep`` in norm, as ASE's FIRE caps it)."""
        p = self.p
        if self.velocity is None:
            self.velocity = np.zeros_like(forces)
        else:
            vf = float(np.vdot(forces, self.velocity))
            if vf > 0.0:
                fnorm = float(np.sqrt(np.vdot(forces, forces)))
                vnorm = float(np.sqrt(np.vdot(self.velocity, self.velocity)))
                self.velocity = (1.0 - self.a) * self.velocity + self.a * forces / fnorm * vnorm
                if self.downhill > p.nmin:
                    self.dt = min(self.dt * p.finc, p.dtmax)
                    self.a *= p.fa
                self.downhill += 1
            else:
                self.velocity = np.zeros_like(forces)
                self.a = p.astart
                self.dt *= p.fdec
                self.downhill = 0
        self.velocity = self.velocity + self.dt * forces
        move = self.dt * self.velocity
        norm = float(np.sqrt(np.vdot(move, move)))
        if norm > self.maxstep:
            move = move * (self.maxstep / norm)
        return positions + move


class BatchEvaluator:
    """Calls a :class:`BatchModel` in chunks of at most ``size`` structures; halves ``size`` on an
    out-of-memory error and moves to the CPU when one structure does not fit, with a warning."""

    def __init__(self, model: BatchModel, size: int):
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        self.model = model
        self.size = size
        self.calls = 0

    def __call__(self, clusters: Sequence[Atoms]) -> list[Evaluation]:
        out: list[Evaluation] = []
        k = 0
        while k < len(clusters):
            chunk = clusters[k : k + self.size]
            try:
                self.calls += 1
                evaluations = self.model.evaluate(chunk)
                if len(evaluations) != len(chunk):
                    raise RuntimeError(f"batched model returned {len(evaluations)} results for {len(chunk)}")
            except Exception as exc:
                if not is_out_of_memory(exc):
                    out += self._one_by_one(chunk)
                    k += len(chunk)
                    continue
                self.model.release()
                if len(chunk) > 1:
                    self.size = max(1, len(chunk) // 2)
                    warnings.warn(
                        f"out of memory on {self.model.device} with {len(chunk)} structures per call: "
                        f"retrying with {self.size}",
                        BatchFallbackWarning,
                        stacklevel=2,
                    )
                    continue
                if self.model.device != "cpu":
                    warnings.warn(
                        f"out of memory on {self.model.device} with one structure per call: going on on the CPU",
                        BatchFallbackWarning,
                        stacklevel=2,
                    )
                    self.model = self.model.on("cpu")
                    continue
                out.append(Evaluation(error=f"out of memory on the CPU: {exc}"))
                k += 1
                continue
            out += evaluations
            k += len(chunk)
        return out

    def _one_by_one(self, chunk: Sequence[Atoms]) -> list[Evaluation]:
        """After a failed call: each structure alone, so only the one that fails gets an error."""
        out = []
        for atoms in chunk:
            try:
                self.calls += 1
                out += self.model.evaluate([atoms])[:1]
            except Exception as exc:
                out.append(Evaluation(error=f"{type(exc).__name__}: {exc}"))
        return out


@dataclass
class _Run:
    """One structure's relaxation in the batch."""

    work: Atoms
    fire: Fire
    steps: int = 0
    force_calls: int = 0
    below_floor: int = 0
    status: str = ""
    message: str = ""
    last: Evaluation = field(default_factory=Evaluation)
    seconds: float = 0.0


def _leave(run: _Run, status: str, message: str, start: float) -> None:
    run.status, run.message = status, message
    run.seconds = time.perf_counter() - start


def relax_batch(
    structures: Sequence[Atoms],
    settings: RelaxSettings | None = None,
    *,
    batch_size: int = DEFAULT_BATCH,
    model: BatchModel | None = None,
    fire: FireParameters | None = None,
) -> list[Result]:
    """Relax copies of ``structures`` together, at most ``batch_size`` per model call; one
    :class:`Result` each, in order. Never raises for a failed relaxation (failures are statuses).

    ``model``: the batched model to use (default: the settings' method's, on a GPU where torch sees
    one). ``wall_seconds`` of a result is the time from the batch's start until it left the batch;
    ``max_seconds`` counts from the batch's start too.
    """
    settings = (settings or RelaxSettings()).validate()
    if model is None and (settings.stages or not can_batch(settings.method)):
        return [relax_structure(atoms, settings) for atoms in structures]
    if settings.stages:
        raise ValueError("a batched relaxation runs one stage: relax staged protocols with relax_structure")
    model = model or batch_model(settings.method)
    assert model is not None
    caps = capabilities(settings.method)
    parameters = fire or FireParameters()
    evaluator = BatchEvaluator(model, batch_size)
    start = time.perf_counter()
    runs = [
        _Run(
            Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions()),
            Fire(len(atoms), settings.maxstep, parameters),
        )
        for atoms in structures
    ]
    active = list(range(len(runs)))
    while active:
        evaluations = evaluator([runs[i].work for i in active])
        still = []
        for i, evaluation in zip(active, evaluations, strict=True):
            run = runs[i]
            run.force_calls += 1
            if not evaluation.ok:
                _leave(run, Status.ERROR, evaluation.error, start)
                continue
            run.last = evaluation
            assert evaluation.forces is not None
            if caps.can_collapse and run.steps and run.steps % settings.check_every == 0:
                verdict = check_geometry(run.work)
                run.below_floor = run.below_floor + 1 if verdict.status == Status.COLLAPSED else 0
                if run.below_floor >= COLLAPSE_PERSISTENCE or shortest_contact(run.work)[0] < HARD_FLOOR:
                    _leave(run, Status.COLLAPSED, verdict.message or "contact below the hard floor", start)
                    continue
            largest = float(np.sqrt((evaluation.forces**2).sum(axis=1)).max())
            if largest < settings.fmax:
                _leave(run, Status.RELAXED, "", start)
                continue
            if run.steps >= settings.steps:
                _leave(run, Status.MAX_STEPS, f"step limit {settings.steps} reached", start)
                continue
            if settings.max_seconds and time.perf_counter() - start > settings.max_seconds:
                _leave(run, Status.MAX_STEPS, f"wall-time limit {settings.max_seconds:g} s reached", start)
                continue
            run.work.positions = run.fire.step(run.work.positions, evaluation.forces)
            run.steps += 1
            still.append(i)
        active = still
    return [_result(atoms, run, settings, evaluator) for atoms, run in zip(structures, runs, strict=True)]


def _result(atoms: Atoms, run: _Run, settings: RelaxSettings, evaluator: BatchEvaluator) -> Result:
    """The stored record of one relaxation, as ``relax_structure`` fills it."""
    used = replace(settings, optimizer="FIRE")
    result = Result(
        symbols=tuple(run.work.get_chemical_symbols()),
        positions=run.work.get_positions(),
        status=Status.ERROR,
        method=settings.method,
        engine_version=engine_version(settings.method),
        protocol=settings.describe(),
        airss_msc_version=__version__,
        provenance=dict(atoms.info),
        initial_positions=atoms.get_positions(),
        settings=used.as_dict(),
        steps=run.steps,
        force_calls=run.force_calls,
        optimizer=f"FIRE (batched, up to {evaluator.size} per call on {evaluator.model.device})",
    )
    status, message = run.status, run.message
    try:
        if status in (Status.RELAXED, Status.MAX_STEPS):
            verdict = check_geometry(run.work)
            if not verdict.ok:
                status, message = verdict.status, verdict.message
        if status != Status.ERROR and run.last.ok and run.last.forces is not None:
            result.energy = run.last.energy
            result.gap = run.last.gap
            result.fmax = float(np.sqrt((run.last.forces**2).sum(axis=1)).max())
            result.with_single_point(settings.method, result.energy, result.gap)
            result.anion_bonds = anion_bonds(run.work)
        if status == Status.RELAXED:
            for method in settings.single_points:
                sp = single_point(run.work, method, settings.electronic_temperature)
                result.with_single_point(method, sp.energy, sp.gap)
                if sp.message:
                    message = "; ".join(filter(None, [message, f"{method}: {sp.message}"]))
    except Exception as exc:  # a job must report, not crash the search
        status, message = Status.ERROR, f"{type(exc).__name__}: {exc}"
    result.status, result.message = Status.parse(status), message
    result.wall_seconds = run.seconds
    return result


__all__ = ["DEFAULT_BATCH", "BatchEvaluator", "BatchFallbackWarning", "FireParameters", "relax_batch"]
