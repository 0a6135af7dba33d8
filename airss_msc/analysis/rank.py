"""The rank stage (a ``cryan -r`` for clusters): per composition, lowest energy first.

Reads results databases and plain structure files carrying energies (extxyz,
``.res``). Energies of different methods are never mixed: a ranking uses one
method's energy (``energy``, e.g. ``pyscf:PBE/def2-SVP`` from ``refine``) or,
by default, each row's own geometry-engine energy with rows of different
methods ranked apart. Relative energies are meV/atom against the lowest.
Only ``relaxed`` rows are ranked unless ``include_all`` is asked: a collapsed
or unfinished structure must never look like a result.

Duplicates are merged species-aware (:mod:`airss_msc.analysis.duplicates`;
homotops stay apart): each ranked row is a unique minimum with ``copies`` and
its Boltzmann population at 298 K: by the reference (DFT) energy where every unique
minimum of the composition carries one (``refine``), otherwise by the ranking energy,
whose measured error the row names (``population_method``): the validated ranking
energies order isomers well but spread their energies wider than PBE, and populations
feel the spread. Where other methods' energies are stored on
every minimum of a group, each row also shows its rank by them, and rows whose
order a validated energy (the registry's ranking energy or a reference) disagrees with are flagged.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from airss_msc.analysis.bands import describe_gap, gap_wavelength_nm
from airss_msc.analysis.duplicates import group_duplicates
from airss_msc.analysis.energetics import boltzmann_populations
from airss_msc.calc.engines import (
    VALIDATED_RANKING,
    is_reference,
    measured_error,
    method_accuracy,
    parse_method,
    preferred_gap_method,
    short_name,
)
from airss_msc.errors import InputError
from airss_msc.generation.geometry import anion_bonds, point_group
from airss_msc.results.formats import STRUCTURE_SUFFIXES, energy_of, read_structures
from airss_msc.results.record import Result, Status
from airss_msc.results.store import ResultsDB


@dataclass
class RankedRow:
    """One line of the ranking (energies eV, relative energy meV/atom, gap eV, nm).

    other_ranks: rank of this minimum by each other method stored on the whole
    group (method -> rank); disagree: a validated energy orders this row differently.
    """

    rank: int | None
    id: str
    formula: str
    method: str
    energy_eV: float | None
    delta_meV_per_atom: float | None
    gap_eV: float | None
    gap_method: str
    wavelength_nm: float | None
    status: str
    seed: int | None = None
    copies: int | None = None
    anion_bonds: int | None = None
    point_group: str = ""
    population: float | None = None
    other_ranks: dict | None = None
    disagree: bool = False
    #: the energy the population was computed with (a reference energy where all minima have it)
    population_method: str = ""
    result: Result | None = None


def results_from_files(paths: list[str]) -> list[Result]:
    """Results from structure files whose frames may carry an energy (``info['energy']``, eV)."""
    out = []
    for path in paths:
        for k, atoms in enumerate(read_structures(path)):
            energy = energy_of(atoms)
            info = dict(atoms.info)
            try:
                status = Status.parse(str(info.pop("status", Status.RELAXED if energy is not None else Status.ERROR)))
            except ValueError as exc:  # a typo or another program's word: refused here, not ranked later
                raise InputError(f"{path} frame {k + 1}: {exc}") from None
            gap = info.pop("gap_eV", info.pop("gap", None))
            method = str(info.pop("method", ""))
            info.pop("energy", None)
            out.append(
                Result(
                    symbols=tuple(atoms.get_chemical_symbols()),
                    positions=atoms.positions,
                    status=status,
                    method=method,
                    energy=energy,
                    gap=None if gap is None else float(gap),
                    energies={method: energy} if energy is not None and method else {},
                    anion_bonds=info.pop("anion_bonds", None),
                    provenance=info,
                    id=k + 1,
                    source=str(path),
                )
            )
    return out


def load_results(sources: list[str]) -> list[Result]:
    """Results from databases (``.db``) and structure files, in the order given."""
    if not sources:
        raise InputError("nothing to rank: give a database or structure files")
    results: list[Result] = []
    for src in sources:
        path = Path(src)
        if not path.exists():
            raise InputError(f"{src} not found")
        if path.suffix.lower() in STRUCTURE_SUFFIXES:
            results.extend(results_from_files([src]))
        else:
            results.extend(ResultsDB(path).records())
    return results


def stored_rank_energy(sources: list[str]) -> str | None:
    """The ranking energy the databases among ``sources`` were searched with (``[search]
    rank_energy``), if they agree on one; None ranks each row by its own method."""
    chosen = set()
    for src in sources:
        path = Path(src)
        if path.suffix.lower() not in STRUCTURE_SUFFIXES and path.exists():
            chosen.add(ResultsDB(path).rank_energy)
    return chosen.pop() if len(chosen) == 1 else None


def reference_on_every_composition(results: list[Result], ranking: str | None) -> str | None:
    """A reference (DFT) energy a refinement stored deep enough in every composition to rank it:
    on at least as many relaxed rows of each composition (ligand-capped ones included) as the
    validation found ``ranking``'s order needs at that size for the reference's lowest to be among
    them (the refine depth, :meth:`~airss_msc.calc.engines.accuracy.ClassAccuracy.depth`; one more
    than the depths measured where it was never within them; one where no class was measured; every
    row of a composition with fewer). The first such method by name, or None."""
    measured = method_accuracy(ranking) if ranking else None
    by_comp: dict[str, list[Result]] = {}
    for r in results:
        if r.status == Status.RELAXED:
            by_comp.setdefault(r.composition, []).append(r)

    def needed(group: list[Result]) -> int:
        size_class = measured.at(group[0].natoms) if measured is not None else None
        if size_class is None:
            return 1
        return size_class.depth() or len(size_class.lowest_within_top) + 1

    def carries(r: Result, method: str) -> bool:
        return method in r.energies and bool(np.isfinite(r.energies[method]))

    references = sorted({m for group in by_comp.values() for r in group for m in r.energies if is_reference(m)})
    for method in references:
        if by_comp and all(
            sum(carries(r, method) for r in group) >= min(needed(group), len(group)) for group in by_comp.values()
        ):
            return method
    return None


def ranking_energy(requested: str | None, sources: list[str], results: list[Result] | None = None) -> str | None:
    """``--energy`` as given, ``own`` for each row's own method; else the databases' stored choice
    (or the validated ranking energy when the rows, ``results``, carry it), unless a reference (DFT)
    energy was refined deep enough in every composition (:func:`reference_on_every_composition`):
    then that reference, which ranks the structures it was computed on."""
    if requested is not None:
        return None if requested.strip().lower() == "own" else requested
    stored = stored_rank_energy(sources)
    if stored is None and results and any(VALIDATED_RANKING in r.energies for r in results):
        stored = VALIDATED_RANKING
    return (reference_on_every_composition(results, stored) if results else None) or stored


def validated_energy(method: str | None) -> bool:
    """Whether ``method``'s energies order isomers validatedly: the registry's validated ranking
    energy or a reference (DFT) energy. Other engines' ranks are shown, never trusted."""
    if not method:
        return False
    try:
        canonical = str(parse_method(method))
    except InputError:
        return False
    return canonical == VALIDATED_RANKING or is_reference(canonical)


