"""Shared machinery of the search benchmarks: seeded runs to a target, peers, statistics.

``search_efficiency.py`` (Lennard-Jones) and ``search_landscape.py`` (Cd/Zn/Se/Te
clusters on an ML engine) both use it. One *run* is an independent seeded
search, stopped at its first *hit* (a relaxed minimum matching the target) or
when its force-call budget or its relaxation cap is spent:

- airss-msc strategies run through the real :func:`airss_msc.search.candidates.run_search`
  into a fresh database (an executor tallies every relaxation and sets the
  search's stop flag);
- peers run on the same calculator, with the same local optimizer (airss-msc's
  curvature-safe PreconLBFGS, maxstep 0.2, the same fmax and step cap) and the
  same force-call budget: ASE ``BasinHopping``, ASE-GA (``ase_ga``), AGOX random
  search, AGOX basin hopping and AGOX GOFEE. Peers are optional imports: a peer
  that is not installed or fails is reported, not fatal.

Runs are judged on a *judging energy* (``System.judge``): for the real clusters the
validated ranking energy (a SevenNet-0 single point on each relaxed minimum), since the
geometry engine's own energy does not rank isomers; for Lennard-Jones the energy itself.
airss-msc strategies also *steer* by it (``rank_energy``); the peers steer by their
calculator's energy, as they are published, and each of their minima is scored for the tally.

Force calls are calculator evaluations (airss-msc counts them in the relaxation;
peers through a counting wrapper). Every finished run is one JSON line in a
results file, keyed by case, method, settings and seed; a rerun skips those
already there, so the benchmarks resume after an interruption.
CPU time (``time.process_time``) is recorded beside wall time: the machine is shared.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import contextlib  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.optimize import BFGS  # noqa: E402
from ase.parallel import DummyMPI  # noqa: E402

from airss_msc.analysis.duplicates import same_structure  # noqa: E402
from airss_msc.calc.engines import make_calculator  # noqa: E402
from airss_msc.calc.relax import OPTIMIZERS  # noqa: E402
from airss_msc.calc.sanity import check_geometry  # noqa: E402
from airss_msc.generation.generate import GeneratorSettings, generate_cluster, prepare  # noqa: E402
from airss_msc.results.store import ResultsDB  # noqa: E402
from airss_msc.search.candidates import run_search  # noqa: E402
from airss_msc.search.config import config_from_dict  # noqa: E402
from airss_msc.search.farm import STOP_SIGNALS, InProcessExecutor, StopFlag  # noqa: E402
from benchmarks.jsonl import append_jsonl, read_jsonl  # noqa: E402
from benchmarks.provenance import git_commit, package_version  # noqa: E402,F401 (the search benchmarks import git_commit from here)

#: The stop reasons a signal gives (the farm's StopFlag holds the signal's name)
SIGNAL_NAMES = frozenset(s.name for s in STOP_SIGNALS)

# ---------------------------------------------------------------------------
# what a hit is


@dataclass
class Target:
    """The structure a run looks for.

    energy: reference energy (epsilon or eV). tol: a minimum at or below
    ``energy + tol`` is a hit (LJ: 1e-3 epsilon; clusters: 1 meV/atom).
    atoms: reference geometry (species-aware :func:`same_structure`, ``rmsd_tol``
    Angstrom): a minimum that is the same structure is a hit even if its energy
    is a little above the window (loosely converged); checked within ``window``.
    """

    energy: float
    tol: float
    atoms: Atoms | None = None
    rmsd_tol: float = 0.15
    window: float = 0.05

    def hit(self, symbols, positions, energy: float | None) -> bool:
        if energy is None or not np.isfinite(energy):
            return False
        if energy <= self.energy + self.tol:
            return True
        if self.atoms is None or energy > self.energy + self.window:
            return False
        return same_structure(self.atoms, Atoms(list(symbols), positions=positions), rmsd_tol=self.rmsd_tol)

    def same(self, symbols, positions) -> bool:
        """Whether a minimum is the reference structure itself."""
        return (
            self.atoms is not None
            and symbols is not None
            and positions is not None
            and same_structure(
                self.atoms, Atoms(list(symbols), positions=np.asarray(positions)), rmsd_tol=self.rmsd_tol
            )
        )

    def below(self, energy: float | None) -> bool:
        """A minimum clearly lower than the reference: the reference is not the lowest."""
        return energy is not None and energy < self.energy - self.tol


# ---------------------------------------------------------------------------
# one run: the tally every runner feeds


class _Finished(BaseException):
    """Ends a peer's loop at the hit or the budget (BaseException: peers catch Exception)."""


