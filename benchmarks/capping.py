"""Which engine keeps amine ligands on the cations of a capped cluster: the capping step's engine.

Bare clusters are capped (``airss_msc.generation.ligands.cap``) with NH3 or CH3NH2, on every
under-coordinated cation (``auto``) or on the 3 least coordinated, and relaxed by each engine
with the default protocol (500 steps, fmax 0.05 eV/A). A relaxation that loses a ligand ends
``fragmented``. Per case: whether every ligand stayed bound, and the metal-N distances of the kept
ones (a bound amine sits at about 2.2-2.4 A on Cd, 2.1-2.2 A on Zn).

The bare clusters: the committed (MX)13 parents (``structures/Cd13Se13.xyz``, ``Cd13Te13.xyz``,
``Zn13Se13.xyz``), one alloy (Cd13Te6Se7: 6 Te dealt over the (CdSe)13 parent's anion sites with
seed 0, relaxed by CHGNet) and CHGNet minima of 3 random Cd7TeSe3 (the MSC-399 study's ESI-MS
fragment, seeds 0-2).

    OMP_NUM_THREADS=1 python -m benchmarks.capping [--report]

Resumable: one JSON line per finished case in benchmarks/runs/capping.jsonl (skipped on rerun);
the table goes to benchmarks/out/capping.md with the commit it ran on.
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
from ase.io import read

from airss_msc.calc.relax import RelaxSettings, relax_structure
from airss_msc.calc.threads import set_threads
from airss_msc.generation.generate import generate_cluster
from airss_msc.generation.geometry import distances
from airss_msc.generation.ligands import cap
from airss_msc.generation.substitute import parse_substitution, substituted_structures
from airss_msc.results.record import Status
from benchmarks.jsonl import append_jsonl, read_jsonl
from benchmarks.paths import OUT, PARENT_STRUCTURES, RUNS
from benchmarks.provenance import git_commit

RESULTS = RUNS / "capping.jsonl"
ENGINES = ("chgnet", "sevennet")
LIGANDS = ("NH3", "CH3NH2")
SITES = ("3", "auto")
CATIONS = ("Cd", "Zn")
RANDOM_STARTS = 3  # random Cd7TeSe3 minima


@dataclass(frozen=True)
class Case:
    """One bare cluster (by name), ligand, site choice and engine."""

    bare: str
    ligand: str
    sites: str
    engine: str

    @property
    def key(self) -> str:
        return f"{self.bare}|{self.ligand}|{self.sites}|{self.engine}"


def _alloy() -> Atoms:
    parent = read(PARENT_STRUCTURES / "Cd13Se13.xyz")
    (start,) = substituted_structures(parent, [parse_substitution("Se:Te=6")], seed=0, max_count=1).structures
    return relax_structure(start, RelaxSettings(method="chgnet")).atoms


def bare_structures() -> dict[str, Callable[[], Atoms]]:
    """Each bare cluster by name, made on demand (the random and alloy ones cost a relaxation)."""
    parents = ("Cd13Se13", "Cd13Te13", "Zn13Se13")
    out: dict[str, Callable[[], Atoms]] = {n: (lambda n=n: read(PARENT_STRUCTURES / f"{n}.xyz")) for n in parents}
    out["Cd13Te6Se7"] = _alloy
    for s in range(RANDOM_STARTS):
        out[f"Cd7TeSe3#{s}"] = lambda s=s: (
            relax_structure(generate_cluster("Cd7TeSe3", seed=s), RelaxSettings(method="chgnet")).atoms
        )
    return out


def cases(bare_names: list[str]) -> list[Case]:
    """Every ligand, site choice and ML engine on each bare cluster; GFN1-xTB (which sheds NH3 from
    Cd7TeSe3, the first measurement here) on the random Cd7TeSe3 with NH3 everywhere only."""
    out = [Case(b, lig, sites, eng) for b in bare_names for lig in LIGANDS for sites in SITES for eng in ENGINES]
    return out + [Case(b, "NH3", "auto", "GFN1-xTB") for b in bare_names if b.startswith("Cd7TeSe3#")]


def metal_n(atoms: Atoms) -> list[float]:
    """Each N's distance to its nearest cation (Angstrom)."""
    symbols = np.array(atoms.get_chemical_symbols())
    d = distances(atoms.positions)
    metal = np.flatnonzero(np.isin(symbols, CATIONS))
    return [float(d[i, metal].min()) for i in np.flatnonzero(symbols == "N")]


