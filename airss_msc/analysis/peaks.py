"""ESI-MS peak lists: reading, peak picking and assignment to cluster formulas.

Units: m/z in Da per elementary charge, intensities relative. Predicted patterns come from
:mod:`airss_msc.analysis.isotopes`. :func:`assign_peaks` fits the measured peak list as a
non-negative sum of the predicted nominal patterns of all candidate formulas (a deconvolution,
because Cd_xTe_ySe_z envelopes are ~45 Da wide and overlap), then scores each species; see
:func:`match_species` for the score.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from airss_msc.analysis.isotopes import Peak, check_charge, element_counts, ion_mz, nominal_envelope
from airss_msc.composition import format_formula
from airss_msc.errors import InputError

#: Pattern cosine above which two candidates are reported as hard to tell apart.
AMBIGUOUS_COSINE = 0.98

#: Strength of the mass-error ridge penalty in the non-negative fit (see _fit_species).
MASS_PENALTY = 0.1


# --------------------------------------------------------------------------- #
# Peak lists
# --------------------------------------------------------------------------- #

_MZ_NAMES = {"mz", "m/z", "m_z", "m/z (da)", "mass", "x", "x(thomsons)"}
_INT_NAMES = {"intensity", "int", "abundance", "counts", "y", "y(counts)", "i"}


def read_peaks_csv(path: str | Path) -> list[Peak]:
    """Read (m/z, intensity) rows from a CSV file.

    Columns ``mz,intensity`` (header optional; a header may name them ``m/z``,
    ``intensity``/``abundance``/``counts`` in any column order, other columns are
    ignored). Blank lines and ``#`` comment lines are skipped. Raises
    :class:`InputError` with a one-line ``path:line: reason`` message.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: peak file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read peak file ({exc.__class__.__name__})") from None
    columns: tuple[int, int] | None = None
    peaks: list[Peak] = []
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        fields = [f.strip() for f in row]
        if not any(fields):
            continue
        if fields[0].startswith("#"):
            # Instrument exports put their header behind '#'; use it only if it names columns.
            if columns is None and not peaks:
                found = _header_columns([fields[0].lstrip("#").strip()] + fields[1:])
                columns = found or None
            continue
        if columns is None and not peaks and not _is_number(fields[0]):
            found = _header_columns(fields)
            if found is None:
                raise InputError(
                    f"{path}:{lineno}: header must name an m/z column ('mz') and an "
                    f"intensity column ('intensity'), got {','.join(fields)!r}"
                )
            columns = found
            continue
        i_mz, i_int = columns or (0, 1)
        if len(fields) <= max(i_mz, i_int):
            raise InputError(f"{path}:{lineno}: expected mz,intensity, got {','.join(fields)!r}")
        try:
            mz, inten = float(fields[i_mz]), float(fields[i_int])
        except ValueError:
            raise InputError(f"{path}:{lineno}: not a number in {','.join(fields)!r}") from None
        if not (math.isfinite(mz) and math.isfinite(inten)) or mz <= 0 or inten < 0:
            raise InputError(f"{path}:{lineno}: need m/z > 0 and intensity >= 0, got {mz!r}, {inten!r}")
        peaks.append((mz, inten))
    if not peaks:
        raise InputError(f"{path}: no peaks (expected rows of mz,intensity)")
    return peaks


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _header_columns(fields: Sequence[str]) -> tuple[int, int] | None:
    names = [f.strip().strip('"').lower() for f in fields]
    i_mz = next((i for i, n in enumerate(names) if n in _MZ_NAMES), None)
    i_int = next((i for i, n in enumerate(names) if n in _INT_NAMES), None)
    if i_mz is None or i_int is None:
        return None
    return i_mz, i_int


def _as_array(peaks: Iterable[Peak] | np.ndarray) -> np.ndarray:
    try:
        arr = np.asarray(list(peaks) if not isinstance(peaks, np.ndarray) else peaks, dtype=float)
    except (TypeError, ValueError):
        raise InputError("peaks must be a sequence of (m/z, intensity) pairs") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) == 0:
        raise InputError("peaks must be a non-empty sequence of (m/z, intensity) pairs")
    if not np.all(np.isfinite(arr)) or np.any(arr[:, 0] <= 0) or np.any(arr[:, 1] < 0):
        raise InputError("peaks need finite m/z > 0 and intensity >= 0")
    return arr[np.argsort(arr[:, 0], kind="stable")]


