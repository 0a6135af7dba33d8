"""Bare against capped excitations: how much do amine ligands move the first bright band?

Issue 20 item 4. The bare cluster and its capped twin are relaxed by the same engine (SevenNet-0,
the engine ``benchmarks/capping.py`` found to keep amines bound), the capped one from the bare
CHGNet minimum with the ligands put on by ``airss_msc.generation.ligands.cap``; then both get the
same excitation run (10 singlets, 20 where none of 10 is bright). The number to read is the shift
of the first bright singlet, capped minus bare, in eV and in nm.

The method is TDA-ris on the PBE ground state (``pyscf:TDA-ris-PBE/def2-SVP``), not the project's
TDA-PBE0: on this 2-core machine a TDA-PBE0 of the 23-atom capped fragment is hours, and TDA-ris-PBE
tracks TDA-PBE0 with a constant shift on the reference clusters (+0.50 eV, leave-one-formula-out
MAE 0.09 eV; BENCHMARKS.md, 'A cheaper band estimate'; better than TDA-PBE there), at the cost of
a PBE SCF. The shift cancels in a difference as far as it is the same for bare and capped
clusters (not measured: no amine is in the fit).

The cases: the MSC-399 study's ESI-MS fragment Cd7TeSe3 (CHGNet minimum of random seed 0, as in
the capping benchmark) bare and with NH3 on its 3 least coordinated Cd. The (MX)13 end members
are listed but not run here (a 26-atom TDA is hours of one core; run them with --only on a
cluster or a GPU).

    OMP_NUM_THREADS=1 python -m benchmarks.capped_excitations [--only NAME] [--report]

Resumable: one JSON line per finished structure in benchmarks/runs/capped_excitations.jsonl and
its geometry in capped_excitations.extxyz (skipped on rerun); the table goes to
benchmarks/out/capped_excitations.md with the commit(s) it ran on.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from ase import Atoms
from ase.io import write

from airss_msc.analysis.bands import HC_EV_NM
from airss_msc.analysis.spectra import BRIGHT_F
from airss_msc.calc.excite import excite
from airss_msc.calc.relax import RelaxSettings, relax_structure
from airss_msc.calc.threads import set_threads
from airss_msc.generation.ligands import cap
from airss_msc.results.record import Status
from benchmarks.capping import bare_structures, metal_n
from benchmarks.jsonl import append_jsonl, read_jsonl
from benchmarks.paths import OUT, RUNS
from benchmarks.provenance import git_commit

RESULTS = RUNS / "capped_excitations.jsonl"
GEOMETRIES = RUNS / "capped_excitations.extxyz"
METHOD = "pyscf:TDA-ris-PBE/def2-SVP"
ENGINE = "sevennet"
#: singlets of the first run, and of the rerun where none of them is bright (a ris response is seconds)
STATES = (10, 20)


@dataclass(frozen=True)
class Pair:
    """One bare cluster (a name of ``benchmarks.capping.bare_structures``) and how it is capped."""

    bare: str
    ligand: str
    sites: str
    run_here: bool

    @property
    def names(self) -> tuple[str, str]:
        return f"{self.bare}|bare", f"{self.bare}|{self.ligand}|{self.sites}"


PAIRS = (
    Pair("Cd7TeSe3#0", "NH3", "3", True),
    Pair("Cd13Se13", "NH3", "3", False),
    Pair("Cd13Te13", "NH3", "3", False),
    Pair("Cd13Te6Se7", "NH3", "3", False),
)


@dataclass(frozen=True)
class Failed:
    """A relaxation that did not end relaxed: its start and why."""

    start: Atoms
    why: str


def structures(pair: Pair, bare: Atoms) -> dict[str, Callable[[], Atoms | Failed]]:
    """The bare and the capped geometry, both relaxed by ``ENGINE``; a relaxation that does not
    end relaxed (a capped one that lost a ligand ends fragmented) gives its status instead: its
    excitations would be of another cluster."""

    def relaxed(atoms: Atoms) -> Atoms | Failed:
        result = relax_structure(atoms, RelaxSettings(method=ENGINE))
        if Status(result.status) is not Status.RELAXED:
            return Failed(atoms, f"{ENGINE} relaxation ended {result.status}: {result.message[:200]}")
        return result.atoms

    bare_name, capped_name = pair.names
    return {
        bare_name: lambda: relaxed(bare),
        capped_name: lambda: relaxed(cap(bare, pair.ligand, pair.sites, seed=0)),
    }


def not_run(name: str, failed: Failed) -> dict:
    """The row of a structure whose relaxation failed: stored, so a rerun does not redo it."""
    return {
        "name": name,
        "formula": failed.start.get_chemical_formula(mode="metal"),
        "natoms": len(failed.start),
        "relaxed_by": ENGINE,
        "method": METHOD,
        "nstates": 0,
        "status": "not run",
        "message": failed.why,
        "first_bright_eV": None,
        "first_bright_f": None,
        "commit": git_commit(),
    }


def run_one(name: str, atoms: Atoms) -> dict:
    """The excitations of one geometry: STATES[0] singlets, STATES[1] where none of those is bright."""
    c0, w0 = time.process_time(), time.perf_counter()
    for nstates in STATES:
        exc = excite(atoms, METHOD, nstates)
        bright = exc.first_bright(BRIGHT_F)
        if bright is not None or exc.status != "done":
            break
    e = [float(x) for x in exc.energies_eV]
    f = [float(x) for x in exc.oscillator_strengths]
    return {
        "name": name,
        "formula": atoms.get_chemical_formula(mode="metal"),
        "natoms": len(atoms),
        "relaxed_by": ENGINE,
        "method": METHOD,
        "nstates": nstates,
        "status": str(exc.status),
        "message": exc.message[:300],
        "first_bright_eV": None if bright is None else round(bright[0], 4),
        "first_bright_f": None if bright is None else round(bright[1], 5),
        "lowest_eV": round(e[0], 4) if e else None,
        "energies_eV": [round(x, 4) for x in e],
        "strengths": [round(x, 5) for x in f],
        "ground_gap_eV": None if exc.ground_gap_eV is None else round(exc.ground_gap_eV, 4),
        "metal_n": [round(x, 3) for x in metal_n(atoms)],
        "cpu_s": round(time.process_time() - c0, 1),
        "wall_s": round(time.perf_counter() - w0, 1),
        "load_at_start": round(os.getloadavg()[0], 2),
        "commit": git_commit(),
    }


def finished(rows: list[dict]) -> set[str]:
    """The structures a rerun skips: every stored row but an ``error`` one (a refusal of the code, such as
    TDA-ris on the open-shell ground state it could not take before, not a measurement; the rerun's row
    comes after it and the table reads the last)."""
    return {r["name"] for r in rows if r.get("status") != "error"}


def _nm(ev: float | None) -> str:
    return f"{HC_EV_NM / ev:.0f}" if ev else "-"


def report(rows: list[dict]) -> str:
    """One line per pair: bare and capped first bright singlet, and the shift."""
    by_name = {r["name"]: r for r in rows}
    commits = sorted({r["commit"] for r in rows}) or ["(no row finished yet)"]
    lines = [
        "# Bare against capped excitations",
        "",
        (
            f"`python -m benchmarks.capped_excitations` at commit(s) {', '.join(commits)}. Both geometries relaxed "
            f"by {ENGINE} (the capped one from the bare CHGNet minimum with the ligands added); {METHOD}, "
            f"first singlet with f >= {BRIGHT_F} ({STATES[0]} singlets, {STATES[1]} where none of {STATES[0]} is "
            "bright); as computed, not shifted onto TDA-PBE0 (a shift that cancels in the difference). CPU s: one core."
        ),
        "",
        "| bare cluster | ligands | bare first bright | capped first bright | shift eV | shift nm | CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for pair in PAIRS:
        b, c = (by_name.get(n) for n in pair.names)
        label = f"{pair.ligand} on the {pair.sites} least coordinated"
        if not (b and c):
            why = "pending" if pair.run_here else "not run here (a 26-atom PBE SCF and more: hours of one core)"
            lines.append(f"| {pair.bare} | {label} | {why} | | | | |")
            continue
        eb, ec = b["first_bright_eV"], c["first_bright_eV"]
        shift = f"{ec - eb:+.3f}" if eb and ec else "-"
        nm = f"{HC_EV_NM / ec - HC_EV_NM / eb:+.0f}" if eb and ec else "-"

        def cell(r: dict) -> str:
            if r["status"] == "not run":  # the message goes into a table cell
                return "not run: " + " ".join(r["message"].replace("|", "/").split())
            if r["first_bright_eV"] is None:
                return f"none bright in {r['nstates']} ({r['status']})"
            return f"{r['first_bright_eV']:.3f} ({r['first_bright_f']:.3f}), {_nm(r['first_bright_eV'])} nm"

        cpu = " / ".join(f"{r['cpu_s']:.0f}" if "cpu_s" in r else "-" for r in (b, c))
        lines.append(f"| {pair.bare} | {label} | {cell(b)} | {cell(c)} | {shift} | {nm} | {cpu} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", action="store_true", help="only write the table from the stored rows")
    ap.add_argument("--only", default="", help="comma-separated bare clusters to run (default: those run here)")
    args = ap.parse_args(argv)
    set_threads(1)
    makers = bare_structures()
    chosen = [b for b in args.only.split(",") if b]
    unknown = [b for b in chosen if b not in {p.bare for p in PAIRS}]
    if unknown:
        print(
            f"unknown bare cluster(s) {', '.join(unknown)}: choose from {', '.join(p.bare for p in PAIRS)}",
            file=sys.stderr,
        )
        return 2
    if not args.report:
        done = finished(read_jsonl(RESULTS))
        for pair in PAIRS:
            if (pair.bare not in chosen) if chosen else not pair.run_here:
                continue
            todo = [n for n in pair.names if n not in done]
            if not todo:
                continue
            geometries = structures(pair, makers[pair.bare]())
            for name in todo:
                atoms = geometries[name]()
                if isinstance(atoms, Failed):
                    row = not_run(name, atoms)
                else:
                    row = run_one(name, atoms)
                    atoms.info.update(name=name, relaxed_by=ENGINE)
                    write(GEOMETRIES, atoms, format="extxyz", append=True)
                append_jsonl(RESULTS, row)
                print(
                    f"{name}: {row['status']}, first bright {row['first_bright_eV']} eV, {row.get('cpu_s', '-')} CPU s",
                    flush=True,
                )
    text = report(read_jsonl(RESULTS))
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / "capped_excitations.md").write_text(text)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