def run_case(case: Case, bare: Atoms, seed: int) -> dict:
    capped = cap(bare, case.ligand, case.sites, seed=seed)
    t0 = time.process_time()
    result = relax_structure(capped, RelaxSettings(method=case.engine))
    return {
        "key": case.key,
        "bare": case.bare,
        "ligand": case.ligand,
        "sites": case.sites,
        "engine": case.engine,
        "ligands": int(capped.info["ligands"]),
        "atoms": len(capped),
        "status": Status(result.status).value,
        "metal_n": [round(x, 3) for x in metal_n(result.atoms)],
        "steps": result.steps,
        "cpu_s": round(time.process_time() - t0, 1),
        "commit": git_commit(),
    }


def report(rows: list[dict]) -> str:
    """The table: one line per bare family, ligand, sites and engine (random Cd7TeSe3 pooled)."""
    groups: dict[tuple[str, str, str, str], list[dict]] = {}
    for r in rows:
        family = r["bare"].split("#")[0]
        groups.setdefault((family, r["ligand"], r["sites"], r["engine"]), []).append(r)
    commits = sorted({r["commit"] for r in rows})
    lines = [
        "# Capping: which engine keeps amine ligands on a cluster",
        "",
        (
            f"`python -m benchmarks.capping` at commit(s) {', '.join(commits)}; default protocol, one thread. "
            "Cd7TeSe3: CHGNet minima of 3 random starts (seeds 0-2), pooled; the others one structure each. "
            "'kept' counts relaxations that ended with every ligand bound (status relaxed)."
        ),
        "",
        "| bare cluster | ligand | sites capped | engine | ligands | kept every ligand | M-N of kept (A) | CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    families = list(dict.fromkeys(b.split("#")[0] for b in bare_structures()))
    engines = [*ENGINES, "GFN1-xTB"]

    def order(key: tuple[str, str, str, str]) -> tuple[int, ...]:
        family, lig, sites, eng = key
        return families.index(family), LIGANDS.index(lig), SITES.index(sites), engines.index(eng)

    for (family, lig, sites, eng), rs in sorted(groups.items(), key=lambda kv: order(kv[0])):
        kept = [r for r in rs if r["status"] == "relaxed"]
        dist = [x for r in kept for x in r["metal_n"]]
        span = f"{min(dist):.2f}-{max(dist):.2f}" if dist else "-"
        label = "every under-coordinated" if sites == "auto" else f"the {sites} least coordinated"
        nlig = "/".join(sorted({str(r["ligands"]) for r in rs}))
        cpu = sum(r["cpu_s"] for r in rs)
        lines.append(f"| {family} | {lig} | {label} | {eng} | {nlig} | {len(kept)}/{len(rs)} | {span} | {cpu:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", action="store_true", help="only write the table from the stored rows")
    ap.add_argument("--bare", default="", help="comma-separated bare clusters (default: all)")
    args = ap.parse_args(argv)
    set_threads(1)
    makers = bare_structures()
    names = [b for b in args.bare.split(",") if b] or list(makers)
    unknown = [b for b in names if b not in makers]
    if unknown:
        print(f"unknown bare cluster(s) {', '.join(unknown)}: choose from {', '.join(makers)}", file=sys.stderr)
        return 2
    if not args.report:
        done = {r["key"] for r in read_jsonl(RESULTS)}
        for name in names:
            todo = [c for c in cases([name]) if c.key not in done]
            if not todo:
                continue
            bare = makers[name]()
            for case in todo:
                row = run_case(case, bare, seed=int(name.split("#")[1]) if "#" in name else 0)
                append_jsonl(RESULTS, row)
                print(f"{case.key}: {row['status']} ({row['ligands']} ligands, {row['cpu_s']} CPU s)", flush=True)
    text = report(read_jsonl(RESULTS))
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / "capping.md").write_text(text)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
