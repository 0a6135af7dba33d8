"""Measured absorption bands and the calibration of computed gaps onto them.

Units: wavelengths in nm, energies in eV, E = 1239.84 / lambda. Bands are kept
as wavelengths (what papers report); energies are always derived.

A raw xTB HOMO-LUMO gap is not an absorption band (bare-cluster GFN1 gaps sit
about 1 eV below the measured bands), so band estimates go through an explicit
linear calibration ``band_eV = slope * gap_eV + intercept`` fitted to reference
pairs the user chooses and states (:func:`fit_calibration`,
``data/calibration.toml``). Which structure belongs to which band is an
assumption, never a fact.

A computed gap can also be mapped onto a computed excitation: :class:`GapMap`
(``data/gap_map.toml``) shifts the PBE/def2-SVP HOMO-LUMO gap onto the TDA-PBE0
first bright singlet, fitted on clusters where both were computed, with its
leave-one-formula-out error as the window (:func:`load_gap_map`). The same kind of
map shifts a cheaper excitation method's first bright singlet onto TDA-PBE0
(``data/ris_map.toml``: TDA-ris on the PBE ground state; ``quantity = "first bright"``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from airss_msc.composition import canonical_formula
from airss_msc.errors import InputError

#: h*c in eV nm (the conversion used throughout the project).
HC_EV_NM = 1239.84

Model = Literal["auto", "linear", "shift"]


def nm_to_ev(wavelength_nm: float) -> float:
    """Photon energy (eV) of a wavelength (nm)."""
    if not wavelength_nm > 0:
        raise InputError(f"wavelength must be positive (nm), got {wavelength_nm!r}")
    return HC_EV_NM / wavelength_nm


#: Gaps below this (eV) mean an open-shell or metallic electronic structure: no wavelength.
METALLIC_GAP_EV = 0.1


def gap_wavelength_nm(gap_eV: float | None) -> float | None:
    """Wavelength (nm) of a transition across ``gap_eV``; None for no gap or one under
    :data:`METALLIC_GAP_EV` (a 0.007 eV gap is not a 177,000 nm band)."""
    if gap_eV is None or not math.isfinite(gap_eV) or gap_eV < METALLIC_GAP_EV:
        return None
    return HC_EV_NM / gap_eV


def describe_gap(gap_eV: float | None) -> str:
    """How a gap reads in a table: a wavelength-worthy gap is its value, a tiny one says what it means."""
    if gap_eV is None or not math.isfinite(gap_eV):
        return "-"
    if gap_eV < METALLIC_GAP_EV:
        return "open shell / metallic"
    return f"{gap_eV:.3f}"


def ev_to_nm(energy_eV: float) -> float:
    """Wavelength (nm) of a photon energy (eV)."""
    if not energy_eV > 0:
        raise InputError(f"energy must be positive (eV), got {energy_eV!r}")
    return HC_EV_NM / energy_eV


# --------------------------------------------------------------------------- #
# Bands
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Band:
    """A measured absorption band (peak wavelength in nm)."""

    name: str
    wavelength_nm: float
    source: str = ""
    notes: str = ""
    material: str = ""
    target: bool = False

    @property
    def energy_eV(self) -> float:
        """Band energy, eV (derived from the wavelength)."""
        return nm_to_ev(self.wavelength_nm)


_BAND_KEYS = {"name", "material", "band_nm", "source", "notes", "target"}


def _packaged(name: str):
    # one name per joinpath: Python 3.10's Traversable.joinpath takes a single child
    return resources.files("airss_msc").joinpath("data").joinpath(name)


def _read_toml(path: str | Path | None, default: str) -> tuple[dict, str]:
    try:
        if path is None:
            where = f"packaged {default}"
            text = _packaged(default).read_text(encoding="utf-8")
        else:
            where = str(path)
            text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{where}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: cannot read ({exc.__class__.__name__})") from None
    try:
        return tomllib.loads(text), where
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: invalid TOML: {exc}") from None


def _number(value: object, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{where}: {key} must be a number, got {value!r}")
    if value <= 0:
        raise InputError(f"{where}: {key} must be positive, got {value!r}")
    return float(value)


def _text(value: object, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where}: {key} must be a string, got {value!r}")
    return value


def load_bands(path: str | Path | None = None) -> list[Band]:
    """Bands from a TOML file of ``[[band]]`` tables (default: the packaged
    ``data/bands.toml``). Malformed files raise :class:`InputError`."""
    data, where = _read_toml(path, "bands.toml")
    entries = data.get("band")
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{where}: no [[band]] entries")
    bands: list[Band] = []
    for i, entry in enumerate(entries, start=1):
        here = f"{where}: band #{i}"
        unknown = set(entry) - _BAND_KEYS
        if unknown:
            raise InputError(f"{here}: unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("name", "band_nm"):
            if key not in entry:
                raise InputError(f"{here}: missing {key!r}")
        target = entry.get("target", False)
        if not isinstance(target, bool):
            raise InputError(f"{here}: target must be true or false")
        bands.append(
            Band(
                name=_text(entry["name"], here, "name"),
                wavelength_nm=_number(entry["band_nm"], here, "band_nm"),
                source=_text(entry.get("source", ""), here, "source"),
                notes=_text(entry.get("notes", ""), here, "notes"),
                material=_text(entry.get("material", ""), here, "material"),
                target=target,
            )
        )
    names = [b.name for b in bands]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"{where}: duplicate band name(s) {', '.join(dupes)}")
    if sum(b.target for b in bands) > 1:
        raise InputError(f"{where}: more than one band has target = true")
    return bands


@dataclass(frozen=True)
class LiteraturePair:
    """A published (structure, lowest absorption band) pair (``data/literature_pairs.toml``)."""

    structure: str
    heavy_atoms: int
    basis: str
    source: str
    band_nm: float | None = None
    notes: str = ""

    def calibrates(self, max_heavy_atoms: int) -> bool:
        """Firm enough to calibrate computed excitations of clusters up to ``max_heavy_atoms``."""
        return self.basis == "xrd" and self.band_nm is not None and self.heavy_atoms <= max_heavy_atoms


#: A calibration needs at least this many firm pairs (a line through two points has no error).
MIN_CALIBRATION_PAIRS = 3
#: Largest inorganic core (heavy atoms) whose TDDFT spectrum this tool computes routinely.
COMPUTABLE_HEAVY_ATOMS = 30
_LIT_KEYS = {"structure", "heavy_atoms", "band_nm", "basis", "source", "notes"}
_LIT_BASES = {"xrd", "ms", "exafs", "computation", "none"}


def load_literature_pairs(path: str | Path | None = None) -> list[LiteraturePair]:
    """Published (structure, band) pairs (default: the packaged ``data/literature_pairs.toml``)."""
    data, where = _read_toml(path, "literature_pairs.toml")
    pairs = []
    for k, entry in enumerate(data.get("pair", []), 1):
        here = f"{where}: pair {k}"
        if not isinstance(entry, dict):
            raise InputError(f"{here} must be a table")
        unknown = set(entry) - _LIT_KEYS
        if unknown:
            raise InputError(f"{here}: unknown key {sorted(unknown)[0]!r}")
        missing = {"structure", "heavy_atoms", "basis", "source"} - set(entry)
        if missing:
            raise InputError(f"{here}: missing {sorted(missing)[0]!r}")
        basis = _text(entry["basis"], here, "basis")
        if basis not in _LIT_BASES:
            raise InputError(f"{here}: basis must be one of {', '.join(sorted(_LIT_BASES))}")
        pairs.append(
            LiteraturePair(
                structure=_text(entry["structure"], here, "structure"),
                heavy_atoms=int(_number(entry["heavy_atoms"], here, "heavy_atoms")),
                basis=basis,
                source=_text(entry["source"], here, "source"),
                band_nm=_number(entry["band_nm"], here, "band_nm") if "band_nm" in entry else None,
                notes=_text(entry.get("notes", ""), here, "notes"),
            )
        )
    return pairs


def find_band(name: str, bands: Sequence[Band] | None = None) -> Band:
    """The band called ``name`` (exact, then case-insensitive match)."""
    bands = load_bands() if bands is None else bands
    for b in bands:
        if b.name == name:
            return b
    for b in bands:
        if b.name.lower() == str(name).strip().lower():
            return b
    raise InputError(f"unknown band {name!r}; known: {', '.join(b.name for b in bands)}")


def default_target(bands: Sequence[Band] | None = None) -> Band:
    """The band marked ``target = true`` (CdTeSe MSC-399 in the packaged file)."""
    bands = load_bands() if bands is None else bands
    for b in bands:
        if b.target:
            return b
    raise InputError("no band is marked target = true")


def match_bands(
    estimated_eV: float,
    uncertainty_eV: float | None,
    bands: Sequence[Band] | None = None,
    k: float = 1.0,
) -> list[Band]:
    """Bands whose energy lies within ``k * uncertainty_eV`` of ``estimated_eV``
    (eV), nearest first. ``bands`` defaults to the packaged list.

    An unknown uncertainty (None, e.g. from a 2-pair calibration) is refused
    rather than treated as zero: pass a stated tolerance instead.
    """
    if uncertainty_eV is None:
        raise InputError(
            "band matching needs an uncertainty (eV); the calibration has none - "
            "give more reference pairs or an explicit uncertainty floor"
        )
    if not (math.isfinite(estimated_eV) and math.isfinite(uncertainty_eV)) or uncertainty_eV < 0:
        raise InputError(
            f"need a finite estimate and uncertainty >= 0 (eV), got {estimated_eV!r} +- {uncertainty_eV!r}"
        )
    if not k > 0:
        raise InputError(f"k must be positive, got {k!r}")
    bands = load_bands() if bands is None else bands
    hits = [b for b in bands if abs(b.energy_eV - estimated_eV) <= k * uncertainty_eV]
    return sorted(hits, key=lambda b: abs(b.energy_eV - estimated_eV))


# --------------------------------------------------------------------------- #
# Calibration
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Calibration:
    """Linear map from a raw computed gap (eV) to a band energy (eV).

    ``model`` is ``"linear"`` (slope and intercept fitted) or ``"shift"``
    (slope fixed at 1, only the intercept fitted; the only choice with one
    pair). ``residuals_eV`` are measured minus fitted band energies of the
    reference pairs; ``rms_residual_eV`` their root mean square.

    Uncertainty of a prediction (1 sigma, eV): the standard error of prediction
    of ordinary least squares, s * sqrt(1 + 1/n + (g - mean_g)^2 / Sxx) with
    s^2 = SSR / (n - 2) for ``linear`` (n >= 3), s * sqrt(1 + 1/n) with
    s^2 = SSR / (n - 1) for ``shift`` (n >= 2). With no degrees of freedom left
    (2 pairs linear, 1 pair shift) the fit is exact and the uncertainty is
    unknown: None, unless ``uncertainty_floor_eV`` was given, which is also a
    lower bound in every other case.
    """

    slope: float
    intercept: float
    model: str
    gaps_eV: tuple[float, ...]
    bands_eV: tuple[float, ...]
    residuals_eV: tuple[float, ...]
    rms_residual_eV: float
    dof: int
    uncertainty_floor_eV: float | None = None
    method: str = ""
    labels: tuple[str, ...] = field(default=())

    @property
    def n(self) -> int:
        """Number of reference pairs."""
        return len(self.gaps_eV)

    @property
    def sigma_eV(self) -> float | None:
        """Residual standard deviation s (eV), None without degrees of freedom."""
        if self.dof <= 0:
            return None
        return math.sqrt(sum(r * r for r in self.residuals_eV) / self.dof)

    def uncertainty(self, gap_eV: float) -> float | None:
        """1-sigma uncertainty (eV) of the band predicted for ``gap_eV``."""
        s = self.sigma_eV
        se: float | None = None
        if s is not None:
            n = self.n
            if self.model == "linear":
                mean = sum(self.gaps_eV) / n
                sxx = sum((g - mean) ** 2 for g in self.gaps_eV)
                se = s * math.sqrt(1 + 1 / n + (gap_eV - mean) ** 2 / sxx)
            else:
                se = s * math.sqrt(1 + 1 / n)
        if self.uncertainty_floor_eV is not None:
            return self.uncertainty_floor_eV if se is None else max(se, self.uncertainty_floor_eV)
        return se

    def predict(self, gap_eV: float) -> tuple[float, float | None]:
        """(band energy eV, 1-sigma uncertainty eV or None) for a raw gap in eV."""
        if not math.isfinite(gap_eV):
            raise InputError(f"gap must be a finite number (eV), got {gap_eV!r}")
        return self.slope * gap_eV + self.intercept, self.uncertainty(gap_eV)

    def predict_nm(self, gap_eV: float) -> tuple[float, float | None]:
        """(band wavelength nm, 1-sigma uncertainty nm or None) for a raw gap in eV.

        The uncertainty is propagated to first order, d(lambda) = hc/E^2 dE.
        """
        energy, unc = self.predict(gap_eV)
        if energy <= 0:
            raise InputError(f"calibration maps gap {gap_eV:g} eV to a non-positive band energy {energy:g} eV")
        return ev_to_nm(energy), (None if unc is None else HC_EV_NM / energy**2 * unc)

    def describe(self) -> str:
        """One-line summary for reports."""
        s = self.sigma_eV
        method = f" [{self.method}]" if self.method else ""
        return (
            f"band_eV = {self.slope:.4f} * gap_eV + {self.intercept:.4f} ({self.model}, "
            f"{self.n} pair{'s' if self.n != 1 else ''}{method}; residual sd "
            f"{'unknown (no degrees of freedom)' if s is None else f'{s:.3f} eV'})"
        )


def fit_calibration(
    pairs: Iterable[tuple[float, float]],
    model: Model = "auto",
    uncertainty_floor_eV: float | None = None,
    method: str = "",
    labels: Sequence[str] = (),
) -> Calibration:
    """Least-squares fit of ``band_eV = slope * gap_eV + intercept``.

    ``pairs``: (raw computed gap eV, measured band eV); convert nm bands with
    :func:`nm_to_ev`. ``model="auto"`` is ``shift`` (slope 1) for one pair and
    ``linear`` otherwise. See :class:`Calibration` for the uncertainty.
    """
    data = [(float(g), float(b)) for g, b in pairs]
    if not data:
        raise InputError("no calibration pairs: add [[pair]] entries (computed gap, measured band)")
    for g, b in data:
        if not (math.isfinite(g) and math.isfinite(b)) or g <= 0 or b <= 0:
            raise InputError(f"calibration pair needs positive gap and band energies (eV), got ({g!r}, {b!r})")
    if uncertainty_floor_eV is not None and not uncertainty_floor_eV > 0:
        raise InputError(f"uncertainty_floor_eV must be positive, got {uncertainty_floor_eV!r}")
    if model == "auto":
        model = "shift" if len(data) == 1 else "linear"
    gaps = [g for g, _ in data]
    bands = [b for _, b in data]
    n = len(data)
    if model == "linear":
        if n < 2:
            raise InputError("a linear calibration needs at least 2 pairs; with 1 use model='shift'")
        mean_g = sum(gaps) / n
        sxx = sum((g - mean_g) ** 2 for g in gaps)
        # A relative test: gaps equal to rounding leave the slope undetermined.
        if sxx <= 1e-12 * max(1.0, mean_g * mean_g) * n:
            raise InputError("all calibration gaps are equal: the slope is undetermined; use model='shift'")
        slope, intercept = (float(c) for c in np.polyfit(gaps, bands, 1))
        dof = n - 2
    elif model == "shift":
        slope = 1.0
        intercept = sum(b - g for g, b in data) / n
        dof = n - 1
    else:
        raise InputError(f"model must be 'auto', 'linear' or 'shift', got {model!r}")
    residuals = tuple(b - (slope * g + intercept) for g, b in data)
    if dof == 0:
        # An exact fit: rounding noise must not pose as a measured residual.
        residuals = tuple(0.0 for _ in residuals)
    rms = math.sqrt(sum(r * r for r in residuals) / n)
    return Calibration(
        slope=slope,
        intercept=intercept,
        model=model,
        gaps_eV=tuple(gaps),
        bands_eV=tuple(bands),
        residuals_eV=residuals,
        rms_residual_eV=rms,
        dof=dof,
        uncertainty_floor_eV=uncertainty_floor_eV,
        method=method,
        labels=tuple(labels),
    )


@dataclass(frozen=True)
class CalibrationPair:
    """One reference pair from calibration.toml. ``band_nm`` is always set
    (resolved from ``band`` names); ``gap_eV`` may be None when the gap is to
    be looked up by ``formula`` or ``structure`` in a results database."""

    label: str
    band_nm: float
    source: str
    gap_eV: float | None = None
    band: str | None = None
    formula: str | None = None
    structure: str | None = None
    notes: str = ""

    @property
    def band_eV(self) -> float:
        return nm_to_ev(self.band_nm)


#: A computed gap (eV) for a calibration pair without its own; None: not available.
GapLookup = Callable[[CalibrationPair], float | None]


@dataclass(frozen=True)
class CalibrationSpec:
    """Contents of a calibration file: the xTB ``method`` and the pairs."""

    method: str
    pairs: tuple[CalibrationPair, ...]
    where: str = ""

    def resolve(self, gap_lookup: GapLookup | None = None) -> list[tuple[float, float]]:
        """(gap eV, band eV) for every pair; pairs without ``gap_eV`` get theirs
        from ``gap_lookup(pair)`` (e.g. the lowest-energy structure of
        ``pair.formula`` in a results database, computed with ``method``)."""
        out = []
        for p in self.pairs:
            gap = p.gap_eV
            if gap is None:
                if gap_lookup is None:
                    raise InputError(
                        f"{self.where}: pair {p.label!r} has no gap_eV; supply computed gaps "
                        f"(from a results database) for {p.formula or p.structure}"
                    )
                gap = gap_lookup(p)
                if gap is None or not math.isfinite(gap) or gap <= 0:
                    raise InputError(f"{self.where}: no usable computed gap for pair {p.label!r}: {gap!r}")
            out.append((float(gap), p.band_eV))
        return out

    def fit(
        self,
        gap_lookup: GapLookup | None = None,
        model: Model = "auto",
        uncertainty_floor_eV: float | None = None,
    ) -> Calibration:
        """:func:`fit_calibration` over the resolved pairs."""
        if not self.pairs:
            raise InputError(f"{self.where}: no calibration pairs; add [[pair]] entries (see the commented example)")
        return fit_calibration(
            self.resolve(gap_lookup),
            model=model,
            uncertainty_floor_eV=uncertainty_floor_eV,
            method=self.method,
            labels=[p.label for p in self.pairs],
        )


_PAIR_KEYS = {"label", "band_nm", "band", "gap_eV", "formula", "structure", "source", "notes"}


def load_calibration(path: str | Path | None = None, bands: Sequence[Band] | None = None) -> CalibrationSpec:
    """Read a calibration TOML file (default: the packaged one, which has no
    pairs). ``band`` names are resolved against ``bands`` (default: packaged)."""
    data, where = _read_toml(path, "calibration.toml")
    unknown = set(data) - {"method", "pair"}
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    method = _text(data.get("method", ""), where, "method")
    entries = data.get("pair", [])
    if not isinstance(entries, list):
        raise InputError(f"{where}: 'pair' must be an array of tables ([[pair]])")
    pairs = []
    for i, entry in enumerate(entries, start=1):
        here = f"{where}: pair #{i}"
        # Typos such as gap_ev must not silently drop a number.
        bad = set(entry) - _PAIR_KEYS
        if bad:
            raise InputError(f"{here}: unknown key(s) {', '.join(sorted(bad))}")
        for key in ("label", "source"):
            if key not in entry:
                raise InputError(f"{here}: missing {key!r}")
        band_name = entry.get("band")
        if "band_nm" in entry:
            band_nm = _number(entry["band_nm"], here, "band_nm")
        elif band_name is not None:
            try:
                band_nm = find_band(_text(band_name, here, "band"), bands).wavelength_nm
            except InputError as exc:
                raise InputError(f"{here}: {exc}") from None
        else:
            raise InputError(f"{here}: give band_nm or band (a name from bands.toml)")
        gap = entry.get("gap_eV")
        formula = entry.get("formula")
        structure = entry.get("structure")
        if gap is None and formula is None and structure is None:
            raise InputError(f"{here}: give gap_eV, or formula/structure to look the gap up")
        if formula is not None:
            try:
                formula = canonical_formula(_text(formula, here, "formula"))
            except InputError as exc:
                raise InputError(f"{here}: {exc}") from None
        pairs.append(
            CalibrationPair(
                label=_text(entry["label"], here, "label"),
                band_nm=band_nm,
                source=_text(entry["source"], here, "source"),
                gap_eV=None if gap is None else _number(gap, here, "gap_eV"),
                band=band_name,
                formula=formula,
                structure=None if structure is None else str(structure),
                notes=_text(entry.get("notes", ""), here, "notes"),
            )
        )
    return CalibrationSpec(method=method, pairs=tuple(pairs), where=where)


# --------------------------------------------------------------------------- #
# A computed gap mapped onto a computed excitation (data/gap_map.toml)
# --------------------------------------------------------------------------- #


def leave_one_group_out(
    x: Sequence[float],
    y: Sequence[float],
    groups: Sequence[str],
    fit: Callable[[np.ndarray, np.ndarray], tuple[float, float]],
) -> np.ndarray:
    """Prediction errors (predicted - y) of every point by ``fit`` (returning slope, intercept) on
    the points of the other groups only; NaN where the other groups cannot be fitted. With
    ``groups`` the formulas, this is how well a map carries to a composition it has not seen."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    g = np.asarray(groups)
    err = np.full(len(xs), np.nan)
    for group in dict.fromkeys(groups):
        test = g == group
        try:
            a, b = fit(xs[~test], ys[~test])
        except (ValueError, TypeError, np.linalg.LinAlgError, InputError):
            continue
        err[test] = a * xs[test] + b - ys[test]
    return err