def centroid(profile: Iterable[Peak] | np.ndarray, min_rel_intensity: float = 1e-3) -> list[Peak]:
    """Peak-pick a profile spectrum (dense (m/z, intensity) samples).

    Every local maximum at least ``min_rel_intensity`` x the largest becomes one
    peak: m/z = intensity-weighted mean of the contiguous samples above half its
    height, intensity = its height (isotope peaks share one width, so heights are
    proportional to areas).
    """
    arr = _as_array(profile)
    mz, y = arr[:, 0], arr[:, 1]
    if len(y) < 3:
        return [(float(a), float(b)) for a, b in arr if b > 0]
    floor = min_rel_intensity * y.max()
    left = np.r_[-np.inf, y[:-1]]
    right = np.r_[y[1:], -np.inf]
    # ">=" on the left, ">" on the right: a flat top yields exactly one maximum.
    maxima = np.flatnonzero((y >= left) & (y > right) & (y >= floor) & (y > 0))
    out: list[Peak] = []
    for i in maxima:
        half = y[i] / 2
        lo = i
        while lo > 0 and half <= y[lo - 1] <= y[lo]:
            lo -= 1
        hi = i
        while hi < len(y) - 1 and half <= y[hi + 1] <= y[hi]:
            hi += 1
        w = y[lo : hi + 1]
        out.append((float(np.dot(mz[lo : hi + 1], w) / w.sum()), float(y[i])))
    return out


# --------------------------------------------------------------------------- #
# Assignment
# --------------------------------------------------------------------------- #


def candidate_formulas(
    elements: Sequence[str] = ("Cd", "Te", "Se"),
    atoms: tuple[int, int] = (9, 16),
    require_all: bool = False,
) -> list[str]:
    """Every formula over ``elements`` with total atom count in ``atoms`` (inclusive).

    Counts may be zero (binary Cd_xSe_z fragments, even pure Cd_n) unless
    ``require_all``; charge balance is not required (the ESI-MS fragments
    Cd7TeSe3 and Cd6Te2Se3 are Cd-rich).
    """
    elements = tuple(dict.fromkeys(elements))
    if not elements:
        raise InputError("no elements given for candidate formulas")
    for el in elements:
        element_counts(el)  # unknown symbols or elements without isotope data fail here
    lo, hi = atoms
    if lo < 1 or hi < lo:
        raise InputError(f"atom range must satisfy 1 <= lo <= hi, got {atoms!r}")
    start = 1 if require_all else 0
    out = []
    for n in range(lo, hi + 1):
        for combo in itertools.product(range(start, n + 1), repeat=len(elements) - 1):
            last = n - sum(combo)
            if last < start:
                continue
            out.append(format_formula(dict(zip(elements, (*combo, last), strict=True))))
    return out


@dataclass(frozen=True)
class SpeciesMatch:
    """How well one candidate formula explains the measured peaks.

    ``score`` = ``cosine`` x exp(-(mass_error / mass_sigma)^2 / 2), in [0, 1].
    ``cosine``: predicted pattern vs the measured intensities at its peak
    positions after subtracting the other fitted species. ``raw_cosine``: the same
    without the subtraction. ``weight``: fitted height of its most abundant peak,
    in measured intensity units. ``mass_error``:
    measured minus predicted m/z of its most abundant peak. ``ambiguous_with``:
    candidates in the fit whose predicted nominal-mass patterns have cosine >=
    0.98 with this one's (e.g. Cd7TeSe3 and Cd5Te4Se: Cd2Se2 and Te3 weigh the
    same to 0.1 Da): intensities barely tell them apart, so check mass_error.
    """

    formula: str
    score: float
    cosine: float
    raw_cosine: float
    weight: float
    base_mz: float
    mass_error: float
    mass_error_ppm: float
    n_matched: int
    n_predicted: int
    ambiguous_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class PeakCandidate:
    """One formula proposed for one measured peak.

    ``share``: fraction of this peak's measured intensity that the fitted
    species accounts for (0..1); ``score`` = ``share`` x ``species.score``.
    ``predicted``: the species' relative intensity at this peak (0-100).
    """

    formula: str
    score: float
    share: float
    predicted: float
    species: SpeciesMatch


