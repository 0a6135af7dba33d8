"""The report stage: a self-contained HTML page and a Markdown twin.

What the chemists asked, from one results database: the ranked unique minima
per composition, their energy spectrum, mixing energies against the binary end
members with the lower hull, gaps as wavelengths beside the measured bands
(calibrated estimates with uncertainties when a calibration is given), size
against the SAXS range, and the best structures in an embedded 3D viewer.
Figures are saved as PNG and embedded in the HTML as data URIs, so the page
needs no network and no other file.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from airss_msc import __version__
from airss_msc.analysis.bands import Band, Calibration, ev_to_nm, load_bands, load_calibration, match_bands
from airss_msc.composition import canonical_formula
from airss_msc.errors import InputError
from airss_msc.analysis.rank import RankedRow, format_rows, load_results, rank_results
from airss_msc.analysis.saxs import equivalent_diameter_nm, radius_of_gyration

#: Overall cluster size measured by SAXS (Beaucage model) for the CdTe, CdSe and
#: mixed samples of the seed paper, nm.
SAXS_DIAMETER_NM = (0.8, 1.0)

STATUS_ORDER = ("relaxed", "max_steps", "collapsed", "fragmented", "scf_failed", "error")


@dataclass
class Candidate:
    """A ranked unique minimum with the fingerprints compared to experiment."""

    row: RankedRow
    rg_A: float | None
    diameter_nm: float | None
    band_nm: float | None = None
    band_unc_nm: float | None = None
    matches: list[Band] = field(default_factory=list)

    @property
    def in_saxs_range(self) -> bool | None:
        if self.diameter_nm is None:
            return None
        return SAXS_DIAMETER_NM[0] <= self.diameter_nm <= SAXS_DIAMETER_NM[1]


@dataclass
class Analysis:
    """Everything the report shows, computed once."""

    db: str
    rows: list[RankedRow]
    candidates: list[Candidate]
    status_counts: dict[str, int]
    methods: list[str]
    bands: list[Band]
    calibration: Calibration | None
    mixing: list | None
    mixing_pair: tuple[str, str] | None
    notes: list[str]


def _lowest_gap(rows: list[RankedRow], formula: str) -> float | None:
    best = [r for r in rows if r.formula == formula and r.rank == 1]
    return best[0].gap_eV if best else None


def analyse(db: str, top: int = 5, calibration_path: str | None = None,
            bands_path: str | None = None, temperature: float = 298.15, energy: str | None = None) -> Analysis:
    """Rank, fingerprint and compare a results database with the measured data."""
    records = load_results([db])
    if not records:
        raise InputError(f"database {db} holds no results")
    rows = rank_results(records, energy=energy, include_all=True, temperature=temperature)
    bands = load_bands(bands_path)
    notes: list[str] = []
    calibration = None
    if calibration_path:
        spec = load_calibration(calibration_path, bands)
        calibration = spec.fit(gap_lookup=lambda pair: _lowest_gap(rows, pair.formula) if pair.formula else None)
        methods = {r.method.split(":")[-1] for r in records}
        if spec.method and spec.method not in methods:
            notes.append(f"calibration was made for {spec.method}, results use {', '.join(sorted(methods))}")
    candidates = []
    for row in rows:
        if row.rank is None or row.rank > top:
            continue
        atoms = row.result.atoms()
        # Electron-weighted size needs real elements (the LJ dummy X has Z = 0).
        has_electrons = bool(atoms.numbers.sum() > 0)
        cand = Candidate(row, radius_of_gyration(atoms) if has_electrons else None,
                         equivalent_diameter_nm(atoms) if has_electrons else None)
        if calibration is not None and row.gap_eV:
            est, unc = calibration.predict(row.gap_eV)
            cand.band_nm = ev_to_nm(est)
            if unc is not None:
                cand.band_unc_nm = abs(ev_to_nm(est - unc) - ev_to_nm(est + unc)) / 2.0
                cand.matches = match_bands(est, unc, bands)
        candidates.append(cand)
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec.status] = counts.get(rec.status, 0) + 1
    mixing, pair = _mixing(rows, notes)
    return Analysis(db, rows, candidates, counts, sorted({r.method for r in records}), bands,
                    calibration, mixing, pair, notes)


def _mixing(rows: list[RankedRow], notes: list[str]):
    """Mixing energies of the lowest minima, if the compositions form a pseudo-binary."""
    from airss_msc.analysis.energetics import detect_mixing_pair, mixing_energies

    lowest = {r.formula: r.energy_eV for r in rows if r.rank == 1}
    if len(lowest) < 3:
        return None, None
    try:
        pair = detect_mixing_pair(list(lowest))
        return mixing_energies(lowest, pair), pair
    except ValueError as exc:
        notes.append(f"no mixing energies: {exc}")
        return None, None


# --------------------------------------------------------------------------- figures


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    """Write a figure as PNG and free it."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _figure().close(fig)
    return path


