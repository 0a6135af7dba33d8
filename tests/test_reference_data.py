"""The committed PBE/def2-SVP reference energies are what their structures say they are.

``benchmarks/reference/pbe_def2svp.jsonl`` is read line by line: a settings line first, then one
single point per structure, keyed as compute_reference.py keys them (name and geometry fingerprint:
a result counts only for the geometry it was computed on). Every record must carry the fields and
types compute_reference.py writes, a single-point status, the fingerprint, size, composition and
labels of the structure of the same name in ``structures.extxyz``, a finite energy that fits its
composition, and no second record for the same (name, fingerprint). The checker is also run on
corrupted copies: each corruption must be reported.
"""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest
from ase import Atoms
from ase.io import read

from airss_msc.composition import parse_formula
from airss_msc.results.record import JobStatus
from benchmarks.compute_reference import METHOD, fingerprint
from benchmarks.paths import PBE, PBE_RELAX, SETS, STRUCTURES

#: the statuses a single point ends with (``done`` belongs to excitations)
SINGLE_POINT_STATUSES = {JobStatus.OK.value, JobStatus.SCF_FAILED.value, JobStatus.ERROR.value}
#: field -> accepted types of a single-point record (compute_reference.run_single_point)
FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "formula": (str,),
    "kind": (str,),
    "family": (str, type(None)),
    "bonding": (str, type(None)),
    "geometry_engine": (str,),
    "origin": (str, type(None)),
    "natoms": (int,),
    "anion_bonds": (int,),
    "fingerprint": (str,),
    "method": (str,),
    "energy_eV": (float, type(None)),
    "gap_eV": (float, type(None)),
    "status": (str,),
    "message": (str,),
    "scf_notes": (dict,),
    "seconds": (int, float),
    "cpu_seconds": (int, float),
    "load_at_start": (int, float),
    "finished": (str,),
}
#: labels compute_reference.py copies from the structure's ``info`` into its record
COPIED_LABELS = ("formula", "kind", "family", "bonding", "geometry_engine", "origin", "anion_bonds")
SETTINGS_FIELDS = ("method", "xc", "basis", "ecp_elements", "grid_level", "conv_tol", "versions")
#: a record this many times farther from the composition fit (eV/atom) than every other record is corrupt
OUTLIER_FACTOR = 2.0


