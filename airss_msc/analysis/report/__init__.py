"""The report stage: a self-contained HTML page and a Markdown twin from one results database.

:func:`write_report` computes the analysis once (:mod:`.model`), draws the figures
(:mod:`.figures`), lays the sections out (:mod:`.document`) and renders them once
per format (:mod:`.markdown`, :mod:`.html`).
"""

from __future__ import annotations

from pathlib import Path

from airss_msc.analysis.report import html, markdown
from airss_msc.analysis.report.document import sections
from airss_msc.analysis.report.figures import (
    plot_absorption,
    plot_band_trend,
    plot_bands,
    plot_energy_levels,
    plot_mixing,
    plot_size,
    plot_structure,
)
from airss_msc.analysis.report.model import Analysis, Candidate, analyse
from airss_msc.calc.engines import short_name
from airss_msc.results.formats import write_structures


def write_report(
    db: str,
    output: str | Path,
    top: int = 5,
    calibration: str | None = None,
    bands: str | None = None,
    temperature: float = 298.15,
    energy: str | None = None,
) -> Path:
    """Write ``report.html``, ``report.md``, the PNG figures and the best structures (xyz) into
    ``output``; returns the path of the HTML page."""
    analysis = analyse(
        db, top=top, calibration_path=calibration, bands_path=bands, temperature=temperature, energy=energy
    )
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    structures: list[tuple[Candidate, Path, Path]] = []
    figures: dict[str, Path | list[tuple[Candidate, Path, Path]] | None] = {
        "levels": plot_energy_levels(analysis, out / "energy_spectrum.png"),
        "mixing": plot_mixing(analysis, out / "mixing_energy.png"),
        "band_trend": plot_band_trend(analysis, out / "band_trend.png"),
        "absorption": plot_absorption(analysis, out / "absorption.png"),
        "bands": plot_bands(analysis, out / "bands.png"),
        "size": plot_size(analysis, out / "size.png"),
        "structures": structures,
    }
    for c in (c for c in analysis.candidates if c.row.rank == 1):
        stem = f"best_{c.row.formula}" + ("" if _one_method(analysis, c) else f"_{_safe(short_name(c.row.method))}")
        assert c.row.result is not None, "a ranked row without its result"  # rank_results keeps them
        atoms = c.row.result.atoms
        png = plot_structure(
            atoms, out / f"{stem}.png", f"{c.row.formula}, lowest by {short_name(c.row.method)} (id {c.row.id})"
        )
        atoms.info.update(energy=c.row.energy_eV, formula=c.row.formula, id=c.row.id, method=c.row.method)
        xyz = out / f"{stem}.xyz"
        write_structures(xyz, [atoms])
        structures.append((c, png, xyz))
    layout = sections(analysis, figures)
    (out / "report.md").write_text(markdown.render(layout))
    page = out / "report.html"
    page.write_text(html.render(layout))
    return page


def _one_method(analysis: Analysis, cand: Candidate) -> bool:
    return sum(c.row.rank == 1 and c.row.formula == cand.row.formula for c in analysis.candidates) == 1


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


__all__ = ["Analysis", "Candidate", "analyse", "write_report"]