@dataclass
class Tally:
    """One run's bookkeeping; :meth:`relaxed` is called after every local minimisation."""

    target: Target | None
    budget: int | None  # force calls
    max_relaxations: int | None = None
    relaxations: int = 0
    force_calls: int = 0
    failed: int = 0
    hit_relaxations: int | None = None
    hit_force_calls: int | None = None
    below_reference: float | None = None
    best: float = math.inf
    best_symbols: list = field(default_factory=list)
    best_positions: list = field(default_factory=list)
    trace: list = field(default_factory=list)  # [force calls so far, energy or None] per relaxation
    note: str = ""
    #: real clusters: a minimum that fails airss-msc's sanity floors (check_geometry: collapsed or
    #: fragmented) counts as failed, as it does in airss-msc's own relaxations; the peers' minima get
    #: the same check (an ML potential can pull two anions to 0.3 A and call it a deep minimum)
    sanity: bool = False
    insane: int = 0
    #: the judging energy of a minimum, (symbols, positions) -> eV or None; None: the energy given
    scorer: Callable | None = None

    def relaxed(
        self,
        force_calls: int,
        energy: float | None,
        symbols=None,
        positions=None,
        ok: bool = True,
        counted: bool = True,
        judged: float | None = None,
    ) -> bool:
        """Record one minimisation (``force_calls`` it cost); returns whether the run is over.

        With a ``scorer`` the minimum is judged on its score (``judged`` when the caller has it
        already, e.g. the search's own ranking single point), not on ``energy``."""
        if counted:
            self.relaxations += 1
        self.force_calls += int(force_calls)
        if (
            ok
            and self.sanity
            and energy is not None
            and symbols is not None
            and positions is not None
            and not check_geometry(Atoms(list(symbols), positions=np.asarray(positions))).ok
        ):
            ok = False
            self.insane += 1
        if ok and energy is not None and self.scorer is not None and symbols is not None:
            energy = judged if judged is not None else self.scorer(symbols, positions)
        if not ok or energy is None or not np.isfinite(energy):
            self.failed += 1
            energy = None
        self.trace.append([self.force_calls, None if energy is None else round(float(energy), 6)])
        if energy is not None:
            if energy < self.best:
                self.best = float(energy)
                self.best_symbols = list(symbols) if symbols is not None else []
                self.best_positions = np.round(np.asarray(positions), 5).tolist() if positions is not None else []
            if self.target is not None:
                # a copy of the reference scored a little lower (single points scatter over copies of
                # one minimum) is not a lower structure
                if self.target.below(energy) and not self.target.same(symbols, positions):
                    self.below_reference = min(energy, self.below_reference or math.inf)
                if self.hit_relaxations is None and self.target.hit(symbols, positions, energy):
                    self.hit_relaxations, self.hit_force_calls = self.relaxations, self.force_calls
        return self.done

    @property
    def done(self) -> bool:
        return (
            self.hit_relaxations is not None
            or (self.budget is not None and self.force_calls >= self.budget)
            or (self.max_relaxations is not None and self.relaxations >= self.max_relaxations)
        )

    def record(self, **extra) -> dict:
        return {
            "relaxations": self.relaxations,
            "force_calls": self.force_calls,
            "failed": self.failed,
            "hit_relaxations": self.hit_relaxations,
            "hit_force_calls": self.hit_force_calls,
            "below_reference": self.below_reference,
            "insane": self.insane,
            "best": None if not np.isfinite(self.best) else self.best,
            "best_symbols": self.best_symbols,
            "best_positions": self.best_positions,
            "trace": self.trace,
            "note": self.note,
            **extra,
        }


@contextlib.contextmanager
def timed(out: dict):
    c0, t0 = time.process_time(), time.perf_counter()
    try:
        yield
    finally:
        out["cpu"] = round(time.process_time() - c0, 2)
        out["wall"] = round(time.perf_counter() - t0, 2)


# ---------------------------------------------------------------------------
# the results file (resume)


def settings_tag(settings) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]