def validated_disagreement(row: RankedRow) -> dict[str, int]:
    """The validated energies (method -> rank) that order ``row`` differently from its rank."""
    if row.rank is None:
        return {}
    return {m: k for m, k in (row.other_ranks or {}).items() if k != row.rank and validated_energy(m)}


def ranking_note(rows: list[RankedRow], energy: str | None) -> str:
    """One line for a person: which energy ranked, which gave the populations, and how far each
    has been measured to be from the reference."""
    parts = [f"ranked by {energy}" if energy else "ranked by each row's own method (methods apart)"]
    if energy and measured_error(energy):
        parts.append(f"measured: {measured_error(energy)}")
    pops = sorted({r.population_method for r in rows if r.population_method})
    if pops and pops != [energy]:
        parts.append("populations by " + ", ".join(pops))
    elif energy and not is_reference(energy):
        parts.append("populations by the ranking energy (no composition has the reference energy on every minimum)")
    if energy and is_reference(energy):
        parts.append(f"only structures with a {energy} energy are ranked, and populations are among them")
    return "; ".join(parts)


def _label(result: Result, multiple_sources: bool) -> str:
    return f"{Path(result.source).name}:{result.id}" if multiple_sources else str(result.id)


def _anion_bonds(result: Result) -> int:
    """Stored count, or computed for structure files that do not carry it."""
    if result.anion_bonds is not None:
        return int(result.anion_bonds)
    return anion_bonds(result.atoms) if result.natoms else 0


