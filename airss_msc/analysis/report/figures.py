"""The report's figures (matplotlib, PNG): energies, mixing, bands, size, spectra, structures.

Each function draws one figure from an :class:`~airss_msc.analysis.report.model.Analysis`
and returns the path written (None when there is nothing to draw).
Structure pictures are ball-and-stick in two perpendicular views, bonds from
covalent radii, one clearly distinct colour per element and a legend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle
from matplotlib.transforms import offset_copy

from airss_msc.analysis.bands import HC_EV_NM, Band
from airss_msc.analysis.energetics import lower_hull
from airss_msc.analysis.report.model import SAXS_DIAMETER_NM, Analysis, band_applies, estimates_by_map
from airss_msc.analysis.spectra import DEFAULT_FWHM_EV, TDDFT_ERROR_EV, band_window_nm, covered_to_nm, spectrum_nm
from airss_msc.composition import canonical_formula
from airss_msc.generation.geometry import bonds, radius

#: Element colours, chosen to differ at a glance (and in grey scale): cations warm,
#: chalcogens cool, ligand atoms in their usual CPK colours.
ELEMENT_COLORS = {
    "Cd": "#f0b429",
    "Zn": "#8c564b",
    "Hg": "#7f7f7f",
    "Se": "#2ca02c",
    "Te": "#6a3d9a",
    "S": "#d4d41a",
    "O": "#d62728",
    "N": "#1f4fff",
    "C": "#404040",
    "H": "#f2f2f2",
    "P": "#ff7f0e",
    "X": "#9ecae1",
}
DEFAULT_COLOR = "#e377c2"
#: Bonds drawn within this multiple of the covalent radii sum: Cd-Se to 2.9, Cd-Te to 3.2 A,
#: but not the 3.3-4 A metal-metal contacts the fragment test (1.35) still counts.
DRAWN_BOND_FACTOR = 1.12


def color(symbol: str) -> str:
    return ELEMENT_COLORS.get(symbol, DEFAULT_COLOR)


def _figure(width: float, height: float, ncols: int = 1):
    """A figure outside pyplot (no global state, no display needed) and its axes; an Agg canvas
    so that text extents can be measured before saving."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols)