def read_records(text: str) -> tuple[list[dict], list[str]]:
    """The JSON lines of ``text`` and the problems of lines that are not JSON objects.

    Text after the last newline is a line being appended right now by a running
    compute_reference.py (one write per line), not a record yet."""
    records, problems = [], []
    for number, line in enumerate(text[: text.rfind("\n") + 1].splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            problems.append(f"line {number}: not a JSON object")
            continue
        records.append({**row, "_line": number})
    return records, problems


def composition_outliers(rows: list[dict]) -> list[str]:
    """Problems of ok energies that do not fit their composition (eV), worst first.

    Energies are compared with per-element energies fitted (least squares, E = sum_e n_e mu_e) to
    the other records: the record farthest from the fit of all is refitted without itself and
    reported, then left out, (a) when it is off by more than half the smallest difference between
    the fitted element energies (swapping one atom for another element moves an energy by at least
    that: the energy is not one of its formula) or (b) when it is OUTLIER_FACTOR times farther per
    atom than every other record (an error of the order of the set's whole range of binding
    energies); this repeats until the farthest record passes, so a corrupted energy cannot hide
    others or pull the fit towards itself."""
    elements = sorted({e for r in rows for e in parse_formula(r["formula"])})
    counts = np.array([[parse_formula(r["formula"]).get(e, 0) for e in elements] for r in rows], float)
    energy = np.array([r["energy_eV"] for r in rows])
    active = np.ones(len(rows), bool)
    problems = []
    while active.sum() > len(elements) + 1:
        mu, *_ = np.linalg.lstsq(counts[active], energy[active], rcond=None)
        per_atom = np.where(active, np.abs(energy - counts @ mu) / counts.sum(axis=1), -1.0)
        worst = int(np.argmax(per_atom))
        others = active.copy()
        others[worst] = False
        if np.linalg.matrix_rank(counts[others]) < np.linalg.matrix_rank(counts[active]):
            break  # the only record of an element: nothing to compare it with
        mu, *_ = np.linalg.lstsq(counts[others], energy[others], rcond=None)
        residual = energy - counts @ mu
        per_atom = residual / counts.sum(axis=1)
        separation = min(abs(a - b) for k, a in enumerate(mu) for b in mu[k + 1 :])
        spread = float(np.abs(per_atom[others]).max())
        line = rows[worst]["_line"]
        if abs(residual[worst]) > separation / 2:
            problems.append(
                f"line {line}: energy {residual[worst]:+.1f} eV off the composition fit: not the energy "
                f"of its formula (one atom of another element moves it by >= {separation:.0f} eV)"
            )
        elif abs(per_atom[worst]) > OUTLIER_FACTOR * spread:
            problems.append(
                f"line {line}: {per_atom[worst]:+.2f} eV/atom off the composition fit, more than "
                f"{OUTLIER_FACTOR:g} x every other record ({spread:.2f} eV/atom)"
            )
        else:
            break
        active[worst] = False
    return problems


def problems_of(records: list[dict], structures: dict[str, Atoms]) -> list[str]:
    """Every way the records disagree with the schema, their structures or each other."""
    problems: list[str] = []
    if not records or records[0].get("type") != "settings":
        problems.append("the first line is not the settings line")
    seen: dict[tuple[str, str], int] = {}
    ok_rows = []
    for row in records:
        where = f"line {row['_line']} ({row.get('name', '?')})"
        kind = row.get("type")
        if kind == "settings":
            missing = [k for k in SETTINGS_FIELDS if k not in row]
            if missing or row.get("method") != METHOD:
                problems.append(f"{where}: settings line lacks {missing} or is not {METHOD}")
            continue
        if kind != "single_point":
            problems.append(f"{where}: unknown record type {kind!r}")
            continue
        bad = [
            f"{k}={row.get(k)!r}"
            for k, types in FIELDS.items()
            if k not in row or not isinstance(row[k], types) or (types == (int,) and isinstance(row[k], bool))
        ]
        if bad:
            problems.append(f"{where}: missing or mistyped fields {bad}")
            continue
        if row["status"] not in SINGLE_POINT_STATUSES:
            problems.append(f"{where}: status {row['status']!r} is not one of {sorted(SINGLE_POINT_STATUSES)}")
        if row["method"] != METHOD:
            problems.append(f"{where}: method {row['method']!r}, not {METHOD}")
        if not re.fullmatch(r"[0-9a-f]{16}", row["fingerprint"]):
            problems.append(f"{where}: fingerprint {row['fingerprint']!r} is not 16 hex digits")
        key = (row["name"], row["fingerprint"])
        if key in seen:
            problems.append(f"{where}: a second record of {key} (first on line {seen[key]})")
        seen.setdefault(key, row["_line"])
        for k in ("seconds", "cpu_seconds"):
            if not row[k] >= 0:
                problems.append(f"{where}: {k} = {row[k]}")
        if row["status"] == JobStatus.OK.value:
            energy, gap = row["energy_eV"], row["gap_eV"]
            if energy is None or not math.isfinite(energy) or energy >= 0:
                problems.append(f"{where}: an ok single point with energy {energy!r} eV")
                continue
            if gap is None or not math.isfinite(gap) or gap < 0:
                problems.append(f"{where}: an ok single point with gap {gap!r} eV")
        atoms = structures.get(row["name"])
        if atoms is None:
            problems.append(f"{where}: no structure of this name in {STRUCTURES.name}")
            continue
        if fingerprint(atoms) != row["fingerprint"]:
            problems.append(
                f"{where}: fingerprint {row['fingerprint']} is not that of the structure "
                f"({fingerprint(atoms)}): the energy belongs to another geometry"
            )
        if row["natoms"] != len(atoms):
            problems.append(f"{where}: natoms {row['natoms']}, the structure has {len(atoms)}")
        symbols = atoms.get_chemical_symbols()
        try:
            counts = parse_formula(row["formula"])
        except ValueError as exc:
            problems.append(f"{where}: formula: {exc}")
            continue
        if counts != {e: symbols.count(e) for e in set(symbols)}:
            problems.append(f"{where}: formula {row['formula']} is not the structure's composition")
            continue
        info = {**atoms.info, "anion_bonds": int(atoms.info.get("anion_bonds", -1))}
        for k in COPIED_LABELS:
            if info.get(k) != row[k]:
                problems.append(f"{where}: {k} {row[k]!r}, the structure says {info.get(k)!r}")
        if row["status"] == JobStatus.OK.value:
            ok_rows.append(row)
    problems += composition_outliers(ok_rows)
    return problems


@pytest.fixture(scope="module")
def structures() -> dict[str, Atoms]:
    images = read(STRUCTURES, index=":", format="extxyz")
    names = [a.info["name"] for a in images]
    assert len(set(names)) == len(names), "structure names repeat in structures.extxyz"
    return {a.info["name"]: a for a in images}


@pytest.fixture(scope="module")
def committed() -> list[dict]:
    records, problems = read_records(PBE.read_text())
    assert not problems, problems
    return records


def test_every_committed_pbe_record_matches_its_structure(committed, structures):
    assert sum(r.get("type") == "single_point" for r in committed) > 0
    assert problems_of(committed, structures) == []


def test_structures_extxyz_is_the_sets_plus_the_finished_pbe_relaxations(structures):
    sets = {a.info["name"]: a for path in sorted(SETS.glob("*.extxyz")) for a in read(path, ":", format="extxyz")}
    relaxed: dict[str, dict] = {}
    for row in read_records(PBE_RELAX.read_text())[0] if PBE_RELAX.exists() else []:
        if row.get("type") == "relax_chunk" and row.get("finished"):
            relaxed[row["name"]] = row
    assert set(structures) == set(sets) | set(relaxed)
    for name, atoms in sets.items():
        assert fingerprint(structures[name]) == fingerprint(atoms), name
    for name, row in relaxed.items():
        assert fingerprint(structures[name]) == fingerprint(Atoms(row["symbols"], positions=row["positions"])), name


def _corrupt(records: list[dict], how: str) -> list[dict]:
    out = copy.deepcopy(records)
    sp = [r for r in out if r.get("type") == "single_point"]
    first, other = sp[0], next(r for r in sp if r["formula"] != sp[0]["formula"])
    if how == "hartree":
        first["energy_eV"] /= 27.211386
    elif how == "energy shifted by 3 eV/atom":
        first["energy_eV"] += 3.0 * first["natoms"]
    elif how == "nan":
        first["energy_eV"] = float("nan")
    elif how == "fingerprint":
        first["fingerprint"] = other["fingerprint"]
    elif how == "other structure's name":
        first["name"] = other["name"]
    elif how == "unknown name":
        first["name"] += "-typo"
    elif how == "formula":
        first["formula"] = other["formula"]
    elif how == "status":
        first["status"] = "okay"
    elif how == "missing field":
        del first["fingerprint"]
    elif how == "energy as text":
        first["energy_eV"] = str(first["energy_eV"])
    elif how == "duplicate":
        out.append({**first, "_line": len(out) + 1})
    elif how == "energy of another formula":
        first["energy_eV"] = other["energy_eV"] * first["natoms"] / other["natoms"]
    return out


@pytest.mark.parametrize(
    "how",
    [
        "hartree",
        "energy shifted by 3 eV/atom",
        "nan",
        "fingerprint",
        "other structure's name",
        "unknown name",
        "formula",
        "status",
        "missing field",
        "energy as text",
        "duplicate",
        "energy of another formula",
    ],
)
def test_a_corrupted_record_is_reported(committed, structures, how):
    assert problems_of(_corrupt(committed, how), structures)


def test_a_cut_line_is_reported_and_a_line_being_appended_is_not_read():
    lines = PBE.read_text().splitlines(keepends=True)
    cut = "".join(lines[:2]) + lines[2][:40] + "\n" + "".join(lines[3:])
    records, problems = read_records(cut)
    assert problems and problems[0].startswith("line 3: not JSON")
    records, problems = read_records("".join(lines) + lines[1][:40])  # an append in progress
    assert not problems and len(records) == len(lines)


@pytest.mark.parametrize("formula", ["Zn13Se13", "Cd13Te13", "Cd13Se13"])
def test_each_mx13_set_holds_four_distinct_alternating_isomers(formula):
    """Issue 19 asks for at least four (MX)13 isomers per chemistry; a copy in the set would spend
    an hour of DFT on a structure already computed, and an anion-anion bonded one is no candidate."""
    from airss_msc.analysis.duplicates import same_structure
    from airss_msc.generation.geometry import anion_bonds
    from benchmarks.build_reference_large import SAME_FRAME_RMSD

    images = read(SETS / f"{formula}.extxyz", ":", format="extxyz")
    assert len(images) >= 4
    assert all(a.get_chemical_formula(mode="metal") == formula for a in images)
    assert [anion_bonds(a) for a in images] == [0] * len(images)
    for i, a in enumerate(images):
        for b in images[i + 1 :]:
            assert not same_structure(a, b, rmsd_tol=SAME_FRAME_RMSD), (a.info["name"], b.info["name"])


def test_a_mapped_frame_renames_the_species_and_keeps_the_positions():
    from benchmarks.build_reference_large import mapped_frame

    src = Atoms("Cd2Se2", positions=[[0, 0, 0], [2.6, 0, 0], [0, 2.6, 0], [2.6, 2.6, 0]])
    out = mapped_frame(src, "Zn", "Te")
    assert out.get_chemical_symbols() == ["Zn", "Zn", "Te", "Te"]
    assert np.allclose(out.positions, src.positions)


def test_the_promoted_parent_file_is_the_reference_frame_with_its_pbe_order():
    """structures/Zn13Se13_cdse_frame.xyz is written from the reference set (``--promote``): a
    stale file (a PBE record or geometry changed since) would put a wrong number in its provenance
    and a different frame in the zncdse13 study than the one PBE measured."""
    from airss_msc.results.formats import read_structures
    from benchmarks.build_reference_large import promoted
    from benchmarks.paths import PARENT_STRUCTURES

    built = promoted("Zn13Se13-frame_Cd13Te13_parent")
    (stored,) = read_structures(PARENT_STRUCTURES / "Zn13Se13_cdse_frame.xyz")
    assert stored.get_chemical_symbols() == built.get_chemical_symbols()
    assert np.allclose(stored.positions, built.positions, atol=1e-6)
    assert stored.info["provenance"] == built.info["provenance"]
    assert "eV below Zn13Se13.xyz" in built.info["provenance"]  # PBE puts this frame below the parent