def plot_spectrum(analysis: Analysis, path: Path) -> Path:
    """Relative energies (meV/atom) of the unique minima per composition."""
    plt = _figure()
    ranked = [r for r in analysis.rows if r.rank is not None]
    formulas = list(dict.fromkeys(r.formula for r in ranked))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(formulas) + 2), 4.0))
    for k, f in enumerate(formulas):
        mine = [r for r in ranked if r.formula == f]
        for r in mine:
            ax.hlines(r.delta_meV_per_atom, k - 0.3, k + 0.3, color="C0" if r.rank > 1 else "C3", lw=2)
            if r.copies and r.copies > 1:
                ax.text(k + 0.32, r.delta_meV_per_atom, f"x{r.copies}", va="center", fontsize=7)
    ax.set_xticks(range(len(formulas)), formulas, rotation=30, ha="right")
    ax.set_ylabel("E - E(lowest) (meV/atom)")
    ax.set_title("Energy spectrum of unique minima (red: lowest)")
    return _save(fig, path)


def plot_mixing(analysis: Analysis, path: Path) -> Path | None:
    """Mixing energy per atom of the lowest minimum vs composition, with the lower hull."""
    if not analysis.mixing:
        return None
    from airss_msc.analysis.energetics import lower_hull

    plt = _figure()
    pts = sorted(analysis.mixing, key=lambda p: p.x)
    x = np.array([p.x for p in pts])
    e = np.array([1000.0 * p.e_mix_per_atom for p in pts])
    hull = lower_hull(x, e)
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    ax.plot(x, e, "o", color="C0")
    ax.plot(x[hull], e[hull], "-", color="C3", label="lower hull")
    for p, xi, ei in zip(pts, x, e):
        ax.annotate(p.formula, (xi, ei), textcoords="offset points", xytext=(3, 4), fontsize=7)
    a, _ = analysis.mixing_pair
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel(f"x = fraction of {a} on its sublattice")
    ax.set_ylabel("mixing energy (meV/atom)")
    ax.legend()
    return _save(fig, path)


