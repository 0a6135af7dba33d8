"""The relaxation job: one structure in, one :class:`~airss_msc.results.record.Result` out.

``relax_structure(atoms, settings)`` knows nothing of MPI, files or databases
(as quacc jobs): the same function runs serially, in an MPI worker or under
another executor. It asks the engine registry for calculators and
capabilities and never names an engine itself.

A relaxation runs the protocol's stages in order. Within a stage, an SCF
failure climbs the engine's recovery ladder from the last geometry whose SCF
converged; an optimizer whose line search gives up hands over to the fallback
optimizer from the current geometry (the result's ``optimizer`` says so); the
sanity guard stops a collapse early on engines that can collapse. After the
last stage the structure is checked once more and scored with every method in
``single_points`` (energies side by side on the record).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.optimize import BFGS, FIRE, LBFGS, LBFGSLineSearch
from ase.optimize.precon import PreconLBFGS
from ase.parallel import DummyMPI

from airss_msc import __version__
from airss_msc.calc.engines import (
    Role,
    SCFError,
    capabilities,
    check_available,
    comparable_rung,
    default_method,
    engine_version,
    make_calculator,
    parse_method,
    scf_ladder,
)
from airss_msc.calc.sanity import check_geometry
from airss_msc.calc.single_point import single_point
from airss_msc.errors import InputError
from airss_msc.generation.geometry import anion_bonds, shortest_contact
from airss_msc.results.record import Result, Status
from airss_msc.settings import documented, read_table, setting

#: Consecutive guard checks below the distance floor that count as a collapse.
COLLAPSE_PERSISTENCE = 3
#: Fraction of the covalent radii sum that is a collapse at once (no transient goes there).
HARD_FLOOR = 0.65


class CurvatureSafeLBFGS(PreconLBFGS):
    """ASE's PreconLBFGS that keeps only curvature pairs with s.y > 0 in its memory.

    The stock update stores rho = 1/(s.y) unconditionally. From random starts s.y
    can be negative (the next direction is not downhill and, twice in a row, the
    run aborts), and with float32 ML potentials a tiny Armijo step can return
    identical forces, s.y = 0, rho = inf: the direction becomes NaN and ASE's
    Armijo line search loops forever (seen with CHGNet r2scan). Skipping those
    pairs is the standard L-BFGS safeguard (Nocedal and Wright, sec. 7.2).

    No preconditioner at any size: ASE's ``precon='auto'`` switches the Exp preconditioner on
    at 100 atoms, and Exp estimates its length scale from the cell, which a cluster has not
    (a fully capped (ZnSe)13, 117 atoms, failed at step 0 with "increased r_cut to twice system
    extent"). Below 100 atoms 'auto' already meant none, so the measured protocol is unchanged.
    """

    def __init__(self, atoms: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("precon", None)
        super().__init__(atoms, *args, **kwargs)

    def update(self, r: np.ndarray, f: np.ndarray, r0: np.ndarray, f0: np.ndarray) -> None:
        if not self._just_reset_hessian:
            s0 = r.reshape(-1) - r0.reshape(-1)
            y0 = f0.reshape(-1) - f.reshape(-1)  # gradient difference (minus the forces)
            sy = float(np.dot(y0, s0))
            if np.isfinite(sy) and sy > 1e-10 * float(np.linalg.norm(s0) * np.linalg.norm(y0)) and sy > 0.0:
                self.s.append(s0)
                self.y.append(y0)
                self.rho.append(1.0 / sy)
        self._just_reset_hessian = False
        if len(self.y) > self.memory:
            self.s.pop(0)
            self.y.pop(0)
            self.rho.pop(0)


#: PreconLBFGS (LBFGS with an Armijo line search, curvature-safe; small clusters get
#: no preconditioner) is the default: every step is downhill, and it needs the
#: fewest force calls (Cd13Se13 with GFN1-xTB: 10/10 relaxed, median 90 calls
#: vs 118 for `xtb --opt` and ~200 for BFGS; benchmarks/default_protocol.py).
#: ASE's plain LBFGS stores negative-curvature pairs from random starts and
#: walks uphill until atoms fly off (13/24 small starts relaxed).
OPTIMIZERS = {
    "PreconLBFGS": CurvatureSafeLBFGS,
    "BFGS": BFGS,
    "LBFGS": LBFGS,
    "LBFGSLineSearch": LBFGSLineSearch,
    "FIRE": FIRE,
}

#: Force calls allowed per optimizer step on average before a stage is stopped: a
#: line search that never ends must not hold an MPI worker forever.
FORCE_CALLS_PER_STEP = 4

#: Default geometry engine: the registry's (CHGNet 0.3.0 relaxes every random Cd13Se13 start
#: without collapse; README "Which energy model").
DEFAULT_METHOD = default_method(Role.GEOMETRY)


def _read_stages(value: object, section: str) -> tuple[dict[str, Any], ...]:
    """``[[relax.stage]]`` tables: each overrides the settings above it for one stage."""
    if not isinstance(value, list):
        raise TypeError(value)
    return tuple(
        read_table(RelaxSettings, table, f"{section}.stage {k}", exclude=_NOT_PER_STAGE)
        for k, table in enumerate(value, 1)
    )


#: Settings of the whole protocol, not of one stage.
_NOT_PER_STAGE = ("stages", "single_points")


@documented
@dataclass(frozen=True)
class RelaxSettings:
    """How one structure is relaxed (the ``[relax]`` table); method names are stored in canonical form."""

    method: str = setting(
        DEFAULT_METHOD,
        help="the method that relaxes: chgnet | sevennet | GFN1-xTB | "
        "pyscf:PBE/def2-SVP | lj ... ('airss-msc methods')",
    )
    fmax: float = setting(0.05, help="force convergence", unit="eV/Angstrom (epsilon/sigma for LJ)")
    steps: int = setting(500, help="optimizer step limit per structure")
    max_seconds: float | None = setting(None, help="wall-time limit per structure", unit="s")
    optimizer: str = setting("PreconLBFGS", help=" | ".join(OPTIMIZERS))
    fallback_optimizer: str = setting(
        "BFGS",
        help="takes over from the current geometry when the optimizer's "
        'line search gives up ("": stop with an error instead)',
    )
    maxstep: float = setting(0.2, help="largest atom move per step", unit="Angstrom")
    electronic_temperature: float = setting(300.0, help="electronic temperature of the first SCF rung (xTB)", unit="K")
    check_every: int = setting(5, help="run the collapse guard every this many steps")
    single_points: tuple[str, ...] = setting((), help="methods scored on the final geometry, stored beside the energy")
    stages: tuple = setting(
        (),
        toml="stage",
        parse=_read_stages,
        expects="[[relax.stage]] tables",
        help="a staged protocol: each [[relax.stage]] table overrides the keys above "
        "for one stage, e.g. a coarse chgnet stage at fmax 0.1 before the method",
        shown="one stage",
    )

    def protocol(self) -> tuple[RelaxSettings, ...]:
        """The stages to run: each ``stages`` entry (a dict of overrides) on top of
        these settings, or these settings alone."""
        if not self.stages:
            return (self,)
        return tuple(replace(self, stages=(), **dict(stage)) for stage in self.stages)

    def describe(self) -> str:
        return f"{self.method} fmax={self.fmax:g} steps={self.steps}"

    def validate(self) -> RelaxSettings:
        """Check every value and return the settings with method names in canonical form."""
        if self.stages:
            known = {f.name for f in fields(self)} - set(_NOT_PER_STAGE)
            for k, stage in enumerate(self.stages, 1):
                if not isinstance(stage, dict):
                    raise InputError(f"relax stage {k} must be a table of settings")
                bad = set(stage) - known
                if bad:
                    raise InputError(f"unknown key(s) {', '.join(sorted(bad))} in relax stage {k}")
            stages = tuple(
                {**stage, "method": str(parse_method(stage.get("method", self.method)))} for stage in self.stages
            )
            out = replace(
                self,
                method=str(parse_method(self.method)),
                stages=stages,
                single_points=tuple(str(parse_method(m)) for m in self.single_points),
            )
            for stage in out.protocol():
                replace(stage, single_points=()).validate()
            return out
        method = parse_method(self.method)
        if not capabilities(method).gradients:
            raise InputError(f"method {method} gives no forces: it can score, not relax")
        for name in (self.optimizer, self.fallback_optimizer):
            if name and name not in OPTIMIZERS:
                raise InputError(f"unknown optimizer {name!r}: choose {', '.join(OPTIMIZERS)}")
        if not (self.fmax > 0):
            raise InputError(f"fmax must be positive, got {self.fmax!r}")
        if not (isinstance(self.steps, int) and self.steps >= 0):
            raise InputError(f"steps must be a non-negative integer, got {self.steps!r}")
        if self.max_seconds is not None and not (self.max_seconds > 0):
            raise InputError(f"max_seconds must be positive, got {self.max_seconds!r}")
        if not (self.maxstep > 0):
            raise InputError(f"maxstep must be positive, got {self.maxstep!r}")
        return replace(self, method=str(method), single_points=tuple(str(parse_method(m)) for m in self.single_points))

    def check_engines(self) -> None:
        """Fail early, with an install hint, if an engine the protocol needs is missing."""
        for stage in self.protocol():
            check_available(stage.method)
        for method in self.single_points:
            check_available(method)

    def as_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep optimizer chatter out of search logs: PreconLBFGS's Armijo line search logs an
    error each time it resets (which it recovers from)."""
    linesearch = logging.getLogger("ase.utils.linesearcharmijo")
    level = linesearch.level
    linesearch.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        linesearch.setLevel(level)


class _Stop(Exception):
    """Raised from the optimizer loop to end a relaxation early."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Counter:
    """Wraps ``calc.calculate`` to count real force evaluations, enforce a budget of them
    and remember SCF failures (line searches swallow the calculator's exceptions)."""

    def __init__(self, calc: Calculator, budget: int) -> None:
        self.n = 0
        self.scf_error: SCFError | None = None
        original = calc.calculate

        def calculate(*args: Any, **kwargs: Any) -> Any:
            self.n += 1
            if self.n > budget:
                raise _Stop("max_steps", f"force-call budget {budget} reached")
            try:
                out = original(*args, **kwargs)
            except SCFError as exc:
                self.scf_error = exc
                raise
            self.scf_error = None
            return out

        calc.calculate = calculate  # type: ignore[method-assign]  # this instance only: counts its calls


def _line_search_failed(exc: Exception) -> bool:
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, ValueError)) and ("linesearch" in text or "line search" in text)