def _save(fig: Figure, path: Path) -> Path:
    """Write a figure as PNG."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_energy_levels(analysis: Analysis, path: Path) -> Path:
    """Relative energies (meV/atom) of the unique minima per composition."""
    ranked = [r for r in analysis.rows if r.rank is not None]
    groups = list(dict.fromkeys((r.formula, r.method) for r in ranked))
    fig, ax = _figure(max(4.0, 1.3 * len(groups) + 2), 4.0)
    for k, (f, m) in enumerate(groups):
        for r in (r for r in ranked if (r.formula, r.method) == (f, m)):
            ax.hlines(r.delta_meV_per_atom, k - 0.3, k + 0.3, color="C3" if r.rank == 1 else "C0", lw=2)
            if r.copies and r.copies > 1:
                ax.text(k + 0.32, r.delta_meV_per_atom, f"x{r.copies}", va="center", fontsize=7)
    labels = [f if len({m for _, m in groups}) == 1 else f"{f}\n{m}" for f, m in groups]
    ax.set_xticks(range(len(groups)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("E - E(lowest) (meV/atom)")
    ax.set_title("Energy spectrum of unique minima (red: lowest)")
    return _save(fig, path)


def plot_mixing(analysis: Analysis, path: Path) -> Path | None:
    """Mixing energy per atom of the lowest minimum vs composition, with the lower hull."""
    if not analysis.mixing or analysis.mixing_pair is None:  # the pair comes with the mixing energies
        return None
    pts = sorted(analysis.mixing, key=lambda p: p.x)
    x = np.array([p.x for p in pts])
    e = np.array([1000.0 * p.e_mix_per_atom for p in pts])
    hull = lower_hull(x, e)
    fig, ax = _figure(5.5, 4.0)
    ax.plot(x, e, "o", color="C0")
    ax.plot(x[hull], e[hull], "-", color="C3", label="lower hull")
    for p, xi, ei in zip(pts, x, e, strict=True):
        ax.annotate(p.formula, (xi, ei), textcoords="offset points", xytext=(3, 4), fontsize=7)
    a, _ = analysis.mixing_pair
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel(f"x = fraction of {a} on its sublattice")
    ax.set_ylabel("mixing energy (meV/atom)")
    ax.legend()
    return _save(fig, path)


#: marker and colour of a map's estimates in the band-trend figure, by the quantity it maps
_ESTIMATE_STYLE = {"gap": ("o", "C0"), "first bright": ("s", "C4")}


def plot_band_trend(analysis: Analysis, path: Path) -> Path | None:
    """First bright excitation (nm) of each composition's lowest structure against composition,
    with the TDDFT error window as bars, the estimates of each packaged map (TDA-ris first bright
    singlet, PBE gap; hollow, their leave-one-out window as bars) where no band spectrum is stored,
    and the measured bands drawn across; None without either."""
    trend, estimated = analysis.band_trend, analysis.estimated_trend  # disjoint: estimates only without a spectrum
    if not (trend or estimated) or analysis.mixing_pair is None:
        return None
    fig, ax = _figure(5.5, 4.0)
    # only the bands of the series' own materials (a CdS band says nothing about CdTeSe)
    bands = [b for b in analysis.bands if any(band_applies(b, p.formula) for p in analysis.mixing or [])]
    for b in bands:
        ax.axhline(b.wavelength_nm, color="C3" if b.target else "grey", lw=2 if b.target else 0.7, alpha=0.8, zorder=0)
        ax.annotate(
            b.name, (1.01, b.wavelength_nm), xycoords=("axes fraction", "data"), fontsize=7, ha="left", va="center"
        )
    labelled: list[tuple[float, float, str]] = []
    if trend:
        x = np.array([p.x for p, _ in trend])
        nm = np.array([c.bright_nm for _, c in trend], dtype=float)
        windows = [band_window_nm(HC_EV_NM / v) for v in nm]  # (shortest, longest) nm
        err = np.array([nm - [lo for lo, _ in windows], [hi for _, hi in windows] - nm])
        label = f"first bright excitation (+- {TDDFT_ERROR_EV:g} eV)"
        ax.errorbar(x, nm, yerr=err, fmt="D-", color="C2", capsize=3, label=label)
        labelled += [(xi, v, p.formula) for (p, _), xi, v in zip(trend, x, nm, strict=True)]
    groups = estimates_by_map(estimated)
    # one top for every group: an open-ended window is drawn to it, and no group's limit clips another's
    finite = [
        v
        for _, c in estimated
        for v in (c.estimate_nm, *(c.estimate_window_nm or ()))
        if v is not None and np.isfinite(v)
    ]
    finite += [v for _, c in trend if c.bright_nm is not None for v in band_window_nm(HC_EV_NM / c.bright_nm)]
    finite += [b.wavelength_nm for b in bands]
    top = 1.1 * max(finite) if finite else None
    open_any = False
    for m, group in groups:
        x = np.array([p.x for p, _ in group])
        nm = np.array([c.estimate_nm for _, c in group], dtype=float)
        windows = [c.estimate_window_nm or (np.nan, np.nan) for _, c in group]  # set with every estimate
        lo = np.array([w[0] for w in windows])
        hi = np.array([w[1] for w in windows])
        # a window with no long-wavelength bound is drawn to the top of the plot, without a cap there
        open_ended = ~np.isfinite(hi)
        open_any = open_any or bool(open_ended.any())
        hi = np.where(open_ended, top if top is not None else nm, hi)
        label = (
            f"estimate from the {m.mapped} (+- {m.window_with(TDDFT_ERROR_EV):.2f} eV; "
            f"fitted at {m.sizes[0]}-{m.sizes[1]} atoms)"
        )
        # the style follows what is mapped, so one map looks the same whichever others are drawn
        marker, colour = _ESTIMATE_STYLE.get(m.quantity, ("^", "C5"))
        ax.errorbar(
            x, nm, yerr=np.array([nm - lo, hi - nm]), fmt=marker, mfc="none", color=colour, capsize=3, label=label
        )
        labelled += [(xi, v, p.formula) for (p, _), xi, v in zip(group, x, nm, strict=True)]
    if open_any and top is not None:
        ax.set_ylim(top=top)
    for xi, v, formula in labelled:
        right = xi > 0.5  # labels of the right half go left of their point, inside the axes
        ax.annotate(
            formula,
            (xi, v),
            textcoords="offset points",
            xytext=(-4 if right else 4, -10),
            fontsize=7,
            ha="right" if right else "left",
        )
    a, _ = analysis.mixing_pair
    ax.set_xlim(-0.05, 1.05)
    ax.set_xlabel(f"x = fraction of {a} on its sublattice")
    ax.set_ylabel("wavelength (nm)")
    ax.set_title("Band trend of the lowest structures (red: the target band, grey: other bands)", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


#: gid of the band names drawn above a band figure's axes (tests find them by it)
BAND_LABEL_GID = "band-label"
#: Height of a band name's leader line above the axes, points.
_LEADER_PT = 9.0


def _band_lines(ax, analysis: Analysis) -> None:
    """The measured bands as vertical lines (red: the target) behind everything else."""
    for b in analysis.bands:
        ax.axvline(
            b.wavelength_nm,
            color="C3" if b.target else "grey",
            lw=2 if b.target else 0.7,
            alpha=0.9 if b.target else 0.5,
            zorder=0,
        )


def spread(targets: list[float], gap: float, low: float, high: float) -> list[float]:
    """Positions as close as possible to the sorted ``targets`` but at least ``gap`` apart and
    within [``low``, ``high``] (one unit throughout, e.g. points), order kept: clusters of
    labels that would collide are laid out evenly around their targets' mean."""
    clusters: list[list[float]] = []  # [left position, members' targets...]
    for t in targets:
        clusters.append([t, t])
        while len(clusters) > 1:
            a, b = clusters[-2], clusters[-1]
            if a[0] + (len(a) - 1) * gap <= b[0]:
                break
            members = a[1:] + b[1:]
            left = float(np.mean([m - i * gap for i, m in enumerate(members)]))
            clusters[-2:] = [[left] + members]
    out = []
    for c in clusters:
        out += [c[0] + i * gap for i in range(len(c) - 1)]
    # shift the whole row inward where it spills over an end (the gaps stay)
    if out and out[0] < low:
        out = [x + low - out[0] for x in out]
    for i in range(len(out) - 1, -1, -1):
        limit = high - (len(out) - 1 - i) * gap
        if out[i] > limit:
            out[i] = limit
    return out