def plot_bands(analysis: Analysis, path: Path) -> Path:
    """Raw-gap wavelengths (and calibrated estimates) beside the measured bands."""
    plt = _figure()
    cands = [c for c in analysis.candidates if c.row.wavelength_nm]
    fig, ax = plt.subplots(figsize=(7.0, 0.35 * max(len(cands), 4) + 1.5))
    for b in analysis.bands:
        ax.axvline(b.wavelength_nm, color="C3" if b.target else "grey", lw=2 if b.target else 0.7,
                   alpha=0.9 if b.target else 0.5)
    labels = []
    for k, c in enumerate(cands):
        ax.plot(c.row.wavelength_nm, k, "o", color="C0", label="raw HOMO-LUMO gap" if k == 0 else None)
        if c.band_nm is not None:
            ax.errorbar(c.band_nm, k, xerr=c.band_unc_nm or 0, fmt="s", color="C2",
                        label="calibrated estimate" if k == 0 else None)
        labels.append(f"{c.row.formula} #{c.row.rank}")
    ax.set_yticks(range(len(cands)), labels, fontsize=7)
    ax.set_xlabel("wavelength (nm); red line: MSC-399 target, grey: other measured bands")
    ax.set_xlim(250, max([700.0] + [min(c.row.wavelength_nm, 3000) * 1.05 for c in cands]))
    if cands:
        ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def plot_size(analysis: Analysis, path: Path) -> Path:
    """Equivalent-sphere diameter (nm) of the candidates against the SAXS range."""
    plt = _figure()
    cands = [c for c in analysis.candidates if c.diameter_nm is not None]
    fig, ax = plt.subplots(figsize=(6.0, 0.3 * max(len(cands), 4) + 1.5))
    ax.axvspan(*SAXS_DIAMETER_NM, color="C1", alpha=0.25, label="SAXS 0.8-1.0 nm")
    for k, c in enumerate(cands):
        ax.plot(c.diameter_nm, k, "o", color="C0")
    ax.set_yticks(range(len(cands)), [f"{c.row.formula} #{c.row.rank}" for c in cands], fontsize=7)
    ax.set_xlabel("equivalent sphere diameter D = 2 sqrt(5/3) Rg (nm)")
    ax.set_xlim(0.0, max([2.0] + [1.1 * c.diameter_nm for c in cands]))
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_structure(atoms, path: Path) -> Path:
    """Two views of a cluster (ASE's matplotlib renderer)."""
    plt = _figure()
    from ase.visualize.plot import plot_atoms

    fig, axes = plt.subplots(1, 2, figsize=(6.0, 3.0))
    for ax, rot in zip(axes, ("0x,0y,0z", "-90x,0y,0z")):
        plot_atoms(atoms, ax, rotation=rot, radii=0.45)
        ax.set_axis_off()
    fig.suptitle(canonical_formula(atoms.get_chemical_formula()), fontsize=9)
    return _save(fig, path)


# --------------------------------------------------------------------------- documents

_VIEWER_JS = """
function drawCluster(canvas, mol) {
  const ctx = canvas.getContext('2d');
  let rx = 0.3, ry = 0.6, drag = null;
  const c = [0, 0, 0];
  mol.pos.forEach(p => { for (let k = 0; k < 3; k++) c[k] += p[k] / mol.pos.length; });
  const P = mol.pos.map(p => [p[0] - c[0], p[1] - c[1], p[2] - c[2]]);
  const R = Math.max(...P.map(p => Math.hypot(p[0], p[1], p[2]))) + 2;
  function render() {
    const s = Math.min(canvas.width, canvas.height) / (2 * R);
    const cx = Math.cos(rx), sx = Math.sin(rx), cy = Math.cos(ry), sy = Math.sin(ry);
    const Q = P.map(p => { const x = p[0] * cy + p[2] * sy, z0 = -p[0] * sy + p[2] * cy;
                           return [x, p[1] * cx - z0 * sx, p[1] * sx + z0 * cx]; });
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = '#888'; ctx.lineWidth = 2;
    mol.bonds.forEach(([i, j]) => { ctx.beginPath();
      ctx.moveTo(canvas.width / 2 + s * Q[i][0], canvas.height / 2 - s * Q[i][1]);
      ctx.lineTo(canvas.width / 2 + s * Q[j][0], canvas.height / 2 - s * Q[j][1]); ctx.stroke(); });
    Q.map((q, i) => [q, i]).sort((a, b) => a[0][2] - b[0][2]).forEach(([q, i]) => {
      ctx.beginPath(); ctx.fillStyle = mol.colors[i]; ctx.strokeStyle = '#333';
      ctx.arc(canvas.width / 2 + s * q[0], canvas.height / 2 - s * q[1], s * mol.radii[i], 0, 2 * Math.PI);
      ctx.fill(); ctx.stroke(); });
  }
  canvas.addEventListener('mousedown', e => { drag = [e.clientX, e.clientY]; });
  window.addEventListener('mouseup', () => { drag = null; });
  canvas.addEventListener('mousemove', e => { if (!drag) return;
    ry += (e.clientX - drag[0]) * 0.01; rx += (e.clientY - drag[1]) * 0.01;
    drag = [e.clientX, e.clientY]; render(); });
  render();
}
document.querySelectorAll('canvas.cluster').forEach(cv => drawCluster(cv, JSON.parse(cv.dataset.mol)));
document.body.dataset.viewer = 'ok';  // tests read this back from the rendered page
"""