@dataclass(frozen=True)
class PeakAssignment:
    """A measured peak (m/z, intensity) and its candidates, best first."""

    mz: float
    intensity: float
    candidates: tuple[PeakCandidate, ...]

    @property
    def best(self) -> PeakCandidate | None:
        return self.candidates[0] if self.candidates else None


@dataclass
class _Candidate:
    formula: str
    numbers: np.ndarray  # nominal mass numbers of predicted peaks
    mz: np.ndarray
    rel: np.ndarray  # predicted intensities, tallest = 1
    rows: np.ndarray  # measured-peak index per predicted peak, -1 = none within tolerance
    base: int  # index of the tallest predicted peak


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else 0.0


def _prepare(peaks: Iterable[Peak] | np.ndarray, charge: int, tolerance: float, profile: bool | None) -> np.ndarray:
    arr = _as_array(peaks)
    if profile is None:
        # Centroided isotope peaks sit 1/|z| apart; profile samples are much denser.
        profile = len(arr) >= 5 and float(np.median(np.diff(arr[:, 0]))) < 0.25 / abs(charge)
    if profile:
        arr = _as_array(centroid(arr))
    if len(arr) > 1 and float(np.min(np.diff(arr[:, 0]))) < tolerance:
        # Two centroids inside one matching window would make the match ambiguous.
        arr = _merge_close(arr, tolerance)
    return arr


def _merge_close(arr: np.ndarray, tolerance: float) -> np.ndarray:
    out = [list(arr[0])]
    for mz, y in arr[1:]:
        if mz - out[-1][0] < tolerance:
            m0, y0 = out[-1]
            tot = y0 + y
            out[-1] = [(m0 * y0 + mz * y) / tot if tot > 0 else (m0 + mz) / 2, tot]
        else:
            out.append([mz, y])
    return np.array(out)


def match_species(
    peaks: Iterable[Peak] | np.ndarray,
    elements: Sequence[str] = ("Cd", "Te", "Se"),
    atoms: tuple[int, int] = (9, 16),
    charge: int = 1,
    tolerance: float = 0.25,
    mass_sigma: float = 0.05,
    min_abundance: float = 1e-3,
    min_weight: float = 0.01,
    candidates: Sequence[str] | None = None,
    profile: bool | None = None,
) -> list[SpeciesMatch]:
    """Rank candidate formulas by how well they explain a measured spectrum.

    ``peaks``: centroided (m/z, intensity) pairs, or a profile spectrum
    (detected when samples are closer than 0.25/|charge|, or forced with
    ``profile``), which is centroided first. ``tolerance`` (m/z): largest
    distance at which a predicted peak matches a measured one; must stay below
    half the isotope spacing, 0.5/|charge|. ``mass_sigma`` (m/z): expected
    mass accuracy, sets how fast the score falls with the tallest peak's mass
    error (0.05 ~ 40 ppm at m/z 1200, a loosely calibrated TOF).
    ``min_abundance``: predicted peaks below this fraction of their tallest are
    left out of the fit. ``min_weight``: species whose fitted tallest peak is
    below this fraction of the tallest measured peak are not reported (the fit
    uses tiny amounts of many formulas to mop up noise and pattern tails).

    Method: (1) candidates are all formulas of :func:`candidate_formulas`
    (or ``candidates``) whose tallest predicted peak matches a measured peak;
    (2) the measured intensities are fitted as a non-negative sum of the
    candidates' predicted patterns (scipy NNLS; predicted peaks with no measured
    peak count as measured zeros, so a candidate is penalised for peaks that are
    missing; a ridge term MASS_PENALTY * (mass_error / mass_sigma)^2 * weight^2
    per candidate gives the weight of near-isobars - whole families differ only
    by Cd2Se2 <-> Te3 - to the one whose masses match); (3) each candidate is
    scored as described in :class:`SpeciesMatch`. A spectrum whose m/z scale is
    off by more than ``mass_sigma`` scores low everywhere: recalibrate it or
    raise ``mass_sigma``.
    Only candidates with fitted weight >= ``min_weight`` are returned, best
    score first.
    """
    charge, tolerance, mass_sigma = _check_options(charge, tolerance, mass_sigma)
    arr = _prepare(peaks, charge, tolerance, profile)
    return _fit_species(arr, elements, atoms, charge, tolerance, mass_sigma, min_abundance, min_weight, candidates)


