"""Isotope patterns of bare cluster ions (ESI-MS peak assignment: :mod:`airss_msc.analysis.peaks`).

Units: masses in Da (unified atomic mass units), peak positions in m/z
(Da per elementary charge), intensities relative (most abundant peak = 100).

Isotope masses and abundances come from ``molmass``; the nominal-mass envelope is molmass's,
the exact fine structure IsoSpecPy's threshold algorithm over the same table. Two conventions
that are easy to confuse for Cd/Te/Se clusters, because their lightest isotopes are rare:

* :func:`monoisotopic_mass` here is the *lightest-isotope* mass (Cd7TeSe3:
  1083.017 Da). Note that ``molmass.Formula.monoisotopic_mass`` uses the other
  common convention, the *most abundant isotope of each element* (Cd7TeSe3:
  1166.979 Da). Neither is a peak anyone observes for these clusters. (The
  1120.99 sometimes quoted for Cd7TeSe3 is neither: it is the m/z of the far-tail
  nominal-1122 peak, 3e-5 of the tallest, e.g. the first line of a molmass
  spectrum cut at a small intensity.)
* :func:`most_abundant_mass` is the tallest peak of the envelope (Cd7TeSe3:
  1151.981 Da, nominal mass number 1153 - the mass defect of 11 heavy atoms is
  about -1 Da, so "nominal" integers and real m/z differ by a whole peak).

Ions are bare clusters carrying ``charge`` elementary charges made by removing
(or, for negative charge, adding) electrons: m/z = (M - charge * m_e) / |charge|.
The electron-mass correction is 0.00055 Da per charge, always applied.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Literal

import numpy as np

from airss_msc.composition import format_formula, parse_formula
from airss_msc.errors import InputError

#: Electron mass, Da (CODATA 2018, as in molmass).
ELECTRON_MASS_DA = 5.48579909065e-4

Peak = tuple[float, float]
Mode = Literal["nominal", "exact"]

# --------------------------------------------------------------------------- #
# Patterns
# --------------------------------------------------------------------------- #


def _molmass():
    import molmass  # local import: keeps "import airss_msc" cheap

    return molmass


def element_counts(formula: str) -> dict[str, int]:
    """Parsed formula whose elements all have isotope data (InputError otherwise)."""
    counts = parse_formula(formula)
    elements = _molmass().ELEMENTS
    for el in counts:
        if el not in elements or not _isotopes(el):
            raise InputError(f"no natural isotope data for element {el!r} in formula {formula!r}")
    return counts


@cache
def _isotopes(symbol: str) -> tuple[tuple[int, float, float], ...]:
    """(mass number, mass in Da, abundance fraction) of the stable isotopes."""
    try:
        element = _molmass().ELEMENTS[symbol]
    except KeyError:
        return ()
    return tuple((a, iso.mass, iso.abundance) for a, iso in sorted(element.isotopes.items()) if iso.abundance > 0)


def check_charge(charge: int) -> int:
    """``charge`` as an int (InputError unless a non-zero integer)."""
    if isinstance(charge, bool) or not isinstance(charge, (int, np.integer)) or charge == 0:
        raise InputError(f"charge must be a non-zero integer, got {charge!r}")
    return int(charge)


def ion_mz(mass: np.ndarray, charge: int) -> np.ndarray:
    """m/z of bare ions of neutral ``mass`` (Da) that lost ``charge`` electrons."""
    return (mass - charge * ELECTRON_MASS_DA) / abs(charge)


@lru_cache(maxsize=8192)
def nominal_envelope(formula: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """molmass nominal-mass-binned distribution of a canonical formula:
    (mass numbers, abundance-weighted mean neutral masses in Da, fractions)."""
    spectrum = _molmass().Formula(formula).spectrum()
    entries = list(spectrum.values())
    numbers = np.array([e.massnumber for e in entries], dtype=int)
    masses = np.array([e.mass for e in entries], dtype=float)
    fractions = np.array([e.fraction for e in entries], dtype=float)
    for arr in (numbers, masses, fractions):
        arr.setflags(write=False)
    return numbers, masses, fractions


#: ``min_abundance`` down to which the exact fine structure is always computed: 1e-4 of the
#: tallest line is below an ESI-TOF's dynamic range, and a 26-27-atom cluster has 1-3e7 lines
#: there (~0.5 GB, a fraction of a second).
MIN_FINE_ABUNDANCE = 1e-4
#: Below it, the product of the elements' own line counts (an upper bound on the cluster's:
#: every line above the cut is a product of lines each above the cut) must stay under this.
MAX_FINE_BOUND = 200_000_000


def _fine_structure(counts: dict[str, int], min_abundance: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact (fine-structure) isotopologue masses (Da) and probabilities, every line at least
    ``min_abundance`` x the most probable one (IsoSpecPy's threshold algorithm, exact: no line
    above the threshold is missed)."""
    import IsoSpecPy  # local import: keeps "import airss_msc" cheap

    cut = max(float(min_abundance), 1e-300)

    def lines(part: dict[str, int]):
        # molmass's isotope table for both modes, so exact lines bin to the nominal envelope
        tables = [_isotopes(el) for el in part]
        return IsoSpecPy.IsoThreshold(
            cut,
            absolute=False,
            get_confs=False,
            atomCounts=list(part.values()),
            isotopeMasses=[[m for _, m, _ in iso] for iso in tables],
            isotopeProbabilities=[[a for _, _, a in iso] for iso in tables],
        )

    if cut < MIN_FINE_ABUNDANCE:
        bound = 1
        for el, n in counts.items():
            bound *= len(lines({el: n}))
        if bound > MAX_FINE_BOUND:
            raise InputError(
                f"exact isotope fine structure too large for {format_formula(counts)} at "
                f"min_abundance={min_abundance:g}; use min_abundance >= {MIN_FINE_ABUNDANCE:g} "
                "or mode='nominal'"
            )
    dist = lines(counts)
    return np.array(dist.np_masses(), dtype=float), np.array(dist.np_probs(), dtype=float)