def _shift_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    c = fit_calibration(zip(x, y, strict=True), model="shift")
    return c.slope, c.intercept


@dataclass(frozen=True)
class GapMapPair:
    """One structure on which both were computed: ``gap_eV`` of the mapped method (its HOMO-LUMO
    gap, or its first bright singlet for a map of ``quantity`` "first bright") and ``reference_eV``
    of the reference excitation, on the same geometry."""

    name: str
    formula: str
    natoms: int
    gap_eV: float
    reference_eV: float


@dataclass(frozen=True)
class GapMap:
    """A cheap method's HOMO-LUMO gap or first bright singlet (eV; :attr:`quantity`) mapped onto a
    computed reference excitation by a constant shift fitted on ``pairs`` (``data/gap_map.toml`` and
    ``data/ris_map.toml``, written by ``benchmarks/excitation_validation.py --write-map``). Unlike
    :class:`Calibration` it maps onto a calculation, not onto experiment. ``window_eV`` is its largest
    leave-one-formula-out error: the honest error bar of an estimate for a composition the fit has not seen."""

    gap_method: str
    reference: str
    pairs: tuple[GapMapPair, ...]
    source: str = ""
    #: what of ``gap_method`` is mapped: "gap" (its HOMO-LUMO gap) or "first bright" (the first bright
    #: singlet of its excitations, for an excitation method that is not a band as computed)
    quantity: str = "gap"

    @property
    def quantity_words(self) -> str:
        """:attr:`quantity` in words: 'HOMO-LUMO gap' or 'first bright singlet'."""
        return "HOMO-LUMO gap" if self.quantity == "gap" else "first bright singlet"

    @property
    def mapped(self) -> str:
        """What is mapped, in words: 'PBE/def2-SVP HOMO-LUMO gap', 'TDA-ris-PBE/def2-SVP first bright singlet'."""
        return f"{self.gap_method.split(':', 1)[-1]} {self.quantity_words}"

    @cached_property
    def shift_eV(self) -> float:
        """The fitted shift: estimate = gap + shift (eV)."""
        return fit_calibration([(p.gap_eV, p.reference_eV) for p in self.pairs], model="shift").intercept

    @cached_property
    def window_eV(self) -> float:
        """Largest leave-one-formula-out error of the shift (eV); NaN with fewer than two formulas."""
        err = leave_one_group_out(
            [p.gap_eV for p in self.pairs],
            [p.reference_eV for p in self.pairs],
            [p.formula for p in self.pairs],
            _shift_fit,
        )
        ok = err[np.isfinite(err)]
        return float(np.max(np.abs(ok))) if len(ok) else math.nan

    @property
    def sizes(self) -> tuple[int, int]:
        """Smallest and largest cluster (atoms) of the fit."""
        n = [p.natoms for p in self.pairs]
        return min(n), max(n)

    def window_with(self, extra_eV: float = 0.0) -> float:
        """:attr:`window_eV` combined in quadrature with another error ``extra_eV`` (eV), e.g. the
        reference method's own error against experiment."""
        return math.hypot(self.window_eV, extra_eV)

    def estimate_nm(self, gap_eV: float, extra_eV: float = 0.0) -> tuple[float, float, float] | None:
        """(estimate, shortest, longest) wavelength in nm for a gap in eV. The window is
        +-``window_eV`` in energy, combined in quadrature with ``extra_eV`` (e.g. the reference
        method's own error against experiment); the longest is ``inf`` where the window reaches
        zero energy. None for a gap below :data:`METALLIC_GAP_EV` (open shell or metallic: the gap
        is no excitation) or an estimate that is not a positive energy."""
        if not math.isfinite(gap_eV) or gap_eV < METALLIC_GAP_EV:
            return None
        e, w = gap_eV + self.shift_eV, self.window_with(extra_eV)
        if not (math.isfinite(e) and e > 0 and math.isfinite(w)):
            return None
        return HC_EV_NM / e, HC_EV_NM / (e + w), (HC_EV_NM / (e - w) if e > w else math.inf)

    def describe(self, natoms: int | None = None) -> str:
        """One line for reports: what is mapped onto what, on how much, with which error; with
        ``natoms`` (the largest cluster it is applied to) whether that is an extrapolation."""
        lo, hi = self.sizes
        formulas = len({p.formula for p in self.pairs})
        reach = (
            f"; at {natoms} atoms an extrapolation (fitted at {lo}-{hi}), not validated there"
            if natoms is not None and natoms > hi
            else f"; beyond {hi} atoms an extrapolation"
            if natoms is None
            else ""
        )
        return (
            f"band = {self.gap_method} {self.quantity_words} {self.shift_eV:+.2f} eV (a constant shift fitted onto the "
            f"{self.reference} of {len(self.pairs)} clusters of {lo}-{hi} atoms, {formulas} formulas; "
            f"±{self.window_eV:.2f} eV, its largest leave-one-formula-out error){reach}"
        )


