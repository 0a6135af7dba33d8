"""Build the small-cluster reference set (structures only; DFT: compute_reference.py).

Every structure of the main set is relaxed with ONE geometry engine, CHGNet 0.3.0
(fmax 0.02 eV/A), so that every method can later be compared on identical
geometries. Where a structure came from is kept in ``info`` (``origin``: a
hand-built prototype, a substitution of a prototype, or the random search of an
engine). Anion-bonded / segregated prototypes and their alternating partners are
also kept as GFN1-xTB-relaxed geometries (``kind`` ends in ``@GFN1``,
``geometry_engine`` tblite:GFN1-xTB): they are not CHGNet minima but they decide
the GFN1 sign question (does GFN1-xTB put anion-bonded isomers below the alternating ones?).

Per formula:

1. prototypes (hand-built: planar alternating rings, drums = stacked rings,
   an anion-anion bonded ring or trapezoid, a segregated X_n ring beside an M_n
   ring; homotops of relaxed binary parents for mixed formulas);
2. a small random search: ``--starts`` starts from ``generate_cluster(formula,
   seed)`` with seeds ``derive_seed(SEARCH_SEED, formula, i)``, each relaxed with
   chgnet, sevennet and tblite:GFN1-xTB (fmax 0.05, 300 steps); each engine's
   lowest and its next distinct minima are kept;
3. everything is re-relaxed with CHGNet (fmax 0.02, 500 steps); structures that
   CHGNet takes into an already kept one (``same_structure``, RMSD 0.1 A; or RMSD 0.3 A
   when the CHGNet energies differ by < 2 meV/atom: soft-mode variants of one minimum) are
   dropped (listed in ``sets/<formula>.log``); at most ``cap`` per formula,
   prototypes first, then each engine's lowest, then the rest by CHGNet energy.

Every relaxation is cached (``benchmarks/reference/work/relax_cache.jsonl``, one JSON line each,
not committed; started empty where it is missing), so the script is resumable and cheap to rerun;
a finished formula is written to ``benchmarks/reference/sets/<formula>.extxyz`` and skipped on the
next run (``--rebuild`` redoes it, from the cache where it has the relaxations).
``benchmarks/reference/structures.extxyz`` is assembled from the set files in the order of
FORMULAS plus the PBE-relaxed structures that compute_reference.py finished (``pbe_relax.jsonl``).
Paths: :mod:`benchmarks.paths`.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.build_reference            # all formulas
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.build_reference --formulas Cd2Se2,Cd3Se3
    .venv/bin/python -m benchmarks.build_reference --assemble                      # only rewrite structures.extxyz
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_STACKSIZE", "1G")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.io import read, write  # noqa: E402

from benchmarks.jsonl import append_jsonl  # noqa: E402
from benchmarks.paths import PBE_RELAX, SETS, STRUCTURES, WORK  # noqa: E402
from benchmarks.paths import RELAX_CACHE as CACHE  # noqa: E402

GEOMETRY_ENGINE = "chgnet:0.3.0"
GEOMETRY_FMAX = 0.02
GEOMETRY_STEPS = 500
GFN1 = "tblite:GFN1-xTB"
SEARCH_ENGINES = ("chgnet:0.3.0", "sevennet:7net-0", GFN1)
SEARCH_FMAX = 0.05
SEARCH_STEPS = 300
SEARCH_SEED = 2026
DUP_RMSD = 0.1
#: Floppy small clusters: CHGNet (float32) leaves soft-mode variants of one minimum a few meV
#: apart; within this energy window (eV per atom) a looser RMSD also counts as the same structure.
DUP_SOFT_RMSD = 0.3
DUP_SOFT_WINDOW = 0.002

#: Formulas in build order (small first, so the DFT can start early), with the
#: family and the maximum number of CHGNet-geometry structures kept.
FORMULAS: dict[str, tuple[str, int]] = {
    "Cd2Se2": ("binary", 6),
    "Cd2Te2": ("binary", 6),
    "ZnCdSe2": ("zn_mixed", 5),
    "Cd3Se2": ("metal_rich", 5),
    "Cd3Se3": ("binary", 6),
    "Cd3Te3": ("binary", 6),
    "Cd3TeSe2": ("te_se_mixed", 5),
    "Cd4Se3": ("metal_rich", 5),
    "Cd4TeSe2": ("metal_rich", 5),
    "Cd4Se4": ("binary", 6),
    "Cd4Te4": ("binary", 6),
    "Cd4Te2Se2": ("te_se_mixed", 5),
    "Zn2Cd2Se4": ("zn_mixed", 5),
    "Cd5TeSe2": ("metal_rich", 4),
    "Cd5Se5": ("binary", 5),
    "Cd5Te5": ("binary", 5),
    "Cd7TeSe3": ("metal_rich", 4),
    "Cd6Se6": ("binary", 5),
    "Cd6Te6": ("binary", 5),
    "Cd6Te2Se4": ("te_se_mixed", 4),
    "Cd6Te3Se3": ("te_se_mixed", 4),
}

#: Starting bond lengths (Angstrom); CHGNet relaxes them anyway.
MX = {("Cd", "Se"): 2.60, ("Cd", "Te"): 2.80, ("Zn", "Se"): 2.45}
XX = {"Se": 2.35, "Te": 2.75}
MM = {"Cd": 3.00, "Zn": 2.60}


# --------------------------------------------------------------------------- #
# Hand-built prototypes
# --------------------------------------------------------------------------- #


def ring(n: int, m: str, x: str) -> Atoms:
    """Planar alternating (MX)_n ring, M-X bonds of MX[m, x]."""
    d = MX[(m, x)]
    r = d / (2 * np.sin(np.pi / (2 * n)))
    ang = np.arange(2 * n) * np.pi / n
    pos = np.c_[r * np.cos(ang), r * np.sin(ang), np.zeros(2 * n)]
    return Atoms([m if k % 2 == 0 else x for k in range(2 * n)], positions=pos)


def drum(n: int, m: str, x: str) -> Atoms:
    """Two alternating (MX)_{n/2} rings stacked M over X (n=4: distorted cube, n=6: hexagonal prism)."""
    assert n % 2 == 0 and n >= 4
    half = ring(n // 2, m, x)
    top = half.copy()
    top.set_chemical_symbols([x if s == m else m for s in half.get_chemical_symbols()])
    top.positions[:, 2] += MX[(m, x)]
    out = half + top
    out.positions -= out.positions.mean(axis=0)
    return out


def chain(n: int, m: str, x: str) -> Atoms:
    """Open zigzag X-M-X-...-M chain (angle 150 degrees at every atom)."""
    d = MX[(m, x)]
    half = np.radians(75.0)
    pos = np.array([[k * d * np.sin(half), (k % 2) * d * np.cos(half), 0.0] for k in range(2 * n)])
    return Atoms([x if k % 2 == 0 else m for k in range(2 * n)], positions=pos)


def trapezoid(m: str, x: str) -> Atoms:
    """M2X2 with an X-X bond, each X on one M and an M-M contact (the GFN1 Cd2Se2 minimum, scaled)."""
    s = MX[(m, x)] / 2.60
    pos = np.array([[-1.10, -0.25, 0.0], [1.10, -0.25, 0.0], [-1.40, 2.58, 0.0], [1.40, 2.58, 0.0]]) * s
    return Atoms([x, x, m, m], positions=pos)


def anion_bonded_ring(n: int, m: str, x: str) -> Atoms:
    """The alternating ring with one neighbouring M/X pair swapped: one X-X and one M-M bond."""
    a = ring(n, m, x)
    sym = a.get_chemical_symbols()
    sym[1], sym[2] = sym[2], sym[1]  # ... M X M X ... -> M M X X
    a.set_chemical_symbols(sym)
    return a


def segregated(n: int, m: str, x: str) -> Atoms:
    """An X_n ring (X-X bonds) beside a parallel M_n ring, staggered."""
    rx = XX[x] / (2 * np.sin(np.pi / n))
    rm = MM[m] / (2 * np.sin(np.pi / n))
    ang = np.arange(n) * 2 * np.pi / n
    px = np.c_[rx * np.cos(ang), rx * np.sin(ang), np.zeros(n)]
    pm = np.c_[rm * np.cos(ang + np.pi / n), rm * np.sin(ang + np.pi / n), np.full(n, 2.7)]
    return Atoms([x] * n + [m] * n, positions=np.r_[px, pm])


def bipyramid(m: str, x: str) -> Atoms:
    """M3X2 trigonal bipyramid: an M3 triangle capped by X above and below."""
    r = MM[m] / np.sqrt(3)
    h = np.sqrt(max(MX[(m, x)] ** 2 - r**2, 1.0))
    ang = np.arange(3) * 2 * np.pi / 3
    pm = np.c_[r * np.cos(ang), r * np.sin(ang), np.zeros(3)]
    return Atoms([m] * 3 + [x] * 2, positions=np.r_[pm, [[0, 0, h], [0, 0, -h]]])


def binary_prototypes(formula: str, counts: dict) -> list[tuple[str, str, Atoms]]:
    """(label, kind, atoms) of the hand-built structures of a binary (MX)_n."""
    (m, n), (x, _) = list(counts.items())
    out = [("ring", "ring", ring(n, m, x))]
    if n in (4, 6):
        out.append(("drum", "drum", drum(n, m, x)))
    if n <= 3:
        out.append(("chain", "chain", chain(n, m, x)))
    if n == 2:
        out.append(("trapezoid", "anion_bonded", trapezoid(m, x)))
    else:
        out.append(("anion_bonded", "anion_bonded", anion_bonded_ring(n, m, x)))
        out.append(("segregated", "segregated", segregated(n, m, x)))
    return out


# --------------------------------------------------------------------------- #
# Relaxation cache
# --------------------------------------------------------------------------- #

_CACHE: dict[str, dict] | None = None


def _load_cache() -> dict[str, dict]:
    global _CACHE
    if _CACHE is None:
        _CACHE = {}
        if CACHE.exists():
            for line in CACHE.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                _CACHE[row["key"]] = row
    return _CACHE


def relax_cached(key: str, atoms: Atoms, method: str, fmax: float, steps: int) -> dict:
    """relax_structure(atoms) with ``method``, cached under ``key|method|fmax``."""
    from airss_msc.calc.relax import RelaxSettings, relax_structure
    from airss_msc.generation.geometry import anion_bonds

    full = f"{key}|{method}|{fmax:g}"
    cache = _load_cache()
    if full in cache:
        return cache[full]
    t0 = time.process_time()
    res = relax_structure(atoms, RelaxSettings(method=method, fmax=fmax, steps=steps))
    out = Atoms(list(res.symbols), positions=np.asarray(res.positions))
    row = {
        "key": full,
        "method": method,
        "fmax": fmax,
        "status": res.status,
        "message": res.message,
        "energy": res.energy,
        "fmax_final": res.fmax,
        "steps": res.steps,
        "force_calls": res.force_calls,
        "wall": round(res.wall_seconds, 2),
        "cpu": round(time.process_time() - t0, 2),
        "anion_bonds": anion_bonds(out),
        "symbols": list(res.symbols),
        "positions": np.round(np.asarray(res.positions), 6).tolist(),
    }
    append_jsonl(CACHE, row)
    cache[full] = row
    return row


def atoms_of(row: dict) -> Atoms:
    return Atoms(row["symbols"], positions=np.asarray(row["positions"]))


def usable(row: dict, fmax_ok: float = 0.05) -> bool:
    """A sane relaxed geometry: ``relaxed``, or ``max_steps`` with small residual forces
    (float32 CHGNet may stall just above 0.02 eV/A)."""
    from airss_msc.calc.sanity import check_geometry

    if row["status"] == "relaxed":
        return True
    return (
        row["status"] == "max_steps"
        and row.get("fmax_final") is not None
        and row["fmax_final"] < fmax_ok
        and check_geometry(atoms_of(row)).ok
    )


# --------------------------------------------------------------------------- #
# Classification
# --------------------------------------------------------------------------- #


def planar(atoms: Atoms, tol: float = 0.25) -> bool:
    """Every atom within ``tol`` Angstrom of the best plane through the cluster."""
    p = atoms.positions - atoms.positions.mean(axis=0)
    normal = np.linalg.svd(p)[2][-1]
    return float(np.abs(p @ normal).max()) < tol


def classify(atoms: Atoms) -> tuple[str, str]:
    """(bonding, structural kind) from the geometry alone.

    bonding: ``alternating`` (no anion-anion bond) or ``anion_bonded``.
    kind: ``segregated`` (all anions in one bonded chain/ring, >= 3 anions),
    ``anion_bonded``, ``chain`` (an atom with one neighbour), ``ring`` (planar, every atom 2-coordinated),
    ``planar`` or ``cage`` (3D).
    """
    from airss_msc.composition import ANIONS
    from airss_msc.generation.geometry import anion_bonds, coordination

    nab = anion_bonds(atoms)
    n_anion = sum(s in ANIONS for s in atoms.get_chemical_symbols())
    if nab > 0:
        return "anion_bonded", ("segregated" if n_anion >= 3 and nab >= n_anion - 1 else "anion_bonded")
    cn = coordination(atoms)
    if cn.min() <= 1:
        return "alternating", "chain"
    if planar(atoms):
        return "alternating", ("ring" if (cn == 2).all() else "planar")
    return "alternating", "cage"


def final_kind_of(built: str, bonding: str, auto: str) -> str:
    """The kind stored: what it was built as, unless the relaxation changed its character
    (then ``<what it is>_from_<what it was built as>``); search results: what they are."""
    if built == "search" or built == auto:
        return auto
    if built == "ring" and auto == "planar":  # a rhombus has a short cross-ring contact
        return "ring"
    if (
        built in ("anion_bonded", "segregated") or built.endswith(("_trapezoid", "_anion_bonded"))
    ) and bonding == "anion_bonded":
        return auto  # built with an anion-anion bond and still has one
    if built.startswith("capped_"):
        return f"{auto}_{built}"  # e.g. cage_capped_ring: a Cd-rich fragment built on a ring
    if built not in ("ring", "chain", "anion_bonded", "segregated") and bonding == "alternating":
        return built  # drums, homotops, cages keep their name while they stay alternating
    return f"{auto}_from_{built}"


# --------------------------------------------------------------------------- #
# Candidates of one formula
# --------------------------------------------------------------------------- #


def formula_counts(formula: str) -> dict:
    from airss_msc.composition import parse_formula

    return parse_formula(formula)


def relaxed_prototype(formula: str, label: str) -> Atoms | None:
    """The CHGNet geometry of a binary prototype (a parent for substitutions)."""
    counts = formula_counts(formula)
    for lab, _, atoms in binary_prototypes(formula, counts):
        if lab == label:
            row = relax_cached(f"{formula}|proto|{lab}", atoms, GEOMETRY_ENGINE, GEOMETRY_FMAX, GEOMETRY_STEPS)
            return atoms_of(row) if usable(row) else None
    return None


def distinct_homotops(parent: Atoms, sites: list[int], new: str, k: int, limit: int) -> list[Atoms]:
    """Every way to put ``new`` on ``k`` of ``sites`` of ``parent``, duplicates (by symmetry) removed."""
    from airss_msc.analysis.duplicates import same_structure

    out: list[Atoms] = []
    for combo in itertools.combinations(sites, k):
        a = parent.copy()
        sym = a.get_chemical_symbols()
        for i in combo:
            sym[i] = new
        a.set_chemical_symbols(sym)
        if not any(same_structure(a, b, rmsd_tol=0.05) for b in out):
            out.append(a)
        if len(out) >= limit:
            break
    return out


def mixed_prototypes(formula: str) -> list[tuple[str, str, Atoms]]:
    """Homotops on relaxed binary parents (substituted, relaxed later with CHGNet)."""
    c = formula_counts(formula)
    out: list[tuple[str, str, Atoms]] = []

    def add(parent_formula: str, label: str, old: str, new: str, k: int, limit: int, drop: int | None = None):
        parent = relaxed_prototype(parent_formula, label)
        if parent is None:
            return
        if drop is not None:  # remove one atom of element `drop` (metal-rich fragments)
            del parent[next(i for i, s in enumerate(parent.get_chemical_symbols()) if s == drop)]
        sites = [i for i, s in enumerate(parent.get_chemical_symbols()) if s == old]
        for j, a in enumerate(distinct_homotops(parent, sites, new, k, limit)):
            out.append((f"{label}-homotop{j + 1}", f"homotop_{label}", a))

    n = c.get("Cd", 0) + c.get("Zn", 0)
    parents = (
        [("ring", 3)]
        + ([("drum", 3)] if n in (4, 6) else [])
        + ([("trapezoid", 2)] if n == 2 else [])
        + ([("chain", 2)] if n <= 3 else [])
        + ([("anion_bonded", 2)] if n == 3 else [])
    )
    for label, limit in parents:
        if "Te" in c and "Se" in c:
            add(f"Cd{n}Se{n}", label, "Se", "Te", c["Te"], limit)
        elif "Zn" in c:
            add(f"Cd{n}Se{n}", label, "Cd", "Zn", c["Zn"], limit)
    return out


def capped(parent: Atoms, k: int, mode: str, metal: str = "Cd") -> Atoms:
    """``parent`` with ``k`` extra metal atoms: ``cap`` puts the first above the ring centre of a
    planar parent (else like ``tail``); ``tail`` bonds each outward to an anion. Later atoms go
    to the free site farthest from those already placed."""
    from airss_msc.generation.geometry import ANIONS

    pos = parent.positions
    c = pos.mean(axis=0)
    sites = []
    if mode == "cap" and planar(parent):
        normal = np.linalg.svd(pos - c)[2][-1]
        sites += [c + 2.2 * normal, c - 2.2 * normal]
    for i, sym in enumerate(parent.get_chemical_symbols()):
        v = pos[i] - c
        if sym in ANIONS and np.linalg.norm(v) > 0.5:
            sites.append(pos[i] + 2.6 * v / np.linalg.norm(v))
    chosen = [sites[0]]
    while len(chosen) < k:
        rest = [p for p in sites if min(np.linalg.norm(p - q) for q in chosen) > 1e-6]
        chosen.append(max(rest, key=lambda p: min(np.linalg.norm(p - q) for q in chosen)))
    return parent + Atoms([metal] * k, positions=np.array(chosen))


def metal_rich_prototypes(formula: str) -> list[tuple[str, str, Atoms, bool]]:
    """(label, kind, atoms, essential) of Cd-rich fragments: special shapes, and alternating
    (CdX)_n parents (ring, drum, trapezoid) with Te homotops and extra Cd capping / bonded outward."""
    c = formula_counts(formula)
    out: list[tuple[str, str, Atoms, bool]] = []
    n_te, n_x = c.get("Te", 0), c.get("Te", 0) + c.get("Se", 0)
    extra = c["Cd"] - n_x
    if formula == "Cd3Se2":
        out.append(("bipyramid", "cage", bipyramid("Cd", "Se"), True))
    if formula in ("Cd4Se3", "Cd4TeSe2"):
        parent = relaxed_prototype("Cd4Se4", "drum")
        if parent is not None:
            del parent[next(i for i, s in enumerate(parent.get_chemical_symbols()) if s == "Se")]
            sites = [i for i, s in enumerate(parent.get_chemical_symbols()) if s == "Se"]
            for j, a in enumerate(distinct_homotops(parent, sites, "Te", n_te, 2) if n_te else [parent]):
                out.append((f"cube-vacancy{f'-homotop{j + 1}' if n_te else ''}", "cage", a, j == 0))
    labels = ["ring"] + (["drum"] if n_x in (4, 6) else []) + (["trapezoid"] if n_x == 2 else [])
    for label in labels:
        parent = relaxed_prototype(f"Cd{n_x}Se{n_x}", label)
        if parent is None:
            continue
        sites = [i for i, s in enumerate(parent.get_chemical_symbols()) if s == "Se"]
        variants = distinct_homotops(parent, sites, "Te", n_te, 2) if n_te else [parent]
        for j, v in enumerate(variants):
            for mode in ("cap", "tail") if planar(v) else ("tail",):
                tag = f"{label}{f'-homotop{j + 1}' if n_te else ''}-{mode}{extra}"
                essential = (
                    j == 0 and mode == "cap" and label == "ring" and formula not in ("Cd3Se2", "Cd4Se3", "Cd4TeSe2")
                )
                out.append((tag, f"capped_{label}", capped(v, extra, mode), essential))
    return out


def search_candidates(formula: str, starts: int, engines, others: int, log) -> list[tuple[str, str, Atoms, dict]]:
    """Each engine's lowest and up to ``others`` next distinct minima from ``starts`` random starts."""
    from airss_msc.generation.generate import derive_seed, generate_cluster

    picked = []
    seeds = [derive_seed(SEARCH_SEED, formula, i) for i in range(starts)]
    for engine in engines:
        rows = []
        for i, seed in enumerate(seeds):
            start = generate_cluster(formula, seed)
            row = relax_cached(f"{formula}|search|seed{seed}", start, engine, SEARCH_FMAX, SEARCH_STEPS)
            if row["status"] == "relaxed" and row["energy"] is not None:
                rows.append((row["energy"], i, seed, row))
        rows.sort(key=lambda t: t[0])
        log(
            f"  search {engine}: {len(rows)}/{starts} relaxed; energies {[round(r[0] - rows[0][0], 3) for r in rows]}"
            if rows
            else f"  search {engine}: none relaxed"
        )
        kept: list[tuple[Atoms, float]] = []
        for energy, _i, seed, row in rows:
            a = atoms_of(row)
            if any(duplicate(a, energy, b, eb) for b, eb in kept):
                continue
            kept.append((a, energy))
            rank = len(kept)
            picked.append(
                (
                    f"search-{engine.split(':')[0]}-{rank}",
                    engine,
                    a,
                    {
                        "seed": seed,
                        "search_rank": rank,
                        "search_energy": energy,
                        "search_anion_bonds": row["anion_bonds"],
                    },
                )
            )
            if len(kept) > others:
                break
    return picked