def isotope_pattern(
    formula: str,
    charge: int = 1,
    mode: Mode = "nominal",
    min_abundance: float = 1e-3,
) -> list[Peak]:
    """Isotope pattern of the bare ion ``formula`` with ``charge`` as (m/z, intensity).

    Intensities are relative, the most abundant peak = 100; peaks weaker than
    ``min_abundance`` x the most abundant are dropped (1e-3 = 0.1 %). Sorted by m/z.

    ``mode="nominal"``: one peak per nominal mass number (molmass binning) placed
    at the abundance-weighted mean exact mass of that bin - the centroid an
    instrument of resolution ~1e4 (ESI-TOF) reports. ``mode="exact"``: every
    isotopologue at its exact mass (fine structure; within one nominal bin these
    spread by at most ~0.03 Da for Cd/Te/Se clusters, so resolving them needs
    R > 1e5). In exact mode ``min_abundance`` is relative to the most abundant
    single isotopologue, and there are many: ~1e5 lines for Cd7TeSe3 at 1e-3.
    """
    counts = element_counts(formula)
    charge = check_charge(charge)
    if not (0.0 <= float(min_abundance) < 1.0):
        raise InputError(f"min_abundance must be in [0, 1), got {min_abundance!r}")
    if mode == "nominal":
        _, mass, prob = nominal_envelope(format_formula(counts))
    elif mode == "exact":
        mass, prob = _fine_structure(counts, float(min_abundance))
    else:
        raise InputError(f"mode must be 'nominal' or 'exact', got {mode!r}")
    keep = prob >= min_abundance * prob.max()
    mz = ion_mz(mass[keep], charge)
    inten = 100.0 * prob[keep] / prob.max()
    order = np.argsort(mz)
    return [(float(a), float(b)) for a, b in zip(mz[order], inten[order], strict=True)]


def monoisotopic_mass(formula: str) -> float:
    """Neutral mass (Da) built from the lightest stable isotope of every element.

    Cd7TeSe3 -> 1083.017 Da (106Cd7 120Te 74Se3). Not molmass's
    ``monoisotopic_mass``, which uses the most abundant isotopes (1166.979 Da).
    """
    counts = element_counts(formula)
    return float(sum(n * _isotopes(el)[0][1] for el, n in counts.items()))


def most_abundant_mass(formula: str) -> float:
    """Neutral mass (Da) of the most abundant nominal-mass peak of the envelope
    (abundance-weighted mean of that bin). Cd7TeSe3 -> 1151.981 Da, whose
    nominal mass number is 1153. For the ion's m/z use :func:`isotope_pattern`."""
    _, mass, prob = nominal_envelope(format_formula(element_counts(formula)))
    return float(mass[int(np.argmax(prob))])
