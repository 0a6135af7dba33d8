#!/usr/bin/env python
"""Which relaxation protocol turns random II-VI cluster starts into sane minima most
often, and at what cost?  (airss-msc method validation benchmark.)

A *protocol* is a list of stages run in sequence, each on the output positions of
the previous one (a fresh calculator per stage, so each stage may change method,
electronic temperature, optimizer, step limit and force tolerance).  Every protocol
is run on the *same* random starts (``generate_cluster`` with seeds
``derive_seed(399, formula, i)``), and the script prints and writes a markdown table
of final statuses, median force calls and wall seconds per protocol.

This is deliberately self-contained (it re-implements the stage loop rather than
calling ``airss_msc.calc.relax.relax_structure``) so it can try optimizers and guards the
package does not have yet, and so its numbers do not move while the package does.
It uses the package's calculator (``airss_msc.calc.engines.make_calculator``), generator
and sanity checks.

Statuses (final, after the last stage): ``relaxed`` (last stage converged and the
geometry is sane), ``max_steps`` (sane, not converged), ``collapsed`` (a pair below
``--floor`` x covalent radii at the end, or below ``HARD_FLOOR`` at any step),
``fragmented`` (bond graph split at the end, or an atom more than ``FLYOFF`` A from
all others at any step), ``scf_failed`` (SCF failed on every rung of the ladder).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/method_validation.py --quick
    OMP_NUM_THREADS=1 python benchmarks/method_validation.py --set small --protocols baseline,safe-lbfgs
    OMP_NUM_THREADS=1 python benchmarks/method_validation.py --set cd13 --protocols baseline,recommended

Method comparison (second part, through the package's ``relax_structure``; see the section
"method comparison" below and method_validation.md)::

    OMP_NUM_THREADS=1 python benchmarks/method_validation.py --set small,cd13 --protocols gfn1,gfn2,gfn1+gfn2,gfnff,gfnff+gfn2
    OMP_NUM_THREADS=1 python benchmarks/method_validation.py --set cd13 --protocols gfn1 --xtb-binary /usr/bin/xtb
    python benchmarks/method_validation.py --set small,cd13 --protocols gfn1,gfn2 --ordering   # tables from the caches

Results of every run are cached (one JSON line each, ``--cache``); rerunning
only computes the missing (protocol, start) pairs, and the table is rebuilt from the
cache for the protocols and sets requested.
"""

from __future__ import annotations

import os

for _var, _val in (("OMP_NUM_THREADS", "1"), ("OPENBLAS_NUM_THREADS", "1"),
                   ("MKL_NUM_THREADS", "1"), ("OMP_STACKSIZE", "500M")):
    os.environ.setdefault(_var, _val)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import asdict, dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.optimize import BFGS, FIRE, LBFGS, LBFGSLineSearch  # noqa: E402
from ase.parallel import DummyMPI  # noqa: E402

from airss_msc.calc.engines import SCFError, make_calculator  # noqa: E402
from airss_msc.build.generate import GeneratorSettings, derive_seed, generate_cluster, prepare  # noqa: E402
from airss_msc.calc.sanity import check_geometry, fragments, radius, shortest_contact  # noqa: E402

warnings.filterwarnings("ignore")

HERE = Path(__file__).resolve().parent

#: Per-pair minimum separations used for the random starts (the lead's reproducer).
MINSEP = {"Cd-Se": 2.4, "Cd-Te": 2.6, "Cd-Cd": 3.0, "Se-Se": 3.4, "Te-Te": 3.6, "Se-Te": 3.5}
BASE_SEED = 399
SETS = {
    "small": [(f, i) for f in ("Cd6Se6", "Cd6Te2Se4", "Cd6Te3Se3", "Cd6Te6") for i in range(6)],
    "cd13": [("Cd13Se13", i) for i in range(10)],
    "cd13-5": [("Cd13Se13", i) for i in range(5)],  # first half of cd13 (for the slow GFN2 protocols)
    "cd13-3": [("Cd13Se13", i) for i in range(3)],
    "quick": [(f, 0) for f in ("Cd6Se6", "Cd6Te2Se4", "Cd6Te3Se3", "Cd6Te6")],
}
#: The package default confinement looseness (airss_msc.build.confinement.LOOSENESS).
DEFAULT_LOOSENESS = 1.35

#: A pair below this fraction of the covalent radii sum ends a run at once.
HARD_FLOOR = 0.65
#: An atom farther than this (Angstrom) from every other atom ends a run as fragmented.
FLYOFF = 6.0
#: Default collapse floor for the final geometry (fraction of covalent radii sum).
FLOOR = 0.80
#: SCF recovery ladder (as airss_msc.calc.relax.SCF_LADDER): rung parameters override the stage.
SCF_LADDER = (
    {},
    {"electronic_temperature": 1000.0, "mixer_damping": 0.2, "max_iterations": 500},
    {"electronic_temperature": 3000.0, "mixer_damping": 0.1, "max_iterations": 1000},
)


# --------------------------------------------------------------------------- optimizers
class SafeLBFGS(LBFGS):
    """ASE LBFGS with the two textbook safeguards ASE's version lacks.

    ASE's LBFGS (no line search) stores every curvature pair (s, y), also those with
    s.y <= 0 that random starts produce in the concave, attractive part of the
    potential (atoms falling towards each other: the force grows along the step).
    rho = 1/(s.y) < 0 makes the inverse-Hessian estimate indefinite, the next step
    points *against* the force, and with memory 100 it keeps doing so: energy rises
    for tens of steps and atoms are pushed apart ("drift off").  Here pairs with
    s.y <= eps |s||y| are skipped (Nocedal & Wright, sec. 6.1/7.2), and if a step
    is still not downhill (p.F <= 0) the memory is cleared (steepest descent).
    """

    def __init__(self, *args, curvature_eps: float = 1e-8, **kwargs):
        super().__init__(*args, **kwargs)
        self.curvature_eps = curvature_eps
        self.skipped_pairs = 0
        self.resets = 0

    def update(self, pos, forces, r0, f0):
        if self.state.iteration > 0:
            s = pos - r0
            y = f0 - forces  # gradient difference
            sy = float(np.dot(s, y))
            if sy <= self.curvature_eps * np.linalg.norm(s) * np.linalg.norm(y):
                # Skip the pair; keep iteration == number of stored pairs.
                self.state.iteration -= 1
                self.skipped_pairs += 1
                return
            self.state.update(pos, -forces, r0, -f0)

    def step(self, forces=None):
        forces = -self._get_gradient(forces)
        pos = self.optimizable.get_x()
        self.update(pos, forces, self.r0, self.f0)
        self.p = self.state.compute_step(-forces)
        if np.dot(self.p, forces) <= 0.0:  # not a descent direction: forget the history
            self.resets += 1
            self.state.s, self.state.y, self.state.rho = [], [], []
            self.state.iteration = 0
            self.p = self.state.compute_step(-forces)
        self.force_calls += 1
        self.function_calls += 1
        dr = self.determine_step(self.p) * self.damping
        self.optimizable.set_x(pos + dr)
        self.r0 = pos
        self.f0 = forces


