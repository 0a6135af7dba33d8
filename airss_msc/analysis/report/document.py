"""The report as a list of sections of plain blocks, the one place that decides what is shown.

Renderers (:mod:`.markdown`, :mod:`.html`) turn blocks into text and know
nothing of chemistry; a new section is one builder function here, listed in
:func:`sections`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from airss_msc import __version__
from airss_msc.analysis.bands import COMPUTABLE_HEAVY_ATOMS, HC_EV_NM, MIN_CALIBRATION_PAIRS, Band, GapMap, describe_gap
from airss_msc.analysis.energetics import MixingPoint, energy_above_hull
from airss_msc.analysis.rank import RankedRow, stored_rank_energy
from airss_msc.analysis.report.model import (
    CONSISTENT,
    DARK,
    ELSEWHERE,
    NOT_COMPUTED,
    SAXS_DIAMETER_NM,
    UNREACHED,
    Analysis,
    BandVerdict,
    Candidate,
    band_applies,
    estimates_by_map,
    judge,
    states_to_reach,
    validated_disagreement,
    validated_energy,
)
from airss_msc.analysis.sites import CORE_COORDINATION
from airss_msc.analysis.spectra import BRIGHT_F, DEFAULT_FWHM_EV, TDDFT_ERROR_EV, band_window_nm, covered_to_nm
from airss_msc.calc.engines import Role, default_method, is_reference, measured_error, method_accuracy, short_name
from airss_msc.calc.engines.accuracy import ClassAccuracy
from airss_msc.results.record import Excitations, Status


@dataclass
class Text:
    text: str


@dataclass
class Bullets:
    """A list of short statements (one line each)."""

    items: list[str]


@dataclass
class Table:
    head: list[str]
    body: list[list[str]]


#: What an empty cell reads; columns holding only this are left out of a table.
EMPTY = "-"


def compact(table: Table) -> Table:
    """``table`` without its empty columns (every cell ``-`` or blank): a column that says nothing
    only widens the page."""
    keep = [k for k in range(len(table.head)) if any(row[k] not in (EMPTY, "") for row in table.body)]
    return Table([table.head[k] for k in keep], [[row[k] for k in keep] for row in table.body])


@dataclass
class Image:
    path: Path
    alt: str


@dataclass
class Structure:
    """A structure shown as a picture, an interactive viewer (HTML) and a coordinate file."""

    title: str
    atoms: Atoms
    png: Path
    xyz: Path


@dataclass
class Code:
    text: str


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)
    level: int = 2


def fmt(value, spec: str = "{:.3f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return spec.format(value)


def _other_ranks(r: RankedRow) -> str:
    """Each other energy's rank of this minimum; '(disagree)' only where a validated energy orders it
    differently (unvalidated engines' ranks are shown, not trusted)."""
    ranks = r.other_ranks or {}
    text = " ".join(f"{short_name(m)}:{k}" for m, k in ranks.items())
    return (text + (" (disagree)" if validated_disagreement(r) else "")) or EMPTY


def _gap_cell(c: Candidate, named: bool = True) -> str:
    text = describe_gap(c.row.gap_eV)
    if named and text != "-" and c.row.gap_method and c.row.gap_method != c.row.method:
        text += f" ({short_name(c.row.gap_method)})"
    return text


def _saxs_head() -> str:
    lo, hi = SAXS_DIAMETER_NM
    return f"SAXS-equivalent diameter (nm; measured {lo}-{hi})"


def _size_cell(c: Candidate) -> str:
    if c.diameter_nm is None:
        return EMPTY
    lo, _ = SAXS_DIAMETER_NM
    where = {True: "within", False: "smaller" if c.diameter_nm < lo else "larger"}[bool(c.in_saxs_range)]
    return f"{c.diameter_nm:.2f} ({where})"


def _population(value: float | None) -> str:
    if value is None:
        return EMPTY
    return "<0.1%" if value < 5e-4 else f"{100 * value:.1f}%"


def candidate_table(analysis: Analysis, cands: list[Candidate]) -> Table:
    """The best structures of one composition (one ranking energy), empty columns left out."""
    # one gap method for the whole table goes in its header, not in every cell
    gap_methods = {c.row.gap_method for c in cands if c.row.gap_eV is not None}
    one_gap = short_name(gap_methods.pop()) if len(gap_methods) == 1 else None
    head = [
        "rank",
        "row id",
        "E above the lowest (meV/atom)",
        f"population at {analysis.temperature:.0f} K",
        "times found",
        "point group",
        "anion-anion bonds",
        f"HOMO-LUMO gap, {one_gap} (eV)" if one_gap else "HOMO-LUMO gap (eV)",
        "first bright excitation (nm, f)",
        "calibrated band (nm)",
        f"measured bands of its material within ±{TDDFT_ERROR_EV:g} eV",
        _saxs_head(),
        "rank by other energies",
    ]
    body = []
    for c in cands:
        r = c.row
        est = (
            EMPTY
            if c.band_nm is None
            else (f"{c.band_nm:.0f}" + (f" ± {c.band_unc_nm:.0f}" if c.band_unc_nm else " (no unc.)"))
        )
        bright = EMPTY if c.bright_nm is None else f"{c.bright_nm:.0f} ({c.bright_f:.2f})"
        near = sorted({b.name for b in c.matches} | {b.name for b in c.near_bright if band_applies(b, r.formula)})
        body.append(
            [
                str(r.rank),
                r.id,
                fmt(r.delta_meV_per_atom, "{:.1f}"),
                _population(r.population),
                fmt(r.copies, "{}"),
                r.point_group or EMPTY,
                fmt(r.anion_bonds, "{}"),
                _gap_cell(c, not one_gap),
                bright,
                est,
                ", ".join(near) or EMPTY,
                _size_cell(c),
                _other_ranks(r),
            ]
        )
    return compact(Table(head, body))


def _shift_only(cands: list[Candidate]) -> list[Candidate]:
    """The candidates with a stored spectrum that is no band as computed and no band spectrum beside it."""
    return [c for c in cands if c.excitations is None and c.shift_only_spectra]


def _spectrum_command(analysis: Analysis, top: int, method: str | None = None, states: int | None = None) -> str:
    """The ``airss-msc spectrum`` command that computes what a line asks for, on the structures the report
    ranks first: with ``--energy`` where the report ranks by another energy than the database's own."""
    words = [f"airss-msc spectrum {Path(analysis.db).name}", f"--top {top}"]
    if method:
        words.append(f"--method {method}")
    if states:
        words.append(f"--states {states}")
    if analysis.energy and analysis.energy != stored_rank_energy([analysis.db]):
        words.append(f"--energy {analysis.energy}")
    return "`" + " ".join(words) + "`"


def _shift_only_text(cands: list[Candidate], analysis: Analysis) -> str:
    """What the stored spectra of ``cands`` that are no band (TDA-ris) are, and what they are used for."""
    methods = sorted({short_name(m) for c in cands for m in c.shift_only_spectra})
    formulas = {c.row.formula for c in cands}
    named = _names(cands) if len(formulas) <= 4 else f"{len(formulas)} compositions"
    used = {id(c) for _, c in analysis.estimated_trend if c.estimate_by is not None and c.estimate_by.quantity != "gap"}
    feeding = sum(id(c) in used for c in cands)
    use = (
        f"in {feeding} composition(s) the lowest one's gives the band trend's "
        "estimate through the packaged map (Band trend); the others are not used"
        if feeding
        else "no band or estimate here uses them"
    )
    return (
        f"{len(cands)} structure(s) have only {', '.join(methods)} spectra ({named}): not a band as computed, "
        f"they are judged against no band; {use} ({_spectrum_command(analysis, 1)} computes TDA-PBE0 bands)."
    )


def _band_text(analysis: Analysis) -> str:
    parts = [
        (
            "A HOMO-LUMO gap is not an absorption band: bare-cluster gaps (xTB, and DFT with GGA functionals) "
            "sit far below the measured bands and ligands are absent, so a gap is not a band prediction. "
            "Gaps under 0.1 eV read 'open shell / metallic' and get no wavelength."
        )
    ]
    has_band = any(c.excitations is not None for c in analysis.candidates)
    if has_band:
        parts.append(
            f"'first bright' is the lowest computed excitation with oscillator strength f >= {BRIGHT_F:g} "
            f"(method named per structure); measured bands of the structure's material within its error window "
            f"(±{TDDFT_ERROR_EV:g} eV) are listed."
        )
        parts.append(_literature_text(analysis))
    shift_only = _shift_only(analysis.candidates)
    if not has_band and not shift_only:
        parts.append("No excitations are stored: run `airss-msc spectrum DB` for TDDFT band estimates.")
    if shift_only:
        parts.append(_shift_only_text(shift_only, analysis))
    if analysis.calibration is None:
        parts.append("No gap calibration was given (`--calibration`), so no calibrated band estimates are shown.")
    else:
        parts.append(f"Calibration: {analysis.calibration.describe()}")
    return " ".join(parts)


def _literature_text(analysis: Analysis) -> str:
    firm = analysis.calibrating_pairs
    known = len(analysis.literature)
    if len(firm) >= MIN_CALIBRATION_PAIRS:
        return (
            f"{len(firm)} published (structure, band) pairs are firm enough to calibrate the excitations "
            "(data/literature_pairs.toml); the estimates here are not yet fitted to them."
        )
    return (
        f"Uncalibrated: of {known} published (structure, band) pairs collected (data/literature_pairs.toml), "
        f"{len(firm)} have a crystal structure, a known band and a core of <= {COMPUTABLE_HEAVY_ATOMS} heavy atoms "
        f"(a calibration needs {MIN_CALIBRATION_PAIRS}), so TDDFT band estimates are shown as computed, with "
        f"the method's error of about ±{TDDFT_ERROR_EV:g} eV from its sources (see Computed absorption)."
    )


def _names(cands: list[Candidate]) -> str:
    """'Cd7TeSe3 #1, #2; Cd6Te2Se3 #1': structures grouped by formula."""
    by: dict[str, list[str]] = {}
    for c in cands:
        by.setdefault(c.row.formula, []).append(f"#{c.row.rank}")
    return "; ".join(f"{f} {', '.join(ranks)}" for f, ranks in by.items())


def _method(c: Candidate) -> str:
    return short_name(c.excitations.method) if c.excitations is not None else ""


def _computed(c: Candidate) -> Excitations:
    """The excitations of a candidate whose verdict says they were computed (unreached, consistent)."""
    assert c.excitations is not None, f"{c.label}: judged by excitations it does not have"
    return c.excitations


def _what_would_reach(v: BandVerdict, cands: list[Candidate], db: str) -> str:
    """What calculation would bring the states far enough to judge the band."""
    need_nm, _ = v.window_nm
    need_eV = HC_EV_NM / need_nm
    estimates = [n for n in (states_to_reach(_computed(c), need_eV) for c in cands) if n]
    text = f"to judge it, the states must reach {need_nm:.0f} nm (the band + {TDDFT_ERROR_EV:g} eV)"
    if estimates:
        n = max(estimates)
        text += (
            f": at least about {n} states by the computed state density "
            f"(`airss-msc spectrum {Path(db).name} --states {n}`)"
        )
    preferred = default_method(Role.EXCITATION)
    if any(_computed(c).method != preferred for c in cands):
        text += f"; {short_name(preferred)} is the preferred method (see Computed absorption)"
    return text


def _consistent(c: Candidate) -> str:
    return f"{c.label}, first bright excitation {c.bright_nm:.0f} nm (f {c.bright_f:.2f}, {_method(c)})"


def _band_sentence(v: BandVerdict, db: str) -> str:
    """The verdict on one band in plain words, every structure of its material accounted for."""
    b = v.band
    lo, hi = v.window_nm
    head = f"{b.name} ({b.wavelength_nm:.0f} nm{', the target' if b.target else ''}): "
    if not v.applicable:
        return head + f"no {b.material} structure is among those shown: not judged."
    consistent = v.of(CONSISTENT)
    parts = []
    if v.of(ELSEWHERE):
        where = ", ".join(f"{c.row.formula} #{c.row.rank} at {c.bright_nm:.0f} nm" for c in v.of(ELSEWHERE))
        parts.append(f"ruled out: the first bright excitation lies outside {lo:.0f}-{hi:.0f} nm ({where})")
    if v.of(DARK):
        parts.append(f"ruled out: no bright state down to {lo:.0f} nm ({_names(v.of(DARK))})")
    if v.of(UNREACHED):
        reach = ", ".join(
            f"{c.row.formula} #{c.row.rank} to {covered_to_nm(_computed(c)):.0f} nm, "
            f"{len(_computed(c).energies_eV)} {_method(c)} states, none bright"
            for c in v.of(UNREACHED)
        )
        parts.append(f"the computed states stop short of it ({reach}); " + _what_would_reach(v, v.of(UNREACHED), db))
    if v.of(NOT_COMPUTED):
        parts.append(f"spectra not computed ({_names(v.of(NOT_COMPUTED))})")
    if consistent:
        text = (
            head
            + "consistent with "
            + "; ".join(_consistent(c) for c in consistent)
            + (f", within ±{TDDFT_ERROR_EV:g} eV ({lo:.0f}-{hi:.0f} nm)")
        )
        return text + (". Others: " + "; ".join(parts) + "." if parts else ".")
    if not any(v.of(k) for k in (ELSEWHERE, DARK, UNREACHED)):
        return head + f"not judged: spectra were not computed ({_names(v.of(NOT_COMPUTED))})."
    return head + "no computed structure is consistent with it: " + "; ".join(parts) + "."


def _verdict_table(verdicts: list[BandVerdict]) -> Table:
    body = []
    for v in verdicts:
        lo, hi = v.window_nm
        body.append(
            [
                v.band.name + (" (target)" if v.band.target else ""),
                f"{v.band.wavelength_nm:.0f}",
                f"{lo:.0f}-{hi:.0f}",
                "; ".join(f"{c.row.formula} #{c.row.rank} ({c.bright_nm:.0f})" for c in v.of(CONSISTENT))
                or ("none" if v.applicable else f"no {v.band.material} structure shown"),
                _names(v.of(ELSEWHERE) + v.of(DARK)) or EMPTY,
                _names(v.of(UNREACHED)) or EMPTY,
            ]
        )
    return compact(
        Table(
            [
                "measured band",
                "peak (nm)",
                f"window ±{TDDFT_ERROR_EV:g} eV (nm)",
                "consistent structures (first bright, nm)",
                "ruled out (first bright elsewhere)",
                "states stop short of it",
            ],
            body,
        )
    )


def _size_line(analysis: Analysis) -> str | None:
    sized = [c for c in analysis.candidates if c.diameter_nm is not None]
    if not sized:
        return None
    lo, hi = SAXS_DIAMETER_NM
    inside = [c for c in sized if c.in_saxs_range]
    ds = [c.diameter_nm for c in analysis.candidates if c.diameter_nm is not None]  # those of ``sized``
    return (
        f"Size: {len(inside)} of {len(sized)} structures shown have a SAXS-equivalent diameter within the "
        f"measured {lo}-{hi} nm (theirs: {min(ds):.2f}-{max(ds):.2f} nm)."
    )


def _order_line(analysis: Analysis) -> str:
    energy = analysis.energy
    if energy is None:
        trust = "each by the energy of the method that relaxed it"
    elif validated_energy(energy):
        trust = f"by {short_name(energy)} (validated against DFT)"
    else:
        trust = f"by {short_name(energy)}, not validated against DFT: the order is uncertain"
    disputed = analysis.disagreements
    return f"Order: structures ranked {trust}; " + (
        f"{len(disputed)} ranked minima are ordered differently by a validated energy "
        "(see 'Isomers whose order the validated energies disagree on')."
        if disputed
        else "no validated energy disputes the order."
    )


def title(analysis: Analysis, figures: dict) -> Section:
    status = ", ".join(f"{n} {s}" for s, n in analysis.status_counts.items())
    roles: dict[str, list[str]] = {}
    for u in analysis.method_uses:
        roles.setdefault(u.role, []).append(u.method)
    ran = "; ".join(f"{role}: {', '.join(ms)}" for role, ms in roles.items())
    return Section(
        f"airss-msc report: {Path(analysis.db).name}",
        [Text(f"{len(analysis.results)} structures ({status}). Methods that ran: {ran}. airss-msc {__version__}.")],
        level=1,
    )


def verdict(analysis: Analysis, figures: dict) -> Section:
    """Plain words first: which structures each measured band is consistent with, or why none is."""
    cands = analysis.candidates
    with_spectra = [c for c in cands if c.excitations is not None]
    verdicts = analysis.verdicts
    blocks: list = []
    target = next((v for v in verdicts if v.band.target), None)
    if not with_spectra:
        name = f"{target.band.name} ({target.band.wavelength_nm:.0f} nm)" if target else "the measured bands"
        shift_only = _shift_only(cands)
        blocks.append(
            Text(
                (
                    f"No band spectrum was computed: none of the {len(cands)} structures shown can be compared "
                    if shift_only
                    else f"Spectra were not computed: none of the {len(cands)} structures shown can be compared "
                )
                + f"with {name} or any other measured band yet ({_spectrum_command(analysis, 3)} computes TDDFT "
                "excitations of the lowest)."
            )
        )
        if shift_only:
            blocks.append(Text(_shift_only_text(shift_only, analysis)))
    else:
        if target is not None:
            blocks.append(Text(_band_sentence(target, analysis.db)))
        others = [v for v in verdicts if not v.band.target]
        lines = [
            f"{v.band.name} ({v.band.wavelength_nm:.0f} nm): consistent with "
            + "; ".join(_consistent(c) for c in v.of(CONSISTENT))
            + "."
            for v in others
            if v.of(CONSISTENT)
        ]
        unmatched = [v.band.name for v in others if not v.of(CONSISTENT)]
        if unmatched:
            lines.append(
                f"No computed structure is consistent with the other {len(unmatched)} measured bands "
                f"({', '.join(unmatched)}): the table says why."
            )
        blocks.append(Bullets(lines))
        missing = [c for c in cands if c.excitations is None]
        if missing:
            blocks.append(
                Text(
                    f"No band spectrum was computed for {len(missing)} of the {len(cands)} structures shown "
                    f"({_names(missing)}): they are not judged against any band."
                )
            )
            if shift_only := _shift_only(missing):
                blocks.append(Text(_shift_only_text(shift_only, analysis)))
        blocks.append(_verdict_table(verdicts))
        blocks.append(
            Text(
                f"A structure of a band's material (its elements, ligands aside) is consistent with the "
                f"band when its first bright excitation (f >= "
                f"{BRIGHT_F:g}) lies within ±{TDDFT_ERROR_EV:g} eV of it, the error of the method "
                "(see Computed absorption); 'states stop short' means no computed state is bright and "
                "the computed states end before the band's window, so more states are needed."
            )
        )
    tail = [line for line in (_size_line(analysis), _order_line(analysis)) if line]
    blocks.append(Bullets(tail))
    return Section("Verdict", blocks)


def best_candidates(analysis: Analysis, figures: dict) -> list[Section]:
    """One table per composition (and ranking energy), what each column holds said once."""
    groups: dict[tuple[str, str], list[Candidate]] = {}
    for c in analysis.candidates:
        groups.setdefault((c.row.formula, c.row.method), []).append(c)
    several = {f for f, _ in groups if sum(g == f for g, _ in groups) > 1}
    lo, hi = SAXS_DIAMETER_NM
    glossary = {  # header start -> what the column holds, said only for columns some table shows
        "E above the lowest": "energy per atom above the composition's lowest, by the ranking energy",
        "population": f"Boltzmann population at {analysis.temperature:.0f} K",
        "times found": "how many relaxations ended in this minimum (copies merged)",
        "anion-anion bonds": "chalcogen-chalcogen bonds (unusual in II-VI clusters)",
        "first bright excitation": f"the lowest computed excitation with oscillator strength f >= {BRIGHT_F:g}",
        "calibrated band": "the HOMO-LUMO gap mapped onto the measured bands by the given calibration",
        "SAXS-equivalent diameter": "2·sqrt(5/3)·Rg, the diameter of the uniform sphere with the cluster's "
        "electron-weighted radius of gyration Rg, which small-angle X-ray scattering "
        f"(SAXS) measures; compared with the {lo}-{hi} nm measured for these samples",
        "rank by other energies": "the rank each other stored energy gives the minimum, '(disagree)' where a "
        "validated energy (the validated ranking energy or DFT) orders it differently",
    }
    subsections = []
    for (formula, method), cands in groups.items():
        head = f"{formula}" + (f", ranked by {short_name(method)}" if formula in several else "")
        pops = sorted({c.row.population_method for c in cands if c.row.population_method} - {method})
        note = (
            f"Ranked by {short_name(method)}"
            + (" (validated)" if validated_energy(method) else "")
            + (f"; populations by {', '.join(short_name(m) for m in pops)}" if pops else "")
            + "."
        )
        subsections.append(Section(head, [Text(note), candidate_table(analysis, cands)], level=3))
    shown = {h for sub in subsections for h in sub.blocks[1].head}
    items = [f"{name}: {text};" for name, text in glossary.items() if any(h.startswith(name) for h in shown)]
    intro = [
        Text(
            "The lowest unique minima of each composition, one table each; columns with nothing to show are "
            "left out. What the columns hold:"
        ),
        Bullets(items),
        Text(_band_text(analysis)),
    ]
    return [Section("Best structures per composition", intro)] + subsections


def methods(analysis: Analysis, figures: dict) -> Section:
    """Every method whose energies or spectra the database holds, as it ran."""
    body = [[u.role, u.method, str(u.rows), u.detail or EMPTY] for u in analysis.method_uses]
    blocks: list = [compact(Table(["role", "method", "rows", "details"], body))]
    energy = (
        f"Ranked by {analysis.energy} energies."
        if analysis.energy
        else "Each structure ranked by the energy of the method that relaxed it (methods apart)."
    )
    blocks.append(
        Text(
            energy
            + " Rows by status: "
            + "; ".join(f"{s} {n} ({Status(s).meaning})" for s, n in analysis.status_counts.items())
            + "."
        )
    )
    if analysis.notes:
        blocks.append(Text("Notes: " + "; ".join(analysis.notes)))
    return Section("Methods as they ran", blocks)


def disagreements(analysis: Analysis, figures: dict) -> Section | None:
    rows = analysis.disagreements
    if not rows:
        return None
    body = [
        [
            r.formula,
            r.id,
            str(r.rank),
            short_name(r.method),
            " ".join(f"{short_name(m)}:{k}" for m, k in validated_disagreement(r).items()),
        ]
        for r in rows
    ]
    return Section(
        "Isomers whose order the validated energies disagree on",
        [
            Text(
                "These minima are ranked differently by a validated energy (the validated ranking energy or DFT) "
                "stored on the same geometries (`rescore`, `refine`): their order is uncertain. Ranks by energies "
                "not validated against DFT are not counted (README, 'Which energy model')."
            ),
            Table(["formula", "row id", "rank", "ranked by", "rank by validated energies"], body),
        ],
    )


def mixing(analysis: Analysis, figures: dict) -> Section | None:
    if not analysis.mixing or analysis.mixing_pair is None:  # the pair comes with the mixing energies
        return None
    a, b = analysis.mixing_pair
    blocks: list[Table | Image] = [
        Table(
            ["formula", "x", "E_mix (eV)", "E_mix (meV/atom)"],
            [
                [p.formula, f"{p.x:.3f}", f"{p.e_mix:.4f}", f"{1000 * p.e_mix_per_atom:.1f}"]
                for p in sorted(analysis.mixing, key=lambda p: p.x)
            ],
        )
    ]
    if figures.get("mixing"):
        blocks.append(Image(figures["mixing"], "Mixing energy and lower hull"))
    return Section(f"Mixing energies ({a}/{b})", blocks)


def _start(res) -> str:
    """How a structure's start was made: the frame template it is a homotop of, or the move."""
    prov = res.provenance if res is not None else {}
    if prov.get("template"):
        return f"homotop of {Path(str(prov['template'])).stem}"
    move = str(prov.get("move") or prov.get("generator") or "random")
    return move.split()[0]


def _hull_formulas(analysis: Analysis) -> set[str]:
    pts = sorted(analysis.mixing or [], key=lambda p: p.x)
    if not pts:
        return set()
    above = energy_above_hull(np.array([p.x for p in pts]), np.array([p.e_mix for p in pts]))
    return {p.formula for p, e in zip(pts, above, strict=True) if e <= 1e-9}


def _site_line(analysis: Analysis) -> str | None:
    occ = [o for o in analysis.sites if 0 < len(o.mine) < len(o.sites)]
    if not occ:
        return None
    element = occ[0].element
    if not any(o.core_sites for o in occ):
        return (
            f"Sites: the {len(occ)} mixed compositions' lowest structures have no cation site with >= "
            f"{CORE_COORDINATION} anion neighbours, so no core/cage preference of {element} can be read."
        )
    on, expected = sum(o.on_core for o in occ), sum(o.expected_core for o in occ)
    few = [o for o in occ if len(o.mine) <= 3]
    first = "; ".join(f"{o.formula}: {o.on_core} of {len(o.mine)} on core sites" for o in few)
    lean = (
        "it leans to the core (4-coordinated) sites"
        if on > expected
        else "it leans to the cage (3-coordinated or less) sites"
        if on < expected
        else "it leans to neither"
    )
    return (
        f"Sites: summed over the {len(occ)} mixed compositions' lowest structures, {element} holds {on} core "
        f"(>= {CORE_COORDINATION}-coordinated) sites where a random deal would give {expected:.1f}: {lean}. "
        + (f"Where {element} enters first: {first}." if first else "")
    )


def _window_text(c: Candidate) -> str:
    lo, hi = c.estimate_window_nm or (math.nan, math.nan)
    return f"{lo:.0f}-{hi:.0f} nm" if math.isfinite(hi) else f">= {lo:.0f} nm, no long-wavelength bound"


def _largest(est: list[tuple[MixingPoint, Candidate]]) -> int:
    """Atoms in the largest cluster of ``est`` (how far the gap map is applied)."""
    return max(len(c.row.result.symbols) for _, c in est if c.row.result is not None)


def _estimate_terms(m: GapMap, est: list[tuple[MixingPoint, Candidate]]) -> str:
    """How the estimates of ``est`` (all by map ``m``) were made and how wide their windows are, in words."""
    return (
        f"{m.describe(_largest(est))}; window ±{m.window_with(TDDFT_ERROR_EV):.2f} eV: that error and "
        f"TDA-PBE0's ±{TDDFT_ERROR_EV:g} eV against experiment, in quadrature"
    )


def _estimates_part(analysis: Analysis) -> str:
    """The map estimates of the compositions without a computed spectrum, in words ('' if none)."""
    est = analysis.estimated_trend
    parts = [
        f"Estimated from the {m.mapped} where no band spectrum is stored ({_estimate_terms(m, group)}): "
        + "; ".join(f"{p.formula} {c.estimate_nm:.0f} nm ({_window_text(c)})" for p, c in group)
        + "."
        for m, group in estimates_by_map(est)
    ]
    if not parts:
        return ""
    return " ".join(parts) + f" {len(est)} of {len(analysis.mixing or [])} compositions estimated."


def _estimate_verdict(analysis: Analysis, bands: list[Band]) -> str:
    """'; by the PBE/def2-SVP HOMO-LUMO gap estimate ...': which estimated compositions' windows include
    which of ``bands`` (of their own material), per map; '' without estimates for those bands' materials."""
    est = [(p, c) for p, c in analysis.estimated_trend if any(band_applies(b, p.formula) for b in bands)]
    out = []
    for m, group in estimates_by_map(est):
        lo_n, hi_n = m.sizes
        natoms = _largest(group)
        reach = f", an extrapolation at {natoms} atoms" if natoms > hi_n else ""
        head = f"; by the {m.mapped} estimate (a shift fitted on {lo_n}-{hi_n}-atom clusters{reach}; Band trend below)"
        held = []
        for p, c in group:
            lo, hi = c.estimate_window_nm or (math.inf, -math.inf)
            names = [b.name for b in bands if band_applies(b, p.formula) and lo <= b.wavelength_nm <= hi]
            if names:
                held.append(f"{p.formula} {c.estimate_nm:.0f} nm, window includes {', '.join(names)}")
        if held:
            out.append(head + ": " + "; ".join(held) + " (near, not a match until a TDA-PBE0 spectrum is computed)")
        else:
            out.append(
                head + f": none of the {len(group)} estimated compositions' windows includes a band of its material"
            )
    return "".join(out)


def _band_trend_line(analysis: Analysis, lowest: dict[str, RankedRow]) -> str:
    """The series' band trend in words: each computed composition's first bright excitation,
    which measured bands it is consistent with, and the target's verdict; then the gap-map
    estimates of the compositions without a spectrum."""
    trend = analysis.band_trend
    if not trend:
        estimates = _estimates_part(analysis)
        if estimates:
            return "Band trend: no composition's lowest structure has a band spectrum. " + estimates
        gaps = [r for r in lowest.values() if r.gap_eV is not None]
        m, r = analysis.gap_map, analysis.ris_map
        validated = (
            ""
            if m is None
            else f" A {short_name(m.gap_method)} single point of each lowest structure (`airss-msc refine "
            f"{Path(analysis.db).name} --method {m.gap_method} --top 1`) gives an estimate from its gap "
            f"({m.describe()})."
        )
        if r is not None:  # the same ground state and seconds more: the smaller window
            validated += (
                f" A {short_name(r.gap_method)} spectrum of each ({_spectrum_command(analysis, 1, r.gap_method)}) "
                f"gives one from its first bright singlet ({r.describe()})."
            )
        return (
            "Band trend: not computed. "
            + (
                f"No composition's lowest structure has excitations ({_spectrum_command(analysis, 1)} computes "
                "them). HOMO-LUMO gaps are no substitute: on the small "
                "clusters where both were computed, xTB gaps track the TDA-PBE0 first bright excitation poorly "
                "(BENCHMARKS.md, 'A cheaper band estimate')."
                if not gaps
                else "Gaps stored here are not validated against TDA-PBE0 excitations and are not a band."
            )
            + validated
        )
    methods = sorted({short_name(c.excitations.method) for _, c in trend if c.excitations is not None})
    parts = []
    for p, c in trend:
        near = [b.name for b in analysis.bands if band_applies(b, p.formula) and judge(c, b) == CONSISTENT]
        parts.append(
            f"{p.formula} {c.bright_nm:.0f} nm (f {c.bright_f:.2f}"
            + (f"; consistent with {', '.join(near)}" if near else "")
            + ")"
        )
    line = (
        f"Band trend (first bright excitation of each composition's lowest, {', '.join(methods)}; consistent: "
        f"within {TDDFT_ERROR_EV:g} eV of a band): "
        + "; ".join(parts)
        + f". {len(trend)} of {len(analysis.mixing or [])} compositions computed."
    )
    estimates = _estimates_part(analysis)
    target = analysis.target
    if target is not None:
        judged = [(p, c) for p, c in trend if band_applies(target, p.formula)]
        hits = [p.formula for p, c in judged if judge(c, target) == CONSISTENT]
        if hits:
            line += f" Consistent with the target {target.name} ({target.wavelength_nm:.0f} nm): {', '.join(hits)}."
        elif judged:
            p, c = min(judged, key=lambda pc: abs(HC_EV_NM / (pc[1].bright_nm or 1.0) - target.energy_eV))
            line += (
                f" None of the computed compositions is consistent with the target {target.name} "
                f"({target.wavelength_nm:.0f} nm); the nearest is {p.formula} at {c.bright_nm:.0f} nm."
            )
    return line + (" " + estimates if estimates else "")


def _dft_line(analysis: Analysis, pts: list, lowest: dict[str, RankedRow]) -> str:
    """How much of the series a reference (DFT) energy covers: the compositions' lowest structures
    that carry one."""
    if analysis.mixing_energy and is_reference(analysis.mixing_energy):
        return "DFT on every composition's lowest structure."
    covered: dict[str, int] = {}
    for p in pts:
        row = lowest.get(p.formula)
        for m, value in (row.result.energies if row is not None and row.result is not None else {}).items():
            if is_reference(m) and math.isfinite(value):
                covered[m] = covered.get(m, 0) + 1
    if not covered:
        return "No composition's lowest structure has a DFT energy here."
    return (
        "; ".join(
            f"{short_name(m)} single points exist for the lowest structure of {n} of {len(pts)} compositions"
            for m, n in sorted(covered.items())
        )
        + f"; the series is ranked by {short_name(analysis.energy) if analysis.energy else 'the relaxing method'}."
    )


def _answer_line(analysis: Analysis) -> str:
    """The series' answer in one line: the target band against the computed compositions, the
    pathway the energies favour, and how far the energy behind both can be trusted."""
    target = analysis.target
    formulas = [p.formula for p in analysis.mixing or []]
    parts: list[str] = []
    if target is not None and any(band_applies(target, f) for f in formulas):
        trend = [(p, c) for p, c in analysis.band_trend if band_applies(target, p.formula)]
        band = f"{target.name} ({target.wavelength_nm:.0f} nm)"
        hits = [p.formula for p, c in trend if judge(c, target) == CONSISTENT]
        if hits:
            parts.append(f"{band} is consistent with {', '.join(hits)} (within {TDDFT_ERROR_EV:g} eV)")
        elif trend:
            p, c = min(trend, key=lambda pc: abs(HC_EV_NM / (pc[1].bright_nm or 1.0) - target.energy_eV))
            off = HC_EV_NM / (c.bright_nm or 1.0) - target.energy_eV
            parts.append(
                f"no computed composition of its material ({len(trend)}) is consistent with {band}: the nearest, "
                f"{p.formula}, absorbs at {c.bright_nm:.0f} nm, {off:+.2f} eV from it (window ±{TDDFT_ERROR_EV:g} eV)"
            )
        else:
            parts.append(
                f"{band} is not judged yet: no composition's lowest structure has a computed spectrum"
                + _estimate_verdict(analysis, [target])
            )
    else:  # a series the target band is not of (ZnCdSe): its own materials' bands
        own = [b for b in analysis.bands if any(band_applies(b, f) for f in formulas)]
        names = ", ".join(f"{b.name}" for b in own) or "none stored"
        hits = [
            f"{p.formula} with {b.name}"
            for p, c in analysis.band_trend
            for b in own
            if band_applies(b, p.formula) and judge(c, b) == CONSISTENT
        ]
        if not analysis.band_trend:
            parts.append(
                f"the series' bands ({names}) are not judged yet: no composition has a computed spectrum"
                + _estimate_verdict(analysis, own)
            )
        elif hits:
            parts.append(f"consistent with the series' bands: {', '.join(hits)} (within {TDDFT_ERROR_EV:g} eV)")
        else:
            parts.append(
                f"none of the {len(analysis.band_trend)} computed compositions is consistent with a band of its "
                f"material ({names})"
            )
    stepwise = [(name, sum(f.delta_eV for f in found)) for name, step, found in analysis.reactions if step and found]
    if stepwise:
        # the pathways come in pairs run both ways (each reverse has the opposite sign): name the favoured one
        name, total = min(stepwise, key=lambda t: t[1])
        parts.append(f"the energies favour '{name}' ({total:+.2f} eV end to end)")
    for name, step, found in analysis.reactions:
        if not step and found:
            parts.append(f"'{name}': {sum(f.downhill for f in found)} of {len(found)} redistributions downhill")
    energy = analysis.mixing_energy or analysis.energy
    if energy:
        parts.append(
            f"by {short_name(energy)}: "
            + (
                "DFT, itself not checked against experiment on these clusters"
                if is_reference(energy)
                else "not DFT; its error on energies between compositions (mixing, reactions) has not been measured, "
                "only on isomers (next line), so no sign here is established by it"
            )
        )
    return "Answer: " + "; ".join(parts) + "."


def series(analysis: Analysis, figures: dict) -> Section | None:
    """The series' answer in words: the lowest per composition by the ranking energy and its
    error, the hull, the reaction pathways' signs and the sites the mixing element takes."""
    if not analysis.mixing or analysis.mixing_pair is None:  # the pair comes with the mixing energies
        return None
    energy = analysis.mixing_energy or analysis.energy
    a, b = analysis.mixing_pair
    pts = sorted(analysis.mixing, key=lambda p: p.x)
    natoms = max(p.n_atoms for p in pts)
    error = measured_error(energy, natoms) if energy else None
    measured = method_accuracy(energy)  # None for the reference itself: nothing to put beside it
    size_class = measured.at(natoms) if measured else None
    hull = _hull_formulas(analysis)
    lowest = {r.formula: r for r in analysis.rows if r.rank == 1 and r.result is not None}
    items = [
        _answer_line(analysis),
        f"Energy: every energy here is by {short_name(energy) if energy else 'the relaxing method'}"
        + (" (the validated ranking energy)" if energy and validated_energy(energy) else "")
        + (f"; its measured error: {error}" if error else "")
        + f". {_dft_line(analysis, pts, lowest)}",
    ]
    mixed = [p for p in pts if 0 < p.x < 1]
    if mixed:
        neg = [p for p in mixed if p.e_mix < 0]
        low = min(mixed, key=lambda p: p.e_mix_per_atom)
        items.append(
            f"Mixing ({a}/{b}): {len(neg)} of {len(mixed)} mixed compositions lie below the line joining the end "
            f"members; the lowest mixing energy is {1000 * low.e_mix_per_atom:+.1f} meV/atom ({low.formula}); "
            + (
                f"all {len(pts)} compositions are on the lower hull."
                if all(p.formula in hull for p in pts)
                else f"on the lower hull: {', '.join(p.formula for p in pts if p.formula in hull)}."
            )
            + (_within_error_line(low.e_mix_per_atom, size_class) if size_class else "")
        )
    for name, stepwise, found in analysis.reactions:
        down = [f for f in found if f.downhill]
        if stepwise:
            total = sum(f.delta_eV for f in found)
            items.append(
                f"{name}: {len(down)} of {len(found)} steps downhill, the whole pathway {total:+.2f} eV "
                f"({'downhill' if total < 0 else 'uphill'})."
            )
        else:
            items.append(f"{name}: {len(down)} of {len(found)} redistributions downhill.")
    line = _site_line(analysis)
    if line:
        items.append(line)
    items.append(_band_trend_line(analysis, lowest))
    body = [
        [
            p.formula,
            f"{p.x:.3f}",
            str(lowest[p.formula].id) if p.formula in lowest else EMPTY,
            _start(lowest[p.formula].result) if p.formula in lowest else EMPTY,
            fmt(p.energy, "{:.4f}"),
            f"{1000 * p.e_mix_per_atom:+.1f}",
            "yes" if p.formula in hull else "no",
        ]
        for p in pts
    ]
    head = [
        "formula",
        f"x ({a})",
        "row id",
        "start",
        f"{short_name(energy) if energy else 'energy'} (eV)",
        "E_mix (meV/atom)",
        "on the hull",
    ]
    return Section(
        "The series: lowest structures, mixing, pathways",
        [
            Bullets(items),
            Table(head, body),
            Text(
                "Lowest per composition by the ranking energy; 'start' is how that minimum's search start was made "
                "(a homotop of a parent frame, the move, or random). E_mix = E - (x E_A + (1 - x) E_B) per atom."
            ),
            *([Image(figures["band_trend"], "Band trend against composition")] if figures.get("band_trend") else []),
        ],
    )


def _within_error_line(e_mix_per_atom: float, size_class: ClassAccuracy) -> str:
    """The lowest mixing energy beside the ranking energy's measured error at this size. That error is
    of relative isomer energies at one composition; a mixing energy compares compositions, where
    errors need not cancel, so it is a scale, not a bound (only the 'within it' case says more)."""
    mae = size_class.mae_meV_per_atom
    inside = abs(1000 * e_mix_per_atom) <= mae
    return (
        f" For scale: the measured error of this energy's relative isomer energies at {size_class.label} is "
        f"{mae:.1f} meV/atom ({size_class.formulas} formula{'s' if size_class.formulas != 1 else ''}; the error "
        "of mixing energies is not measured)"
        + (
            ", and the lowest mixing energy lies within it: its sign is not established by this energy."
            if inside
            else "."
        )
    )


def reactions(analysis: Analysis, figures: dict) -> Section | None:
    """The pathways' reaction energies, each species at its lowest stored ranking energy."""
    if not analysis.reactions:
        return None
    error = measured_error(analysis.energy) if analysis.energy else None
    blocks: list = [
        Text(
            "dE = products minus reactants (eV per reaction as written), every species at its lowest stored "
            f"{short_name(analysis.energy)} energy (`airss-msc reaction`)"
            + (f"; the method's measured error: {error}" if error else "")
            + ". A step's sign is only as sure as that error allows: monomers and dimers are far from the "
            "clusters the error was measured on. 'cumulative' is the parent to this step's product."
        )
    ]
    for name, stepwise, found in analysis.reactions:
        body, total = [], 0.0
        refs = any(f.reference_delta_eV is not None for f in found)
        for f in found:
            total += f.delta_eV
            body.append(
                [
                    str(f.reaction),
                    f"{f.delta_eV:+.3f}",
                    f"{round(total, 3) + 0.0:+.3f}" if stepwise else EMPTY,  # + 0.0: no "-0.000"
                    "downhill" if f.downhill else "uphill",
                    fmt(f.reference_delta_eV, "{:+.3f}") if refs else EMPTY,
                ]
            )
        head = ["reaction", "dE (eV)", "cumulative (eV)", "sign", "reference dE (eV)"]
        blocks += [Text(f"**{name}**"), compact(Table(head, body))]
    return Section("Reaction energies", blocks)


def sites(analysis: Analysis, figures: dict) -> Section | None:
    """Which sites of the mixing sublattice each composition's lowest structure gives the element."""
    occ = [o for o in analysis.sites if 0 < len(o.mine) < len(o.sites)]
    if not occ:
        return None
    element = occ[0].element
    other = next(s.element for s in occ[0].sites if s.element != element)
    body = [
        [
            o.formula,
            str(o.row_id),
            str(len(o.mine)),
            f"{o.on_core} of {o.core_sites}",
            f"{o.expected_core:.1f}",
            " ".join(str(s.coordination) for s in sorted(o.mine, key=lambda s: s.coordination)),
            fmt(o.mean_radius(), "{:.2f}"),
            fmt(o.mean_radius(other), "{:.2f}"),
        ]
        for o in occ
    ]
    head = [
        "formula",
        "row id",
        element,
        f"{element} on core sites",
        "random deal",
        f"{element} coordinations",
        f"{element} mean distance from centre (A)",
        f"{other} mean distance from centre (A)",
    ]
    return Section(
        f"Sites {element} takes",
        [
            Text(
                f"The lowest structure of each mixed composition: a core site has >= {CORE_COORDINATION} bonds to "
                "the other sublattice, a cage site fewer (bond: closer than 1.35 x the covalent radii sum); "
                f"'random deal' is how many core sites {element} would hold on average if its atoms were dealt "
                "over the same sites at random."
            ),
            Table(head, body),
        ],
    )


def energy_levels(analysis: Analysis, figures: dict) -> Section:
    return Section("Energy spectrum of unique minima", [Image(figures["levels"], "Energy spectrum")])


def _window(c: Candidate) -> str:
    if c.bright_nm is None:
        return "-"
    lo, hi = band_window_nm(HC_EV_NM / c.bright_nm)
    return f"{lo:.0f}-{hi:.0f}"


def spectra(analysis: Analysis, figures: dict) -> Section | None:
    cands = [(c, c.excitations) for c in analysis.candidates if c.excitations is not None]
    if not cands:
        return None
    body = []
    for c, exc in cands:
        states = len(exc.energies_eV)
        body.append(
            [
                c.row.formula,
                str(c.row.rank),
                exc.method,
                str(states),
                fmt(c.bright_nm, "{:.0f}"),
                _window(c),
                fmt(c.bright_f, "{:.3f}"),
                fmt(covered_to_nm(exc), "{:.0f}"),
                ", ".join(b.name for b in c.near_bright) or "-",
            ]
        )
    return Section(
        "Computed absorption",
        [
            Image(figures["absorption"], "Absorption spectra"),
            Text(
                "Each computed state is a stick (its oscillator strength) and a Gaussian of "
                f"FWHM {DEFAULT_FWHM_EV:g} eV (a display width, typical of room-temperature MSC bands). "
                "Each curve stops one line width short of the structure's highest computed state, since states "
                "above it (not computed) would add there; the shaded wavelengths lie beyond the highest computed "
                "state: not computed, which is not the same as no absorption. 'states reach' is that shortest "
                "wavelength: bands below it cannot be judged. "
                f"Error window: ±{TDDFT_ERROR_EV:g} eV, no hybrid "
                "functional does better against measured excitation energies (Kannar and Szalay, JCTC 2014, 10, "
                "3757), PBE0 is the best of 26 functionals for (MX)6 against RI-CC2 and GGAs such as PBE do poorly "
                "(Azpiroz, Ugalde and Infante, JCTC 2014); bare clusters also lack the ligands' shift. "
                + _literature_text(analysis)
            ),
            compact(
                Table(
                    [
                        "formula",
                        "rank",
                        "method",
                        "states",
                        "first bright (nm)",
                        "window (nm)",
                        "f",
                        "states reach (nm)",
                        "bands in the window",
                    ],
                    body,
                )
            ),
        ],
    )


def bands_and_size(analysis: Analysis, figures: dict) -> Section:
    return Section(
        "Gaps, excitations and size against experiment",
        [Image(figures["bands"], "Gaps, excitations and measured bands"), Image(figures["size"], "Size against SAXS")],
    )


def structures(analysis: Analysis, figures: dict) -> Section:
    blocks = [
        Structure(
            f"{c.row.formula} (id {c.row.id}, point group {c.row.point_group}, {short_name(c.row.method)})",
            c.row.result.atoms,
            png,
            xyz,
        )
        for c, png, xyz in figures["structures"]
    ]
    return Section("Lowest structures", blocks)


def _in_ranking(analysis: Analysis) -> dict[tuple[str, int | None], str]:
    """(source, row id) -> 'rank k' for every row the ranking shows as a unique minimum."""
    return {
        (r.result.source, r.result.id): f"rank {r.rank}"
        for r in analysis.rows
        if r.rank is not None and r.result is not None
    }


def all_rows(analysis: Analysis, figures: dict) -> Section:
    """Appendix: every row of the database, one line each, grouped as the ranking orders compositions."""
    energy = analysis.energy
    shown = _in_ranking(analysis)
    copies = analysis.copies()
    lowest: dict[tuple[str, str], float] = {}
    for r in analysis.rows:
        if r.rank == 1 and r.result is not None and r.energy_eV is not None and r.result.natoms:
            lowest[(r.formula, r.method)] = r.energy_eV / r.result.natoms
    order = list(dict.fromkeys(r.formula for r in analysis.rows))
    body = []
    for res in sorted(
        analysis.results,
        key=lambda x: (
            order.index(x.composition) if x.composition in order else len(order),
            x.composition,
            x.energy_by(energy) is None,
            x.energy_by(energy) or 0.0,
        ),
    ):
        value = res.energy_by(energy)
        base = lowest.get((res.composition, energy or res.method))
        delta = (
            1000.0 * (value / res.natoms - base)
            if value is not None and base is not None and res.natoms and res.status == Status.RELAXED
            else None
        )
        if (res.source, res.id) in shown:
            ranking = shown[(res.source, res.id)]
        elif res.status != Status.RELAXED:
            ranking = f"not ranked ({res.status})"
        elif value is None:
            ranking = f"not ranked (no {short_name(energy)} energy)"
        elif (res.source, res.id) in copies and copies[(res.source, res.id)] in shown:
            source, row = copies[(res.source, res.id)]
            ranking = f"copy of row {row} ({shown[(source, row)]})"
        else:
            ranking = "merged copy"
        body.append(
            [
                str(res.id),
                res.composition,
                res.status,
                short_name(res.method),
                fmt(res.energy, "{:.4f}"),
                fmt(value, "{:.4f}") if energy else EMPTY,
                fmt(delta, "{:.1f}"),
                describe_gap(res.gap_by(res.method)),
                ranking,
            ]
        )
    head = [
        "row id",
        "formula",
        "status",
        "relaxed by",
        "energy of the relaxing method (eV)",
        f"{short_name(energy)} energy (eV)" if energy else "ranking energy (eV)",
        "E above the lowest (meV/atom)",
        "HOMO-LUMO gap of the relaxing method (eV)",
        "in the ranking",
    ]
    return Section(
        "Appendix: all rows",
        [
            Text(
                f"Every row of the database ({len(body)}), ordered by the ranking energy within each composition. "
                "'copy of row N': the same minimum as ranked row N (species-aware structure match; the ranking shows "
                "each minimum by its lowest copy in the relaxing method's energy), counted in its 'times found'; "
                "'E above the lowest' is by the ranking energy."
            ),
            compact(Table(head, body)),
        ],
    )


#: The report, in order. A builder returns None to leave its section out, or a list of sections
#: (a section and its subsections).
BUILDERS = (
    title,
    series,
    verdict,
    best_candidates,
    disagreements,
    spectra,
    bands_and_size,
    mixing,
    reactions,
    sites,
    energy_levels,
    structures,
    methods,
    all_rows,
)


def sections(analysis: Analysis, figures: dict) -> list[Section]:
    out: list[Section] = []
    for build in BUILDERS:
        made = build(analysis, figures)
        out += [] if made is None else made if isinstance(made, list) else [made]
    return out
