"""CPU seconds of one TDA-TDDFT excitation run (ground-state SCF + Davidson), one core.

    OMP_NUM_THREADS=1 python -m benchmarks.tda_timing                 # every case not yet measured
    python -m benchmarks.tda_timing --report                          # the table from what is stored
    python -m benchmarks.tda_timing --cases "Cd3Se3:pyscf:TDA-PBE0/def2-SVP:10"

Each case is (formula, method, states). The geometry is the lowest CHGNet 0.3.0 structure of
the formula in the reference set (``benchmarks/reference/structures.extxyz``) or, for formulas
not in it, a random start (``generate_cluster(formula, 7)``) relaxed with CHGNet. The run is
``airss_msc.calc.excite.excite`` (what ``airss-msc spectrum`` runs per structure), timed with
``time.process_time`` in this process. Results append to ``benchmarks/out/tda_timing.jsonl``
(resumable); the table goes to ``benchmarks/out/tda_timing.md`` with the commit. Cd13Se13 is
not run on this machine: its line is an estimate from the measured scaling, marked as such.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from ase import Atoms
from ase.io import read

from airss_msc.calc.excite import excite
from airss_msc.calc.relax import RelaxSettings, relax_structure
from airss_msc.generation.generate import generate_cluster
from benchmarks.paths import OUT, STRUCTURES
from benchmarks.provenance import git_commit

RESULTS = OUT / "tda_timing.jsonl"
REFERENCE = STRUCTURES
CASES = [
    ("Cd2Se2", "pyscf:TDA-PBE/def2-SVP", 5),
    ("Cd2Se2", "pyscf:TDA-PBE0/def2-SVP", 5),
    ("Cd2Se2", "pyscf:TDA-PBE0/def2-SVP", 10),
    ("Cd3Se3", "pyscf:TDA-PBE/def2-SVP", 5),
    ("Cd3Se3", "pyscf:TDA-PBE0/def2-SVP", 5),
    ("Cd7TeSe3", "pyscf:TDA-PBE/def2-SVP", 5),
]


def geometry(formula: str) -> tuple[Atoms, str]:
    if REFERENCE.exists():
        frames = [
            a
            for a in read(REFERENCE, ":")
            if a.info.get("formula") == formula and a.info.get("geometry_engine") == "chgnet:0.3.0"
        ]
        if frames:
            best = min(frames, key=lambda a: a.info["geometry_energy"])
            return Atoms(best.get_chemical_symbols(), positions=best.positions), f"reference {best.info['name']}"
    res = relax_structure(generate_cluster(formula, 7), RelaxSettings(method="chgnet", fmax=0.05, steps=300))
    return res.atoms, f"generate_cluster({formula!r}, 7) relaxed with CHGNet ({res.status})"


def measure(formula: str, method: str, states: int) -> dict:
    atoms, origin = geometry(formula)
    c0, w0 = time.process_time(), time.perf_counter()
    exc = excite(atoms, method, states)
    bright = exc.first_bright()
    return {
        "formula": formula,
        "method": method,
        "states": states,
        "natoms": len(atoms),
        "origin": origin,
        "status": exc.status,
        "message": exc.message[:200],
        "cpu_s": round(time.process_time() - c0, 1),
        "wall_s": round(time.perf_counter() - w0, 1),
        "load": round(os.getloadavg()[0], 2),
        "first_bright_eV": None if bright is None else round(bright[0], 3),
        "energies_eV": [round(float(e), 3) for e in exc.energies_eV],
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def stored() -> list[dict]:
    if not RESULTS.exists():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def report(rows: list[dict]) -> str:
    lines = [
        (
            f"`OMP_NUM_THREADS=1 python -m benchmarks.tda_timing` (table written on commit {git_commit()}); one core, "
            "CPU seconds of `excite()` (PBE/PBE0 ground state with the SCF ladder, then TDA Davidson), "
            "def2-SVP with def2 ECPs on Cd/Te, density fitting (def2-universal-jkfit), grid level 3."
        ),
        "",
        "| formula | atoms | method | states | status | CPU s | wall s (load) | first bright (eV) | commit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["natoms"], r["method"], r["states"])):
        lines.append(
            f"| {r['formula']} | {r['natoms']} | {r['method']} | {r['states']} | {r['status']} | "
            f"{r['cpu_s']:.0f} | {r['wall_s']:.0f} ({r['load']:.1f}) | {r['first_bright_eV'] or '-'} | "
            f"{r['commit']} |"
        )
    ok = [r for r in rows if r["status"] == "done"]
    pbe = {r["natoms"]: r["cpu_s"] for r in ok if r["method"].endswith("TDA-PBE/def2-SVP") and r["states"] == 5}
    if len(pbe) >= 2:
        n = np.array(sorted(pbe))
        t = np.array([pbe[k] for k in n])
        slope, icpt = np.polyfit(np.log(n), np.log(t), 1)
        est = float(np.exp(icpt) * 26**slope)
        lines += [
            "",
            (
                f"Scaling of TDA-PBE (5 states) with size over the measured clusters: CPU ~ N^{slope:.1f}; "
                f"**estimate** (not run here) for Cd13Se13 (26 atoms): ~{est / 3600:.1f} CPU hours per structure "
                "with TDA-PBE, several times that with PBE0 (see the PBE0/PBE ratios above)."
            ),
        ]
    by = {(r["formula"], r["method"], r["states"]): r["cpu_s"] for r in ok}
    for f in sorted({r["formula"] for r in ok}):
        five, ten = by.get((f, "pyscf:TDA-PBE0/def2-SVP", 5)), by.get((f, "pyscf:TDA-PBE0/def2-SVP", 10))
        pbe5 = by.get((f, "pyscf:TDA-PBE/def2-SVP", 5))
        if five and ten:
            lines.append(f"- {f}: TDA-PBE0 10 states / 5 states = {ten / five:.2f}x CPU")
        if five and pbe5:
            lines.append(f"- {f}: TDA-PBE0 / TDA-PBE (5 states) = {five / pbe5:.2f}x CPU")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", help="semicolon-separated formula:method:states (default: all)")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    cases = CASES
    if args.cases:
        cases = []
        for spec in args.cases.split(";"):
            formula, rest = spec.split(":", 1)
            method, states = rest.rsplit(":", 1)
            cases.append((formula, method, int(states)))
    if not args.report:
        have = {(r["formula"], r["method"], r["states"]) for r in stored()}
        for case in cases:
            if case in have:
                continue
            row = measure(*case)
            OUT.mkdir(exist_ok=True)
            with RESULTS.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{case}: {row['status']} {row['cpu_s']} CPU s", file=sys.stderr, flush=True)
    text = report(stored())
    print(text)
    (OUT / "tda_timing.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