def _shown_gap(result: Result, method: str) -> tuple[float | None, str]:
    gap = result.gap_by(method)
    if gap is not None:
        return gap, method
    other = preferred_gap_method(result.gaps)
    if other is not None:
        return result.gaps[other], other
    if result.gap is not None:
        return result.gap, result.method
    return None, ""


def _ranked_by(result: Result, energy: str | None) -> Result | None:
    """``result`` with ``energy``/``method`` taken from the ranking method (None: no such energy)."""
    if energy is None:
        return result if result.energy is not None else None
    value = result.energy_by(energy)
    if value is None:
        return None
    return replace(result, energy=value, method=energy, gap=result.gap_by(energy))


def rank_results(
    results: list[Result],
    *,
    energy: str | None = None,
    include_all: bool = False,
    top: int | None = None,
    merge: bool = True,
    energy_tol: float = 1e-3,
    rmsd_tol: float = 0.1,
    temperature: float = 298.15,
    symmetry_tol: float | None = 0.1,
    exclude_anion_bonded: bool = False,
) -> list[RankedRow]:
    """Rank per composition (and method), lowest energy first; ``top`` keeps the best N of each.

    energy: rank by this method's stored energies (rows without one are left out of the
        ranking); None ranks each row by its own method, methods apart.
    merge: fold species-aware duplicates (``energy_tol`` eV/atom, ``rmsd_tol`` Angstrom)
        into one row with ``copies``. temperature: K, for Boltzmann populations.
    symmetry_tol: Angstrom for the point group (None skips the analysis).
    exclude_anion_bonded: rank only structures without anion-anion bonds.
    Groups are listed by size then formula. Unranked rows (with ``include_all``)
    follow the ranked ones of their composition.
    """
    if energy is not None:
        energy = str(parse_method(energy))
    multiple = len({r.source for r in results}) > 1
    by_comp: dict[str, list[Result]] = {}
    for res in results:
        by_comp.setdefault(res.composition, []).append(res)
    rows: list[RankedRow] = []
    for formula in sorted(by_comp, key=lambda f: (by_comp[f][0].natoms, f)):
        group = by_comp[formula]
        rankable: dict[str, list[tuple[Result, Result]]] = {}  # ranking method -> (as ranked, as stored)
        for res in group:
            scored = _ranked_by(res, energy) if res.status == Status.RELAXED else None
            if scored is None or (exclude_anion_bonded and _anion_bonds(res)):
                continue
            rankable.setdefault(scored.method, []).append((scored, res))
        best = None
        for method in sorted(rankable, key=lambda m: -len(rankable[m])):
            pairs = sorted(rankable[method], key=lambda p: known_energy(p[0].energy))
            rows_here, best_here = _rank_group(
                [s for s, _ in pairs],
                [_minimised(r) for _, r in pairs],
                merge,
                energy_tol,
                rmsd_tol,
                temperature,
                symmetry_tol,
                top,
                multiple,
            )
            best = best if best is not None else best_here
            rows.extend(rows_here)
        if include_all:
            ranked_keys = {(r.source, r.id) for m in rankable.values() for r, _ in m}
            rest = [r for r in group if (r.source, r.id) not in ranked_keys]
            rest.sort(key=lambda r: (r.energy is None, r.energy if r.energy is not None else 0.0))
            rows.extend(_row(r, None, best, multiple) for r in rest)
    return rows


def known_energy(value: float | None) -> float:
    """``value``, an energy the caller knows is set (a ranked row's, or its relaxing engine's)."""
    assert value is not None, "a ranked row without an energy"
    return value