def _precon_lbfgs(atoms, logfile=None, maxstep=0.2, comm=None):
    from ase.optimize.precon import Exp, PreconLBFGS

    return PreconLBFGS(atoms, logfile=logfile, maxstep=maxstep, precon=Exp(A=3.0, r_cut=2.0 * FLYOFF, r_NN=2.7),
                       use_armijo=True)


def make_optimizer(name: str, atoms: Atoms, maxstep: float):
    kw = dict(logfile=None, maxstep=maxstep)
    if name == "LBFGS":
        return LBFGS(atoms, comm=DummyMPI(), **kw)
    if name == "SafeLBFGS":
        return SafeLBFGS(atoms, comm=DummyMPI(), **kw)
    if name == "LBFGSLineSearch":
        return LBFGSLineSearch(atoms, comm=DummyMPI(), **kw)
    if name == "BFGS":
        return BFGS(atoms, comm=DummyMPI(), **kw)
    if name == "FIRE":
        return FIRE(atoms, comm=DummyMPI(), **kw)
    if name == "PreconLBFGS":
        return _precon_lbfgs(atoms, **kw)
    raise ValueError(f"unknown optimizer {name!r}")


# --------------------------------------------------------------------------- protocols
@dataclass(frozen=True)
class Stage:
    """One relaxation stage (the fields of airss_msc.calc.relax.RelaxSettings that matter)."""

    method: str = "GFN1-xTB"
    etemp: float = 300.0  # electronic temperature, K
    fmax: float = 0.05  # eV/A
    steps: int = 400
    optimizer: str = "LBFGS"
    maxstep: float = 0.2  # A

    def label(self) -> str:
        return (f"{self.method} {self.etemp:g} K, {self.optimizer} maxstep {self.maxstep:g}, "
                f"fmax {self.fmax:g}, {self.steps} steps")


S = Stage
PROTOCOLS: dict[str, tuple[list[Stage], float]] = {
    # name: (stages, generator looseness)
    "baseline": ([S()], 1.35),
    "lbfgs-ms0.1": ([S(maxstep=0.1)], 1.35),
    "safe-lbfgs": ([S(optimizer="SafeLBFGS")], 1.35),
    "lbfgs-linesearch": ([S(optimizer="LBFGSLineSearch")], 1.35),
    "bfgs": ([S(optimizer="BFGS")], 1.35),
    "fire": ([S(optimizer="FIRE")], 1.35),
    "precon-lbfgs": ([S(optimizer="PreconLBFGS")], 1.35),
    "hot3000+lbfgs": ([S(etemp=3000.0, fmax=0.2, steps=150), S()], 1.35),
    "hot3000+safe": ([S(etemp=3000.0, fmax=0.2, steps=150, optimizer="SafeLBFGS"),
                      S(optimizer="SafeLBFGS")], 1.35),
    "fire+safe": ([S(optimizer="FIRE", fmax=0.5, steps=100), S(optimizer="SafeLBFGS")], 1.35),
    "dense-baseline": ([S()], 1.0),
    "dense-safe": ([S(optimizer="SafeLBFGS")], 1.0),
    "dense-fire+safe": ([S(optimizer="FIRE", fmax=0.5, steps=100), S(optimizer="SafeLBFGS")], 1.0),
}


def looseness_radius(formula: str, looseness: float) -> float | None:
    """Sphere radius for a confinement looseness (None: the package default)."""
    if abs(looseness - DEFAULT_LOOSENESS) < 1e-9:
        return None
    _, _, conf = prepare(formula, GeneratorSettings(minsep=MINSEP))
    return float(conf.radius * (looseness / DEFAULT_LOOSENESS) ** (1.0 / 3.0))


def make_start(formula: str, index: int, looseness: float, frozen: Path | None = None) -> Atoms:
    """The random start (formula, index) at ``looseness``.

    With ``frozen`` (an extxyz file), a start already stored there is reused and a new
    one is appended, so reruns use the *same* starts even if the generator changes.
    """
    key = f"{formula}:{index}:{looseness:g}"
    if frozen is not None and frozen.exists():
        from ase.io import read

        for atoms in read(frozen, ":"):
            if atoms.info.get("start_key") == key:
                return Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions(), info=dict(atoms.info))
    r = looseness_radius(formula, looseness)
    atoms = generate_cluster(formula, derive_seed(BASE_SEED, formula, index),
                             GeneratorSettings(minsep=MINSEP, radius=r))
    if frozen is not None:
        from ase.io import write

        stored = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions())
        stored.info.update(start_key=key, seed=int(atoms.info["seed"]), shape=str(atoms.info["shape"]))
        write(frozen, stored, format="extxyz", append=True)
    return atoms