def _band_labels(ax, bands: list[Band]) -> float:
    """Band names above the axes, rotated, spread apart where bands lie close and joined to
    their lines by thin leaders; call after the x limits are final. Returns the points they
    take above the axes (for the title's pad)."""
    fig = ax.figure
    lo, hi = ax.get_xlim()
    shown = sorted((b for b in bands if lo <= b.wavelength_nm <= hi), key=lambda b: b.wavelength_nm)
    if not shown:
        return 0.0
    labels = []
    for b in shown:
        colour = "C3" if b.target else "0.35"
        labels.append(
            ax.annotate(
                b.name,
                xy=(b.wavelength_nm, 1.0),
                xycoords=ax.get_xaxis_transform(),
                xytext=(0.0, _LEADER_PT),
                textcoords="offset points",
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=6.5,
                color=colour,
                fontweight="bold" if b.target else "normal",
                annotation_clip=False,
                gid=BAND_LABEL_GID,
                arrowprops={"arrowstyle": "-", "lw": 0.5, "color": colour, "shrinkA": 0, "shrinkB": 0},
            )
        )
    renderer = fig.canvas.get_renderer()
    to_pt = 72.0 / fig.dpi
    sizes = [t.get_window_extent(renderer) for t in labels]  # leaders still vertical: the text's own box
    gap = 1.4 * max(bb.width for bb in sizes) * to_pt
    height = max(bb.height for bb in sizes) * to_pt + _LEADER_PT
    # lay out once for the final axes width, then spread the names in points along it
    ax.set_title(ax.get_title(), pad=height + 4, fontsize=9)
    fig.tight_layout()
    width = ax.get_window_extent(renderer).width * to_pt
    targets = [(b.wavelength_nm - lo) / (hi - lo) * width for b in shown]
    for label, target, placed in zip(labels, targets, spread(targets, gap, 0.0, width), strict=True):
        label.xyann = (placed - target, _LEADER_PT)
    return height


def _legend_below(ax, ncol: int) -> None:
    """The legend under the axis label (a fixed offset in points, whatever the axes' height), where
    it hides no data."""
    below = offset_copy(ax.transAxes, fig=ax.figure, y=-34, units="points")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, ncol=ncol, frameon=False)


