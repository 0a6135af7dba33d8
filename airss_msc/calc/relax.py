"""The relaxation job: one structure in, a plain summary dict out.

``relax_structure(atoms, settings)`` knows nothing of MPI, files or databases
(as quacc jobs): the same function runs serially, in an MPI worker or under
another executor. Its summary holds only picklable built-in types and NumPy
arrays, never a calculator.

Statuses: ``relaxed`` (converged and physically sane), ``max_steps`` (step or
wall-time limit reached, sane), ``collapsed`` / ``fragmented`` (sanity guard
tripped, see :mod:`airss_msc.calc.sanity`), ``scf_failed`` (SCF did not converge even
after the recovery ladder) and ``error`` (anything else, with its message).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
from ase import Atoms
from ase.optimize import BFGS, FIRE, LBFGS, LBFGSLineSearch
from ase.optimize.precon import PreconLBFGS
from ase.parallel import DummyMPI

from airss_msc import __version__
from airss_msc.calc.engines import SCFError, engine_version, make_calculator, parse_method
from airss_msc.errors import InputError
from airss_msc.calc.sanity import DISTANCE_FLOOR, anion_bonds, check_geometry, shortest_contact

#: Consecutive guard checks below the distance floor that count as a collapse.
COLLAPSE_PERSISTENCE = 3
#: Fraction of the covalent radii sum that is a collapse at once (no transient goes there).
HARD_FLOOR = 0.65

#: PreconLBFGS (LBFGS with an Armijo line search; small clusters get no
#: preconditioner) is the default: every step is downhill, and it needs the
#: fewest force calls (Cd13Se13: 10/10 relaxed, median 90 calls vs 118 for
#: `xtb --opt` and ~200 for BFGS; benchmarks/default_protocol.py). ASE's plain
#: LBFGS stores negative-curvature pairs from random starts and walks uphill
#: until atoms fly off (13/24 small starts relaxed).
OPTIMIZERS = {"PreconLBFGS": PreconLBFGS, "BFGS": BFGS, "LBFGS": LBFGS,
              "LBFGSLineSearch": LBFGSLineSearch, "FIRE": FIRE}

STATUSES = ("relaxed", "max_steps", "collapsed", "fragmented", "scf_failed", "error")

#: SCF recovery ladder: each rung's parameters replace the defaults on a retry
#: from the last good geometry. Higher electronic temperature smooths level
#: crossings; stronger damping and more iterations tame charge sloshing.
SCF_LADDER = (
    {},
    {"electronic_temperature": 1000.0, "mixer_damping": 0.2, "max_iterations": 500},
    {"electronic_temperature": 3000.0, "mixer_damping": 0.1, "max_iterations": 1000},
)


@dataclass(frozen=True)
class RelaxSettings:
    """How one structure is relaxed.

    method: ``GFN1-xTB`` | ``GFN2-xTB`` | ``tblite:...`` | ``xtb:...`` | ``lj``.
    fmax: force convergence, eV/Angstrom (epsilon/sigma for LJ).
    steps: optimizer step limit. max_seconds: wall-time limit per structure (None: none).
    optimizer: ``PreconLBFGS`` | ``BFGS`` | ``LBFGS`` | ``LBFGSLineSearch`` | ``FIRE``.
    maxstep: largest atom move per step, Angstrom.
    electronic_temperature: K, for the first SCF rung.
    check_every: run the sanity guard every this many steps (collapse is caught early).
    stages: a staged protocol, e.g. a hot GFN1-xTB pre-relaxation then a finish:
        ``({"electronic_temperature": 3000, "fmax": 0.3}, {"fmax": 0.05})``;
        each dict overrides these settings for one stage.
    """

    method: str = "GFN1-xTB"
    fmax: float = 0.05
    steps: int = 500
    max_seconds: float | None = None
    optimizer: str = "PreconLBFGS"
    maxstep: float = 0.2
    electronic_temperature: float = 300.0
    check_every: int = 5
    stages: tuple = ()

    def protocol(self) -> tuple["RelaxSettings", ...]:
        """The stages to run: each ``stages`` entry (a dict of overrides) on top of
        these settings, or these settings alone."""
        if not self.stages:
            return (self,)
        return tuple(replace(self, stages=(), **dict(stage)) for stage in self.stages)

    def describe(self) -> str:
        return f"{self.method} T_el={self.electronic_temperature:g}K fmax={self.fmax:g} steps={self.steps}"

    def validate(self) -> "RelaxSettings":
        if self.stages:
            known = {f.name for f in fields(self)} - {"stages"}
            for k, stage in enumerate(self.stages, 1):
                if not isinstance(stage, dict):
                    raise InputError(f"relax stage {k} must be a table of settings")
                bad = set(stage) - known
                if bad:
                    raise InputError(f"unknown key(s) {', '.join(sorted(bad))} in relax stage {k}")
            for stage in self.protocol():
                stage.validate()
            return self
        parse_method(self.method)
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}: choose {', '.join(OPTIMIZERS)}")
        if not (self.fmax > 0):
            raise InputError(f"fmax must be positive, got {self.fmax!r}")
        if not (isinstance(self.steps, int) and self.steps >= 0):
            raise InputError(f"steps must be a non-negative integer, got {self.steps!r}")
        if self.max_seconds is not None and not (self.max_seconds > 0):
            raise InputError(f"max_seconds must be positive, got {self.max_seconds!r}")
        return self

    def as_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def _quiet():
    """Keep optimizer chatter out of search logs: PreconLBFGS warns that small
    clusters get no preconditioner, and its Armijo line search logs an error each
    time it resets (which it recovers from)."""
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

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _counting(calc):
    """Wrap ``calc.calculate`` to count real force evaluations."""
    count = {"n": 0}
    original = calc.calculate

    def calculate(*args, **kwargs):
        count["n"] += 1
        return original(*args, **kwargs)

    calc.calculate = calculate
    return count


@dataclass
class _StageOutcome:
    status: str
    message: str
    steps: int
    force_calls: int
    scf_retries: int


def _run_stage(work: Atoms, settings: RelaxSettings, start: float) -> _StageOutcome:
    """One optimizer stage on ``work`` (positions updated in place, calculator left on).

    SCF failures climb :data:`SCF_LADDER` and restart from the last geometry
    whose SCF converged; the sanity guard and wall-time limit stop it early.
    """
    spec = parse_method(settings.method)
    steps_done = force_calls = rung = below_floor = 0
    last_good = work.positions.copy()
    while True:
        params = {"electronic_temperature": settings.electronic_temperature, **SCF_LADDER[rung]}
        calc = make_calculator(spec, **({} if spec.is_lj else params))
        counter = _counting(calc)
        work.calc = calc
        # A dummy communicator: ASE's default (COMM_WORLD once mpi4py is
        # imported) makes optimizers in MPI workers wait on broadcasts.
        with _quiet():
            optimizer = OPTIMIZERS[settings.optimizer](work, logfile=None, maxstep=settings.maxstep, comm=DummyMPI())

        def guard(opt=optimizer):
            nonlocal last_good, below_floor
            # Lennard-Jones cannot collapse: its first steps may dip below the floor.
            if not spec.is_lj and opt.nsteps % settings.check_every == 0:
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
        try:
            with _quiet():
                converged = optimizer.run(fmax=settings.fmax, steps=max(settings.steps - steps_done, 0))
            steps_done += optimizer.nsteps
            force_calls += counter["n"]
            if converged:
                return _StageOutcome("relaxed", "", steps_done, force_calls, rung)
            return _StageOutcome("max_steps", f"step limit {settings.steps} reached", steps_done, force_calls, rung)
        except SCFError as exc:
            steps_done += optimizer.nsteps
            force_calls += counter["n"]
            rung += 1
            if rung >= len(SCF_LADDER):
                return _StageOutcome("scf_failed", f"{exc} (after {rung - 1} recovery attempts)",
                                     steps_done, force_calls, rung - 1)
            # Restart from the last geometry whose SCF converged.
            work.positions = last_good
        except _Stop as stop:
            steps_done += optimizer.nsteps
            force_calls += counter["n"]
            return _StageOutcome(stop.status, stop.message, steps_done, force_calls, rung)


def relax_structure(atoms: Atoms, settings: RelaxSettings | None = None) -> dict:
    """Relax a copy of ``atoms`` through the protocol's stages and summarise.

    Returns a dict with ``status``, ``message``, ``symbols``, ``positions`` (final,
    Angstrom), ``energy`` (eV), ``energy_per_atom`` (eV), ``gap`` (HOMO-LUMO, eV or
    None), ``fmax`` (final max force, eV/Angstrom), ``steps``, ``force_calls``,
    ``scf_retries`` (summed over stages), ``wall_seconds``, ``method`` (of the
    last stage run), ``protocol``, ``engine_version``, ``airss_msc_version`` and
    ``info`` (the input structure's info). Never raises for a failed
    relaxation: failures become statuses. A stage that ends ``relaxed`` or
    ``max_steps`` hands its geometry to the next; any other status ends the run.
    """
    settings = (settings or RelaxSettings()).validate()
    stages = settings.protocol()
    work = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions())
    start = time.perf_counter()
    summary = {
        "status": "error", "message": "", "energy": None, "energy_per_atom": None,
        "gap": None, "fmax": None, "steps": 0, "force_calls": 0, "scf_retries": 0,
        "method": str(parse_method(stages[-1].method)),
        "engine_version": engine_version(parse_method(stages[-1].method)),
        "protocol": " -> ".join(stage.describe() for stage in stages),
        "airss_msc_version": __version__, "info": dict(atoms.info),
        "symbols": work.get_chemical_symbols(),
        "initial_positions": atoms.get_positions(),
        "settings": settings.as_dict(),
    }
    status, message = "error", ""
    try:
        for k, stage in enumerate(stages):
            out = _run_stage(work, stage, start)
            summary["steps"] += out.steps
            summary["force_calls"] += out.force_calls
            summary["scf_retries"] += out.scf_retries
            spec = parse_method(stage.method)
            summary["method"], summary["engine_version"] = str(spec), engine_version(spec)
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
            if out.scf_retries and not spec.is_lj:
                # The ladder ran the last stage's SCF hotter: report the energy at that
                # stage's own method and electronic temperature, comparable with other rows.
                work.calc = make_calculator(spec, electronic_temperature=stage.electronic_temperature)
            try:
                energy = float(work.get_potential_energy())
                forces = work.get_forces()
                summary["energy"] = energy
                summary["energy_per_atom"] = energy / len(work)
                summary["fmax"] = float(np.sqrt((forces ** 2).sum(axis=1)).max())
                gap = work.calc.results.get("homo_lumo_gap")
                summary["gap"] = None if gap is None or not np.isfinite(gap) else float(gap)
                summary["anion_bonds"] = anion_bonds(work)
            except SCFError as exc:
                if status in ("relaxed", "max_steps"):
                    status, message = "scf_failed", f"final single point: {exc}"
    except Exception as exc:  # a job must report, not crash the search
        status, message = "error", f"{type(exc).__name__}: {exc}"
    summary.update(status=status, message=message, positions=work.get_positions(),
                   wall_seconds=time.perf_counter() - start)
    work.calc = None
    return summary


def summary_to_atoms(summary: dict) -> Atoms:
    """The relaxed structure of a summary as :class:`ase.Atoms` (no calculator)."""
    return Atoms(summary["symbols"], positions=summary["positions"])


__all__ = ["RelaxSettings", "relax_structure", "summary_to_atoms", "STATUSES", "DISTANCE_FLOOR"]