# --------------------------------------------------------------------------- runner
class _Abort(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def _min_nn(positions: np.ndarray) -> float:
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(d.min(axis=1).max())


def run_stage(atoms: Atoms, stage: Stage, track: dict) -> tuple[str, str, int, int]:
    """Relax ``atoms`` in place.  Returns (status, message, steps, force_calls)."""
    steps_done = calls = 0
    rung = 0
    last_good = atoms.positions.copy()
    while True:
        params = {"electronic_temperature": stage.etemp}
        params.update(SCF_LADDER[rung])
        params["electronic_temperature"] = max(stage.etemp, params["electronic_temperature"])
        calc = make_calculator(stage.method, **params)
        count = {"n": 0}
        original = calc.calculate

        def counted(*a, _o=original, **k):
            count["n"] += 1
            return _o(*a, **k)

        calc.calculate = counted
        atoms.calc = calc
        opt = make_optimizer(stage.optimizer, atoms, stage.maxstep)

        def guard():
            nonlocal last_good
            ratio = shortest_contact(atoms)[0]
            track["min_ratio"] = min(track["min_ratio"], ratio)
            if ratio < HARD_FLOOR:
                raise _Abort("collapsed", f"contact at {ratio:.2f} x radii sum")
            if _min_nn(atoms.positions) > FLYOFF:
                raise _Abort("fragmented", f"an atom flew off (> {FLYOFF} A from all others)")
            last_good = atoms.positions.copy()

        opt.attach(guard, interval=1)
        try:
            converged = opt.run(fmax=stage.fmax, steps=max(stage.steps - steps_done, 0))
            steps_done += opt.nsteps
            calls += count["n"]
            return ("relaxed" if converged else "max_steps"), "", steps_done, calls
        except SCFError as exc:
            steps_done += opt.nsteps
            calls += count["n"]
            rung += 1
            track["scf_retries"] += 1
            if rung >= len(SCF_LADDER):
                return "scf_failed", str(exc), steps_done, calls
            atoms.positions = last_good
        except _Abort as stop:
            steps_done += opt.nsteps
            calls += count["n"]
            return stop.status, stop.message, steps_done, calls
        except RuntimeError as exc:  # e.g. a line search giving up
            steps_done += opt.nsteps
            calls += count["n"]
            return "error", f"{type(exc).__name__}: {exc}", steps_done, calls


ANION_ANION_BOND = {("Se", "Se"): 2.6, ("Se", "Te"): 2.85, ("Te", "Te"): 3.1, ("S", "S"): 2.4}
CATIONS = {"Zn", "Cd"}


def geometry_report(atoms: Atoms) -> dict:
    syms = atoms.get_chemical_symbols()
    d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
    n = len(atoms)
    ca = [d[i, j] for i in range(n) for j in range(i + 1, n) if (syms[i] in CATIONS) != (syms[j] in CATIONS)]
    aa = sum(1 for i in range(n) for j in range(i + 1, n)
             if syms[i] not in CATIONS and syms[j] not in CATIONS
             and d[i, j] < ANION_ANION_BOND.get(tuple(sorted((syms[i], syms[j]))), 0.0))
    cc = [d[i, j] for i in range(n) for j in range(i + 1, n) if syms[i] in CATIONS and syms[j] in CATIONS]
    return {"min_cation_anion": float(min(ca)) if ca else None,
            "min_cation_cation": float(min(cc)) if cc else None,
            "anion_anion_bonds": int(aa),
            "final_min_ratio": shortest_contact(atoms)[0]}


def run_protocol(start: Atoms, stages: list[Stage], floor: float = FLOOR) -> dict:
    atoms = Atoms(start.get_chemical_symbols(), positions=start.get_positions())
    t0 = time.perf_counter()
    track = {"min_ratio": shortest_contact(atoms)[0], "scf_retries": 0}
    per_stage = []
    status, message = "error", ""
    calls = 0
    for k, stage in enumerate(stages):
        status, message, steps, c = run_stage(atoms, stage, track)
        calls += c
        per_stage.append({"status": status, "steps": steps, "force_calls": c})
        if status in ("collapsed", "fragmented", "scf_failed", "error"):
            break
        # Intermediate stages need not converge: go on with the next stage.
    if status in ("relaxed", "max_steps"):
        verdict = check_geometry(atoms, floor=floor)
        if not verdict.ok:
            status, message = verdict.status, verdict.message
    out = {"status": status, "message": message, "force_calls": calls,
           "wall_seconds": time.perf_counter() - t0, "stages": per_stage,
           "min_ratio_traj": track["min_ratio"], "scf_retries": track["scf_retries"],
           "start_fragments": len(fragments(start)),
           "positions": atoms.get_positions().round(5).tolist()}
    out.update(geometry_report(atoms))
    energy = gap = fmax = None
    if atoms.calc is not None:
        try:
            calc = make_calculator(stages[-1].method, electronic_temperature=300.0)
            atoms.calc = calc
            energy = float(atoms.get_potential_energy())
            fmax = float(np.sqrt((atoms.get_forces() ** 2).sum(1)).max())
            gap = float(calc.results.get("homo_lumo_gap"))
        except SCFError:
            pass
    out.update(energy=energy, gap=gap, fmax=fmax)
    atoms.calc = None
    return out


# --------------------------------------------------------------------------- bookkeeping
def load_cache(path: Path) -> dict:
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[(r["protocol"], r["formula"], r["index"])] = r
    return done


def table(records: list[dict], protocols: list[str], set_name: str) -> str:
    rows = []
    header = ("| protocol | set | n | relaxed | max_steps | collapsed | fragmented | scf_failed | error "
              "| median force calls | median calls (relaxed) | median s | total s | transient <0.80 "
              "| anion-anion bonded | median dE to best (eV) | best found |")
    rows.append(header)
    rows.append("|" + "---|" * (header.count("|") - 1))
    # Lowest relaxed (sane) energy per formula over all protocols in the table.
    best = {}
    for r in records:
        if r["status"] == "relaxed" and r["energy"] is not None:
            best[r["formula"]] = min(best.get(r["formula"], np.inf), r["energy"])
    for p in protocols:
        rs = [r for r in records if r["protocol"] == p]
        if not rs:
            continue
        count = {s: sum(1 for r in rs if r["status"] == s)
                 for s in ("relaxed", "max_steps", "collapsed", "fragmented", "scf_failed", "error")}
        calls = [r["force_calls"] for r in rs]
        calls_ok = [r["force_calls"] for r in rs if r["status"] == "relaxed"]
        secs = [r["wall_seconds"] for r in rs]
        trans = sum(1 for r in rs if r["min_ratio_traj"] < 0.80)
        aa = sum(1 for r in rs if r["status"] == "relaxed" and r["anion_anion_bonds"] > 0)
        de = [r["energy"] - best[r["formula"]] for r in rs
              if r["status"] == "relaxed" and r["energy"] is not None]
        # Formulas whose best-known (table-wide) minimum this protocol found (within 0.01 eV).
        hits = sum(1 for f, e in best.items()
                   if any(r["formula"] == f and r["status"] == "relaxed" and r["energy"] is not None
                          and r["energy"] - e < 0.01 for r in rs))
        rows.append(
            f"| {p} | {set_name} | {len(rs)} | {count['relaxed']} | {count['max_steps']} | {count['collapsed']} "
            f"| {count['fragmented']} | {count['scf_failed']} | {count['error']} "
            f"| {statistics.median(calls):.0f} | {statistics.median(calls_ok) if calls_ok else float('nan'):.0f} "
            f"| {statistics.median(secs):.1f} | {sum(secs):.0f} | {trans} | {aa}/{count['relaxed']} "
            f"| {statistics.median(de) if de else float('nan'):.2f} | {hits}/{len(best)} |")
    return "\n".join(rows)


def describe(protocols: list[str]) -> str:
    lines = []
    for p in protocols:
        stages, loose = PROTOCOLS[p]
        lines.append(f"- **{p}** (looseness {loose:g}): " + " -> ".join(s.label() for s in stages))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="4 small starts x protocols baseline, safe-lbfgs, recommended (about a minute); "
                         "writes method_validation_quick.md")
    ap.add_argument("--set", default="small", help="comma list of: " + ", ".join(SETS))
    ap.add_argument("--protocols", default="baseline,safe-lbfgs",
                    help="comma list of: " + ", ".join(PROTOCOLS) + ", or 'all'")
    ap.add_argument("--cached-only", action="store_true",
                    help="only tabulate runs already in the cache (compute nothing)")
    ap.add_argument("--floor", type=float, default=FLOOR, help="collapse floor for the final geometry")
    ap.add_argument("--cache", default="/tmp/method_validation_runs.jsonl")
    ap.add_argument("--out", default=str(HERE / "method_validation.md"))
    ap.add_argument("--starts", default=str(HERE / "method_validation_starts.extxyz"),
                    help="frozen random starts (extxyz; created/extended on demand); 'none' to always regenerate")
    args = ap.parse_args(argv)

    sets = ["quick"] if args.quick else args.set.split(",")
    protocols = list(PROTOCOLS) if args.protocols == "all" else args.protocols.split(",")
    if args.quick:
        protocols = ["baseline", "safe-lbfgs", "recommended"]
        args.cache = args.cache.replace(".jsonl", "_quick.jsonl")
        if args.out == str(HERE / "method_validation.md"):  # keep the full table
            args.out = str(HERE / "method_validation_quick.md")
    for p in protocols:
        if p not in PROTOCOLS:
            ap.error(f"unknown protocol {p!r}")
    cache_path = Path(args.cache)
    done = load_cache(cache_path)
    sections = []
    for set_name in sets:
        records = []
        for p in protocols:
            stages, loose = PROTOCOLS[p]
            for formula, index in SETS[set_name]:
                key = (p, formula, index)
                if key in done and done[key].get("floor") == args.floor:
                    records.append(done[key])
                    continue
                if args.cached_only:
                    continue
                start = make_start(formula, index, loose,
                                   None if args.starts == "none" else Path(args.starts))
                r = run_protocol(start, stages, floor=args.floor)
                r["start_positions"] = start.get_positions().round(5).tolist()
                r.update(protocol=p, formula=formula, index=index, looseness=loose, floor=args.floor,
                         stages_def=[asdict(s) for s in stages])
                with cache_path.open("a") as fh:
                    fh.write(json.dumps(r) + "\n")
                done[key] = r
                records.append(r)
                print(f"{p:18s} {formula:10s} {index:2d} {r['status']:10s} calls {r['force_calls']:4d} "
                      f"{r['wall_seconds']:6.1f} s  min ratio {r['min_ratio_traj']:.3f}  "
                      f"E {r['energy'] if r['energy'] is None else round(r['energy'], 3)}  {r['message']}",
                      file=sys.stderr, flush=True)
        sections.append(table(records, protocols, set_name))
    text = ("## Relaxation protocol validation (GFN1-xTB, tblite)\n\n"
            + describe(protocols) + "\n\n" + "\n\n".join(sections) + "\n\n"
            "Columns: final status counts; force calls and wall seconds per start (one core); "
            "'transient <0.80': runs whose shortest contact dipped below 0.80 x covalent radii at some step; "
            "'anion-anion bonded': relaxed structures with a Se-Se/Se-Te/Te-Te bond; "
            "'median dE to best': relaxed energy minus the lowest relaxed energy any listed protocol "
            "found for the same formula; 'best found': formulas whose lowest known energy this protocol reached.\n")
    print(text)
    write_block(Path(args.out), "optimizer-protocols", text)
    return 0