@dataclass
class _StageOutcome:
    status: str
    message: str
    steps: int
    force_calls: int
    scf_retries: int
    optimizer: str = ""
    rung: int = 0


def _run_stage(work: Atoms, settings: RelaxSettings, start: float) -> _StageOutcome:
    """One stage on ``work`` (positions updated in place, the calculator left on)."""
    method = parse_method(settings.method)
    caps = capabilities(method)
    ladder = scf_ladder(method, settings.electronic_temperature)
    steps_done = force_calls = rung = below_floor = 0
    optimizer_name = settings.optimizer
    used = [optimizer_name]
    last_good = work.positions.copy()
    while True:
        calc = make_calculator(method, **ladder[rung])
        counter = _Counter(calc, FORCE_CALLS_PER_STEP * max(settings.steps - steps_done, 1) + 20)
        work.calc = calc
        # A dummy communicator: ASE's default (COMM_WORLD once mpi4py is
        # imported) makes optimizers in MPI workers wait on broadcasts.
        with _quiet():
            optimizer = OPTIMIZERS[optimizer_name](work, logfile=None, maxstep=settings.maxstep, comm=DummyMPI())

        def guard(opt: Any = optimizer) -> None:
            nonlocal last_good, below_floor
            if caps.can_collapse and opt.nsteps % settings.check_every == 0:
                verdict = check_geometry(work)
                # A random start may brush past the floor for a step or two;
                # a collapse persists (or goes deep at once).
                below_floor = below_floor + 1 if verdict.status == "collapsed" else 0
                if below_floor >= COLLAPSE_PERSISTENCE or shortest_contact(work)[0] < HARD_FLOOR:
                    raise _Stop("collapsed", verdict.message or "contact below the hard floor")
            last_good = work.positions.copy()
            if settings.max_seconds and time.perf_counter() - start > settings.max_seconds:
                raise _Stop("max_steps", f"wall-time limit {settings.max_seconds:g} s reached")

        optimizer.attach(guard, interval=1)
        done = " -> ".join(used)
        try:
            try:
                with _quiet():
                    converged = optimizer.run(fmax=settings.fmax, steps=max(settings.steps - steps_done, 0))
            except (RuntimeError, ValueError) as exc:
                if isinstance(exc, SCFError) or not _line_search_failed(exc):
                    raise
                if counter.scf_error is not None:
                    raise counter.scf_error from exc
                steps_done += optimizer.nsteps
                force_calls += counter.n
                fallback = settings.fallback_optimizer
                if not fallback or fallback == optimizer_name:
                    return _StageOutcome("error", f"{optimizer_name}: {exc}", steps_done, force_calls, rung, done, rung)
                # Go on from the current geometry with an optimizer that needs no line search.
                optimizer_name = fallback
                used.append(f"{fallback} (line search failed at step {steps_done})")
                continue
            steps_done += optimizer.nsteps
            force_calls += counter.n
            if converged:
                return _StageOutcome("relaxed", "", steps_done, force_calls, rung, done, rung)
            return _StageOutcome(
                "max_steps", f"step limit {settings.steps} reached", steps_done, force_calls, rung, done, rung
            )
        except SCFError as exc:
            steps_done += optimizer.nsteps
            force_calls += counter.n
            rung += 1
            if rung >= len(ladder):
                return _StageOutcome(
                    "scf_failed",
                    f"{exc} (after {rung - 1} recovery attempts)",
                    steps_done,
                    force_calls,
                    rung - 1,
                    done,
                    rung - 1,
                )
            # Restart from the last geometry whose SCF converged.
            work.positions = last_good
        except _Stop as stop:
            steps_done += optimizer.nsteps
            force_calls += counter.n
            return _StageOutcome(stop.status, stop.message, steps_done, force_calls, rung, done, rung)


