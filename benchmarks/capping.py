"""Which engine keeps NH3 on the cations of a capped cluster: the capping step's engine choice.

CHGNet minima of random Cd7TeSe3 (seeds 0..N-1) are capped with NH3 (``airss_msc.generation.ligands.cap``:
every under-coordinated Cd, or the least coordinated few) and relaxed with each engine by the
default protocol. A relaxation that loses a ligand ends ``fragmented``. For each engine and site
count: how many kept every ligand, and the Cd-N distances of the kept ones (a bound amine sits at
about 2.3 A).

    OMP_NUM_THREADS=1 python -m benchmarks.capping [--starts 3]

Writes benchmarks/out/capping.md with the commit it ran on.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from airss_msc.calc.relax import RelaxSettings, relax_structure
from airss_msc.calc.threads import set_threads
from airss_msc.generation.generate import generate_cluster
from airss_msc.generation.geometry import distances
from airss_msc.generation.ligands import cap
from benchmarks.paths import OUT
from benchmarks.provenance import git_commit

CASES = [("chgnet", "auto"), ("sevennet", "auto"), ("GFN1-xTB", "auto"), ("chgnet", "3"), ("sevennet", "3")]


def cd_n(atoms) -> list[float]:
    """Each N's distance to its nearest Cd (Angstrom)."""
    symbols = atoms.get_chemical_symbols()
    d = distances(atoms.positions)
    cd = [j for j, s in enumerate(symbols) if s == "Cd"]
    return [float(d[i, cd].min()) for i, s in enumerate(symbols) if s == "N"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--formula", default="Cd7TeSe3")
    args = ap.parse_args()
    set_threads(1)
    bare = [
        relax_structure(generate_cluster(args.formula, seed=s), RelaxSettings(method="chgnet")).atoms
        for s in range(args.starts)
    ]
    lines = [
        f"# Capping: which engine keeps NH3 on {args.formula}",
        "",
        (
            f"commit {git_commit()}; CHGNet minima of {args.starts} random starts (seeds 0-{args.starts - 1}), "
            "capped and relaxed by the default protocol; one thread."
        ),
        "",
        "| engine | sites capped | kept every NH3 | Cd-N of kept ones (A) | CPU s |",
        "|---|---|---|---|---|",
    ]
    for method, sites in CASES:
        kept, dist, t0 = 0, [], time.process_time()
        for seed, atoms in enumerate(bare):
            capped = cap(atoms, "NH3", sites, seed=seed)
            result = relax_structure(capped, RelaxSettings(method=method))
            if result.status == "relaxed":
                kept += 1
                dist += cd_n(result.atoms)
        cpu = time.process_time() - t0
        span = f"{min(dist):.2f}-{max(dist):.2f}" if dist else "-"
        label = "every under-coordinated Cd" if sites == "auto" else f"the {sites} least coordinated"
        lines.append(f"| {method} | {label} | {kept}/{len(bare)} | {span} | {cpu:.0f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / "capping.md").write_text(text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