class RunStore:
    """Finished runs, one JSON object a line; ``key`` identifies a run (case|method|tag|seed)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.runs: dict[str, dict] = {}
        for rec in read_jsonl(self.path):  # a killed run's cut line is skipped: it reruns
            self.runs[rec["key"]] = rec

    @staticmethod
    def key(case: str, method: str, tag: str, seed: int) -> str:
        return f"{case}|{method}|{tag}|{seed}"

    def get(self, key: str) -> dict | None:
        return self.runs.get(key)

    def add(self, rec: dict) -> None:
        self.runs[rec["key"]] = rec
        append_jsonl(self.path, rec)

    def select(self, case: str, method: str, tag: str | None = None) -> list[dict]:
        return sorted(
            (
                r
                for r in self.runs.values()
                if r["case"] == case and r["method"] == method and (tag is None or r["tag"] == tag)
            ),
            key=lambda r: r["seed"],
        )


# ---------------------------------------------------------------------------
# the system a run searches


@dataclass(frozen=True)
class System:
    """A cluster and how it is relaxed (lengths Angstrom or sigma, energies eV or epsilon).

    formula: airss-msc formula (``X13`` for LJ). peer_symbols: the atoms peers
    build (LJ: Ar stands in for X; the calculator ignores species).
    """

    name: str
    formula: str
    method: str
    fmax: float
    steps: int
    peer_formula: str
    lj: bool = False
    #: the judging (and airss-msc's steering) energy, a method name; None: the engine's own energy
    judge: str | None = None

    @property
    def natoms(self) -> int:
        return len(Atoms(self.peer_formula))

    def relax_table(self) -> dict:
        return {"method": self.method, "fmax": self.fmax, "steps": self.steps}

    def calculator(self):
        return make_calculator(self.method)

    def score(self, symbols, positions) -> float | None:
        """The judging energy of a minimum (eV; None when its single point fails)."""
        if self.judge is None:
            return None
        from airss_msc.calc.single_point import single_point

        sp = single_point(Atoms(list(symbols), positions=np.asarray(positions)), self.judge)
        return sp.energy

    def tally(self, target: Target | None, budget: int | None, max_relaxations: int | None = None) -> Tally:
        """A fresh run tally judged on this system's judging energy."""
        return Tally(
            target, budget, max_relaxations, sanity=not self.lj, scorer=self.score if self.judge is not None else None
        )

    def default_radius(self) -> float:
        return float(prepare(self.formula, GeneratorSettings())[2].extent)

    def start(self, seed: int) -> Atoms:
        """An airss-msc random start with the peer's symbols (the peers' first structure)."""
        atoms = generate_cluster(self.formula, seed, GeneratorSettings())
        symbols = atoms.get_chemical_symbols()
        if self.lj:
            symbols = ["Ar"] * len(atoms)
        return Atoms(symbols, positions=atoms.positions)


# ---------------------------------------------------------------------------
# airss-msc runs


class TallyExecutor(InProcessExecutor):
    """Runs each candidate at submission (the serial search) and feeds the tally;
    sets the search's stop flag when the run is over."""

    def __init__(self, tally: Tally, stop: StopFlag, judge: str | None = None):
        self.tally = tally
        self.stop = stop
        self.judge = judge

    def submit(self, fn, /, *args, **kwargs):
        future = super().submit(fn, *args, **kwargs)
        try:
            res = future.result()
        except Exception:
            self.tally.relaxed(0, None, ok=False)
        else:
            ok = res.status in ("relaxed", "max_steps") and res.energy is not None
            judged = res.energies.get(self.judge) if self.judge else None
            self.tally.relaxed(res.force_calls, res.energy, res.symbols, res.positions, ok=ok, judged=judged)
        if self.tally.done:
            self.stop.set("done")
        return future


