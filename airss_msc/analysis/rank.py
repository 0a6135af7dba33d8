"""The rank stage (a ``cryan -r`` for clusters): per composition, lowest energy first.

Reads results databases and plain structure files carrying energies (extxyz,
``.res``). Relative energies are in meV/atom against the lowest relaxed
structure of the same composition; gaps (eV) are turned into wavelengths
(nm = 1239.84 / eV). Only ``relaxed`` rows are ranked unless ``all`` is asked:
a collapsed or unfinished structure must never look like a result.

Duplicates are merged species-aware (:mod:`airss_msc.analysis.duplicates`; homotops stay
apart): each ranked row is a unique minimum with ``copies``, the number of
times the search found it, and its Boltzmann population at 298 K among the
unique minima of its composition.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from airss_msc.composition import canonical_formula
from airss_msc.errors import InputError
from airss_msc.results.store import Record, ResultsDB

#: hc in eV nm: E(eV) = 1239.84 / lambda(nm).
HC_EV_NM = 1239.84

STRUCTURE_SUFFIXES = {".xyz", ".extxyz", ".res"}


def gap_to_nm(gap_ev: float | None) -> float | None:
    """Wavelength (nm) of a transition of ``gap_ev`` eV; None for no or zero gap."""
    if gap_ev is None or not math.isfinite(gap_ev) or gap_ev <= 0:
        return None
    return HC_EV_NM / gap_ev


@dataclass
class RankedRow:
    """One line of the ranking (energies eV, relative energy meV/atom, gap eV, nm)."""

    rank: int | None
    id: str
    formula: str
    energy_eV: float | None
    delta_meV_per_atom: float | None
    gap_eV: float | None
    wavelength_nm: float | None
    status: str
    method: str = ""
    seed: int | None = None
    copies: int | None = None
    anion_bonds: int | None = None
    point_group: str = ""
    population: float | None = None
    record: Record | None = None


def records_from_files(paths: list[str]) -> list[Record]:
    """Records from structure files whose frames carry an energy (``info['energy']``)."""
    from airss_msc.results.formats import read_structures

    out = []
    for path in paths:
        for k, atoms in enumerate(read_structures(path)):
            energy = atoms.info.get("energy")
            if energy is None and atoms.calc is not None:
                try:
                    energy = atoms.get_potential_energy()
                except Exception:  # no stored energy on this frame
                    energy = None
            energy = None if energy is None else float(energy)
            status = str(atoms.info.get("status", "relaxed" if energy is not None else "unknown"))
            gap = atoms.info.get("gap_eV", atoms.info.get("gap"))
            out.append(Record(
                id=k + 1,
                composition=canonical_formula(atoms.get_chemical_formula()),
                status=status,
                energy=energy,
                energy_per_atom=None if energy is None else energy / len(atoms),
                gap=None if gap is None else float(gap),
                seed=atoms.info.get("seed"),
                method=str(atoms.info.get("method", "")),
                atoms=atoms,
                key_value_pairs=dict(atoms.info),
                source=str(path),
            ))
    return out


def energy_key(method: str) -> str:
    """Database key of a single-point energy by ``method`` (``GFN2-xTB`` -> ``e_gfn2_xtb``)."""
    import re

    from airss_msc.calc.engines import parse_method

    spec = parse_method(method)
    return "e_" + re.sub(r"[^a-z0-9]+", "_", spec.method.lower()).strip("_")


def with_energy(records: list[Record], key: str) -> list[Record]:
    """Records re-based on the stored single-point energy ``key`` (eV); rows without it are dropped."""
    from dataclasses import replace

    out = []
    for rec in records:
        value = rec.key_value_pairs.get(key)
        if value is not None:
            out.append(replace(rec, energy=float(value), energy_per_atom=float(value) / len(rec.atoms)))
    return out


def load_records(sources: list[str]) -> list[Record]:
    """Records from databases (``.db``) and structure files, in the order given."""
    if not sources:
        raise InputError("nothing to rank: give a database or structure files")
    records: list[Record] = []
    for src in sources:
        path = Path(src)
        if not path.exists():
            raise InputError(f"{src} not found")
        if path.suffix.lower() in STRUCTURE_SUFFIXES:
            records.extend(records_from_files([src]))
        else:
            records.extend(ResultsDB(path).records())
    return records


def _record_id(record: Record, multiple_sources: bool) -> str:
    return f"{Path(record.source).name}:{record.id}" if multiple_sources else str(record.id)


def point_group(atoms, tolerance: float = 0.1) -> str:
    """Schoenflies point group (pymatgen, ``tolerance`` in Angstrom); '?' if undetermined."""
    from pymatgen.core import Molecule
    from pymatgen.symmetry.analyzer import PointGroupAnalyzer

    if len(atoms) < 2:
        return "Kh"
    try:
        # pymatgen has no dummy element: stand Ar in for the LJ particle X.
        symbols = ["Ar" if s == "X" else s for s in atoms.get_chemical_symbols()]
        mol = Molecule(symbols, atoms.positions)
        return str(PointGroupAnalyzer(mol, tolerance=tolerance).sch_symbol)
    except Exception:  # pymatgen fails on some degenerate geometries
        return "?"


def rank_records(
    records: list[Record], include_all: bool = False, top: int | None = None,
    merge: bool = True, energy_tol: float = 1e-3, rmsd_tol: float = 0.1,
    temperature: float = 298.15, symmetry_tol: float | None = 0.1,
    exclude_anion_bonded: bool = False,
) -> list[RankedRow]:
    """Rank per composition, lowest energy first; ``top`` keeps the best N per composition.

    merge: fold species-aware duplicates (``energy_tol`` eV/atom, ``rmsd_tol``
        Angstrom) into one row with ``copies``.
    temperature: K, for Boltzmann populations of the unique minima.
    symmetry_tol: Angstrom for the point group (None skips the analysis).
    exclude_anion_bonded: rank only structures without anion-anion bonds (the
        rest are listed unranked with ``include_all``).
    Compositions are listed by size then formula. Non-relaxed rows (with
    ``include_all``) follow the ranked ones of their composition, unranked.
    """
    from airss_msc.analysis.duplicates import group_duplicates
    from airss_msc.analysis.energetics import boltzmann_populations

    multiple = len({r.source for r in records}) > 1
    by_comp: dict[str, list[Record]] = {}
    for rec in records:
        by_comp.setdefault(rec.composition, []).append(rec)
    rows: list[RankedRow] = []
    for formula in sorted(by_comp, key=lambda f: (len(by_comp[f][0].atoms), f)):
        group = by_comp[formula]
        ok = sorted((r for r in group if r.status == "relaxed" and r.energy is not None
                     and not (exclude_anion_bonded and _anion_bonds(r))),
                    key=lambda r: r.energy)
        if merge and len(ok) > 1:
            groups = group_duplicates([r.atoms for r in ok], [r.energy for r in ok],
                                      energy_tol=energy_tol, rmsd_tol=rmsd_tol)
            unique = sorted(((ok[g[0]], len(g)) for g in groups), key=lambda t: t[0].energy)
        else:
            unique = [(r, 1) for r in ok]
        best = unique[0][0].energy_per_atom if unique else None
        pops = boltzmann_populations(np.array([r.energy for r, _ in unique]), temperature) if unique else []
        ranked = unique[:top] if top else unique
        for k, ((rec, copies), pop) in enumerate(zip(ranked, pops), 1):
            row = _row(rec, k, best, multiple)
            row.copies = copies
            row.population = float(pop)
            if symmetry_tol is not None:
                row.point_group = point_group(rec.atoms, symmetry_tol)
            rows.append(row)
        if include_all:
            rest = sorted((r for r in group if r not in ok),
                          key=lambda r: (r.energy is None, r.energy if r.energy is not None else 0.0))
            rows.extend(_row(rec, None, best, multiple) for rec in rest)
    return rows


def _anion_bonds(rec: Record) -> int:
    """Stored count, or computed for structure files that do not carry it."""
    from airss_msc.calc.sanity import anion_bonds

    stored = rec.key_value_pairs.get("anion_bonds")
    return int(stored) if stored is not None else anion_bonds(rec.atoms)


def _row(rec: Record, rank: int | None, best_per_atom: float | None, multiple: bool) -> RankedRow:
    delta = None
    if rec.energy_per_atom is not None and best_per_atom is not None:
        delta = 1000.0 * (rec.energy_per_atom - best_per_atom)
    return RankedRow(
        rank=rank, id=_record_id(rec, multiple), formula=rec.composition,
        energy_eV=rec.energy, delta_meV_per_atom=delta, gap_eV=rec.gap,
        # A wavelength is a claim about a result: only relaxed rows make it.
        wavelength_nm=gap_to_nm(rec.gap) if rec.status == "relaxed" else None,
        status=rec.status, method=rec.method, seed=rec.seed, record=rec,
        anion_bonds=_anion_bonds(rec) if len(rec.atoms) else None,
    )


COLUMNS = ["rank", "id", "formula", "energy_eV", "delta_meV_per_atom", "gap_eV", "wavelength_nm",
           "point_group", "copies", "population", "anion_bonds", "status"]
_FMT = {"energy_eV": "{:.4f}", "delta_meV_per_atom": "{:.1f}", "gap_eV": "{:.3f}", "wavelength_nm": "{:.0f}",
        "population": "{:.3f}"}


def _fields(row: RankedRow) -> dict:
    return {k: v for k, v in vars(row).items() if k != "record"}


def _cell(value, column: str) -> str:
    if value is None:
        return "-"
    return _FMT.get(column, "{}").format(value)


def format_rows(rows: list[RankedRow], fmt: str = "table", columns: list[str] | None = None) -> str:
    """Render as an aligned ``table``, ``csv`` or ``json`` (numbers unrounded in csv/json)."""
    columns = columns or COLUMNS
    if fmt == "json":
        return json.dumps([{c: _fields(r)[c] for c in columns} for r in rows], indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            d = _fields(r)
            writer.writerow(["" if d[c] is None else d[c] for c in columns])
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise InputError(f"unknown format {fmt!r}: choose table, csv or json")
    cells = [columns] + [[_cell(_fields(r)[c], c) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = []
    for k, row in enumerate(cells):
        lines.append("  ".join(v.rjust(w) if k and c not in ("formula", "status", "id", "point_group") else v.ljust(w)
                               for v, w, c in zip(row, widths, columns)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