#: a gap map needs this many formulas (a leave-one-formula-out error from two is one number twice)
MIN_GAP_MAP_FORMULAS = 3
_GAP_MAP_KEYS = {"gap_method", "reference", "source", "selection", "pair", "quantity"}
_GAP_PAIR_KEYS = {"name", "formula", "natoms", "gap_eV", "reference_eV"}
MAP_QUANTITIES = ("gap", "first bright")
#: The packaged maps: the PBE gap, and the TDA-ris-PBE first bright singlet, onto TDA-PBE0.
GAP_MAP_FILE, RIS_MAP_FILE = "gap_map.toml", "ris_map.toml"


def load_gap_map(path: str | Path | None = None, packaged: str = GAP_MAP_FILE) -> GapMap | None:
    """A gap map (default: the packaged ``packaged`` file, :data:`GAP_MAP_FILE` or
    :data:`RIS_MAP_FILE`); None when its pairs cover fewer than :data:`MIN_GAP_MAP_FORMULAS`
    formulas, or when no packaged file of that name exists. A malformed file is an
    :class:`InputError`."""
    if path is None and not _packaged(packaged).is_file():
        return None
    data, where = _read_toml(path, packaged)
    unknown = set(data) - _GAP_MAP_KEYS
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    quantity = _text(data.get("quantity", "gap"), where, "quantity")
    if quantity not in MAP_QUANTITIES:
        raise InputError(f"{where}: quantity must be one of {', '.join(MAP_QUANTITIES)}, got {quantity!r}")
    gap_method = _text(data.get("gap_method", ""), where, "gap_method")
    if not gap_method:
        raise InputError(f"{where}: gap_method is missing (the method whose gap is mapped)")
    entries = data.get("pair", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError(f"{where}: 'pair' must be an array of tables ([[pair]])")
    pairs = []
    for i, entry in enumerate(entries, start=1):
        here = f"{where}: pair #{i}"
        bad = set(entry) - _GAP_PAIR_KEYS
        missing = _GAP_PAIR_KEYS - set(entry)
        if bad or missing:
            raise InputError(f"{here}: {'unknown' if bad else 'missing'} key(s) {', '.join(sorted(bad or missing))}")
        pairs.append(
            GapMapPair(
                _text(entry["name"], here, "name"),
                canonical_formula(_text(entry["formula"], here, "formula")),
                int(_number(entry["natoms"], here, "natoms")),
                _number(entry["gap_eV"], here, "gap_eV"),
                _number(entry["reference_eV"], here, "reference_eV"),
            )
        )
    if len({p.formula for p in pairs}) < MIN_GAP_MAP_FORMULAS:
        return None
    return GapMap(
        gap_method,
        _text(data.get("reference", ""), where, "reference"),
        tuple(pairs),
        _text(data.get("source", ""), where, "source"),
        quantity,
    )