#: The recommended default (see method_validation.md): ASE BFGS, one stage, GFN1-xTB at 300 K.
PROTOCOLS["recommended"] = ([S(optimizer="BFGS", steps=500)], 1.35)

# =========================================================================== method comparison
# Second part (helper session 2, 2026-11-21): which *method* (GFN1-xTB, GFN2-xTB, GFN-FF,
# staged) to relax and rank with.  Unlike the optimizer study above, these protocols run
# through the package's own ``airss_msc.calc.relax.relax_structure`` (BFGS default, staged
# protocols, collapse guard with persistence), so the numbers describe what a search does.
#
#   python benchmarks/method_validation.py --set small,cd13 --protocols gfn1,gfn2,gfn1+gfn2,gfnff,gfnff+gfn2
#   python benchmarks/method_validation.py --set cd13 --xtb-binary /usr/bin/xtb
#   python benchmarks/method_validation.py --set small,cd13 --ordering          (tables only, from the cache)
#
# Every sane final structure (relaxed / max_steps) gets fresh single points with GFN1-xTB,
# GFN2-xTB (tblite, 300 K) and GFN-FF (xtb-python).  The GFN-FF single point uses a *new*
# calculator, i.e. a topology (bond list) set up from the final geometry: GFN-FF fixes its
# topology when the calculator is created, so the energy the relaxation itself ends with is
# that of the *start's* bond list (see the findings).
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