def _final_energy(work: Atoms, stage: RelaxSettings, out: _StageOutcome) -> tuple[float, float | None, float]:
    """(energy eV, gap eV or None, max force eV/A) of the final geometry by the stage that ran.

    After SCF retries the calculator on ``work`` ran a hotter or damped rung: the
    energy is recomputed with the stage's own first rung so rows stay comparable.
    """
    if out.rung:
        ladder = scf_ladder(stage.method, stage.electronic_temperature)
        work.calc = make_calculator(
            stage.method, **comparable_rung(stage.method, ladder[out.rung], stage.electronic_temperature)
        )
    energy = float(work.get_potential_energy())
    forces = work.get_forces()
    gap = work.calc.results.get("homo_lumo_gap")
    gap = None if gap is None or not np.isfinite(gap) else float(gap)
    return energy, gap, float(np.sqrt((forces**2).sum(axis=1)).max())


def relax_structure(atoms: Atoms, settings: RelaxSettings | None = None) -> Result:
    """Relax a copy of ``atoms`` through the protocol's stages; never raises for a failed
    relaxation (failures become statuses). The input is not modified.

    A stage that ends ``relaxed`` or ``max_steps`` hands its geometry to the next;
    any other status ends the run. ``atoms.info`` becomes the result's provenance.
    """
    settings = (settings or RelaxSettings()).validate()
    stages = settings.protocol()
    work = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions())
    start = time.perf_counter()
    result = Result(
        symbols=tuple(work.get_chemical_symbols()),
        positions=work.get_positions(),
        status=Status.ERROR,
        method=stages[-1].method,
        engine_version=engine_version(stages[-1].method),
        protocol=" -> ".join(stage.describe() for stage in stages),
        airss_msc_version=__version__,
        provenance=dict(atoms.info),
        initial_positions=atoms.get_positions(),
        settings=settings.as_dict(),
    )
    status, message, optimizers = "error", "", []
    try:
        for k, stage in enumerate(stages):
            out = _run_stage(work, stage, start)
            result.steps += out.steps
            result.force_calls += out.force_calls
            result.scf_retries += out.scf_retries
            result.method, result.engine_version = stage.method, engine_version(stage.method)
            optimizers.append(out.optimizer)
            status, message = out.status, out.message
            if len(stages) > 1 and message:
                message = f"stage {k + 1}/{len(stages)}: {message}"
            if status not in ("relaxed", "max_steps"):
                break
        if status in ("relaxed", "max_steps"):
            verdict = check_geometry(work)
            if not verdict.ok:
                status, message = verdict.status, verdict.message
        if status in ("relaxed", "max_steps", "collapsed", "fragmented") and work.calc is not None:
            try:
                result.energy, result.gap, result.fmax = _final_energy(work, stage, out)
                result.with_single_point(stage.method, result.energy, result.gap)
                result.anion_bonds = anion_bonds(work)
            except SCFError as exc:
                if status in ("relaxed", "max_steps"):
                    status, message = "scf_failed", f"final single point: {exc}"
        if status == "relaxed":
            for method in settings.single_points:
                sp = single_point(work, method, settings.electronic_temperature)
                result.with_single_point(method, sp.energy, sp.gap)
                if sp.message:
                    message = "; ".join(filter(None, [message, f"{method}: {sp.message}"]))
    except Exception as exc:  # a job must report, not crash the search
        status, message = "error", f"{type(exc).__name__}: {exc}"
    result.status, result.message = Status.parse(status), message
    result.positions = work.get_positions()
    result.optimizer = "; ".join(optimizers)
    result.wall_seconds = time.perf_counter() - start
    work.calc = None
    return result


#: A refinement's relaxation (``refine --relax``, a study's refine step): the reference method,
#: from a geometry already relaxed by the search, so fewer steps: PBE/def2-SVP took 3-6 from
#: the CHGNet minima (BENCHMARKS.md "PBE-relaxed structures vs their CHGNet starting geometries")
#: and each step is a DFT gradient; 100 stops a run that wanders instead of refining.
REFINE_RELAX = RelaxSettings(method=default_method(Role.REFINE), steps=100)

__all__ = ["DEFAULT_METHOD", "OPTIMIZERS", "REFINE_RELAX", "RelaxSettings", "relax_structure"]