def run_airss(
    system: System,
    strategy: dict,
    generate: dict,
    seed: int,
    tally: Tally,
    workdir: Path,
    keep_db: Path | None = None,
    fresh: bool = True,
) -> dict:
    """One airss-msc search (``strategy`` and ``generate`` are the config tables) into a fresh
    database (``fresh=False``: continue one that holds seed minima already)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = keep_db or workdir / f"run_{os.getpid()}.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    for p in (db, Path(str(db) + ".writer")):
        if fresh:
            p.unlink(missing_ok=True)
    cap = tally.max_relaxations or max(200, (tally.budget or 0) // 10)
    search = {
        "compositions": [system.formula],
        "candidates": int(cap),
        "seed": int(seed),
        "db": str(db),
        "name": "bench",
    }
    relax = system.relax_table()
    if system.judge is not None:  # the search steers by the judging energy, scored in the worker
        search["rank_energy"] = system.judge
        relax["single_points"] = [system.judge]
    config = config_from_dict(
        {"search": search, "generate": dict(generate), "relax": relax, "strategy": dict(strategy)}
    )
    stop = StopFlag()
    out: dict = {}
    with timed(out):
        run_search(
            config,
            executor=TallyExecutor(tally, stop, config.rank_energy),
            log=lambda s: None,
            stop=stop,
            progress_every=1e9,
        )
    if stop.reason in SIGNAL_NAMES:
        # stopped by a signal, not by its hit or budget: the run is unfinished and must not be stored as a
        # miss; KeyboardInterrupt passes run_method's handler for failed runs, so it reruns on resume
        raise KeyboardInterrupt(f"run stopped by {stop.reason}")
    if keep_db is None:
        db.unlink(missing_ok=True)
    Path(str(db) + ".writer").unlink(missing_ok=True)
    return out


def db_minima(path: Path) -> list[tuple[float, Atoms]]:
    """(energy, atoms) of the relaxed rows of a kept run database, lowest first."""
    with ResultsDB(path) as db:
        recs = [r for r in db.records(status="relaxed") if r.energy is not None]
    recs.sort(key=lambda r: r.energy)
    return [(float(r.energy), Atoms(list(r.symbols), positions=r.positions)) for r in recs]


# ---------------------------------------------------------------------------
# peers: the same local optimizer, a counted calculator


class Counted:
    """Counts a calculator's evaluations (``calls``)."""

    def __init__(self, calc):
        self.calc = calc
        self.calls = 0
        original = calc.calculate

        def calculate(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        calc.calculate = calculate


_SafeLBFGS = OPTIMIZERS["PreconLBFGS"]


def peer_optimizer(steps: int, on_relaxed: Callable[[Atoms], None] | None = None):
    """airss-msc's default optimizer (curvature-safe PreconLBFGS, maxstep 0.2) for peers:
    ``run`` is capped at ``steps`` (BasinHopping asks for none), a failed line search
    hands over to BFGS as in airss-msc, and ``on_relaxed(atoms)`` is called after each
    minimisation (it may raise :class:`_Finished` to end the run)."""

    class PeerOptimizer(_SafeLBFGS):
        def __init__(self, atoms, logfile=None, maxstep=0.2, **kwargs):
            if not isinstance(atoms, Atoms) and hasattr(atoms, "atoms"):
                atoms = atoms.atoms  # BasinHopping hands over an OptimizableAtoms
            kwargs.pop("trajectory", None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                super().__init__(atoms, logfile=None, maxstep=maxstep, comm=DummyMPI())
            self._atoms_ref = atoms

        def run(self, fmax=0.05, steps=None):
            cap = steps if steps is not None else PeerOptimizer.STEPS
            cap = min(cap, PeerOptimizer.STEPS)
            level = logging.getLogger("ase.utils.linesearcharmijo").level
            logging.getLogger("ase.utils.linesearcharmijo").setLevel(logging.CRITICAL)
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")
                    try:
                        converged = super().run(fmax=fmax, steps=cap)
                    except (RuntimeError, ValueError) as exc:
                        if "line" not in str(exc).lower():
                            raise
                        left = max(cap - self.nsteps, 1)
                        converged = BFGS(self._atoms_ref, logfile=None, maxstep=0.2, comm=DummyMPI()).run(
                            fmax=fmax, steps=left
                        )
            finally:
                logging.getLogger("ase.utils.linesearcharmijo").setLevel(level)
            if PeerOptimizer.ON_RELAXED is not None:
                PeerOptimizer.ON_RELAXED(self._atoms_ref)
            return converged

    PeerOptimizer.STEPS = int(steps)
    PeerOptimizer.ON_RELAXED = staticmethod(on_relaxed) if on_relaxed else None
    return PeerOptimizer


def _minimum_hook(tally: Tally, counter: Counted):
    """The per-minimisation callback of a peer: feeds the tally, ends the run when done."""
    last = [counter.calls]

    def hook(atoms: Atoms) -> None:
        try:
            energy = float(atoms.get_potential_energy())
        except Exception:
            energy = None
        calls = counter.calls - last[0]
        last[0] = counter.calls
        if tally.relaxed(calls, energy, atoms.get_chemical_symbols(), atoms.positions.copy()):
            raise _Finished

    return hook


def run_ase_bh(system: System, seed: int, tally: Tally, kT: float, dr: float) -> dict:
    """ASE ``BasinHopping`` (Metropolis at ``kT``, uniform per-coordinate step ``dr``)
    from an airss-msc random start; minimisations with the shared optimizer."""
    from ase.optimize.basin import BasinHopping

    atoms = system.start(10_000 + seed)
    calc = system.calculator()
    counter = Counted(calc)
    atoms.calc = calc
    opt = peer_optimizer(system.steps, _minimum_hook(tally, counter))
    np.random.seed(seed)  # noqa: NPY002 (ASE's BasinHopping draws from NumPy's global stream)
    out: dict = {}
    with timed(out):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                bh = BasinHopping(
                    atoms,
                    temperature=kT,
                    dr=dr,
                    fmax=system.fmax,
                    optimizer=opt,
                    logfile=None,
                    trajectory=None,
                    optimizer_logfile=None,
                    local_minima_trajectory=None,
                )
                bh.run(10**7)
        except _Finished:
            pass
    return out


def run_ase_ga(
    system: System,
    seed: int,
    tally: Tally,
    workdir: Path,
    population: int = 20,
    mutation_probability: float = 0.3,
    rattle: float = 0.8,
) -> dict:
    """ASE-GA cluster GA: StartGenerator in a cube of the default sphere's volume,
    CutAndSplicePairing, Mirror/Rattle (and Permutation for alloys) mutations,
    InteratomicDistanceComparator; minimisations with the shared optimizer."""
    from ase_ga.cutandsplicepairing import CutAndSplicePairing
    from ase_ga.data import DataConnection, PrepareDB
    from ase_ga.offspring_creator import OperationSelector
    from ase_ga.population import Population
    from ase_ga.standard_comparators import InteratomicDistanceComparator
    from ase_ga.standardmutations import MirrorMutation, PermutationMutation, RattleMutation
    from ase_ga.startgenerator import StartGenerator
    from ase_ga.utilities import closest_distances_generator

    rng = np.random.RandomState(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    db_file = workdir / f"ga_{os.getpid()}.db"
    db_file.unlink(missing_ok=True)
    radius = system.default_radius()
    cell = 6.0 * radius
    slab = Atoms(cell=[cell] * 3, pbc=False)
    side = (4.0 / 3.0 * np.pi) ** (1 / 3) * radius
    p0 = np.full(3, 0.5 * (cell - side))
    box = [p0, [[side, 0, 0], [0, side, 0], [0, 0, side]]]
    peer = Atoms(system.peer_formula)
    numbers = sorted(set(peer.numbers))
    if system.lj:
        blmin = {(numbers[0], numbers[0]): 0.8}
    else:
        blmin = closest_distances_generator(atom_numbers=numbers, ratio_of_covalent_radii=0.7)
    numbers = [int(z) for z in numbers]
    blocks = [(z, int((peer.numbers == z).sum())) for z in numbers]
    n = len(peer)
    sg = StartGenerator(slab, blocks, blmin, box_to_place_in=box, rng=rng)
    prep = PrepareDB(db_file_name=str(db_file), simulation_cell=slab, stoichiometry=[int(z) for z in peer.numbers])
    for _ in range(population):
        prep.add_unrelaxed_candidate(sg.get_new_candidate())
    da = DataConnection(str(db_file))
    de = 0.02  # the same energy tolerance for LJ and real clusters
    comp = InteratomicDistanceComparator(n_top=n, pair_cor_cum_diff=0.015, pair_cor_max=0.7, dE=de, mic=False)
    pairing = CutAndSplicePairing(slab, n, blmin, rng=rng)
    ops = [MirrorMutation(blmin, n, rng=rng), RattleMutation(blmin, n, rattle_strength=rattle, rng=rng)]
    weights = [1.0, 1.0]
    if len(numbers) > 2 or (not system.lj and _mixed(peer)):
        ops.append(PermutationMutation(n, rng=rng))
        weights.append(1.0)
    mutations = OperationSelector(weights, ops, rng=rng)
    calc = system.calculator()
    counter = Counted(calc)
    opt = peer_optimizer(system.steps)

    def relax(a) -> None:
        a.calc = calc
        before = counter.calls
        opt(a).run(fmax=system.fmax, steps=system.steps)
        energy = float(a.get_potential_energy())
        a.info["key_value_pairs"]["raw_score"] = -energy
        done = tally.relaxed(counter.calls - before, energy, a.get_chemical_symbols(), a.positions.copy())
        da.add_relaxed_step(a)
        if done:
            raise _Finished

    out: dict = {}
    with timed(out):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                while da.get_number_of_unrelaxed_candidates() > 0:
                    relax(da.get_an_unrelaxed_candidate())
                pop = Population(data_connection=da, population_size=population, comparator=comp, rng=rng)
                while True:
                    a1, a2 = pop.get_two_candidates()
                    a3, desc = pairing.get_new_individual([a1, a2])
                    if a3 is None:
                        continue
                    da.add_unrelaxed_candidate(a3, description=desc)
                    if rng.random_sample() < mutation_probability:
                        a3_mut, mdesc = mutations.get_new_individual([a3])
                        if a3_mut is not None:
                            da.add_unrelaxed_step(a3_mut, mdesc)
                            a3 = a3_mut
                    relax(a3)
                    pop.update()
        except _Finished:
            pass
    db_file.unlink(missing_ok=True)
    return out


def _mixed(atoms: Atoms) -> bool:
    from airss_msc.generation.moves import mixed_sublattice

    return mixed_sublattice(atoms.get_chemical_symbols()) is not None


def agox_shim() -> None:
    """AGOX 3.11.1 imports ``IndexedConstraint`` and ``slice2enlist`` from ``ase.constraints``;
    ASE 3.29 keeps them in ``ase.constraints.constraint`` only. Re-export them (benchmark only)."""
    import ase.constraints as constraints
    from ase.constraints import constraint

    for name in ("IndexedConstraint", "slice2enlist"):
        if not hasattr(constraints, name) and hasattr(constraint, name):
            setattr(constraints, name, getattr(constraint, name))
    # AGOX's GPR joins a Ray pool in its constructor even with use_ray=False: Ray would start
    # worker processes (and they import AGOX without this shim). Serial here: no pool.
    import agox.utils.ray.pool_user as pool_user

    pool_user.get_ray_pool = lambda *a, **k: (None, {"CPU": 1})


def _agox_environment(system: System):
    agox_shim()
    from agox.environments import Environment

    radius = system.default_radius()
    side = 2.5 * radius  # the cube of the default sphere's volume (1.6 r) is too tight for AGOX's placement
    pad = 3.0 * radius
    template = Atoms("", cell=np.eye(3) * (side + 2 * pad), pbc=False)
    return Environment(
        template=template,
        symbols=system.peer_formula,
        confinement_cell=np.eye(3) * side,
        confinement_corner=np.full(3, pad),
        print_report=False,
    )


def run_agox(
    system: System, seed: int, tally: Tally, workdir: Path, kind: str, kT: float = 0.1, oracle: Callable | None = None
) -> dict:
    """AGOX: ``rss`` (RandomGenerator + local relaxation), ``bh`` (RattleGenerator +
    MetropolisSampler at ``kT``) or ``gofee`` (GPR surrogate, LCB acquisition, k-means
    sampler; the surrogate relaxes, the real calculator only single-points the chosen
    candidate: each real evaluation counts as one 'relaxation'; a GOFEE hit is an
    evaluated structure whose *uncounted* real relaxation (``oracle``) reaches the target)."""
    import matplotlib

    matplotlib.use("Agg")
    agox_shim()
    from agox import AGOX
    from agox.databases import Database
    from agox.evaluators import LocalOptimizationEvaluator

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / f"agox_{os.getpid()}.db"
    db_path.unlink(missing_ok=True)
    env = _agox_environment(system)
    conf = env.get_confinement()
    gen_kw = {"c1": 0.4, "c2": 0.7} if system.lj else {}
    calc = system.calculator()
    counter = Counted(calc)
    hook = _minimum_hook(tally, counter)
    out: dict = {}
    if kind in ("rss", "bh"):
        opt = peer_optimizer(system.steps, hook)
        evaluator = LocalOptimizationEvaluator(
            calc,
            optimizer=opt,
            gets={"get_key": "candidates"},
            optimizer_kwargs={"logfile": None},
            optimizer_run_kwargs={"fmax": system.fmax, "steps": system.steps},
            store_trajectory=False,
            constraints=env.get_constraints(),
            order=2,
        )
        if kind == "rss":
            from agox.generators import RandomGenerator

            database = Database(filename=str(db_path), order=3)
            gen = RandomGenerator(**conf, environment=env, order=1, **gen_kw)
            modules = [gen, database, evaluator]
        else:
            from agox.generators import RattleGenerator
            from agox.samplers import MetropolisSampler

            database = Database(filename=str(db_path), order=4)
            sampler = MetropolisSampler(temperature=kT, order=3)
            gen = RattleGenerator(**conf, environment=env, sampler=sampler, order=1, **gen_kw)
            modules = [gen, database, sampler, evaluator]
    elif kind == "gofee":
        from agox.acquisitors import LowerConfidenceBoundAcquisitor
        from agox.collectors import StandardCollector
        from agox.generators import RandomGenerator, RattleGenerator
        from agox.models.descriptors.fingerprint import Fingerprint
        from agox.models.GPR import GPR
        from agox.models.GPR.kernels import RBF, Noise
        from agox.models.GPR.kernels import Constant as C
        from agox.models.GPR.priors import Repulsive
        from agox.postprocessors import RelaxPostprocess
        from agox.samplers import KMeansSampler

        database = Database(filename=str(db_path), order=5)
        descriptor = Fingerprint(environment=env)
        beta = 0.01
        kernel = C(5000, (1, 1e5)) * (
            C(beta, (beta, beta)) * RBF() + C(1 - beta, (1 - beta, 1 - beta)) * RBF()
        ) + Noise(0.01, (0.01, 0.01))
        model = GPR(descriptor=descriptor, kernel=kernel, database=database, prior=Repulsive(), use_ray=False)
        sampler = KMeansSampler(descriptor=descriptor, database=database, sample_size=10)
        gens = [RandomGenerator(**conf, environment=env, **gen_kw), RattleGenerator(**conf, environment=env, **gen_kw)]
        collector = StandardCollector(
            generators=gens, sampler=sampler, environment=env, num_candidates={0: [10, 0], 5: [3, 7]}, order=1
        )
        acquisitor = LowerConfidenceBoundAcquisitor(model=model, kappa=2, order=3)
        relaxer = RelaxPostprocess(
            model=acquisitor.get_acquisition_calculator(),
            constraints=env.get_constraints(),
            optimizer_run_kwargs={"fmax": system.fmax, "steps": 100},
            start_relax=8,
            order=2,
        )

        def gofee_hook(atoms: Atoms) -> None:
            try:
                energy = float(atoms.get_potential_energy())
            except Exception:
                energy = None
            calls = counter.calls - gofee_hook.last
            gofee_hook.last = counter.calls
            # the evaluated structure is a surrogate minimum: what real minimum is it the basin of?
            e_min, pos_min = oracle(atoms) if (oracle is not None and energy is not None) else (energy, atoms.positions)
            if tally.relaxed(calls, e_min, atoms.get_chemical_symbols(), pos_min):
                raise _Finished

        gofee_hook.last = 0
        opt = peer_optimizer(1, gofee_hook)
        evaluator = LocalOptimizationEvaluator(
            calc,
            optimizer=opt,
            gets={"get_key": "prioritized_candidates"},
            optimizer_kwargs={"logfile": None},
            optimizer_run_kwargs={"fmax": system.fmax, "steps": 1},
            store_trajectory=True,
            constraints=env.get_constraints(),
            order=4,
        )
        modules = [collector, relaxer, acquisitor, evaluator, database]
    else:
        raise ValueError(kind)
    with timed(out):
        try:
            # AGOX writes its confinement plots to the working directory
            with contextlib.chdir(workdir), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                agox = AGOX(*modules, seed=seed)
                agox.run(N_iterations=10**6)
        except _Finished:
            pass
    db_path.unlink(missing_ok=True)
    return out


def oracle_relaxer(system: System):
    """Relax a copy with an uncounted calculator: (energy, positions) of the real minimum."""
    calc = system.calculator()
    opt = peer_optimizer(system.steps)

    def relax(atoms: Atoms):
        a = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions.copy())
        a.calc = calc
        opt(a).run(fmax=system.fmax, steps=system.steps)
        return float(a.get_potential_energy()), a.positions.copy()

    return relax


# ---------------------------------------------------------------------------
# driving a method over seeds, with resume


#: the packages the peer methods run on (the ``peers`` extra, not locked), recorded with every run
PEER_PACKAGES = ("ase", "ase-ga", "agox")


def package_versions(names: tuple[str, ...] = PEER_PACKAGES) -> dict[str, str | None]:
    """The installed version of each package (None: not installed)."""
    return {name: package_version(name) for name in names}


def run_method(
    store: RunStore,
    case: str,
    method: str,
    settings: dict,
    seeds,
    runner: Callable[[int, Tally], dict],
    make_tally: Callable[[], Tally],
    say=print,
    deadline: float | None = None,
) -> list[dict]:
    """Run ``runner(seed, tally)`` for every seed not yet stored; returns all stored runs of the cell."""
    tag = settings_tag(settings)
    for seed in seeds:
        key = RunStore.key(case, method, tag, seed)
        if store.get(key) is not None and not store.get(key).get("error"):
            continue  # done (a run that failed is tried again)
        if deadline is not None and time.time() > deadline:
            say(f"deadline: {case} {method} seed {seed} not run")
            break
        tally = make_tally()
        try:
            timing = runner(seed, tally)
            error = ""
        except Exception as exc:
            timing = {"cpu": None, "wall": None}
            error = f"{type(exc).__name__}: {exc}"
            say(traceback.format_exc())
        rec = tally.record(
            key=key,
            case=case,
            method=method,
            tag=tag,
            seed=seed,
            settings=settings,
            budget=tally.budget,
            max_relaxations=tally.max_relaxations,
            error=error,
            date=time.strftime("%Y-%m-%d %H:%M"),
            versions=package_versions(),
            **timing,
        )
        store.add(rec)
        hit = "hit" if rec["hit_relaxations"] is not None else "miss"
        say(
            f"{case} {method} seed {seed}: {hit} at {rec['hit_relaxations']} relaxations / "
            f"{rec['hit_force_calls']} calls; {rec['relaxations']} relaxations, {rec['force_calls']} calls, "
            f"best {rec['best']}, cpu {rec['cpu']} s, wall {rec['wall']} s {error}"
        )
        if error:
            break  # a failing peer fails for every seed
    return [
        store.get(RunStore.key(case, method, tag, s))
        for s in seeds
        if store.get(RunStore.key(case, method, tag, s)) is not None
    ]


# ---------------------------------------------------------------------------
# statistics


def _binom_cdf(k: int, n: int) -> float:
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def median_ci_indices(n: int, level: float = 0.95) -> tuple[int, int] | None:
    """0-based order-statistic indices (l, u) with P(x_(l) <= median <= x_(u)) >= level
    (distribution-free), the narrowest symmetric pair; None if n is too small."""
    alpha = 1 - level
    best = None
    for j in range(n // 2 + 1):
        # P(X_(j+1) <= m <= X_(n-j)) = 1 - 2 P(B <= j)  with B ~ Bin(n, 1/2), 1-based order statistics
        if 1 - 2 * _binom_cdf(j, n) >= level - 1e-12:
            best = (j, n - 1 - j)
        else:
            break
    return best if best is not None and alpha > 0 else None


@dataclass
class Summary:
    runs: int
    hits: int
    median: float | None  # None: the median is a miss
    median_lower: float | None  # lower bound when the median is a miss
    ci: tuple | None  # (low, high); high None: beyond the budget
    ci_note: str = ""


def summarise(values: list[float | None], censored_at: list[float]) -> Summary:
    """Median and 95 % order-statistic interval of times to hit; a miss (None) counts as longer
    than every hit (it ran the whole budget without one); ``censored_at`` are the misses' totals."""
    n = len(values)
    hits = sorted(float(v) for v in values if v is not None)
    misses = n - len(hits)
    xs = hits + [math.inf] * misses
    if n == 0:
        return Summary(0, 0, None, None, None)
    lower = min(censored_at) if censored_at else None
    med = xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])
    median = None if math.isinf(med) else med
    idx = median_ci_indices(n)
    if idx is None:
        ci, note = (xs[0], None if math.isinf(xs[-1]) else xs[-1]), "range (too few runs for 95 %)"
    else:
        lo, hi = xs[idx[0]], xs[idx[1]]
        ci, note = (None if math.isinf(lo) else lo, None if math.isinf(hi) else hi), ""
    return Summary(n, len(hits), median, lower if median is None else None, ci, note)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(c - h, 0.0), min(c + h, 1.0)


def fmt_num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 or float(x).is_integer() else f"{x:,.1f}"


def fmt_summary(s: Summary, unit_budget: str) -> str:
    """'12 [7-20]', '> 300 [40- >budget]' style cell."""
    if s.runs == 0:
        return "-"
    med = (
        fmt_num(s.median) if s.median is not None else f"> {fmt_num(s.median_lower) if s.median_lower else unit_budget}"
    )
    if s.ci is None:
        return med
    lo = fmt_num(s.ci[0]) if s.ci[0] is not None else f">{unit_budget}"
    hi = fmt_num(s.ci[1]) if s.ci[1] is not None else f">{unit_budget}"
    star = "*" if s.ci_note else ""
    return f"{med} [{lo}-{hi}]{star}"


def table_rows(runs: list[dict]) -> dict:
    """Per-cell numbers for a Markdown row."""
    hits = [r for r in runs if r["hit_relaxations"] is not None]
    misses = [r for r in runs if r["hit_relaxations"] is None]
    rel = summarise([r["hit_relaxations"] for r in runs], [r["relaxations"] for r in misses])
    fc = summarise([r["hit_force_calls"] for r in runs], [r["force_calls"] for r in misses])
    lo, hi = wilson(len(hits), len(runs))
    total_rel = sum(r["relaxations"] for r in runs)
    total_fc = sum(r["force_calls"] for r in runs)
    cpu = sum(r["cpu"] or 0 for r in runs)
    wall = sum(r["wall"] or 0 for r in runs)
    bests = [r["best"] for r in runs if r["best"] is not None]
    return {
        "n": len(runs),
        "hits": len(hits),
        "rel": rel,
        "fc": fc,
        "wilson": (lo, hi),
        "fc_per_relax": total_fc / max(total_rel, 1),
        "failed": sum(r["failed"] for r in runs),
        "cpu": cpu,
        "wall": wall,
        "cpu_per_relax": cpu / max(total_rel, 1),
        "best": min(bests) if bests else None,
        "median_best": float(np.median(bests)) if bests else None,
        "errors": sorted({r["error"] for r in runs if r.get("error")}),
    }