from airss_msc.calc.relax import RelaxSettings, relax_structure  # noqa: E402
from airss_msc.calc.sanity import anion_bonds, check_geometry  # noqa: E402

#: The optimizer is given explicitly: the package default changed from BFGS to PreconLBFGS
#: at 07:25 on 2026-11-21, in the middle of this study.
_B = "BFGS"
METHOD_PROTOCOLS: dict[str, RelaxSettings] = {
    "gfn1": RelaxSettings(method="GFN1-xTB", optimizer=_B),
    "gfn2": RelaxSettings(method="GFN2-xTB", optimizer=_B),
    "gfn1+gfn2": RelaxSettings(optimizer=_B, stages=({"method": "GFN1-xTB"}, {"method": "GFN2-xTB"})),
    "gfnff": RelaxSettings(method="xtb:GFN-FF", optimizer=_B),
    "gfnff+gfn2": RelaxSettings(optimizer=_B, stages=({"method": "xtb:GFN-FF"}, {"method": "GFN2-xTB"})),
    # The package's other optimizers, for the force-call target against xtb's ANCopt.
    "gfn1-precon": RelaxSettings(method="GFN1-xTB", optimizer="PreconLBFGS"),
    "gfnff+gfn2-precon": RelaxSettings(optimizer="PreconLBFGS",
                                       stages=({"method": "xtb:GFN-FF"}, {"method": "GFN2-xTB"})),
}
#: Final method of each protocol (the energy it ranks with).
FINAL_METHOD = {"gfn1": "GFN1", "gfn2": "GFN2", "gfn1+gfn2": "GFN2", "gfnff": "GFN-FF", "gfnff+gfn2": "GFN2",
                "gfn1-precon": "GFN1", "gfnff+gfn2-precon": "GFN2"}
#: Single-point methods (fresh calculator, 300 K).
SP_METHODS = {"GFN1": "GFN1-xTB", "GFN2": "GFN2-xTB", "GFN-FF": "xtb:GFN-FF"}
METHODS_CACHE = HERE / "method_validation_methods.jsonl"
XTB_CACHE = HERE / "method_validation_xtb_binary.jsonl"
METHODS_XYZ = HERE / "method_validation_methods.extxyz"


def write_block(path: Path, tag: str, text: str) -> None:
    """Replace the ``<!-- tag:begin -->...<!-- tag:end -->`` block of ``path`` (append if absent),
    keeping everything else (hand-written findings) untouched."""
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    old = path.read_text() if path.exists() else ""
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = (old.rstrip() + "\n\n" if old.strip() else "") + block + "\n"
    path.write_text(new)


def single_points(atoms: Atoms) -> dict:
    """Fresh-calculator energies (eV) at 300 K; None where the SCF fails (also after a
    damped, longer retry at the same temperature, so energies stay comparable)."""
    out = {}
    for key, method in SP_METHODS.items():
        out[key] = None
        for extra in ({}, {"mixer_damping": 0.2, "max_iterations": 1000}):
            try:
                a = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions())
                a.calc = make_calculator(method, electronic_temperature=300.0, **extra)
                out[key] = float(a.get_potential_energy())
                if key != "GFN-FF":
                    out[key + "_gap"] = float(a.calc.results.get("homo_lumo_gap"))
                break
            except SCFError:
                continue
    return out


def run_package_protocol(start: Atoms, settings: RelaxSettings) -> dict:
    summ = relax_structure(start, settings)
    atoms = Atoms(summ["symbols"], positions=summ["positions"])
    rec = {k: summ.get(k) for k in ("status", "message", "force_calls", "steps", "wall_seconds",
                                    "energy", "gap", "fmax", "scf_retries", "method", "protocol")}
    rec["optimizers"] = [stage.optimizer for stage in settings.protocol()]
    rec["aa_bonds"] = anion_bonds(atoms)  # package definition, 1.1 x covalent radii sum
    rec.update(geometry_report(atoms))
    rec["positions"] = atoms.get_positions().round(5).tolist()
    if rec["status"] in ("relaxed", "max_steps"):
        rec["sp"] = single_points(atoms)
    return rec


# --------------------------------------------------------------------------- xtb binary
_CONVERGED = re.compile(r"GEOMETRY OPTIMIZATION CONVERGED AFTER\s+(\d+)\s+ITERATIONS")
_FAILED = re.compile(r"FAILED TO CONVERGE GEOMETRY OPTIMIZATION\s+AFTER\s+(\d+)")
_CYCLE = re.compile(r"^\.+\s+CYCLE\s+(\d+)\s+\.+", re.M)
_TOTAL = re.compile(r"TOTAL ENERGY\s+(-?\d+\.\d+)\s+Eh")


