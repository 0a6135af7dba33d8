"""A cheaper band estimate than TDA-PBE0, validated against TDA-PBE0 on small clusters (issue 20, item 3).

    OMP_NUM_THREADS=1 nice -n 10 python -W ignore -m benchmarks.excitation_validation   # run what is missing
    python -m benchmarks.excitation_validation --report                                 # the page from the stored lines

The project's band estimate is the first bright singlet (f >= ``BRIGHT_F`` of
:mod:`airss_msc.analysis.spectra`) of TDA-PBE0/def2-SVP; it costs minutes at 4-6 atoms and hours
at 26. This script computes, on the same geometries, the reference and the cheaper candidates:

* ``pyscf:TDA-PBE0/def2-SVP`` (the reference) and ``pyscf:TDA-PBE/def2-SVP``, both with
  ``airss_msc.calc.excite.excite`` (5 singlets; a structure with no bright state among 5 is rerun
  with 10); TDA-PBE's first bright and lowest singlets and its PBE ground state's HOMO-LUMO gap
  are three candidates;
* ``pyscf:TDA-ris-PBE0/def2-SVP`` and ``pyscf:TDA-ris-PBE/def2-SVP``: the same ground states with the
  TDA-ris response (``airss_msc.calc.engines.pyscf_ris``; a minimal auxiliary basis and no XC kernel,
  seconds of response instead of the TDA Davidson), their first bright singlets two candidates;
* ``tblite:GFN2-xTB`` and ``tblite:GFN1-xTB`` HOMO-LUMO gaps (``airss_msc.calc.single_point``).

Structures: per formula of at most 8 atoms in the reference set (``benchmarks/reference/structures.extxyz``),
the lowest CHGNet 0.3.0 minimum by the committed PBE/def2-SVP energies (among the formula's structures
that have one) or, for formulas without any, by SevenNet-0 (``engine_single_points.jsonl``); then the
second lowest of each formula by the same rule. Work is ordered cheapest first: all xTB gaps, then
the DFT pairs by atoms, counting half an atom more per Te (Te-rich SCFs are slow) and three more for
a second isomer.

``--large`` runs the reference on the (MX)13-size clusters instead (the held-out test of the PBE-gap
map, which is fitted on the small ones only): TDA-PBE0 with ``LARGE_STATES`` singlets on the
PBE-lowest structure of each formula of >= ``LARGE_FROM`` atoms in the reference set, (CdSe)13 first.
Hours of one core each, so each run keeps its progress in ``benchmarks/reference/work/tda/`` and a
killed run resumes there (``excite(..., checkpoint=)``); never more than one at a time per machine is
sensible on 2 cores.

Each finished (structure, method, states) is one JSON line appended to
``benchmarks/runs/excitation_validation.jsonl`` (committed; a rerun skips what is there, a line cut
by a kill is skipped). ``--report`` fits each candidate onto the TDA-PBE0 first bright energy (a
constant shift and a linear map), with leave-one-formula-out errors, into
``benchmarks/out/excitation_validation.md``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from airss_msc.analysis.bands import (
    HC_EV_NM,
    MAP_QUANTITIES,
    MIN_GAP_MAP_FORMULAS,
    GapMap,
    GapMapPair,
    leave_one_group_out,
)
from airss_msc.analysis.spectra import BRIGHT_F, TDDFT_ERROR_EV
from benchmarks.jsonl import append_jsonl, read_jsonl
from benchmarks.paths import ENGINE_SINGLE_POINTS, GAP_MAP, OUT, PBE, RIS_MAP, RUNS, STRUCTURES, TDA_CHECKPOINTS
from benchmarks.provenance import git_commit

RESULTS = RUNS / "excitation_validation.jsonl"
REPORT = OUT / "excitation_validation.md"
MAX_ATOMS = 8
GEOMETRY_ENGINE = "chgnet:0.3.0"
REFERENCE_METHOD = "pyscf:TDA-PBE0/def2-SVP"
TDA_PBE = "pyscf:TDA-PBE/def2-SVP"
RIS_PBE0 = "pyscf:TDA-ris-PBE0/def2-SVP"
RIS_PBE = "pyscf:TDA-ris-PBE/def2-SVP"
GAP_METHODS = ("tblite:GFN2-xTB", "tblite:GFN1-xTB")
STATES = 5
#: states of the rerun when none of the first STATES is bright
MORE_STATES = 10
#: the structure whose TDA-PBE0 run is repeated with MORE_STATES, to check that STATES finds the same
#: first bright state (scheduled after the 4-atom structures)
CHECK_STATES_ON = "Cd2Se2-ring"
#: --large: the clusters of at least this many atoms, their number of singlets (more than STATES: at 26
#: atoms the lowest singlets may all be dark, and a rerun costs hours) and the formulas first in line
LARGE_FROM = 20
LARGE_STATES = 10
LARGE_FIRST = ("Cd13Se13", "Zn13Se13", "Cd13Te13")
#: the wavelength the nm errors are quoted at (the CdSe magic-size bands lie near it)
NM_AT = 400.0


# --------------------------------------------------------------------------- #
# Stored lines: load (a cut last line is skipped) and append (kill -9 safe)
# --------------------------------------------------------------------------- #


def load(path: Path = RESULTS) -> list[dict]:
    """Every complete JSON line of ``path``; a line cut by a kill (not valid JSON) is skipped."""
    return [row for row in read_jsonl(path) if isinstance(row, dict)]


def append(row: dict, path: Path = RESULTS) -> None:
    """Append one JSON line and fsync it; a cut last line is first closed by a newline so it stays alone."""
    append_jsonl(path, row)


def job_key(row: dict) -> tuple[str, str, str, int]:
    """(structure name, geometry fingerprint, method, states): what a stored line is a result of."""
    return (row["name"], row["fingerprint"], row["method"], int(row.get("nstates") or 0))


@dataclass(frozen=True)
class Job:
    """One (structure, method, states) to compute; ``nstates`` 0 for a HOMO-LUMO gap."""

    name: str
    formula: str
    fingerprint: str
    method: str
    nstates: int
    order: tuple

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.name, self.fingerprint, self.method, self.nstates)


def pending(jobs: Iterable[Job], rows: list[dict]) -> list[Job]:
    """The jobs without a stored line (failed ones included: a failure is a result), cheapest first."""
    done = {job_key(r) for r in rows}
    return sorted((j for j in jobs if j.key not in done), key=lambda j: j.order)


def needs_more_states(row: dict) -> bool:
    """A finished TDA line at STATES states without a bright state: its structure is rerun with MORE_STATES."""
    return row.get("kind") == "tda" and row.get("status") == "done" and row.get("first_bright_eV") is None


# --------------------------------------------------------------------------- #
# Structures
# --------------------------------------------------------------------------- #


def _energies(path: Path, method: str | None, key: str) -> dict[tuple[str, str], float]:
    out = {}
    for r in load(path):
        if r.get("type") != "single_point" or r.get("status") != "ok" or r.get(key) is None:
            continue
        if method is not None and r.get("method") != method:
            continue
        if r.get("geometry", "reference") != "reference":
            continue
        out[(r["name"], r["fingerprint"])] = float(r[key])
    return out


@dataclass(frozen=True)
class Structure:
    name: str
    formula: str
    natoms: int
    fingerprint: str
    rank: int  # 0 lowest of its formula, 1 second
    ranked_by: str
    atoms: Atoms


def select_structures(per_formula: int = 2) -> list[Structure]:
    """The ``per_formula`` lowest CHGNet minima of each formula of <= MAX_ATOMS atoms (see the module docstring)."""
    from benchmarks.compute_reference import fingerprint

    pbe = _energies(PBE, "pyscf:PBE/def2-SVP", "energy_eV")
    seven = _energies(ENGINE_SINGLE_POINTS, "sevennet:7net-0", "energy")
    groups: dict[str, list[tuple[str, str, Atoms]]] = {}
    for a in read(STRUCTURES, ":"):
        if a.info.get("geometry_engine") != GEOMETRY_ENGINE or len(a) > MAX_ATOMS:
            continue
        groups.setdefault(a.info["formula"], []).append((a.info["name"], fingerprint(a), a))
    out = []
    for formula, members in sorted(groups.items()):
        with_pbe = [m for m in members if (m[0], m[1]) in pbe]
        if with_pbe:
            ranked = sorted(with_pbe, key=lambda m: pbe[(m[0], m[1])])
            by = "PBE/def2-SVP"
        else:
            ranked = sorted((m for m in members if (m[0], m[1]) in seven), key=lambda m: seven[(m[0], m[1])])
            by = "SevenNet-0"
        for rank, (name, fp, a) in enumerate(ranked[:per_formula]):
            atoms = Atoms(a.get_chemical_symbols(), positions=a.positions)
            out.append(Structure(name, formula, len(a), fp, rank, by, atoms))
    return out


def select_large() -> list[Structure]:
    """The PBE-lowest CHGNet 0.3.0 structure of each formula of >= LARGE_FROM atoms (by the committed
    PBE/def2-SVP energies), LARGE_FIRST formulas first, then by size."""
    from benchmarks.compute_reference import fingerprint

    pbe = _energies(PBE, "pyscf:PBE/def2-SVP", "energy_eV")
    lowest: dict[str, tuple[float, Structure]] = {}
    for a in read(STRUCTURES, ":"):
        if a.info.get("geometry_engine") != GEOMETRY_ENGINE or len(a) < LARGE_FROM:
            continue
        key = (a.info["name"], fingerprint(a))
        if key not in pbe:
            continue
        formula = a.info["formula"]
        if formula not in lowest or pbe[key] < lowest[formula][0]:
            atoms = Atoms(a.get_chemical_symbols(), positions=a.positions)
            lowest[formula] = (pbe[key], Structure(key[0], formula, len(a), key[1], 0, "PBE/def2-SVP", atoms))
    first = {f: i for i, f in enumerate(LARGE_FIRST)}
    return sorted(
        (s for _, s in lowest.values()), key=lambda s: (first.get(s.formula, len(first)), s.natoms, s.formula)
    )


def large_jobs(structures: list[Structure], method: str = REFERENCE_METHOD) -> list[Job]:
    """``method`` (TDA-PBE0 unless told) with LARGE_STATES singlets on each, in the order given."""
    return [
        Job(s.name, s.formula, s.fingerprint, method, LARGE_STATES, (2, i, s.name)) for i, s in enumerate(structures)
    ]


#: the methods whose converged ground state another's run can start from: the same functional and basis
SAME_GROUND = {RIS_PBE0: (REFERENCE_METHOD,), REFERENCE_METHOD: (RIS_PBE0,), RIS_PBE: (TDA_PBE,), TDA_PBE: (RIS_PBE,)}


def seed_from_sibling(job: Job, directory: Path | None = None) -> Path | None:
    """Give a --large job with no progress of its own the converged ground state of a run of the same
    functional (:data:`SAME_GROUND`) on the same structure and states (its ``.tda.npz``, written once that
    SCF converged): a TDA-ris-PBE0 run beside the TDA-PBE0 one then costs an SCF cycle or two, not the
    hours of a PBE0 SCF. The checkpoint checks its key again (``ExcitationCheckpoint``); the Davidson
    vectors in it are another response's and TDA-ris does not use them. ``directory``: where the
    checkpoints are (default :data:`TDA_CHECKPOINTS`). Returns the file copied from, or None."""
    import shutil

    where = TDA_CHECKPOINTS if directory is None else directory
    own = where / f"{checkpoint_stem(job).name}.tda.npz"
    if own.exists() or (where / f"{checkpoint_stem(job).name}.scf.npz").exists():
        return None
    for method in SAME_GROUND.get(job.method, ()):
        other = where / f"{checkpoint_stem(dataclasses.replace(job, method=method)).name}.tda.npz"
        if other.exists():
            shutil.copyfile(other, own)
            return other
    return None


def checkpoint_stem(job: Job) -> Path:
    """Where a --large job keeps its progress (one stem per structure, geometry, method and states)."""
    from airss_msc.results.record import method_key

    return TDA_CHECKPOINTS / f"{job.name}-{job.fingerprint}-{method_key(job.method)}-{job.nstates}"


def cost_order(s: Structure) -> tuple:
    """Cheapest first: atoms, plus half per Te (Te-rich SCFs converge slowly) and three for a second isomer
    (a new formula is worth more to a leave-one-formula-out fit than a second isomer of one already there)."""
    n_te = s.atoms.get_chemical_symbols().count("Te")
    return (s.natoms + 3 * s.rank + 0.5 * n_te, n_te, s.name)


def jobs_for(structures: list[Structure], rows: list[dict]) -> list[Job]:
    """Every job: the xTB gaps of all structures first, then TDA-PBE, TDA-PBE0 and the two TDA-ris per structure."""
    jobs = []
    more = {(r["name"], r["method"]) for r in rows if needs_more_states(r) and int(r.get("nstates", 0)) == STATES}
    for s in structures:
        o = cost_order(s)
        for m in GAP_METHODS:
            jobs.append(Job(s.name, s.formula, s.fingerprint, m, 0, (0, *o, m)))
        for m in (TDA_PBE, REFERENCE_METHOD, RIS_PBE0, RIS_PBE):
            jobs.append(Job(s.name, s.formula, s.fingerprint, m, STATES, (1, *o, m)))
            if (s.name, m) in more or (s.name == CHECK_STATES_ON and m == REFERENCE_METHOD):
                jobs.append(Job(s.name, s.formula, s.fingerprint, m, MORE_STATES, (1, s.natoms + 0.5, *o[1:], m)))
    return jobs


# --------------------------------------------------------------------------- #
# Running one job
# --------------------------------------------------------------------------- #


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def run_job(job: Job, s: Structure, checkpoint: Path | None = None) -> dict:
    """One stored line: the result of ``job`` on ``s``, with CPU seconds (time.process_time; of this
    process only: a run resumed from ``checkpoint`` counts what the killed ones spent as well, from
    the stem's ``.cpu`` file)."""
    from airss_msc.calc.excite import excite
    from airss_msc.calc.single_point import single_point

    row: dict = {
        "name": s.name,
        "formula": s.formula,
        "natoms": s.natoms,
        "fingerprint": s.fingerprint,
        "isomer_rank": s.rank,
        "ranked_by": s.ranked_by,
        "method": job.method,
        "nstates": job.nstates,
        "load_at_start": round(os.getloadavg()[0], 2),
    }
    # read before the run: cpu_ledger rewrites the file with this process's CPU as it goes
    earlier = _spent(checkpoint)
    c0, w0 = time.process_time(), time.perf_counter()
    if job.nstates == 0:
        sp = single_point(s.atoms, job.method)
        row.update(kind="gap", status=str(sp.status), message=sp.message[:300], gap_eV=_r(sp.gap))
    else:
        exc = excite(s.atoms, job.method, job.nstates, checkpoint=checkpoint)
        e = [float(x) for x in exc.energies_eV]
        f = [float(x) for x in exc.oscillator_strengths]
        bright = exc.first_bright(BRIGHT_F)
        row.update(
            kind="tda",
            status=str(exc.status),
            message=exc.message[:300],
            bright_threshold=BRIGHT_F,
            first_bright_eV=None if bright is None else _r(bright[0]),
            first_bright_f=None if bright is None else _r(bright[1], 5),
            first_bright_index=None if bright is None else next(i for i, x in enumerate(f) if x >= BRIGHT_F),
            lowest_eV=_r(e[0]) if e else None,
            lowest_f=_r(f[0], 5) if f else None,
            energies_eV=[round(x, 4) for x in e],
            strengths=[round(x, 5) for x in f],
            ground_method=exc.ground_method,
            ground_gap_eV=_r(exc.ground_gap_eV),
        )
    row.update(
        cpu_s=round(time.process_time() - c0 + earlier, 3),
        resumed=earlier > 0,
        wall_s=round(time.perf_counter() - w0, 1),
        commit=git_commit(),
        finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    return row


def _spent(checkpoint: Path | None) -> float:
    """CPU seconds the killed runs of ``checkpoint`` spent (its ``.cpu`` file; 0 without one)."""
    if checkpoint is None:
        return 0.0
    try:
        return float(Path(f"{checkpoint}.cpu").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


@contextlib.contextmanager
def cpu_ledger(checkpoint: Path | None) -> Iterator[None]:
    """Keep ``<checkpoint>.cpu`` at the CPU seconds spent on the stem so far (written every minute by
    a daemon thread, so a kill -9 loses at most a minute of the count); removed by the caller."""
    if checkpoint is None:
        yield
        return
    import threading

    base, c0, done = _spent(checkpoint), time.process_time(), threading.Event()
    path = Path(f"{checkpoint}.cpu")
    path.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        tmp = path.with_suffix(".cpu.tmp")
        tmp.write_text(f"{base + time.process_time() - c0:.1f}\n")
        os.replace(tmp, path)

    def loop() -> None:
        while not done.wait(60.0):
            write()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


def run(log: Callable[[str], None], large: bool = False, large_method: str = REFERENCE_METHOD) -> None:
    """Compute every pending job, cheapest first, re-planning after each (a dark structure adds a 10-state
    rerun); ``large``: the ``large_method`` runs of the (MX)13-size clusters instead, resumable."""
    chosen = select_large() if large else select_structures()
    structures = {s.name: s for s in chosen}
    log(f"{len(structures)} structures: " + ", ".join(f"{s.name} ({s.ranked_by})" for s in structures.values()))
    while True:
        rows = load()
        todo = pending(large_jobs(chosen, large_method) if large else jobs_for(chosen, rows), rows)
        if not todo:
            log("nothing left to run")
            return
        job = todo[0]
        log(f"{time.strftime('%H:%M:%S')} {job.name} {job.method} states={job.nstates} ({len(todo)} pending)")
        stem = checkpoint_stem(job) if large else None
        if stem is not None and (seed := seed_from_sibling(job)) is not None:
            log(f"  ground state from {seed.name}")
        with cpu_ledger(stem):
            row = run_job(job, structures[job.name], stem)
        append(row)
        if stem is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{stem}.cpu")
        log(
            f"  {row['status']} cpu {row['cpu_s']} s wall {row['wall_s']} s "
            + (f"gap {row['gap_eV']}" if row["kind"] == "gap" else f"first bright {row['first_bright_eV']}")
        )


# --------------------------------------------------------------------------- #
# Fits (pure arithmetic; candidates for airss_msc.analysis, see the report)
# --------------------------------------------------------------------------- #


def fit_shift(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """y ~ x + b: least squares gives b = mean(y - x); returned as (slope 1, b)."""
    return 1.0, float(np.mean(np.asarray(y, float) - np.asarray(x, float)))


def fit_linear(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """y ~ a x + b by least squares; (a, b). Needs two distinct x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(set(x.tolist())) < 2:
        raise ValueError("a linear map needs at least two distinct x")
    a, b = np.polyfit(x, y, 1)
    return float(a), float(b)


def nm_error(error_eV: float, at_nm: float = NM_AT) -> float:
    """An energy error (eV) as a wavelength error (nm) near ``at_nm``: |dlambda/dE| = lambda^2 / hc, linearised."""
    return abs(error_eV) * at_nm**2 / HC_EV_NM


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


def small_rows(rows: list[dict]) -> list[dict]:
    """The lines of the clusters the maps are fitted on (<= MAX_ATOMS); the --large ones test them."""
    return [r for r in rows if int(r.get("natoms", 0)) <= MAX_ATOMS]


def table_rows(rows: list[dict]) -> dict[str, dict]:
    """name -> what was measured on it: reference and candidate values (eV), f, CPU s, statuses."""
    out: dict[str, dict] = {}
    # one line per (structure, method): the STATES run, unless it found no bright state and a
    # MORE_STATES rerun exists (the CHECK_STATES_ON rerun is only compared, in the report)
    chosen: dict[tuple[str, str], dict] = {}
    for r in sorted(rows, key=lambda r: int(r.get("nstates") or 0)):
        k = (r["name"], r["method"])
        if k not in chosen or needs_more_states(chosen[k]):
            chosen[k] = r
    for r in chosen.values():
        d = out.setdefault(r["name"], {"formula": r["formula"], "natoms": r["natoms"], "rank": r.get("isomer_rank", 0)})
        d.setdefault("ranked_by", r.get("ranked_by", ""))
        m = r["method"]
        d[f"{m}|status"] = r["status"]
        d[f"{m}|cpu"] = r.get("cpu_s")
        d[f"{m}|nstates"] = r.get("nstates")
        if r["kind"] == "gap":
            d[f"{m}|value"] = r.get("gap_eV") if r["status"] == "ok" else None
        else:
            ok = r["status"] == "done"
            d[f"{m}|value"] = r.get("first_bright_eV") if ok else None
            d[f"{m}|f"] = r.get("first_bright_f") if ok else None
            d[f"{m}|lowest"] = r.get("lowest_eV") if ok else None
            d[f"{m}|ground_gap"] = r.get("ground_gap_eV") if ok else None
    return out


#: candidate label -> (method, field of table_rows, what of the method it reads: a :class:`GapMap` quantity
#: of ``MAP_QUANTITIES``, or "lowest excitation", which no packaged map holds)
CANDIDATES = {
    "TDA-PBE first bright": (TDA_PBE, "value", "first bright"),
    "TDA-PBE lowest excitation": (TDA_PBE, "lowest", "lowest excitation"),
    "PBE HOMO-LUMO gap": (TDA_PBE, "ground_gap", "gap"),
    "TDA-ris-PBE0 first bright": (RIS_PBE0, "value", "first bright"),
    "TDA-ris-PBE first bright": (RIS_PBE, "value", "first bright"),
    "GFN2-xTB gap": ("tblite:GFN2-xTB", "value", "gap"),
    "GFN1-xTB gap": ("tblite:GFN1-xTB", "value", "gap"),
}


def _f(x: float | None, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def fit_summary(
    names: list[str], t: dict[str, dict], label: str
) -> tuple[list[str], dict[str, tuple[float, float, int]]]:
    """Table lines of one candidate's fits on ``names`` and {map: (LOFO MAE eV, max eV, points)}."""
    method, field, _ = CANDIDATES[label]
    pts = [
        (t[n][f"{method}|{field}"], t[n][f"{REFERENCE_METHOD}|value"], t[n]["formula"])
        for n in names
        if t[n].get(f"{method}|{field}") is not None and t[n].get(f"{REFERENCE_METHOD}|value") is not None
    ]
    lines, scores = [], {}
    if len(pts) < 2:
        return [f"| {label} | - | {len(pts)} point(s): too few to fit | - | - | - | - |"], scores
    x, y = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    g = [p[2] for p in pts]
    for map_name, fit in (("shift", fit_shift), ("linear", fit_linear)):
        try:
            a, b = fit(x, y)
        except ValueError:
            lines.append(f"| {label} | {map_name} | not fitted (one distinct x) | - | - | - | - |")
            continue
        rms = float(np.sqrt(np.mean((a * x + b - y) ** 2)))
        r = float(np.corrcoef(x, y)[0, 1]) if np.std(x) > 0 and np.std(y) > 0 else float("nan")
        err = leave_one_group_out(x, y, g, fit)
        ok = err[np.isfinite(err)]
        formula_text = f"E = {b:+.3f} eV + E_x" if map_name == "shift" else f"E = {a:.3f} E_x {b:+.3f} eV"
        if len(ok):
            mae, mx = float(np.mean(np.abs(ok))), float(np.max(np.abs(ok)))
            scores[map_name] = (mae, mx, len(ok))
            lines.append(
                f"| {label} | {map_name} | {formula_text} (fit RMS {rms:.3f} eV, Pearson r {r:.2f}, {len(pts)} points, "
                f"{len(set(g))} formulas) | {mae:.3f} | {mx:.3f} | {nm_error(mae):.0f} | {nm_error(mx):.0f} |"
            )
        else:
            lines.append(f"| {label} | {map_name} | {formula_text} | no leave-one-out fit possible | - | - | - |")
    return lines, scores


def states_check(rows: list[dict]) -> list[str]:
    """Lines comparing the first bright state found with STATES and with MORE_STATES singlets, where both ran."""
    by: dict[tuple[str, str], dict[int, dict]] = {}
    for r in rows:
        if r.get("kind") == "tda" and r.get("status") == "done":
            by.setdefault((r["name"], r["method"]), {})[int(r["nstates"])] = r

    def bright(r: dict) -> str:
        if r.get("first_bright_eV") is None:
            return f"none bright among {r['nstates']} singlets"
        return (
            f"first bright {r['first_bright_eV']:.3f} eV (f {r['first_bright_f']:.3f}, state "
            f"{r['first_bright_index'] + 1} of {r['nstates']})"
        )

    out = []
    for (name, method), runs in sorted(by.items()):
        if STATES in runs and MORE_STATES in runs:
            a, b = runs[STATES], runs[MORE_STATES]
            out.append(
                f"- States check, {name} {method}: {bright(a)} vs {bright(b)}; "
                f"CPU {a['cpu_s']:.0f} s vs {b['cpu_s']:.0f} s."
            )
    return out


def larger_gaps(pbe_path: Path = PBE, structures_path: Path = STRUCTURES) -> list[dict]:
    """The PBE/def2-SVP single points of reference structures above MAX_ATOMS atoms, on their current
    geometries: name, formula, natoms, PBE HOMO-LUMO gap (eV) and the structure's rank by PBE energy
    among its formula's computed structures (0: the lowest)."""
    from benchmarks.compute_reference import fingerprint

    gaps = _energies(pbe_path, "pyscf:PBE/def2-SVP", "gap_eV")
    energies = _energies(pbe_path, "pyscf:PBE/def2-SVP", "energy_eV")
    out = []
    for a in read(structures_path, ":") if structures_path.exists() else []:
        key = (a.info["name"], fingerprint(a)) if len(a) > MAX_ATOMS else None
        if key in gaps and key in energies:
            out.append(
                {"name": key[0], "formula": a.info["formula"], "natoms": len(a), "gap": gaps[key], "e": energies[key]}
            )
    for r in out:
        r["rank"] = sum(o["formula"] == r["formula"] and o["e"] < r["e"] for o in out)
    return sorted(out, key=lambda r: (r["natoms"], r["formula"], r["rank"]))


#: the gap the map is made of: the PBE/def2-SVP ground state of the TDA-PBE run
GAP_MAP_METHOD = "pyscf:PBE/def2-SVP"
GAP_MAP_SOURCE = "BENCHMARKS.md, A cheaper band estimate, validated against TDA-PBE0"


def gap_map(t: dict[str, dict], candidate: str = "PBE HOMO-LUMO gap") -> GapMap | None:
    """The PBE HOMO-LUMO gap (or another ``candidate`` of :data:`CANDIDATES`: the same shift map
    and window) against the TDA-PBE0 first bright singlet on the structures that are their formula's
    lowest (the isomers a band estimate is made for); None below 3 formulas."""
    method, field, quantity = CANDIDATES[candidate]
    pairs = tuple(
        GapMapPair(n, t[n]["formula"], t[n]["natoms"], t[n][f"{method}|{field}"], t[n][f"{REFERENCE_METHOD}|value"])
        for n in sorted(t)
        if t[n]["rank"] == 0
        and t[n].get(f"{method}|{field}") is not None
        and t[n].get(f"{REFERENCE_METHOD}|value") is not None
    )
    if len({p.formula for p in pairs}) < MIN_GAP_MAP_FORMULAS:
        return None
    reference = f"{REFERENCE_METHOD} first bright singlet (f >= {BRIGHT_F})"
    if quantity not in MAP_QUANTITIES:
        raise ValueError(f"{candidate!r} reads its method's {quantity}, which no packaged map holds")
    # the PBE gap is read off the TDA-PBE run's ground state; the map names the ground-state method
    mapped = GAP_MAP_METHOD if (quantity, method) == ("gap", TDA_PBE) else method
    return GapMap(mapped, reference, pairs, GAP_MAP_SOURCE, quantity=quantity)


def write_gap_map(m: GapMap, path: Path = GAP_MAP, commit: str | None = None) -> Path:
    """The map's pairs as the packaged TOML file, with the commit (``commit``, else the tree's now) and
    the rule that chose them (strings written as JSON strings, which TOML reads back unchanged)."""

    def q(text: str) -> str:
        return json.dumps(text, ensure_ascii=False)

    lines = [
        f"# The {m.mapped} mapped onto the TDA-PBE0/def2-SVP first bright singlet",
        "# by a constant shift (airss_msc.analysis.bands.load_gap_map fits it and its leave-one-formula-out",
        "# window from these pairs; gap_eV is the mapped value). Written by",
        f"# `python -m benchmarks.excitation_validation --write-map` at commit {commit or git_commit()} from",
        "# benchmarks/runs/excitation_validation.jsonl: do not edit by hand.",
        f"gap_method = {q(m.gap_method)}",
        f"quantity = {q(m.quantity)}",
        f"reference = {q(m.reference)}",
        "selection = "
        + q(
            "each formula's lowest isomer of the excitation-validation set (by PBE/def2-SVP energy, else "
            "SevenNet-0), CHGNet 0.3.0 geometries"
        ),
        f"source = {q(m.source or GAP_MAP_SOURCE)}",
    ]
    for p in m.pairs:
        lines += ["", "[[pair]]", f"name = {q(p.name)}", f"formula = {q(p.formula)}", f"natoms = {p.natoms}"]
        lines += [f"gap_eV = {p.gap_eV!r}", f"reference_eV = {p.reference_eV!r}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def gap_map_lines(t: dict[str, dict], larger: list[dict], computed: dict[str, dict] | None = None) -> list[str]:
    """The PBE-gap map (:func:`gap_map`) applied to the larger reference structures' PBE gaps, with
    its leave-one-formula-out maximum as the window and the measured bands of each structure's
    material beside: an extrapolation, said so. ``computed``: :func:`table_rows` of the --large
    TDA-PBE0 runs, the map's held-out test where they exist."""
    from airss_msc.analysis.bands import load_bands
    from airss_msc.analysis.report.model import band_applies

    m = gap_map(t)
    if m is None or not larger:
        return []
    computed = computed or {}
    ris = gap_map(t, "TDA-ris-PBE first bright")
    ris_done = [r["name"] for r in larger if computed.get(r["name"], {}).get(f"{RIS_PBE}|status")]
    tested = [r["name"] for r in larger if computed.get(r["name"], {}).get(f"{REFERENCE_METHOD}|status")]
    shift, window = m.shift_eV, m.window_with(TDDFT_ERROR_EV)
    lo_n, hi_n = m.sizes
    bands = load_bands()
    lines = [
        f"## The PBE-gap map applied above {MAX_ATOMS} atoms (an extrapolation)",
        "",
        (
            f"E(first bright, TDA-PBE0) ~ PBE gap {shift:+.3f} eV: the shift fitted on the {len(m.pairs)} small "
            f"clusters ({lo_n}-{hi_n} atoms, {len({p.formula for p in m.pairs})} formulas) that are their formula's "
            "lowest, applied to the PBE/def2-SVP HOMO-LUMO gaps of the larger reference structures "
            f"(`benchmarks/reference/`, same geometries). Window: the largest leave-one-formula-out error of that "
            f"fit ({m.window_eV:.3f} eV) and TDA-PBE0's {TDDFT_ERROR_EV:g} eV against experiment in quadrature, "
            f"+-{window:.3f} eV, as the series reports use it. "
            + (
                f"TDA-PBE0 above {MAX_ATOMS} atoms (`--large`, {LARGE_STATES} singlets, not in the fit) tests the map "
                f"on {len(tested)} structure(s): the last two columns. "
                if tested
                else f"No TDA-PBE0 above {MAX_ATOMS} atoms exists here yet to test the map (`--large` runs them). "
            )
            + "The measured bands are of ligated clusters in solution; these are bare clusters. The series reports "
            "use the same map (`airss_msc/data/gap_map.toml`, `--write-map`) on any stored PBE/def2-SVP gap."
            + (
                f" TDA-ris-PBE column (`--large --large-method {RIS_PBE}`, {LARGE_STATES} singlets; "
                f"{len(ris_done)} structure(s) so far): its first bright singlet {ris.shift_eV:+.3f} eV, the shift "
                f"fitted the same way on {len(ris.pairs)} small clusters, window "
                f"+-{ris.window_with(TDDFT_ERROR_EV):.3f} eV; ris runs that found no bright state among their "
                "singlets say so."
                if ris is not None
                else ""
            )
        ),
        "",
        (
            "| structure | atoms | PBE rank in formula | PBE gap eV | estimate eV | estimate nm (window) "
            "| measured bands of the material, nm | TDA-PBE0 first bright eV (f), nm | estimate - TDA-PBE0 eV "
            "| TDA-ris-PBE first bright eV (f) + shift, nm (window) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in larger:
        est = m.estimate_nm(r["gap"], TDDFT_ERROR_EV)
        measured = sorted((b.material, b.wavelength_nm) for b in bands if band_applies(b, r["formula"]))
        text = f"{measured[0][0]}: " + ", ".join(f"{w:.0f}" for _, w in measured) if measured else "-"
        if est is None:
            nm = "- (gap below the metallic floor: no estimate)"
        else:
            nm = (
                f"{est[0]:.0f} ({est[1]:.0f}-{est[2]:.0f})"
                if np.isfinite(est[2])
                else f"{est[0]:.0f} (>= {est[1]:.0f})"
            )
        c = computed.get(r["name"], {})
        status, ref = c.get(f"{REFERENCE_METHOD}|status"), c.get(f"{REFERENCE_METHOD}|value")
        if status is None:
            tda, diff = "-", "-"
        elif ref is None:
            tda = status if status != "done" else f"none bright in {c.get(f'{REFERENCE_METHOD}|nstates')}"
            diff = "-"
        else:
            f = c.get(f"{REFERENCE_METHOD}|f")
            tda = f"{ref:.3f} ({f:.3f}), {HC_EV_NM / ref:.0f}"
            diff = f"{r['gap'] + shift - ref:+.3f}"
        lines.append(
            f"| {r['name']} | {r['natoms']} | {r['rank'] + 1} | {r['gap']:.3f} | {r['gap'] + shift:.3f} "
            f"| {nm} | {text} | {tda} | {diff} | {_ris_cell(c, ris)} |"
        )
    return ["", *lines, ""]


#: the oscillator-strength thresholds the sensitivity lines compare (the project's BRIGHT_F between)
THRESHOLDS = (BRIGHT_F / 2, BRIGHT_F, 2 * BRIGHT_F)


def first_at(energies: list[float], strengths: list[float], threshold: float) -> tuple[int, float] | None:
    """(1-based state, energy eV) of the lowest state with f >= ``threshold``; None if none."""
    return next(((i + 1, e) for i, (e, f) in enumerate(zip(energies, strengths, strict=True)) if f >= threshold), None)


def threshold_lines(rows: list[dict]) -> list[str]:
    """How far the first bright singlet of each finished --large run moves with the f threshold (half and
    twice :data:`BRIGHT_F`): at 26 atoms the lowest singlets are a manifold of weak states, so the band
    estimate can hang on the threshold; a line per run, '' where none finished."""
    out = []
    for r in rows:
        if r.get("kind") != "tda" or r.get("status") != "done" or not r.get("energies_eV"):
            continue
        parts = []
        for th in THRESHOLDS:
            hit = first_at(r["energies_eV"], r["strengths"], th)
            parts.append(
                f"f >= {th:g}: " + (f"{hit[1]:.3f} eV (state {hit[0]})" if hit else f"none of {len(r['energies_eV'])}")
            )
        out.append(f"- {r['name']}, {r['method'].split(':', 1)[-1]}: first singlet with " + "; ".join(parts) + ".")
    if not out:
        return []
    head = (
        "First singlet by oscillator-strength threshold (the maps and reports use f >= "
        f"{BRIGHT_F:g}; where the lowest states are many weak ones the estimate moves with it):"
    )
    return ["", head, "", *out, ""]


def _ris_cell(c: dict, ris: GapMap | None) -> str:
    """The TDA-ris-PBE estimate of one larger structure: its first bright singlet (f), shifted onto
    TDA-PBE0 by ``ris``, as nm with the window; '-' where not run."""
    status, value = c.get(f"{RIS_PBE}|status"), c.get(f"{RIS_PBE}|value")
    if status is None:
        return "-"
    if value is None:
        return status if status != "done" else f"none bright in {c.get(f'{RIS_PBE}|nstates')}"
    f = c.get(f"{RIS_PBE}|f")
    text = f"{value:.3f} ({f:.3f})"
    if ris is None:
        return text + " (no map)"
    est = ris.estimate_nm(value, TDDFT_ERROR_EV)
    if est is None:
        return text
    window = f"{est[1]:.0f}-{est[2]:.0f}" if np.isfinite(est[2]) else f">= {est[1]:.0f}"
    return f"{text} {ris.shift_eV:+.2f}: {est[0]:.0f} ({window})"


def report(rows: list[dict], larger: list[dict] | None = None) -> str:
    """The markdown page from the stored lines only (``larger``: :func:`larger_gaps`, read when None)."""
    big = [r for r in rows if int(r.get("natoms", 0)) > MAX_ATOMS]
    computed = table_rows(big)
    rows = small_rows(rows)
    t = table_rows(rows)
    names = sorted(t, key=lambda n: (t[n]["rank"], t[n]["natoms"], n))
    lines = [
        "# A cheaper band estimate, validated against TDA-PBE0/def2-SVP",
        "",
        (
            f"`python -m benchmarks.excitation_validation --report` (commit {git_commit()}), from "
            f"`benchmarks/runs/excitation_validation.jsonl` ({len(rows)} stored lines). Reference: the first "
            f"bright singlet (f >= {BRIGHT_F}) of TDA-PBE0/def2-SVP; candidates on the same CHGNet 0.3.0 geometries: "
            "the TDA-PBE/def2-SVP first bright singlet, the PBE HOMO-LUMO gap of that run's ground state, the first "
            "bright singlets of TDA-ris (Zhou, Della Sala and Parker, JPCL 2023: one s fitting function per atom, no "
            "XC kernel) on the PBE0 and on the PBE ground state, and the GFN2-xTB and GFN1-xTB HOMO-LUMO gaps "
            "(tblite). TDA runs: "
            f"{STATES} singlets ({MORE_STATES} where none of {STATES} is bright). CPU s: time.process_time of one "
            "process, OMP_NUM_THREADS=1, on a shared 2-core machine."
        ),
        "",
        (
            "| structure | atoms | picked by | TDA-PBE0 first bright eV (f) | TDA-PBE0 lowest eV "
            "| TDA-PBE first bright eV (f) | TDA-PBE lowest eV | PBE gap eV | TDA-ris-PBE0 first bright eV (f) "
            "| TDA-ris-PBE first bright eV (f) | GFN2 gap eV | GFN1 gap eV "
            "| CPU s PBE0 / PBE / ris-PBE0 / ris-PBE / GFN2 / GFN1 |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in names:
        d = t[n]

        def cell(m: str, d: dict = d) -> str:
            st = d.get(f"{m}|status")
            if st is None:
                return "not run"
            v = d.get(f"{m}|value")
            if v is None:
                return st if st not in ("done", "ok") else "none bright"
            fv = d.get(f"{m}|f")
            return f"{v:.3f}" + ("" if fv is None else f" ({fv:.3f})")

        def cpu(m: str, d: dict = d) -> str:
            c = d.get(f"{m}|cpu")
            if c is None:
                return "-"
            # the xTB gaps take milliseconds: the first lines were stored rounded to 0.1 s
            return f"{c:.0f}" if c >= 1 else ("<0.1" if c < 0.05 else f"{c:.1f}")

        lines.append(
            f"| {n} | {d['natoms']} | {'lowest' if d['rank'] == 0 else 'second'} ({d['ranked_by']}) "
            f"| {cell(REFERENCE_METHOD)} | {_f(d.get(f'{REFERENCE_METHOD}|lowest'))} | {cell(TDA_PBE)} "
            f"| {_f(d.get(f'{TDA_PBE}|lowest'))} | {_f(d.get(f'{TDA_PBE}|ground_gap'))} "
            f"| {cell(RIS_PBE0)} | {cell(RIS_PBE)} | {cell(GAP_METHODS[0])} | {cell(GAP_METHODS[1])} "
            f"| {' / '.join(cpu(m) for m in (REFERENCE_METHOD, TDA_PBE, RIS_PBE0, RIS_PBE, *GAP_METHODS))} |"
        )
    ref_names = [n for n in names if t[n].get(f"{REFERENCE_METHOD}|value") is not None]
    common = [n for n in ref_names if all(t[n].get(f"{m}|{fld}") is not None for m, fld, _ in CANDIDATES.values())]
    lines += [
        "",
        (
            f"## Fits onto the TDA-PBE0 first bright energy ({len(ref_names)} structures with it, "
            f"{len(common)} with every candidate)"
        ),
        "",
        (
            "E_x is the candidate (eV). Leave-one-formula-out (LOFO): every structure predicted by the map fitted "
            "on the other formulas' structures; MAE and max of |predicted - TDA-PBE0|. nm: the same errors as "
            f"wavelength errors near {NM_AT:.0f} nm (linearised, lambda^2/hc)."
        ),
        "",
    ]
    header = [
        "| candidate | map | fit on all points | LOFO MAE eV | LOFO max eV | MAE nm | max nm |",
        "|---|---|---|---|---|---|---|",
    ]
    best: list[tuple[float, float, str]] = []
    lowest = [n for n in common if t[n]["rank"] == 0]
    subsets = (
        ("every structure the candidate has", ref_names),
        ("the common structures", common),
        ("the common structures that are their formula's lowest (the isomers a band estimate is made for)", lowest),
    )
    for title, subset in subsets:
        lines += [f"On {title}:", "", *header]
        for label in CANDIDATES:
            out, scores = fit_summary(subset, t, label)
            lines += out
            if subset is common:
                best += [(mae, mx, f"{label} ({m})") for m, (mae, mx, _) in scores.items()]
        lines.append("")
    pbe_raw = [
        t[n][f"{TDA_PBE}|value"] - t[n][f"{REFERENCE_METHOD}|value"]
        for n in ref_names
        if t[n].get(f"{TDA_PBE}|value") is not None
    ]
    if pbe_raw:
        lines.append(
            f"Unfitted TDA-PBE minus TDA-PBE0 first bright: mean {np.mean(pbe_raw):+.3f} eV, range "
            f"{min(pbe_raw):+.3f} to {max(pbe_raw):+.3f} eV ({len(pbe_raw)} structures)."
        )
    # whole runs, ground state included: at these sizes the SCF is a large part of each
    for method, label, what in (
        (TDA_PBE, "TDA-PBE", ""),
        (RIS_PBE0, "TDA-ris-PBE0", " (whole runs, ground state included)"),
        (RIS_PBE, "TDA-ris-PBE", " (whole runs, ground state included)"),
    ):
        ratio = [
            t[n][f"{REFERENCE_METHOD}|cpu"] / t[n][f"{method}|cpu"]
            for n in ref_names
            if t[n].get(f"{method}|cpu") and t[n].get(f"{REFERENCE_METHOD}|cpu")
        ]
        if ratio:
            lines.append(
                f"CPU of TDA-PBE0 / {label}{what} on the same structure: {min(ratio):.1f}x to {max(ratio):.1f}x "
                f"({len(ratio)} structures)."
            )
    checks = states_check(rows)
    if checks:
        lines += ["", *checks]
    lines.append("")
    if best and len({t[n]["formula"] for n in common}) >= 3:
        ranked = sorted(best)
        label = ranked[0][2].split(" (")[0]
        # both maps of the winner: with this few points a 0.01 eV edge of one map over the other is noise
        maps = "; ".join(
            f"{w.split(' (')[1].rstrip(')')} MAE {m:.3f} eV (~{nm_error(m):.0f} nm near {NM_AT:.0f} nm), "
            f"max {x:.3f} eV (~{nm_error(x):.0f} nm)"
            for m, x, w in ranked
            if w.startswith(label + " (")
        )
        runner = next((x for x in ranked[1:] if not x[2].startswith(label + " (")), None)
        lines.append(
            f"**Verdict: {label} tracks TDA-PBE0 best on the {len(common)} common structures "
            f"({len({t[n]['formula'] for n in common})} formulas), leave-one-formula-out: {maps}.** "
            + (
                ""
                if runner is None
                else f"Next other candidate: {runner[2]}, MAE {runner[0]:.3f} eV, max {runner[1]:.3f} eV. "
            )
            + "Small clusters only (<= 8 atoms): whether the map holds at 26 atoms is not tested here."
        )
    else:
        lines.append("**Verdict: not yet: fewer than 3 formulas have every candidate and the reference.**")
    lines += gap_map_lines(t, larger_gaps() if larger is None else larger, computed)
    lines += threshold_lines(big)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--report", action="store_true", help="write the markdown page from the stored lines and stop")
    ap.add_argument(
        "--large",
        action="store_true",
        help=f"run TDA-PBE0 ({LARGE_STATES} singlets) on the PBE-lowest cluster of each formula of >= {LARGE_FROM} "
        "atoms (hours each, resumable)",
    )
    ap.add_argument(
        "--large-method",
        default=REFERENCE_METHOD,
        choices=(REFERENCE_METHOD, RIS_PBE0, RIS_PBE),
        help="the method of --large (default the reference); TDA-ris-PBE0 starts from the converged PBE0 ground "
        "state of a TDA-PBE0 run where one is saved, TDA-ris-PBE from its own SCF",
    )
    ap.add_argument(
        "--write-map",
        action="store_true",
        help=f"also write the maps the reports use: the PBE gap ({GAP_MAP.name}) and TDA-ris-PBE ({RIS_MAP.name})",
    )
    args = ap.parse_args(argv)
    if not args.report:
        run(lambda s: print(s, flush=True), large=args.large, large_method=args.large_method)
    if args.write_map:
        t = table_rows(small_rows(load()))
        commit = git_commit()  # before the first file is written: that would make the tree dirty for the second
        for candidate, path in (("PBE HOMO-LUMO gap", GAP_MAP), ("TDA-ris-PBE first bright", RIS_MAP)):
            m = gap_map(t, candidate)
            if m is None:
                print(
                    f"excitation_validation: fewer than 3 formulas have {candidate} and TDA-PBE0: "
                    f"{path.name} not written",
                    file=sys.stderr,
                )
                return 1
            print(f"wrote {write_gap_map(m, path, commit)}: {m.describe()}")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report(load()))
    print(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
