"""The report as a list of sections of plain blocks, the one place that decides what is shown.

Renderers (:mod:`.markdown`, :mod:`.html`) turn blocks into text and know
nothing of chemistry; a new section is one builder function here, listed in
:func:`sections`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ase import Atoms

from airss_msc import __version__
from airss_msc.analysis.bands import COMPUTABLE_HEAVY_ATOMS, HC_EV_NM, MIN_CALIBRATION_PAIRS, describe_gap
from airss_msc.analysis.rank import format_rows, short_method
from airss_msc.analysis.report.model import Analysis, Candidate
from airss_msc.analysis.spectra import BRIGHT_F, DEFAULT_FWHM_EV, TDDFT_ERROR_EV, band_window_nm, covered_to_nm


@dataclass
class Text:
    text: str


@dataclass
class Table:
    head: list[str]
    body: list[list[str]]


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


def _other_ranks(c: Candidate) -> str:
    ranks = c.row.other_ranks or {}
    text = " ".join(f"{short_method(m)}:{r}" for m, r in ranks.items())
    return (text + (" (disagree)" if c.row.disagree else "")) or "-"


def _gap_cell(c: Candidate) -> str:
    text = describe_gap(c.row.gap_eV)
    if text != "-" and c.row.gap_method and c.row.gap_method != c.row.method:
        text += f" ({short_method(c.row.gap_method)})"
    return text


def candidate_table(analysis: Analysis) -> Table:
    head = ["rank", "id", "formula", "energy by", "E (eV)", "dE (meV/atom)", "pop. 298 K", "copies", "point group",
            "anion-anion bonds", "HOMO-LUMO gap (eV)", "gap nm", "first bright (nm, f)", "calibrated band (nm)",
            "near band", "D (nm)", "SAXS", "rank by other methods"]
    body = []
    for c in analysis.candidates:
        r = c.row
        est = "-" if c.band_nm is None else (f"{c.band_nm:.0f}" + (f" ± {c.band_unc_nm:.0f}" if c.band_unc_nm
                                                                     else " (no unc.)"))
        bright = "-" if c.bright_nm is None else f"{c.bright_nm:.0f} ({c.bright_f:.2f})"
        near = sorted({b.name for b in c.matches} | {b.name for b in c.near_bright})
        body.append([str(r.rank), r.id, r.formula, short_method(r.method), fmt(r.energy_eV, "{:.4f}"),
                     fmt(r.delta_meV_per_atom, "{:.1f}"), fmt(r.population), str(r.copies), r.point_group,
                     fmt(r.anion_bonds, "{}"), _gap_cell(c), fmt(r.wavelength_nm, "{:.0f}"), bright, est,
                     ", ".join(near) or "-", fmt(c.diameter_nm, "{:.2f}"),
                     {True: "yes", False: "no", None: "-"}[c.in_saxs_range], _other_ranks(c)])
    return Table(head, body)


def _band_text(analysis: Analysis) -> str:
    parts = ["A HOMO-LUMO gap is not an absorption band: bare-cluster gaps (xTB, and DFT with GGA functionals) "
             "sit far below the measured bands and ligands are absent, so 'gap nm' is not a band prediction. "
             "Gaps under 0.1 eV read 'open shell / metallic' and get no wavelength."]
    if any(c.excitations is not None for c in analysis.candidates):
        parts.append(f"'first bright' is the lowest computed excitation with oscillator strength f >= {BRIGHT_F:g} "
                     f"(method named per structure); bands within its error window (+-{TDDFT_ERROR_EV:g} eV) "
                     "are listed as near.")
        parts.append(_literature_text(analysis))
    else:
        parts.append("No excitations are stored: run `airss-msc spectrum DB` for TDDFT band estimates.")
    if analysis.calibration is None:
        parts.append("No gap calibration was given (`--calibration`), so no calibrated band estimates are shown.")
    else:
        parts.append(f"Calibration: {analysis.calibration.describe()}")
    return " ".join(parts)


def _literature_text(analysis: Analysis) -> str:
    firm = analysis.calibrating_pairs
    known = len(analysis.literature)
    if len(firm) >= MIN_CALIBRATION_PAIRS:
        return (f"{len(firm)} published (structure, band) pairs are firm enough to calibrate the excitations "
                "(data/literature_pairs.toml); the estimates here are not yet fitted to them.")
    return (f"Uncalibrated: of {known} published (structure, band) pairs collected (data/literature_pairs.toml), "
            f"{len(firm)} have a crystal structure, a known band and a core of <= {COMPUTABLE_HEAVY_ATOMS} heavy atoms "
            f"(a calibration needs {MIN_CALIBRATION_PAIRS}), so TDDFT band estimates are shown as computed, with "
            f"the method's error of about +-{TDDFT_ERROR_EV:g} eV from its sources (see the spectra section).")


def overview(analysis: Analysis, figures: dict) -> Section:
    status = ", ".join(f"{s}: {n}" for s, n in analysis.status_counts.items())
    energy = (f"ranked by {analysis.energy} energies" if analysis.energy
              else "each structure ranked by the energy of the method that relaxed it (methods apart)")
    blocks = [Text(f"airss-msc {__version__}; methods: {', '.join(analysis.methods)}; {energy}; rows by status: "
                   f"{status}.")]
    if analysis.notes:
        blocks.append(Text("Notes: " + "; ".join(analysis.notes)))
    return Section(f"airss-msc report: {Path(analysis.db).name}", blocks, level=1)


def best_candidates(analysis: Analysis, figures: dict) -> Section:
    return Section("Best candidates per composition", [candidate_table(analysis), Text(_band_text(analysis))])


def disagreements(analysis: Analysis, figures: dict) -> Section | None:
    rows = analysis.disagreements
    if not rows:
        return None
    body = [[r.formula, r.id, str(r.rank), short_method(r.method),
             " ".join(f"{short_method(m)}:{k}" for m, k in (r.other_ranks or {}).items())] for r in rows]
    return Section("Isomers whose order the methods disagree on", [
        Text("These minima are ranked differently by another method stored on the same geometries "
             "(`rescore`, `refine`): their order is uncertain. Trust the method validated against DFT "
             "(README, 'Which energy model')."),
        Table(["formula", "id", "rank", "ranked by", "rank by other methods"], body)])


def mixing(analysis: Analysis, figures: dict) -> Section | None:
    if not analysis.mixing:
        return None
    a, b = analysis.mixing_pair
    blocks = [Table(["formula", "x", "E_mix (eV)", "E_mix (meV/atom)"],
                    [[p.formula, f"{p.x:.3f}", f"{p.e_mix:.4f}", f"{1000 * p.e_mix_per_atom:.1f}"]
                     for p in sorted(analysis.mixing, key=lambda p: p.x)])]
    if figures.get("mixing"):
        blocks.append(Image(figures["mixing"], "Mixing energy and lower hull"))
    return Section(f"Mixing energies ({a}/{b})", blocks)


def energy_levels(analysis: Analysis, figures: dict) -> Section:
    return Section("Energy spectrum of unique minima", [Image(figures["levels"], "Energy spectrum")])


def _window(c: Candidate) -> str:
    if c.bright_nm is None:
        return "-"
    lo, hi = band_window_nm(HC_EV_NM / c.bright_nm)
    return f"{lo:.0f}-{hi:.0f}"


def spectra(analysis: Analysis, figures: dict) -> Section | None:
    cands = [c for c in analysis.candidates if c.excitations is not None]
    if not cands:
        return None
    body = []
    for c in cands:
        exc = c.excitations
        states = len(exc.energies_eV)
        body.append([c.row.formula, str(c.row.rank), exc.method, str(states),
                     fmt(c.bright_nm, "{:.0f}"), _window(c), fmt(c.bright_f, "{:.3f}"),
                     fmt(covered_to_nm(exc), "{:.0f}"),
                     ", ".join(b.name for b in c.near_bright) or "-"])
    return Section("Computed absorption", [
        Image(figures["absorption"], "Absorption spectra"),
        Text(f"Each excitation is a Gaussian of FWHM {DEFAULT_FWHM_EV:g} eV (a display width, typical of "
             f"room-temperature MSC bands). 'states reach' is the shortest wavelength the computed states "
             f"cover: bands below it cannot be judged. Error window: +-{TDDFT_ERROR_EV:g} eV, no hybrid "
             "functional does better against measured excitation energies (Kannar and Szalay, JCTC 2014, 10, "
             "3757), PBE0 is the best of 26 functionals for (MX)6 against RI-CC2 and GGAs such as PBE do poorly "
             "(Azpiroz, Ugalde and Infante, JCTC 2014); bare clusters also lack the ligands' shift. "
             + _literature_text(analysis)),
        Table(["formula", "rank", "method", "states", "first bright (nm)", "window (nm)", "f", "states reach (nm)",
               "bands in the window"], body)])


def bands_and_size(analysis: Analysis, figures: dict) -> Section:
    return Section("Gaps, excitations and size against experiment", [
        Image(figures["bands"], "Gaps, excitations and measured bands"),
        Image(figures["size"], "Size against SAXS")])


def structures(analysis: Analysis, figures: dict) -> Section:
    blocks = [Structure(f"{c.row.formula} (id {c.row.id}, point group {c.row.point_group}, "
                        f"{short_method(c.row.method)})", c.row.result.atoms, png, xyz)
              for c, png, xyz in figures["structures"]]
    return Section("Lowest structures", blocks)


def all_rows(analysis: Analysis, figures: dict) -> Section:
    return Section("All rows", [Code(format_rows(analysis.rows, "table"))])


#: The report, in order. A builder returns None to leave its section out.
BUILDERS = (overview, best_candidates, disagreements, mixing, energy_levels, spectra, bands_and_size,
            structures, all_rows)


def sections(analysis: Analysis, figures: dict) -> list[Section]:
    return [s for s in (build(analysis, figures) for build in BUILDERS) if s is not None]