def run_xtb_binary(start: Atoms, binary: str, gfn: int = 1, timeout: float = 1800.0) -> dict:
    """``xtb start.xyz --opt --gfn N`` in a fresh temp dir; one optimization cycle = one force call."""
    from ase.io import read, write

    tmp = Path(tempfile.mkdtemp(prefix="mv_xtb_"))
    try:
        write(tmp / "start.xyz", Atoms(start.get_chemical_symbols(), positions=start.get_positions()),
              format="xyz")
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_STACKSIZE="500M")
        t0 = time.perf_counter()
        proc = subprocess.run([binary, "start.xyz", "--opt", "--gfn", str(gfn)], cwd=tmp, env=env,
                              capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - t0
        out = proc.stdout + proc.stderr
        conv, fail = _CONVERGED.search(out), _FAILED.search(out)
        cycles = [int(c) for c in _CYCLE.findall(out)]
        iters = int(conv.group(1)) if conv else (int(fail.group(1)) if fail else None)
        final = next((tmp / f for f in ("xtbopt.xyz", "xtblast.xyz") if (tmp / f).exists()), None)
        rec = {"returncode": proc.returncode, "converged": bool(conv), "iterations": iters,
               "cycle_lines": max(cycles) if cycles else None, "wall_seconds": wall,
               "xtb_energy": (float(_TOTAL.findall(out)[-1]) * 27.211386245988 if _TOTAL.findall(out) else None),
               "tail": "\n".join(out.strip().splitlines()[-5:])}
        if final is None:
            rec.update(status="error", message="no xtbopt.xyz")
            return rec
        atoms = read(final)
        verdict = check_geometry(atoms)
        rec["status"] = ("relaxed" if conv else "max_steps") if verdict.ok else verdict.status
        rec["message"] = verdict.message
        rec["aa_bonds"] = anion_bonds(atoms)
        rec.update(geometry_report(atoms))
        rec["positions"] = atoms.get_positions().round(5).tolist()
        if verdict.ok:
            rec["sp"] = single_points(atoms)
            a = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions())
            a.calc = make_calculator("GFN1-xTB", electronic_temperature=300.0)
            rec["tblite_gfn1_fmax"] = float(np.sqrt((a.get_forces() ** 2).sum(1)).max())
        return rec
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- tables
def _med(xs, fmt="{:.0f}"):
    xs = [x for x in xs if x is not None]
    return fmt.format(statistics.median(xs)) if xs else "-"


def _spearman(x, y):
    from scipy.stats import spearmanr

    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    if len(pairs) < 3:
        return None, len(pairs)
    a, b = zip(*pairs)
    if len(set(a)) < 2 or len(set(b)) < 2:
        return None, len(pairs)
    return float(spearmanr(a, b).statistic), len(pairs)


def _fmt(v, f="{:+.2f}"):
    return "-" if v is None else f.format(v)


def methods_tables(records: list[dict], protocols: list[str], set_name: str) -> str:
    out = []
    hdr = ("| protocol | set | n | relaxed | max_steps | collapsed | fragmented | scf_failed | error "
           "| median force calls | median calls (relaxed) | median s | total s | relaxed with anion-anion bonds "
           "| median anion-anion bonds (relaxed) |")
    out += [hdr, "|" + "---|" * (hdr.count("|") - 1)]
    for p in protocols:
        rs = [r for r in records if r["protocol"] == p]
        if not rs:
            continue
        c = {s: sum(r["status"] == s for r in rs) for s in
             ("relaxed", "max_steps", "collapsed", "fragmented", "scf_failed", "error")}
        ok = [r for r in rs if r["status"] == "relaxed"]
        out.append(f"| {p} | {set_name} | {len(rs)} | " + " | ".join(str(c[s]) for s in c)
                   + f" | {_med([r['force_calls'] for r in rs])} | {_med([r['force_calls'] for r in ok])}"
                   f" | {_med([r['wall_seconds'] for r in rs], '{:.1f}')} | {sum(r['wall_seconds'] for r in rs):.0f}"
                   f" | {sum(r['aa_bonds'] > 0 for r in ok)}/{len(ok)} | {_med([r['aa_bonds'] for r in ok])} |")
    # Lowest energies per formula: own final method, and every relaxed structure re-scored by
    # single points (GFN2 and fresh-topology GFN-FF), relative to the lowest over all protocols.
    formulas = sorted({r["formula"] for r in records}, key=lambda f: (len(f), f))
    best = {}
    for key in ("GFN1", "GFN2", "GFN-FF"):
        for f in formulas:
            es = [r["sp"][key] for r in records if r["formula"] == f and r.get("sp") and r["sp"].get(key) is not None
                  and r["status"] == "relaxed"]
            best[(key, f)] = min(es) if es else None
    out += ["", f"Lowest energy per formula ({set_name}): own final method (eV, with its anion-anion bond count); "
            "then, for every protocol's relaxed structures re-scored by fresh single points, the lowest "
            "GFN1 / GFN2 / GFN-FF energy relative to the lowest any protocol reached (0.00 = found it)", ""]
    hdr = "| formula | " + " | ".join(protocols) + " |"
    out += [hdr, "|" + "---|" * (len(protocols) + 1)]
    for f in formulas:
        cells = []
        for p in protocols:
            rs = [r for r in records if r["protocol"] == p and r["formula"] == f and r["status"] == "relaxed"
                  and r["energy"] is not None]
            if not rs:
                cells.append("-")
                continue
            b = min(rs, key=lambda r: r["energy"])
            cells.append(f"{b['energy']:.2f} {FINAL_METHOD[p]} ({b['aa_bonds']} aa)")
        out.append(f"| {f} | " + " | ".join(cells) + " |")
    for key in ("GFN1", "GFN2", "GFN-FF"):
        for f in formulas:
            cells = []
            for p in protocols:
                rs = [r for r in records if r["protocol"] == p and r["formula"] == f and r["status"] == "relaxed"
                      and r.get("sp") and r["sp"].get(key) is not None]
                if not rs or best[(key, f)] is None:
                    cells.append("-")
                    continue
                b = min(rs, key=lambda r: r["sp"][key])
                cells.append(f"{b['sp'][key] - best[(key, f)]:.2f} ({b['aa_bonds']} aa)")
            out.append(f"| {f} SP {key} (min {_fmt(best[(key, f)], '{:.2f}')}) | " + " | ".join(cells) + " |")
    return "\n".join(out)


