"""PBE/def2-SVP single points (and a few PBE relaxations) of the reference set.

Reads ``benchmarks/reference/structures.extxyz`` (build_reference.py) and appends one JSON line
per finished structure to ``benchmarks/reference/pbe_def2svp.jsonl`` (paths: :mod:`benchmarks.paths`):

* the first line of the file (``"type": "settings"``) holds the settings and
  versions once: method, xc, basis, ECP elements, density-fitting auxbasis, grid
  level, conv_tol, SCF ladder, pyscf / airss-msc / numpy versions, git commit;
  a new settings line is appended only if any of them changes;
* ``"type": "single_point"``: name, formula, kind, family, bonding, geometry
  engine, origin (which engine found it), natoms, energy (eV), HOMO-LUMO gap (eV),
  status, SCF notes (rung that converged, UKS kept, cycles, <S^2>), wall and CPU
  seconds, a fingerprint of the geometry (a result counts only for the geometry
  it was computed on).

Every energy goes through the package's ``single_point(atoms,
"pyscf:PBE/def2-SVP")`` (no DFT code here; the calculator is only looked at
afterwards for its SCF notes).

On a machine with an NVIDIA GPU and gpu4pyscf installed (``pip install 'airss-msc[gpu]'``)
the same job runs each SCF on the GPU (``--gpu`` insists on it and stops with a one-line
error where it is missing); the settings line records the device. Nothing else changes: the
method, the ladder and the files are the same, so CPU and GPU rows sit in one file.

PBE relaxations (``--relax``, default Cd2Se2, Cd3Se3, Cd4Se4, then Cd6Se6 last)
start from the lowest structure of the formula among the CHGNet geometries (the
lowest PBE single point once all of the formula's single points are done,
otherwise the lowest CHGNet energy) and run ``relax_structure(...,
RelaxSettings(method="pyscf:PBE/def2-SVP", fmax=0.05, steps=CHUNK))`` in chunks
of CHUNK optimizer steps up to 60 in all; every chunk is appended to
``pbe_relax.jsonl`` (type ``relax_chunk``), so a killed relaxation resumes from
its last chunk (the optimizer's memory restarts at each chunk). A finished
relaxation becomes the structure ``<formula>-pbe_relaxed`` of the set (kind
``pbe_relaxed``; ``structures.extxyz`` is reassembled) and gets its own single point.

Jobs run smallest cluster first (single points of a size before a relaxation of
that size). Safe to kill and rerun: finished work is skipped; a job in progress
is held by a lock file (``benchmarks/reference/work/claims``, not committed) so two processes
never run the same one.

    cd /work/main    # the repository root
    mkdir -p benchmarks/out/logs
    OMP_NUM_THREADS=1 nohup .venv/bin/python -m benchmarks.compute_reference --follow 7200 \\
        > benchmarks/out/logs/compute_w0.log 2>&1 &
    # a second process on a disjoint share (only when the machine is idle):
    OMP_NUM_THREADS=1 nohup .venv/bin/python -m benchmarks.compute_reference --worker 1 --workers 2 ...
    # (then run the first one with --worker 0 --workers 2 as well)
    .venv/bin/python -m benchmarks.compute_reference --status
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_STACKSIZE", "1G")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import fcntl  # noqa: E402
import fnmatch  # noqa: E402
import hashlib  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402

import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.io import read  # noqa: E402

import benchmarks.build_reference as br  # noqa: E402
from benchmarks.jsonl import append_jsonl, read_jsonl  # noqa: E402
from benchmarks.paths import CLAIMS, PBE_RELAX, SCF_CHECKPOINTS  # noqa: E402
from benchmarks.paths import PBE as OUT  # noqa: E402
from benchmarks.provenance import git_commit, package_version  # noqa: E402

METHOD = "pyscf:PBE/def2-SVP"
RELAX_OUT = PBE_RELAX
RELAX_FMAX = 0.05
RELAX_STEPS = 60
CHUNK = 10
DEFAULT_RELAX = ("Cd2Se2", "Cd3Se3", "Cd4Se4", "Cd6Se6")
#: Relaxations run after every single point of their size; these run after everything.
LAST = ("Cd6Se6",)


# --------------------------------------------------------------------------- #
# Bookkeeping
# --------------------------------------------------------------------------- #


def fingerprint(atoms: Atoms) -> str:
    """Symbols and positions rounded to 1e-4 Angstrom: a result belongs to one geometry."""
    text = " ".join(atoms.get_chemical_symbols()) + "|" + " ".join(f"{x:.4f}" for x in atoms.positions.ravel())
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def load_structures() -> list[Atoms]:
    for _ in range(5):
        try:
            return read(br.STRUCTURES, index=":", format="extxyz") if br.STRUCTURES.exists() else []
        except Exception:  # being replaced right now
            time.sleep(2)
    return []


def done_single_points() -> dict[str, dict]:
    """name -> last single point whose geometry fingerprint it carries."""
    out = {}
    for row in read_jsonl(OUT):
        if row.get("type") == "single_point":
            out[(row["name"], row["fingerprint"])] = row
    return out


def relax_state() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in read_jsonl(RELAX_OUT):
        if row.get("type") == "relax_chunk":
            out.setdefault(row["name"], []).append(row)
    return out


def version(dist: str) -> str:
    return package_version(dist) or "not installed"


def settings_record(images: list[Atoms]) -> dict:
    """What the energies depend on, read from the package where it can be read."""
    from airss_msc.calc.engines import engine_version, parse_method
    from airss_msc.calc.engines.pyscf import (
        DAMPING,
        DEF2_ECP_FROM,
        DIVERGENCE_HARTREE,
        LEVEL_SHIFT,
        LEVEL_SHIFT_RELEASE,
        OPEN_SHELL_GAP_EV,
        SHIFTED_MAX_CYCLE,
        PySCFCluster,
        _mean_field,
        build_molecule,
        has_gpu4pyscf,
        split_model,
    )
    from airss_msc.calc.single_point import comparable_ladder

    xc, basis, _ = split_model(parse_method(METHOD).model)
    p = PySCFCluster.default_parameters
    elements = sorted({s for a in images for s in a.get_chemical_symbols()} | {"Cd", "Se", "Te", "Zn"})
    mol = build_molecule(elements, np.arange(3 * len(elements), dtype=float).reshape(-1, 3) * 3.0, basis)
    mf = _mean_field(mol, xc, False, int(p["grid_level"]))
    return {
        "type": "settings",
        "method": METHOD,
        "xc": xc,
        "basis": basis,
        "ecp_elements": sorted(mol._ecp.keys()),
        "ecp": f"def2 ECPs (basis name {basis}) for Z >= {DEF2_ECP_FROM}",
        "all_electron_elements": sorted(set(elements) - set(mol._ecp.keys())),
        "density_fitting_auxbasis": str(mf.with_df.auxbasis),
        "grid_level": int(mf.grids.level),
        "conv_tol": float(p["conv_tol"]),
        "max_cycle": int(p["max_cycle"]),
        "charge": 0,
        "spin": 0,
        "scf_ladder": f"DIIS -> level shift {LEVEL_SHIFT} + damping {DAMPING} (at most {SHIFTED_MAX_CYCLE} cycles)"
        + (f" (shift dropped below an orbital gradient of {LEVEL_SHIFT_RELEASE})" if LEVEL_SHIFT_RELEASE else "")
        + " -> second-order SCF -> Fermi smearing "
        f"{p['smearing']} Ha (recorded in scf_notes); a rung whose energy rises {DIVERGENCE_HARTREE} Ha "
        "above its lowest is abandoned and the next starts from the atomic guess",
        "open_shell_check": f"UKS broken-symmetry check when the RKS gap < {OPEN_SHELL_GAP_EV} eV; lower kept",
        "single_point_rungs": comparable_ladder(METHOD),
        "versions": {
            "pyscf": version("pyscf"),
            "airss-msc": version("airss-msc"),
            "numpy": version("numpy"),
            "ase": version("ase"),
            "scipy": version("scipy"),
            "python": platform.python_version(),
            "engine": engine_version(METHOD),
        },
        "git_commit": git_commit(),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "device": "gpu (gpu4pyscf)" if has_gpu4pyscf() else "cpu",
        "relaxation": {"fmax": RELAX_FMAX, "steps": RELAX_STEPS, "chunk_steps": CHUNK, "optimizer": "PreconLBFGS"},
    }


def ensure_settings(images: list[Atoms]) -> None:
    rec = settings_record(images)
    keys = [k for k in rec if k not in ("git_commit", "type")]
    last = [r for r in read_jsonl(OUT) if r.get("type") == "settings"]
    if last and all(last[-1].get(k) == rec[k] for k in keys):
        return
    if last:
        rec["note"] = "settings or versions changed: rows below were computed with these"
    append_jsonl(OUT, rec)


class Claim:
    """An exclusive, non-blocking lock on one job (released when the process ends)."""

    def __init__(self, name: str):
        CLAIMS.mkdir(parents=True, exist_ok=True)
        self.path = CLAIMS / (name.replace("/", "_") + ".lock")
        self.fh = None

    def __enter__(self):
        self.fh = open(self.path, "w")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.close()
            self.fh = None
            return False
        self.fh.write(f"{os.getpid()}\n")
        self.fh.flush()
        return True

    def __exit__(self, *exc):
        if self.fh is not None:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()


# --------------------------------------------------------------------------- #
# Jobs
# --------------------------------------------------------------------------- #


def run_single_point(atoms: Atoms) -> dict:
    """single_point(atoms, METHOD) with the SCF notes of the calculator it used."""
    import airss_msc.calc.single_point as sp_module

    made = []
    original = sp_module.make_calculator
    # a killed point resumes from its last SCF cycle (26 atoms: up to 50 cycles of ~2 CPU min)
    checkpoint = SCF_CHECKPOINTS / f"{atoms.info['name']}-{fingerprint(atoms)}.npz"

    def tracking(*args, **kwargs):
        calc = original(*args, **kwargs)
        if "checkpoint" in getattr(calc, "default_parameters", {}):
            calc.set(checkpoint=str(checkpoint))
        made.append(calc)
        return calc

    sp_module.make_calculator = tracking
    load = os.getloadavg()[0]
    cpu0 = time.process_time()
    try:
        sp = sp_module.single_point(atoms, METHOD)
    finally:
        sp_module.make_calculator = original
    cpu = time.process_time() - cpu0
    notes: dict = {"retries": sp.retries}
    if made:
        calc = made[-1]
        mf = getattr(calc, "mf", None)
        notes["notes"] = list(getattr(calc, "notes", []))
        if mf is not None:
            notes["unrestricted"] = "UKS" in type(mf).__name__ or np.ndim(mf.mo_occ) == 2
            notes["cycles"] = getattr(mf, "cycles", None)
            notes["converged"] = bool(getattr(mf, "converged", False))
            if notes["unrestricted"]:
                with contextlib.suppress(Exception):
                    notes["s2"] = round(float(mf.spin_square()[0]), 4)
    info = atoms.info
    return {
        "type": "single_point",
        "name": info["name"],
        "formula": info["formula"],
        "kind": info["kind"],
        "family": info.get("family"),
        "bonding": info.get("bonding"),
        "geometry_engine": info.get("geometry_engine"),
        "origin": info.get("origin"),
        "natoms": len(atoms),
        "anion_bonds": int(info.get("anion_bonds", -1)),
        "fingerprint": fingerprint(atoms),
        "method": sp.method,
        "energy_eV": sp.energy,
        "gap_eV": sp.gap,
        "status": sp.status,
        "message": sp.message,
        "scf_notes": notes,
        "seconds": round(sp.seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "load_at_start": round(load, 2),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def relax_start(formula: str, images: list[Atoms], done: dict) -> tuple[Atoms, str] | None:
    """The structure a PBE relaxation of ``formula`` starts from, and why it was chosen."""
    cands = [a for a in images if a.info["formula"] == formula and a.info.get("geometry_engine") == br.GEOMETRY_ENGINE]
    if not cands:
        return None
    energies = [done.get((a.info["name"], fingerprint(a)), {}).get("energy_eV") for a in cands]
    if all(e is not None for e in energies):
        k = int(np.argmin(energies))
        return cands[k], f"lowest PBE single point among {len(cands)} CHGNet geometries"
    k = int(np.argmin([a.info["geometry_energy"] for a in cands]))
    return cands[k], f"lowest CHGNet energy among {len(cands)} (PBE single points not all done)"


def run_relax_chunk(name: str, formula: str, chunks: list[dict], images: list[Atoms], done: dict) -> dict | None:
    from airss_msc.calc.relax import RelaxSettings, relax_structure
    from airss_msc.generation.geometry import anion_bonds

    if chunks:
        last = chunks[-1]
        start_name, why = last["start"], last["start_choice"]
        atoms = Atoms(last["symbols"], positions=np.asarray(last["positions"]))
        steps_before = last["steps_total"]
    else:
        found = relax_start(formula, images, done)
        if found is None:
            return None
        start, why = found
        start_name = start.info["name"]
        atoms = Atoms(start.get_chemical_symbols(), positions=start.positions)
        steps_before = 0
    steps = min(CHUNK, RELAX_STEPS - steps_before)
    cpu0 = time.process_time()
    res = relax_structure(atoms, RelaxSettings(method=METHOD, fmax=RELAX_FMAX, steps=steps))
    cpu = time.process_time() - cpu0
    total = steps_before + res.steps
    finished = res.status not in ("max_steps",) or total >= RELAX_STEPS
    out = Atoms(list(res.symbols), positions=np.asarray(res.positions))
    return {
        "type": "relax_chunk",
        "name": name,
        "formula": formula,
        "start": start_name,
        "start_choice": why,
        "chunk": len(chunks) + 1,
        "steps": res.steps,
        "steps_total": total,
        "force_calls": res.force_calls,
        "status": res.status,
        "message": res.message,
        "energy": res.energy,
        "gap": res.gap,
        "fmax": res.fmax,
        "fmax_target": RELAX_FMAX,
        "steps_limit": RELAX_STEPS,
        "finished": finished,
        "anion_bonds": anion_bonds(out),
        "symbols": list(res.symbols),
        "positions": np.round(np.asarray(res.positions), 6).tolist(),
        "wall": round(res.wall_seconds, 1),
        "cpu": round(cpu, 1),
        "load_at_start": round(os.getloadavg()[0], 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def pending_jobs(images: list[Atoms], done: dict, relax: dict, relax_formulas) -> list[tuple]:
    """(priority, kind, name, payload) of every job not done, smallest first."""
    jobs = []
    for k, a in enumerate(images):
        if (a.info["name"], fingerprint(a)) not in done:
            jobs.append(((len(a), 0, k), "sp", a.info["name"], a))
    for formula in relax_formulas:
        name = f"{formula}-pbe_relaxed"
        chunks = relax.get(name, [])
        if chunks and chunks[-1].get("finished"):
            continue
        natoms = sum(br.formula_counts(formula).values())
        prio = (10_000, 1, 0) if formula in LAST else (natoms, 1, 0)
        jobs.append((prio, "relax", name, formula))
    jobs.sort(key=lambda j: j[0])
    return jobs


def selected(name: str, only: str, worker: int, workers: int) -> bool:
    if only:
        pattern = only if any(c in only for c in "*?[") else f"*{only}*"
        if not fnmatch.fnmatch(name, pattern):
            return False
    return zlib.crc32(name.encode()) % workers == worker


def status(images: list[Atoms], relax_formulas) -> None:
    done = done_single_points()
    relax = relax_state()
    ok = sum(1 for r in done.values() if r["status"] == "ok")
    current = {(a.info["name"], fingerprint(a)) for a in images}
    print(
        f"structures: {len(images)}; single points on the current geometries: "
        f"{len(current & set(done))} ({ok} ok in the file overall)"
    )
    cpu = sum(r.get("cpu_seconds", 0) for r in done.values())
    print(f"CPU seconds spent on single points: {cpu:.0f}")
    for formula in relax_formulas:
        chunks = relax.get(f"{formula}-pbe_relaxed", [])
        if chunks:
            c = chunks[-1]
            print(
                f"{formula}-pbe_relaxed: {len(chunks)} chunks, {c['steps_total']} steps, status {c['status']}, "
                f"fmax {c['fmax']}, finished {c['finished']}"
            )
        else:
            print(f"{formula}-pbe_relaxed: not started")
    pending = pending_jobs(images, done, relax, relax_formulas)
    print(f"pending jobs: {len(pending)}: {[j[2] for j in pending][:12]}{' ...' if len(pending) > 12 else ''}")
    # per formula, in the set's order: the table of the README's "Status"
    print("\n| formula | structures | PBE single points |\n|---|---|---|")
    per: dict[str, list[int]] = {}
    for a in images:
        row = per.setdefault(a.info["formula"], [0, 0])
        row[0] += 1
        row[1] += (a.info["name"], fingerprint(a)) in done
    for formula, (n, n_done) in per.items():
        print(f"| {formula} | {n} | {n_done} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="glob (or substring) on the structure/job name, e.g. 'Cd2Se2-*'")
    ap.add_argument("--worker", type=int, default=0, help="this process's index (0-based)")
    ap.add_argument("--workers", type=int, default=1, help="number of processes sharing the jobs")
    ap.add_argument("--relax", default=",".join(DEFAULT_RELAX), help="formulas to PBE-relax ('' for none)")
    ap.add_argument("--no-single-points", action="store_true")
    ap.add_argument("--max-atoms", type=int, default=100)
    ap.add_argument("--min-atoms", type=int, default=0, help="only structures of at least this many atoms")
    ap.add_argument(
        "--follow",
        type=float,
        default=0.0,
        help="when nothing is pending, wait up to this many seconds for new structures",
    )
    ap.add_argument("--status", action="store_true", help="print what is done and pending, then exit")
    ap.add_argument(
        "--gpu",
        action="store_true",
        help="require the GPU path (gpu4pyscf and a CUDA device; without --gpu it is used when present)",
    )
    args = ap.parse_args(argv)
    if args.gpu:
        from airss_msc.calc.engines.pyscf import has_gpu4pyscf

        if not has_gpu4pyscf():
            print(
                "compute_reference: --gpu needs gpu4pyscf and a CUDA device (pip install 'airss-msc[gpu]'; "
                "cupy sees none here)",
                file=sys.stderr,
            )
            return 2
    if not 0 <= args.worker < args.workers:
        ap.error("need 0 <= --worker < --workers")
    relax_formulas = [f for f in args.relax.split(",") if f]
    images = load_structures()
    if args.status:
        status(images, relax_formulas)
        return 0
    ensure_settings(images)
    print(
        f"compute_reference: pid {os.getpid()}, worker {args.worker}/{args.workers}, only {args.only!r}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
        flush=True,
    )
    idle_since = None
    while True:
        images = load_structures()
        done = done_single_points()
        relax = relax_state()
        jobs = [
            j
            for j in pending_jobs(images, done, relax, relax_formulas)
            if selected(j[2], args.only, args.worker, args.workers)
        ]
        jobs = [
            j
            for j in jobs
            if (j[1] == "sp" and not args.no_single_points and args.min_atoms <= len(j[3]) <= args.max_atoms)
            or (j[1] == "relax" and args.min_atoms <= sum(br.formula_counts(j[3]).values()) <= args.max_atoms)
        ]
        ran = False
        for _prio, kind, name, payload in jobs:
            with Claim(name) as mine:
                if not mine:
                    continue
                # re-check under the claim: another process may have just finished it
                if kind == "sp":
                    if (name, fingerprint(payload)) in done_single_points():
                        continue
                    t0 = time.time()
                    print(
                        f"[{time.strftime('%H:%M:%S')}] single point {name} ({len(payload)} atoms, "
                        f"load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
                    row = run_single_point(payload)
                    append_jsonl(OUT, row)
                    print(
                        f"    {row['status']} E={row['energy_eV']} gap={row['gap_eV']} cpu={row['cpu_seconds']} s "
                        f"wall={time.time() - t0:.0f} s notes={row['scf_notes']}",
                        flush=True,
                    )
                else:
                    chunks = relax_state().get(name, [])
                    if chunks and chunks[-1].get("finished"):
                        continue
                    print(f"[{time.strftime('%H:%M:%S')}] PBE relaxation {name}, chunk {len(chunks) + 1}", flush=True)
                    row = run_relax_chunk(name, payload, chunks, images, done)
                    if row is None:
                        print("    no start structure yet", flush=True)
                        continue
                    append_jsonl(RELAX_OUT, row)
                    print(
                        f"    {row['status']} steps {row['steps_total']} E={row['energy']} fmax={row['fmax']} "
                        f"cpu={row['cpu']} s finished={row['finished']}",
                        flush=True,
                    )
                    if row["finished"]:
                        n = br.assemble()
                        print(f"    structures.extxyz reassembled: {n} structures", flush=True)
                ran = True
                break
        if ran:
            idle_since = None
            continue
        if args.follow <= 0:
            break
        idle_since = idle_since or time.time()
        if time.time() - idle_since > args.follow:
            break
        time.sleep(60)
    print(f"compute_reference: nothing left for this process ({time.strftime('%H:%M:%S')})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