def duplicate(a: Atoms, ea: float, b: Atoms, eb: float) -> bool:
    """Same structure: ``same_structure`` within DUP_RMSD, or within DUP_SOFT_RMSD when the
    energies (same engine) differ by less than DUP_SOFT_WINDOW eV/atom."""
    from airss_msc.analysis.duplicates import same_structure

    if same_structure(a, b, rmsd_tol=DUP_RMSD):
        return True
    return abs(ea - eb) < DUP_SOFT_WINDOW * len(a) and same_structure(a, b, rmsd_tol=DUP_SOFT_RMSD)


def build_formula(formula: str, starts: int, engines, log) -> list[Atoms]:
    """The CHGNet-geometry structures (and GFN1 ones) of one formula, as Atoms with info."""
    from airss_msc.calc.sanity import check_geometry
    from airss_msc.generation.geometry import anion_bonds, point_group

    family, cap = FORMULAS[formula]
    counts = formula_counts(formula)
    natoms = sum(counts.values())
    # (label, kind, start, origin, extra, priority)
    candidates: list[tuple[str, str, Atoms, str, dict, int]] = []
    # priority: 0 essential prototypes, 1 each engine's lowest, 2 other prototypes, 3 other search minima
    if family == "binary":
        for label, kind, a in binary_prototypes(formula, counts):
            candidates.append((label, kind, a, "prototype", {}, 0 if label != "chain" else 2))
    elif family in ("te_se_mixed", "zn_mixed"):
        for label, kind, a in mixed_prototypes(formula):
            candidates.append((label, kind, a, "substitution", {}, 0 if label.endswith("homotop1") else 2))
    else:
        for label, kind, a, essential in metal_rich_prototypes(formula):
            candidates.append(
                (label, kind, a, "prototype" if "homotop" not in label else "substitution", {}, 0 if essential else 2)
            )
    others = 2 if natoms <= 8 else 1
    for label, engine, a, extra in search_candidates(formula, starts, engines, others, log):
        candidates.append((label, "search", a, f"search:{engine}", extra, 1 if extra["search_rank"] == 1 else 3))

    kept: list[Atoms] = []
    relaxed = []
    for label, kind, a, origin, extra, prio in candidates:
        row = relax_cached(f"{formula}|cand|{label}|{origin}", a, GEOMETRY_ENGINE, GEOMETRY_FMAX, GEOMETRY_STEPS)
        if not usable(row):
            log(f"  drop {label} ({origin}): CHGNet {row['status']} {row['message']}")
            continue
        relaxed.append((prio, row["energy"], label, kind, origin, extra, row))
    # essential prototypes first (build order), then each engine's lowest, other prototypes, other
    # search minima (by CHGNet energy within each)
    relaxed = [t for t in relaxed if t[0] == 0] + sorted([t for t in relaxed if t[0] > 0], key=lambda t: (t[0], t[1]))
    for _prio, _energy, label, kind, origin, extra, row in relaxed:
        a = atoms_of(row)
        dup = next((b for b in kept if duplicate(a, row["energy"], b, b.info["geometry_energy"])), None)
        if dup is not None:
            dup.info.setdefault("also_found_by", "")
            dup.info["also_found_by"] = ",".join(filter(None, [dup.info["also_found_by"], origin]))
            log(f"  drop {label} ({origin}): CHGNet relaxes it into {dup.info['name']}")
            continue
        if len(kept) >= cap:
            log(f"  drop {label} ({origin}): cap {cap} reached")
            continue
        bonding, auto = classify(a)
        final_kind = final_kind_of(kind, bonding, auto)
        a.info.update(
            name=f"{formula}-{label}",
            formula=formula,
            family=family,
            kind=final_kind,
            built_as=kind,
            bonding=bonding,
            origin=origin,
            geometry_engine=GEOMETRY_ENGINE,
            geometry_fmax=GEOMETRY_FMAX,
            geometry_status=row["status"],
            geometry_energy=row["energy"],
            anion_bonds=anion_bonds(a),
            point_group=point_group(a),
            natoms=len(a),
            **extra,
        )
        kept.append(a)
    log(f"  kept {len(kept)} CHGNet-geometry structures: {[k.info['name'] + ':' + k.info['kind'] for k in kept]}")

    # GFN1-xTB geometries for the sign question (binary formulas only)
    gfn1: list[Atoms] = []
    if family == "binary":
        n = next(iter(counts.values()))
        protos = {lab: (kind, a) for lab, kind, a in binary_prototypes(formula, counts)}
        labels = (
            ["ring", "trapezoid"]
            if n == 2
            else (["drum"] if n in (4, 6) else ["ring"]) + ["anion_bonded", "segregated"]
        )
        for lab in labels:
            kind, a = protos[lab]
            row = relax_cached(f"{formula}|proto|{lab}", a, GFN1, GEOMETRY_FMAX, GEOMETRY_STEPS)
            if not usable(row) or not check_geometry(atoms_of(row)).ok:
                log(f"  drop {lab}@GFN1: {row['status']} {row['message']}")
                continue
            g = atoms_of(row)
            dup = next((b for b in gfn1 if duplicate(g, row["energy"], b, b.info["geometry_energy"])), None)
            if dup is not None:
                log(f"  drop {lab}@GFN1: GFN1 relaxes it into {dup.info['name']}")
                continue
            bonding, auto = classify(g)
            final = final_kind_of(kind, bonding, auto)
            g.info.update(
                name=f"{formula}-{lab}@GFN1",
                formula=formula,
                family=family,
                kind=f"{final}@GFN1",
                built_as=kind,
                bonding=bonding,
                origin="prototype",
                geometry_engine=GFN1,
                geometry_fmax=GEOMETRY_FMAX,
                geometry_status=row["status"],
                geometry_energy=row["energy"],
                anion_bonds=anion_bonds(g),
                point_group=point_group(g),
                natoms=len(g),
            )
            gfn1.append(g)
        log(f"  kept {len(gfn1)} GFN1-geometry structures: {[k.info['name'] + ':' + k.info['kind'] for k in gfn1]}")
    return kept + gfn1