def ordering_table(records: list[dict], set_name: str) -> str:
    """Rank agreement of GFN1 / GFN2 / GFN-FF single points, per formula, on (a) the GFN1-relaxed
    structures and (b) all relaxed structures of all protocols; and how each method's energy
    goes with the number of anion-anion bonds."""
    formulas = sorted({r["formula"] for r in records}, key=lambda f: (len(f), f))
    out = [f"Energy ordering ({set_name}): Spearman rho between single-point energies of the same structures "
           "(1 = same order); rho(aa, E_X): energy vs number of anion-anion bonds under method X "
           "(negative = anion-anion bonds lower the energy); 'lowest under X': anion-anion bonds of the "
           "structure method X ranks first.", ""]
    hdr = ("| structures | formula | n | rho GFN1-GFN2 | rho GFN1-FF | rho GFN2-FF | rho(aa,E_GFN1) | rho(aa,E_GFN2) "
           "| rho(aa,E_FF) | lowest under GFN1 / GFN2 / FF (aa bonds) | dE_GFN2 of GFN1's best (eV) |")
    out += [hdr, "|" + "---|" * (hdr.count("|") - 1)]
    for label, sel in (("GFN1-relaxed", lambda r: r["protocol"] == "gfn1"),
                       ("all relaxed", lambda r: True)):
        for f in formulas:
            rs = [r for r in records if r["formula"] == f and sel(r) and r["status"] == "relaxed" and r.get("sp")
                  and all(r["sp"].get(k) is not None for k in ("GFN1", "GFN2", "GFN-FF"))]
            if len(rs) < 3:
                continue
            e = {k: [r["sp"][k] for r in rs] for k in ("GFN1", "GFN2", "GFN-FF")}
            aa = [r["aa_bonds"] for r in rs]
            rho = lambda a, b: _fmt(_spearman(a, b)[0])  # noqa: E731
            lows = " / ".join(str(rs[int(np.argmin(e[k]))]["aa_bonds"]) for k in ("GFN1", "GFN2", "GFN-FF"))
            i1 = int(np.argmin(e["GFN1"]))
            de2 = e["GFN2"][i1] - min(e["GFN2"])
            out.append(f"| {label} | {f} | {len(rs)} | {rho(e['GFN1'], e['GFN2'])} | {rho(e['GFN1'], e['GFN-FF'])} "
                       f"| {rho(e['GFN2'], e['GFN-FF'])} | {rho(aa, e['GFN1'])} | {rho(aa, e['GFN2'])} "
                       f"| {rho(aa, e['GFN-FF'])} | {lows} | {de2:.2f} |")
    return "\n".join(out)


def xtb_table(xrecs: list[dict], precs: list[dict], set_name: str) -> str:
    """Package default protocol (gfn1) vs the xtb program's optimizer, start by start."""
    out = [f"Package protocol gfn1 (GFN1-xTB, ASE BFGS, fmax 0.05 eV/A; and gfn1-precon where run) vs `xtb --opt --gfn 1` (ANCopt, 'normal' "
           f"thresholds) from the same starts ({set_name}). Energies: tblite GFN1 single point at 300 K on each "
           "final geometry; fmax(xtb): tblite GFN1 max force on xtb's geometry.", ""]
    hdr = ("| start | package status | package force calls | package aa bonds | package E (eV) "
           "| gfn1-precon status, calls | xtb status | xtb cycles | xtb aa bonds | xtb E (eV) | fmax(xtb) eV/A "
           "| E_xtb - E_package |")
    out += [hdr, "|" + "---|" * (hdr.count("|") - 1)]
    pk = {(r["formula"], r["index"]): r for r in precs if r["protocol"] == "gfn1"}
    pc = {(r["formula"], r["index"]): r for r in precs if r["protocol"] == "gfn1-precon"}
    for x in sorted(xrecs, key=lambda r: (r["formula"], r["index"])):
        p = pk.get((x["formula"], x["index"]))
        q = pc.get((x["formula"], x["index"]))
        pe = p["sp"]["GFN1"] if p and p.get("sp") else None
        xe = x["sp"]["GFN1"] if x.get("sp") else None
        out.append(f"| {x['formula']} #{x['index']} | {p['status'] if p else '-'} | {p['force_calls'] if p else '-'} "
                   f"| {p['aa_bonds'] if p else '-'} | {_fmt(pe, '{:.2f}')} "
                   f"| {q['status'] + ', ' + str(q['force_calls']) if q else '-'} | {x['status']} | {x['iterations']} "
                   f"| {x.get('aa_bonds', '-')} | {_fmt(xe, '{:.2f}')} | {_fmt(x.get('tblite_gfn1_fmax'), '{:.3f}')} "
                   f"| {_fmt(None if pe is None or xe is None else xe - pe)} |")
    n = len(xrecs)
    out += ["", "| optimizer | n | relaxed | median force calls (relaxed) | median force calls (all) "
            "| median s | relaxed with anion-anion bonds |", "|---|---|---|---|---|---|---|"]
    for proto, label in (("gfn1", "package gfn1 (ASE BFGS)"), ("gfn1-precon", "package gfn1-precon (ASE PreconLBFGS)")):
        pk = {(r["formula"], r["index"]): r for r in precs if r["protocol"] == proto}
        ps = [pk[(x["formula"], x["index"])] for x in xrecs if (x["formula"], x["index"]) in pk]
        if not ps:
            continue
        pr = [r for r in ps if r["status"] == "relaxed"]
        out.append(f"| {label} | {len(ps)} | {len(pr)} | {_med([r['force_calls'] for r in pr])} "
                   f"| {_med([r['force_calls'] for r in ps])} | {_med([r['wall_seconds'] for r in ps], '{:.1f}')} "
                   f"| {sum(r['aa_bonds'] > 0 for r in pr)}/{len(pr)} |")
    xr = [r for r in xrecs if r["status"] == "relaxed"]
    out.append(f"| xtb {n and xrecs[0].get('binary', '')} --opt --gfn 1 | {n} | {len(xr)} "
               f"| {_med([r['iterations'] for r in xr])} | {_med([r['iterations'] for r in xrecs])} "
               f"| {_med([r['wall_seconds'] for r in xrecs], '{:.1f}')} | {sum(r['aa_bonds'] > 0 for r in xr)}/{len(xr)} |")
    return "\n".join(out)


def write_structures(records: list[dict], path: Path) -> None:
    """Lowest relaxed structure per (formula, protocol), with its energies, as extxyz."""
    from ase.io import write

    frames = []
    for key in sorted({(r["formula"], r["protocol"]) for r in records}):
        rs = [r for r in records if (r["formula"], r["protocol"]) == key and r["status"] == "relaxed"
              and r["energy"] is not None]
        if not rs:
            continue
        b = min(rs, key=lambda r: r["energy"])
        a = Atoms(b["symbols"], positions=b["positions"])
        a.info.update(formula=key[0], protocol=key[1], index=b["index"], energy_final=b["energy"],
                      aa_bonds=b["aa_bonds"], **{f"E_{k}": v for k, v in (b.get("sp") or {}).items() if v is not None})
        frames.append(a)
    if frames:
        write(path, frames, format="extxyz")