def bands_figure(analysis: Analysis) -> Figure:
    """Gap wavelengths, first bright excitations and calibrated estimates beside the measured bands."""
    cands = [c for c in analysis.candidates if c.row.wavelength_nm or c.bright_nm or c.band_nm]
    fig, ax = _figure(7.5, 0.35 * max(len(cands), 4) + 2.4)
    _band_lines(ax, analysis)
    shown = set()

    def mark(x, k, style, colour, name, **kw):
        ax.plot(x, k, style, color=colour, label=None if name in shown else name, **kw)
        shown.add(name)

    for k, c in enumerate(cands):
        if c.row.wavelength_nm:
            mark(c.row.wavelength_nm, k, "o", "C0", "HOMO-LUMO gap (not a band)", mfc="none")
        if c.bright_nm:
            mark(c.bright_nm, k, "D", "C2", "first bright excitation")
        if c.band_nm is not None:
            ax.errorbar(
                c.band_nm,
                k,
                xerr=c.band_unc_nm or 0,
                fmt="s",
                color="C4",
                label=None if "cal" in shown else "calibrated gap",
            )
            shown.add("cal")
    ax.set_yticks(range(len(cands)), [f"{c.row.formula} #{c.row.rank}" for c in cands], fontsize=7)
    ax.set_xlabel("wavelength (nm); red: the target band, grey: other measured bands")
    xs = [v for c in cands for v in (c.row.wavelength_nm, c.bright_nm, c.band_nm) if v]
    ax.set_xlim(250, max([700.0] + [min(v, 3000) * 1.05 for v in xs]))
    ax.set_title("Computed gaps and excitations against the measured bands")
    if cands:  # below the axes: inside, it hid points
        _legend_below(ax, ncol=3)
    _band_labels(ax, analysis.bands)
    return fig


def plot_bands(analysis: Analysis, path: Path) -> Path:
    """:func:`bands_figure` as PNG."""
    fig = bands_figure(analysis)
    fig.savefig(path, dpi=110)
    return path


def drawn_limit_nm(excitations, fwhm_eV: float = DEFAULT_FWHM_EV) -> float:
    """Shortest wavelength (nm) a broadened spectrum is drawn to: one line width short of the
    highest computed state, since states above it (not computed) would add there; a curve drawn
    further would show the last state's half Gaussian as a peak."""
    cut = float(np.max(excitations.energies_eV)) - fwhm_eV
    return HC_EV_NM / cut if cut > 0 else float("inf")


def absorption_figure(analysis: Analysis, fwhm_eV: float = DEFAULT_FWHM_EV) -> Figure | None:
    """Broadened absorption spectra of the candidates with excitations, on the measured bands' axis:
    each curve only where its computed states decide it, the states as sticks, and the wavelengths
    beyond the highest computed state shaded 'not computed'."""
    cands = [(c, c.excitations) for c in analysis.candidates if c.excitations is not None]
    if not cands:
        return None
    # the axis reaches the lowest computed state of every structure (bare Cd-rich clusters
    # absorb far in the red)
    longest = max(HC_EV_NM / float(np.min(exc.energies_eV)) for _, exc in cands)
    start = 250.0
    top = min(max(700.0, 1.1 * longest), 3000.0)
    grid = np.linspace(start, top, 1201)
    fig, ax = _figure(7.5, 4.6)
    _band_lines(ax, analysis)
    reaches = [min(max(covered_to_nm(exc) or start, start), top) for _, exc in cands]
    # an empty stretch there reads 'not computed', never 'no absorption'
    if max(reaches) - min(reaches) > 1.0:
        ax.axvspan(
            start,
            min(reaches),
            color="0.6",
            alpha=0.35,
            lw=0,
            label=f"not computed for any structure (< {min(reaches):.0f} nm)",
        )
        ax.axvspan(
            min(reaches),
            max(reaches),
            color="0.8",
            alpha=0.35,
            lw=0,
            label=f"not computed for some ({min(reaches):.0f}-{max(reaches):.0f} nm)",
        )
    elif max(reaches) > start:
        ax.axvspan(
            start,
            max(reaches),
            color="0.7",
            alpha=0.35,
            lw=0,
            label=f"not computed: beyond the highest state ({max(reaches):.0f} nm)",
        )
    sigma = fwhm_eV / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    for k, (c, exc) in enumerate(cands):
        colour = f"C{k % 10}"
        keep = grid >= drawn_limit_nm(exc, fwhm_eV)
        y = spectrum_nm(exc, grid[keep], fwhm_eV) if keep.any() else np.zeros(0)
        # a stick is as tall as its state's own broadened peak, so sticks and curve share a scale
        sticks = np.asarray(exc.oscillator_strengths, float) / (sigma * np.sqrt(2.0 * np.pi))
        scale = max(float(y.max()) if y.size else 0.0, float(sticks.max()) if sticks.size else 0.0)
        scale = scale if scale > 0 else 1.0
        label = f"{c.row.formula} #{c.row.rank} ({exc.method.split(':')[-1]})"
        if y.size:
            ax.plot(grid[keep], y / scale, color=colour, lw=1.3, label=label)
        ax.vlines(
            HC_EV_NM / np.asarray(exc.energies_eV, float),
            0.0,
            sticks / scale,
            color=colour,
            lw=0.9,
            alpha=0.8,
            label=None if y.size else label,
        )
    ax.set_xlim(start, top)
    ax.set_ylim(0.0, 1.08)
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel("absorption (normalised per structure)")
    ax.set_title(f"Computed spectra: Gaussian FWHM {fwhm_eV:g} eV, sticks = computed states; red: the target band")
    _legend_below(ax, ncol=2)
    _band_labels(ax, analysis.bands)
    return fig