def _check_options(charge: int, tolerance: float, mass_sigma: float) -> tuple[int, float, float]:
    charge = check_charge(charge)
    if not (0 < tolerance < 0.5 / abs(charge)):
        raise InputError(f"tolerance must be in (0, {0.5 / abs(charge):g}) m/z for charge {charge}, got {tolerance!r}")
    if not mass_sigma > 0:
        raise InputError(f"mass_sigma must be positive (m/z), got {mass_sigma!r}")
    return charge, float(tolerance), float(mass_sigma)


def _fit_species(
    arr: np.ndarray,
    elements: Sequence[str],
    atoms: tuple[int, int],
    charge: int,
    tolerance: float,
    mass_sigma: float,
    min_abundance: float,
    min_weight: float,
    candidates: Sequence[str] | None,
) -> list[SpeciesMatch]:
    if not (0 <= min_abundance < 1 and 0 <= min_weight < 1):
        raise InputError("min_abundance and min_weight must be fractions in [0, 1)")
    mz_meas, y_meas = arr[:, 0], arr[:, 1]
    ymax = float(y_meas.max())
    if ymax <= 0:
        raise InputError("all peak intensities are zero")
    y = y_meas / ymax

    formulas = list(candidates) if candidates is not None else candidate_formulas(elements, atoms)
    cands = _match_candidates(formulas, mz_meas, charge, tolerance, min_abundance)
    if not cands:
        return []

    # Design matrix: one row per measured peak plus one per nominal mass number
    # that some candidate predicts but nothing was measured at (a measured zero).
    phantom: dict[int, int] = {}
    for c in cands:
        for num, row in zip(c.numbers, c.rows, strict=True):
            if row < 0 and int(num) not in phantom:
                phantom[int(num)] = len(y) + len(phantom)
    A = np.zeros((len(y) + len(phantom), len(cands)))
    cand_rows: list[np.ndarray] = []
    for j, c in enumerate(cands):
        rows = np.array([r if r >= 0 else phantom[int(n)] for r, n in zip(c.rows, c.numbers, strict=True)])
        A[rows, j] = c.rel
        cand_rows.append(rows)
    target = np.concatenate([y, np.zeros(len(phantom))])
    errors = np.array([mz_meas[c.rows[c.base]] - c.mz[c.base] for c in cands])
    # Near-isobars (Cd2Se2 vs Te3 differ by ~0.08 Da) fit the intensities almost
    # equally well; a ridge penalty growing with each candidate's own mass error
    # hands the weight to the one whose masses match, instead of splitting it.
    ridge = np.sqrt(MASS_PENALTY) * np.abs(errors) / mass_sigma
    A_fit = np.vstack([A, np.diag(ridge)])
    w, _ = nnls(A_fit, np.concatenate([target, np.zeros(len(cands))]), maxiter=50 * A.shape[1])
    fitted = A @ w

    results = []
    for j, c in enumerate(cands):
        if w[j] <= max(min_weight, 1e-9):
            continue
        rows = cand_rows[j]
        own = A[rows, j] * w[j]
        # Measured minus everybody else's fitted contribution, clipped at zero.
        cleaned = np.clip(target[rows] - (fitted[rows] - own), 0.0, None)
        cos = _cosine(c.rel, cleaned)
        err = float(errors[j])
        results.append(
            SpeciesMatch(
                formula=c.formula,
                score=cos * math.exp(-0.5 * (err / mass_sigma) ** 2),
                cosine=cos,
                raw_cosine=_cosine(c.rel, target[rows]),
                weight=float(w[j] * ymax),
                base_mz=float(c.mz[c.base]),
                mass_error=err,
                mass_error_ppm=1e6 * err / float(c.mz[c.base]),
                n_matched=int(np.sum(c.rows >= 0)),
                n_predicted=len(c.rows),
                ambiguous_with=_ambiguous(c, cands),
            )
        )
    results.sort(key=lambda s: (-s.score, -s.weight))
    return results