_COLORS = {"Cd": "#ffd98f", "Zn": "#7d80b0", "Se": "#ffa100", "Te": "#d47a00", "S": "#ffff30", "X": "#9ecae1"}


def _viewer_payload(atoms) -> str:
    from airss_msc.build.geometry import radius

    pos = atoms.positions
    syms = atoms.get_chemical_symbols()
    r = np.array([radius(s) for s in syms])
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    bonds = [[int(i), int(j)] for i, j in zip(*np.nonzero(np.triu(d < 1.2 * (r[:, None] + r[None]), 1)))]
    return json.dumps({"pos": np.round(pos, 3).tolist(), "bonds": bonds,
                       "colors": [_COLORS.get(s, "#cccccc") for s in syms],
                       "radii": [round(0.35 * x, 3) for x in r]})


def _fmt(value, spec: str = "{:.3f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return spec.format(value)


def _candidate_table(analysis: Analysis) -> tuple[list[str], list[list[str]]]:
    head = ["rank", "id", "formula", "E (eV)", "dE (meV/atom)", "pop. 298 K", "copies", "point group",
            "anion-anion bonds", "gap (eV)", "raw nm", "est. band (nm)", "near band", "D (nm)", "SAXS"]
    body = []
    for c in analysis.candidates:
        r = c.row
        est = "-" if c.band_nm is None else (f"{c.band_nm:.0f}" + (f" ± {c.band_unc_nm:.0f}" if c.band_unc_nm else " (no unc.)"))
        body.append([str(r.rank), r.id, r.formula, _fmt(r.energy_eV, "{:.4f}"), _fmt(r.delta_meV_per_atom, "{:.1f}"),
                     _fmt(r.population), str(r.copies), r.point_group, _fmt(r.anion_bonds, "{}"), _fmt(r.gap_eV), _fmt(r.wavelength_nm, "{:.0f}"),
                     est, ", ".join(b.name for b in c.matches) or "-", _fmt(c.diameter_nm, "{:.2f}"),
                     {True: "yes", False: "no", None: "-"}[c.in_saxs_range]])
    return head, body


def _md_table(head, body) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _html_table(head, body) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _band_text(analysis: Analysis) -> str:
    if analysis.calibration is None:
        return ("Raw HOMO-LUMO gaps of bare clusters lie far below the measured bands (xTB underestimates "
                "them and ligands are absent), so the 'raw nm' column is not a band prediction. Give a "
                "calibration (`--calibration analysis/calibration.toml`) to turn gaps into band estimates "
                "with an uncertainty; candidates within it of a measured band are then flagged.")
    return f"Calibration: {analysis.calibration.describe()}"


def write_report(db: str, output: str | Path, top: int = 5, calibration: str | None = None,
                 bands: str | None = None, temperature: float = 298.15, energy: str | None = None) -> Path:
    """Write ``report.html``, ``report.md`` and the PNG figures into ``output``.

    Returns the path of the HTML page.
    """
    analysis = analyse(db, top=top, calibration_path=calibration, bands_path=bands, temperature=temperature,
                       energy=energy)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, Path]] = [("Energy spectrum", plot_spectrum(analysis, out / "energy_spectrum.png"))]
    mix = plot_mixing(analysis, out / "mixing_energy.png")
    if mix:
        figures.append(("Mixing energy and lower hull", mix))
    figures.append(("Gaps and measured bands", plot_bands(analysis, out / "bands.png")))
    figures.append(("Size against SAXS", plot_size(analysis, out / "size.png")))
    best = [c for c in analysis.candidates if c.row.rank == 1]
    structures = []
    for c in best:
        png = plot_structure(c.row.result.atoms(), out / f"best_{c.row.formula}.png")
        xyz = out / f"best_{c.row.formula}.xyz"
        from airss_msc.results.formats import write_structures

        atoms = c.row.result.atoms().copy()
        atoms.info.update(energy=c.row.energy_eV, formula=c.row.formula, id=c.row.id)
        write_structures(xyz, [atoms])
        structures.append((c, png, xyz))

    head, body = _candidate_table(analysis)
    status = ", ".join(f"{s}: {analysis.status_counts[s]}" for s in STATUS_ORDER if s in analysis.status_counts)
    mixing_md = ""
    if analysis.mixing:
        mixing_md = _md_table(["formula", "x", "E_mix (eV)", "E_mix (meV/atom)"],
                              [[p.formula, f"{p.x:.3f}", f"{p.e_mix:.4f}", f"{1000 * p.e_mix_per_atom:.1f}"]
                               for p in sorted(analysis.mixing, key=lambda p: p.x)])
    all_rows = format_rows(analysis.rows, "table")

    md = [f"# airss-msc report: {Path(db).name}", "",
          f"airss-msc {__version__}; methods: {', '.join(analysis.methods)}; rows by status: {status}.", "",
          "## Best candidates per composition", "", _md_table(head, body), "",
          _band_text(analysis), ""]
    if analysis.notes:
        md += ["Notes: " + "; ".join(analysis.notes), ""]
    if mixing_md:
        md += [f"## Mixing energies ({analysis.mixing_pair[0]}/{analysis.mixing_pair[1]})", "", mixing_md, ""]
    for title, path in figures:
        md += [f"## {title}", "", f"![{title}]({path.name})", ""]
    md += ["## Lowest structures", ""]
    for c, png, xyz in structures:
        md += [f"### {c.row.formula} (id {c.row.id}, point group {c.row.point_group})", "",
               f"![{c.row.formula}]({png.name})", "", f"Coordinates: [{xyz.name}]({xyz.name})", ""]
    md += ["## All rows", "", "```", all_rows, "```", ""]
    (out / "report.md").write_text("\n".join(md))

    def img(path: Path, alt: str) -> str:
        data = base64.b64encode(path.read_bytes()).decode()
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>airss-msc report: {html.escape(Path(db).name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "img{max-width:100%}canvas.cluster{border:1px solid #ddd;cursor:grab}pre{font-size:11px;overflow-x:auto}"
        ".fig{margin:1em 0}</style></head><body>",
        f"<h1>airss-msc report: {html.escape(Path(db).name)}</h1>",
        f"<p>airss-msc {__version__}; methods: {html.escape(', '.join(analysis.methods))}; rows by status: {html.escape(status)}.</p>",
        "<h2>Best candidates per composition</h2>", _html_table(head, body),
        f"<p>{html.escape(_band_text(analysis))}</p>",
    ]
    if analysis.notes:
        parts.append(f"<p>Notes: {html.escape('; '.join(analysis.notes))}</p>")
    if analysis.mixing:
        parts.append(f"<h2>Mixing energies ({analysis.mixing_pair[0]}/{analysis.mixing_pair[1]})</h2>")
        parts.append(_html_table(["formula", "x", "E_mix (eV)", "E_mix (meV/atom)"],
                                 [[p.formula, f"{p.x:.3f}", f"{p.e_mix:.4f}", f"{1000 * p.e_mix_per_atom:.1f}"]
                                  for p in sorted(analysis.mixing, key=lambda p: p.x)]))
    for title, path in figures:
        parts.append(f"<div class='fig'><h2>{html.escape(title)}</h2>{img(path, title)}</div>")
    parts.append("<h2>Lowest structures (drag to rotate)</h2>")
    for c, png, xyz in structures:
        parts.append(f"<h3>{html.escape(c.row.formula)} (id {html.escape(c.row.id)}, point group "
                     f"{html.escape(c.row.point_group)})</h3>")
        parts.append(f"<canvas class='cluster' width='320' height='320' "
                     f"data-mol='{html.escape(_viewer_payload(c.row.result.atoms()))}'></canvas>{img(png, c.row.formula)}")
    parts += ["<h2>All rows</h2>", f"<pre>{html.escape(all_rows)}</pre>",
              f"<script>{_VIEWER_JS}</script></body></html>"]
    page = out / "report.html"
    page.write_text("\n".join(parts))
    return page