def _minimised(res: Result) -> tuple[str | None, float | None]:
    """(method, energy in eV) of the engine that relaxed ``res``: a database row's own, or for a structure
    file exported by another method's energy, the ``geometry_method``/``geometry_energy`` it carries;
    (None, None) when unknown."""
    method: object = res.method
    value: Any = res.energy
    if Path(res.source).suffix.lower() in STRUCTURE_SUFFIXES and "geometry_method" in res.provenance:
        method, value = res.provenance["geometry_method"], res.provenance.get("geometry_energy")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None, None
    return (str(method), value) if method and np.isfinite(value) else (None, None)


def merge_copies(
    ok: list[Result], minimised: list[tuple[str | None, float | None]], energy_tol: float, rmsd_tol: float
) -> list[list[int]]:
    """Copies of one minimum among ``ok`` (one composition, ranked energies), as lists of indices, the member
    to show first.

    Rows relaxed by one engine are windowed (``energy_tol`` eV/atom) on that engine's energy, ``minimised``,
    and shown by their lowest copy in it: a single point of another method on geometries converged to
    fmax 0.05 eV/A scatters over copies of one minimum (the Cd6Se6 drum: 0.2 meV/atom in CHGNet, 2.8 in
    SevenNet-0), so a window on it kept copies apart and its lowest would bias the rank low. The groups of
    different engines (and rows without one) then merge on the ranking energy.
    """
    by_engine: dict[str | None, list[int]] = {}
    for i, (method, _) in enumerate(minimised):
        by_engine.setdefault(method, []).append(i)
    groups = []
    for method, idx in by_engine.items():
        window = [known_energy(minimised[i][1] if method is not None else ok[i].energy) for i in idx]
        groups += [
            [idx[j] for j in g]
            for g in group_duplicates([ok[i].atoms for i in idx], window, energy_tol=energy_tol, rmsd_tol=rmsd_tol)
        ]
    if len(by_engine) == 1:
        return groups
    shown = [g[0] for g in groups]
    across = group_duplicates(
        [ok[i].atoms for i in shown],
        [known_energy(ok[i].energy) for i in shown],
        energy_tol=energy_tol,
        rmsd_tol=rmsd_tol,
    )
    return [[i for k in g for i in groups[k]] for g in across]


def _rank_group(
    ok: list[Result],
    minimised: list[tuple[str | None, float | None]],
    merge,
    energy_tol,
    rmsd_tol,
    temperature,
    symmetry_tol,
    top,
    multiple,
):
    """Rows of one composition and ranking method, ``ok`` sorted by energy; ``minimised``: their relaxing
    engines and energies (see :func:`merge_copies`)."""
    if merge and len(ok) > 1:
        groups = merge_copies(ok, minimised, energy_tol, rmsd_tol)
        unique = sorted(((ok[g[0]], len(g)) for g in groups), key=lambda t: known_energy(t[0].energy))
    else:
        unique = [(r, 1) for r in ok]
    if not unique:
        return [], None
    best = unique[0][0].energy_per_atom
    pop_method = population_energy([r for r, _ in unique])
    pops = boltzmann_populations(np.array([r.energy_by(pop_method) for r, _ in unique]), temperature)
    others = _other_ranks([r for r, _ in unique])
    ranked = unique[:top] if top else unique
    rows = []
    # pops cover every row, ranked only the top ones
    for k, ((res, copies), pop) in enumerate(zip(ranked, pops, strict=False), 1):
        row = _row(res, k, best, multiple)
        row.copies = copies
        row.population = float(pop)
        row.population_method = pop_method
        row.other_ranks = {m: ranks[k - 1] for m, ranks in others.items()} or None
        row.disagree = bool(validated_disagreement(row))  # other engines' ranks are shown, not counted
        if symmetry_tol is not None:
            row.point_group = point_group(res.atoms, symmetry_tol)
        rows.append(row)
    return rows, best


def population_energy(unique: list[Result]) -> str:
    """The energy populations (and mixing energies) of these minima use: a reference (DFT) method
    stored on every one of them, else their ranking method."""
    ranking = unique[0].method
    if is_reference(ranking):
        return ranking
    common = set.intersection(*(set(r.energies) for r in unique)) if unique else set()
    references = sorted(m for m in common if is_reference(m) and all(np.isfinite(r.energies[m]) for r in unique))
    return references[0] if references else ranking