def _match_candidates(
    formulas: Sequence[str],
    mz_meas: np.ndarray,
    charge: int,
    tolerance: float,
    min_abundance: float,
) -> list[_Candidate]:
    lo, hi = mz_meas[0] - tolerance, mz_meas[-1] + tolerance
    out = []
    for formula in formulas:
        numbers, mass, prob = nominal_envelope(format_formula(element_counts(formula)))
        keep = prob >= min_abundance * prob.max()
        numbers, mz, rel = numbers[keep], ion_mz(mass[keep], charge), prob[keep] / prob.max()
        base = int(np.argmax(rel))
        if not (lo <= mz[base] <= hi):
            continue
        idx = np.clip(np.searchsorted(mz_meas, mz), 1, len(mz_meas) - 1)
        nearest = np.where(np.abs(mz_meas[idx - 1] - mz) <= np.abs(mz_meas[idx] - mz), idx - 1, idx)
        if len(mz_meas) == 1:
            nearest = np.zeros(len(mz), dtype=int)
        rows = np.where(np.abs(mz_meas[nearest] - mz) <= tolerance, nearest, -1)
        if rows[base] < 0:
            continue  # its tallest peak was not observed: not a candidate
        out.append(_Candidate(formula, numbers, mz, rel, rows, base))
    return out


def _ambiguous(c: _Candidate, cands: list[_Candidate]) -> tuple[str, ...]:
    """Other candidates whose predicted nominal-mass pattern has cosine >= 0.98
    with ``c``'s: intensities alone can hardly tell them apart."""
    out = []
    for d in cands:
        if d is c or d.numbers[0] > c.numbers[-1] or c.numbers[0] > d.numbers[-1]:
            continue
        lo = min(c.numbers[0], d.numbers[0])
        size = max(c.numbers[-1], d.numbers[-1]) - lo + 1
        vc, vd = np.zeros(size), np.zeros(size)
        vc[c.numbers - lo] = c.rel
        vd[d.numbers - lo] = d.rel
        if _cosine(vc, vd) >= AMBIGUOUS_COSINE:
            out.append(d.formula)
    return tuple(out)


def assign_peaks(
    peaks: Iterable[Peak] | np.ndarray,
    elements: Sequence[str] = ("Cd", "Te", "Se"),
    atoms: tuple[int, int] = (9, 16),
    charge: int = 1,
    tolerance: float = 0.25,
    mass_sigma: float = 0.05,
    min_abundance: float = 1e-3,
    min_weight: float = 0.01,
    top: int = 5,
    candidates: Sequence[str] | None = None,
    profile: bool | None = None,
) -> list[PeakAssignment]:
    """Candidate formulas for every measured peak, best first (at most ``top``).

    Arguments as in :func:`match_species` (m/z units for ``tolerance`` and
    ``mass_sigma``). A species is proposed for a peak when one of its predicted
    peaks matches it; the per-peak score is the fitted share of that peak's
    intensity times the species score (see :class:`PeakCandidate`), so a peak
    shared by two overlapping envelopes lists both. Peaks nobody explains get
    an empty candidate tuple. Returned in increasing m/z of the (centroided)
    peaks.
    """
    charge, tolerance, mass_sigma = _check_options(charge, tolerance, mass_sigma)
    if top < 1:
        raise InputError(f"top must be at least 1, got {top!r}")
    arr = _prepare(peaks, charge, tolerance, profile)
    species = _fit_species(arr, elements, atoms, charge, tolerance, mass_sigma, min_abundance, min_weight, candidates)
    mz_meas, y_meas = arr[:, 0], arr[:, 1]
    per_peak: list[list[PeakCandidate]] = [[] for _ in range(len(arr))]
    for s in species:
        _numbers, mass, prob = nominal_envelope(format_formula(element_counts(s.formula)))
        keep = prob >= min_abundance * prob.max()
        mz, rel = ion_mz(mass[keep], charge), prob[keep] / prob.max()
        for m, r in zip(mz, rel, strict=True):
            i = int(np.argmin(np.abs(mz_meas - m)))
            if abs(mz_meas[i] - m) > tolerance:
                continue
            share = float(min(1.0, s.weight * r / y_meas[i])) if y_meas[i] > 0 else 0.0
            per_peak[i].append(PeakCandidate(s.formula, share * s.score, share, float(100 * r), s))
    out = []
    for i, cands in enumerate(per_peak):
        cands.sort(key=lambda c: (-c.score, -c.species.score))
        out.append(PeakAssignment(float(mz_meas[i]), float(y_meas[i]), tuple(cands[:top])))
    return out