# --------------------------------------------------------------------------- #
# Output
# --------------------------------------------------------------------------- #


def write_atomic(path: Path, images: list[Atoms]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp, images, format="extxyz")
    os.replace(tmp, path)


def pbe_relaxed_structures() -> list[Atoms]:
    """Finished PBE relaxations (written by compute_reference.py) as structures of the set."""
    from airss_msc.generation.geometry import anion_bonds, point_group

    if not PBE_RELAX.exists():
        return []
    final: dict[str, dict] = {}
    for line in PBE_RELAX.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("type") == "relax_chunk" and row.get("finished"):
            final[row["name"]] = row
    out = []
    for name, row in final.items():
        a = Atoms(row["symbols"], positions=np.asarray(row["positions"]))
        a.info.update(
            name=name,
            formula=row["formula"],
            family="binary",
            kind="pbe_relaxed",
            built_as="pbe_relaxed",
            bonding="alternating" if anion_bonds(a) == 0 else "anion_bonded",
            origin=f"pbe_relax:{row['start']}",
            geometry_engine="pyscf:PBE/def2-SVP",
            geometry_fmax=row["fmax_target"],
            geometry_status=row["status"],
            geometry_energy=row["energy"],
            anion_bonds=anion_bonds(a),
            point_group=point_group(a),
            natoms=len(a),
            pbe_relax_steps=row["steps_total"],
        )
        out.append(a)
    return out