def _other_ranks(unique: list[Result]) -> dict[str, list[int]]:
    """Rank of each unique minimum by every other method stored on all of them."""
    if len(unique) < 2:
        return {}
    common = set.intersection(*(set(r.energies) for r in unique)) - {unique[0].method}
    out = {}
    for method in sorted(common):
        values = np.array([r.energies[method] for r in unique])
        order = np.argsort(values, kind="stable")
        ranks = np.empty(len(unique), dtype=int)
        ranks[order] = np.arange(1, len(unique) + 1)
        out[method] = ranks.tolist()
    return out


def _row(res: Result, rank: int | None, best_per_atom: float | None, multiple: bool) -> RankedRow:
    delta = None
    if res.energy_per_atom is not None and best_per_atom is not None and rank is not None:
        delta = 1000.0 * (res.energy_per_atom - best_per_atom)
    gap, gap_method = _shown_gap(res, res.method)
    return RankedRow(
        rank=rank,
        id=_label(res, multiple),
        formula=res.composition,
        method=res.method,
        energy_eV=res.energy,
        delta_meV_per_atom=delta,
        gap_eV=gap,
        gap_method=gap_method,
        # A wavelength is a claim about a result: only relaxed rows with a real gap make it.
        wavelength_nm=gap_wavelength_nm(gap) if res.status == Status.RELAXED else None,
        status=res.status,
        seed=res.seed,
        result=res,
        anion_bonds=_anion_bonds(res) if res.natoms else None,
    )


COLUMNS = [
    "rank",
    "id",
    "formula",
    "method",
    "energy_eV",
    "delta_meV_per_atom",
    "gap_eV",
    "wavelength_nm",
    "point_group",
    "copies",
    "population",
    "anion_bonds",
    "other_ranks",
    "status",
]
_FMT = {"energy_eV": "{:.4f}", "delta_meV_per_atom": "{:.1f}", "wavelength_nm": "{:.0f}", "population": "{:.3f}"}
_LEFT = ("formula", "status", "id", "point_group", "method", "other_ranks")


def _fields(row: RankedRow) -> dict:
    return {k: v for k, v in vars(row).items() if k != "result"}


def _cell(row: RankedRow, column: str) -> str:
    value = getattr(row, column)
    if column == "method":
        return short_name(value)
    if column == "gap_eV":
        text = describe_gap(value)
        return (
            text
            if not row.gap_method or row.gap_method == row.method or text == "-"
            else f"{text} ({short_name(row.gap_method)})"
        )
    if column == "other_ranks":
        if not value:
            return "-"
        return " ".join(f"{short_name(m)}:{r}" for m, r in value.items()) + (" *" if row.disagree else "")
    if value is None:
        return "-"
    return _FMT.get(column, "{}").format(value)


def format_rows(rows: list[RankedRow], fmt: str = "table", columns: list[str] | None = None) -> str:
    """Render as an aligned ``table``, ``csv`` or ``json`` (numbers unrounded in csv/json).

    In tables, ``other_ranks`` lists each other method's rank of the row, with ``*``
    where the methods disagree; gaps under 0.1 eV read "open shell / metallic".
    """
    columns = columns or COLUMNS
    if fmt == "json":
        return json.dumps(
            [{c: _fields(r)[c] for c in columns} | {"gap_method": r.gap_method, "disagree": r.disagree} for r in rows],
            indent=1,
        )
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            d = _fields(r)
            writer.writerow(
                [
                    ""
                    if d[c] is None
                    else (" ".join(f"{m}={v}" for m, v in d[c].items()) if isinstance(d[c], dict) else d[c])
                    for c in columns
                ]
            )
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise InputError(f"unknown format {fmt!r}: choose table, csv or json")
    cells = [columns] + [[_cell(r, c) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = []
    for k, row in enumerate(cells):
        lines.append(
            "  ".join(
                v.rjust(w) if k and c not in _LEFT else v.ljust(w) for v, w, c in zip(row, widths, columns, strict=True)
            ).rstrip()
        )
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