def methods_main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Method comparison (package relax_structure): GFN1/GFN2/GFN-FF/staged")
    ap.add_argument("--set", default="small,cd13", help="comma list of: " + ", ".join(SETS))
    ap.add_argument("--protocols", default=",".join(METHOD_PROTOCOLS),
                    help="comma list of: " + ", ".join(METHOD_PROTOCOLS))
    ap.add_argument("--xtb-binary", nargs="?", const="/usr/bin/xtb", default=None,
                    help="also run `XTB start.xyz --opt --gfn 1` on each start of the sets (default /usr/bin/xtb)")
    ap.add_argument("--ordering", action="store_true", help="tables only, from the caches (compute nothing)")
    ap.add_argument("--cache", default=str(METHODS_CACHE))
    ap.add_argument("--xtb-cache", default=str(XTB_CACHE))
    ap.add_argument("--out", default=str(HERE / "method_validation.md"))
    ap.add_argument("--starts", default=str(HERE / "method_validation_starts.extxyz"))
    args = ap.parse_args(argv)
    sets = args.set.split(",")
    protocols = args.protocols.split(",")
    for p in protocols:
        if p not in METHOD_PROTOCOLS:
            ap.error(f"unknown protocol {p!r}: choose from {', '.join(METHOD_PROTOCOLS)}")
    cache, xcache, outp, starts = (Path(x).resolve() for x in (args.cache, args.xtb_cache, args.out, args.starts))
    # GFN-FF (xtb-python) and the xtb program write gfnff_topo/gfnff_adjacency/... into the cwd.
    os.chdir(tempfile.mkdtemp(prefix="mv_methods_"))
    done = load_cache(cache)
    xdone = {(r["formula"], r["index"]): r for r in
             (json.loads(line) for line in (xcache.read_text().splitlines() if xcache.exists() else []) if line.strip())}
    sections = []
    all_records = []
    for set_name in sets:
        records = []
        for p in protocols:
            for formula, index in SETS[set_name]:
                key = (p, formula, index)
                if key not in done:
                    if args.ordering:
                        continue
                    start = make_start(formula, index, DEFAULT_LOOSENESS, starts)
                    r = run_package_protocol(start, METHOD_PROTOCOLS[p])
                    r.update(protocol=p, formula=formula, index=index, symbols=start.get_chemical_symbols(),
                             start_key=f"{formula}:{index}:{DEFAULT_LOOSENESS:g}")
                    with cache.open("a") as fh:
                        fh.write(json.dumps(r) + "\n")
                    done[key] = r
                    sp = r.get("sp") or {}
                    print(f"{p:11s} {formula:10s} {index:2d} {r['status']:10s} calls {r['force_calls']:4d} "
                          f"{r['wall_seconds']:6.1f} s aa {r['aa_bonds']:2d} E {_fmt(r['energy'], '{:.2f}')} "
                          f"SP1 {_fmt(sp.get('GFN1'), '{:.2f}')} SP2 {_fmt(sp.get('GFN2'), '{:.2f}')} "
                          f"SPFF {_fmt(sp.get('GFN-FF'), '{:.2f}')} {r['message']}", file=sys.stderr, flush=True)
                records.append(done[key])
        xrecs = []
        if args.xtb_binary or args.ordering:
            for formula, index in SETS[set_name]:
                if (formula, index) not in xdone:
                    if args.ordering or not args.xtb_binary:
                        continue
                    start = make_start(formula, index, DEFAULT_LOOSENESS, starts)
                    x = run_xtb_binary(start, args.xtb_binary)
                    x.update(formula=formula, index=index, binary=args.xtb_binary)
                    with xcache.open("a") as fh:
                        fh.write(json.dumps(x) + "\n")
                    xdone[(formula, index)] = x
                    print(f"xtb {formula:10s} {index:2d} {x['status']:10s} iters {x['iterations']} "
                          f"{x['wall_seconds']:6.1f} s aa {x.get('aa_bonds')} "
                          f"E1 {_fmt((x.get('sp') or {}).get('GFN1'), '{:.2f}')}", file=sys.stderr, flush=True)
                xrecs.append(xdone[(formula, index)])
        text = methods_tables(records, protocols, set_name) if records else ""
        if records:
            text += "\n\n" + ordering_table(records, set_name)
        if xrecs:
            text += "\n\n" + xtb_table(xrecs, records, set_name)
        sections.append(f"#### Set {set_name}\n\n" + text)
        all_records += records
    desc = "\n".join(f"- **{p}**: {' -> '.join(s.describe() + ' ' + s.optimizer for s in METHOD_PROTOCOLS[p].protocol())}"
                     for p in protocols)
    text = ("### Method comparison (package `relax_structure`, optimizer as listed; tblite 0.8.0 GFN1/GFN2, xtb-python 22.1 GFN-FF)\n\n"
            "Generated by `python benchmarks/method_validation.py --set small,cd13 --protocols "
            f"{','.join(protocols)} --xtb-binary`; raw runs in `{cache.name}` and `{xcache.name}`, lowest "
            f"structures in `{METHODS_XYZ.name}`. Starts: frozen in `method_validation_starts.extxyz`.\n\n"
            + desc + "\n\n" + "\n\n".join(sections) + "\n\n"
            "Columns: final status counts; force calls (energy+gradient evaluations) and wall seconds per "
            "start on one core (machine shared with another job, so seconds are noisy); anion-anion bonds: "
            "S/Se/Te pairs within 1.1 x covalent radii sum (`airss_msc.calc.sanity.anion_bonds`).\n")
    print(text)
    write_block(outp, "method-comparison", text)
    write_structures(all_records, METHODS_XYZ)
    return 0


if __name__ == "__main__":
    # The method comparison (second part) is chosen by its own options or protocol names.
    if any(a.startswith("--xtb-binary") or a == "--ordering" for a in sys.argv[1:]) or any(
            p in METHOD_PROTOCOLS for a in sys.argv[1:] for p in a.split(",")):
        sys.exit(methods_main())
    sys.exit(main())