#: Sets written by build_reference_large.py (formulas outside FORMULAS), in the order their PBE
#: points run within one size: the (MX)13 pair the energies dispute most comes first.
LARGE_ORDER = ("Cd6Te2Se3", "Zn13Se13", "Cd13Te13", "Cd13Se13", "Zn12CdSe13", "Cd14Se13")


def assemble() -> int:
    images: list[Atoms] = []
    for formula in FORMULAS:
        path = SETS / f"{formula}.extxyz"
        if path.exists():
            images.extend(read(path, index=":", format="extxyz"))
    extra = [p.stem for p in SETS.glob("*.extxyz") if p.stem not in FORMULAS]
    extra.sort(
        key=lambda f: (
            sum(formula_counts(f).values()),
            LARGE_ORDER.index(f) if f in LARGE_ORDER else len(LARGE_ORDER),
            f,
        )
    )
    for formula in extra:
        images.extend(read(SETS / f"{formula}.extxyz", index=":", format="extxyz"))
    images.extend(pbe_relaxed_structures())
    write_atomic(STRUCTURES, images)
    return len(images)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--formulas", default="", help="comma-separated subset of FORMULAS (default: all, in order)")
    ap.add_argument("--starts", type=int, default=12, help="random starts per formula and engine")
    ap.add_argument("--engines", default=",".join(SEARCH_ENGINES))
    ap.add_argument("--rebuild", action="store_true", help="redo finished formulas (from the relaxation cache)")
    ap.add_argument("--assemble", action="store_true", help="only rewrite structures.extxyz")
    args = ap.parse_args(argv)
    SETS.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    if not args.assemble:
        import torch

        torch.set_num_threads(1)
        formulas = [f for f in args.formulas.split(",") if f] or list(FORMULAS)
        unknown = [f for f in formulas if f not in FORMULAS]
        if unknown:
            ap.error(f"unknown formula(s) {unknown}: choose from {list(FORMULAS)}")
        engines = [e for e in args.engines.split(",") if e]
        for formula in formulas:
            out = SETS / f"{formula}.extxyz"
            if out.exists() and not args.rebuild:
                print(f"{formula}: done ({out.name})", flush=True)
                continue
            t0 = time.time()
            lines: list[str] = []

            def log(text: str, lines: list[str] = lines) -> None:
                lines.append(text)
                print(text, flush=True)

            log(f"{formula}: building ({args.starts} starts x {len(engines)} engines)")
            images = build_formula(formula, args.starts, engines, log)
            write_atomic(out, images)
            log(f"{formula}: {len(images)} structures in {time.time() - t0:.0f} s")
            (SETS / f"{formula}.log").write_text("\n".join(lines) + "\n")
            n = assemble()
            print(f"structures.extxyz: {n} structures", flush=True)
    n = assemble()
    print(f"structures.extxyz: {n} structures", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