def plot_absorption(analysis: Analysis, path: Path, fwhm_eV: float = DEFAULT_FWHM_EV) -> Path | None:
    """:func:`absorption_figure` as PNG (None when no structure has excitations)."""
    fig = absorption_figure(analysis, fwhm_eV)
    if fig is None:
        return None
    fig.savefig(path, dpi=110)
    return path


def plot_size(analysis: Analysis, path: Path) -> Path:
    """Equivalent-sphere diameter (nm) of the candidates against the SAXS range."""
    cands = [(c, c.diameter_nm) for c in analysis.candidates if c.diameter_nm is not None]
    fig, ax = _figure(6.0, 0.3 * max(len(cands), 4) + 1.5)
    lo, hi = SAXS_DIAMETER_NM
    ax.axvspan(lo, hi, color="C1", alpha=0.25, label=f"measured by SAXS (small-angle X-ray scattering): {lo}-{hi} nm")
    for k, (_, diameter) in enumerate(cands):
        ax.plot(diameter, k, "o", color="C0")
    ax.set_yticks(range(len(cands)), [f"{c.row.formula} #{c.row.rank}" for c, _ in cands], fontsize=7)
    ax.set_xlabel("SAXS-equivalent diameter D = 2 sqrt(5/3) Rg (nm)")
    ax.set_xlim(0.0, max([2.0] + [1.1 * diameter for _, diameter in cands]))
    ax.legend(fontsize=7)
    return _save(fig, path)


def _rotation(axis: str, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])}[axis]


def _ball_and_stick(ax, atoms: Atoms, rotation: np.ndarray) -> None:
    pos = (atoms.positions - atoms.positions.mean(axis=0)) @ rotation.T
    symbols = atoms.get_chemical_symbols()
    r = np.array([0.3 * radius(s) + 0.12 for s in symbols])  # Angstrom: balls well apart along bonds
    pairs = bonds(atoms, DRAWN_BOND_FACTOR)
    # painter's algorithm: bonds and atoms sorted back to front by depth (z toward the viewer)
    # (depth, kind, (i, j)): a bond's two atoms, an atom's index twice
    items = [(pos[i, 2], "atom", (i, i)) for i in range(len(atoms))]
    items += [((pos[i, 2] + pos[j, 2]) / 2 - 0.01, "bond", (i, j)) for i, j in pairs]
    for _, kind, what in sorted(items, key=lambda t: t[0]):
        if kind == "bond":
            i, j = what
            mid = (pos[i] + pos[j]) / 2
            for end in (i, j):  # each half in its atom's colour
                ax.plot(
                    [pos[end, 0], mid[0]],
                    [pos[end, 1], mid[1]],
                    color="#333333",
                    lw=4.2,
                    solid_capstyle="round",
                    zorder=1,
                )
                ax.plot(
                    [pos[end, 0], mid[0]],
                    [pos[end, 1], mid[1]],
                    color=color(symbols[end]),
                    lw=2.6,
                    solid_capstyle="round",
                    zorder=1,
                )
        else:
            i = what[0]
            ax.add_patch(Circle(pos[i, :2], r[i], facecolor=color(symbols[i]), edgecolor="#222222", lw=0.8, zorder=2))
    span = np.abs(pos[:, :2]).max() + r.max() + 0.3 if len(atoms) else 1.0
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.set_axis_off()


def plot_structure(atoms: Atoms, path: Path, title: str = "") -> Path:
    """Ball-and-stick picture of a cluster: front view and a view rotated 90 degrees about y,
    bonds within 1.12 x the covalent radii sum, a legend of the elements present."""
    fig, axes = _figure(6.6, 3.5, ncols=2)
    for ax, (rot, label) in zip(
        axes, ((np.eye(3), "front"), (_rotation("y", 90.0), "side (90 deg about y)")), strict=True
    ):
        _ball_and_stick(ax, atoms, rot)
        ax.set_title(label, fontsize=8)
    present = list(dict.fromkeys(atoms.get_chemical_symbols()))
    handles = [
        Line2D([], [], marker="o", ls="", markersize=9, markerfacecolor=color(s), markeredgecolor="#222222", label=s)
        for s in present
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(title or canonical_formula(atoms.get_chemical_formula()), fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    return path
