"""Alloy energetics: mixing energies, the lower convex hull, Boltzmann populations.

Pure functions, no I/O. Energies in eV, temperatures in K.

Mixing is treated as a pseudo-binary A_x B_(1-x) on one sublattice with the
other sublattice fixed: Zn_xCd_(13-x)Se_13 mixes Zn/Cd on the cations,
Cd_nTe_ySe_z mixes Te/Se on the anions. For a composition with ``k`` A atoms out
of ``m`` sites on the mixing sublattice, x = k/m and

    E_mix = E - [x E(fixed + A_m) + (1 - x) E(fixed + B_m)]      (eV per cluster)

where the end members keep the same fixed sublattice (Cd7TeSe3 is compared with
Cd7Te4 and Cd7Se4). E_mix / N_atoms is reported too (eV/atom).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from airss_msc.composition import FORMAL_CHARGE, format_formula, parse_formula, symbols_of

#: Boltzmann constant (eV/K), CODATA 2018.
KB_EV = 8.617333262e-5


# --------------------------------------------------------------------------- #
# Mixing energies
# --------------------------------------------------------------------------- #


def _counts(c: str | Mapping[str, int]) -> dict[str, int]:
    return parse_formula(c) if isinstance(c, str) else {k: int(v) for k, v in c.items() if v}


def detect_mixing_pair(compositions: Iterable[str | Mapping[str, int]]) -> tuple[str, str]:
    """The two elements that mix, ``(A, B)`` in canonical order (``("Zn", "Cd")``,
    ``("Te", "Se")``); x is the fraction of A.

    The mixing sublattice is the one (cations: positive formal charge, anions:
    negative) on which exactly two elements occur across all compositions, the
    other sublattice holding one element. Raises ValueError otherwise (pass the
    pair explicitly to :func:`mixing_energies` then).
    """
    elements: set[str] = set()
    for c in compositions:
        elements |= set(_counts(c))
    unknown = sorted(el for el in elements if el not in FORMAL_CHARGE)
    if unknown:
        raise ValueError(f"cannot assign {', '.join(unknown)} to a sublattice; give the mixing pair explicitly")
    cations = {el for el in elements if FORMAL_CHARGE[el] > 0}
    anions = {el for el in elements if FORMAL_CHARGE[el] < 0}
    sizes = (len(cations), len(anions))
    if sizes == (2, 1):
        pair = cations
    elif sizes == (1, 2):
        pair = anions
    else:
        raise ValueError(
            f"cannot detect a pseudo-binary: cations {sorted(cations)}, anions {sorted(anions)}; "
            "need two elements on one sublattice and one on the other (or give the pair)"
        )
    a, b = symbols_of(dict.fromkeys(pair, 1))
    return a, b


def mixing_energy(
    energy: float, composition: str | Mapping[str, int], pair: tuple[str, str], e_end_a: float, e_end_b: float
) -> float:
    """E_mix (eV per cluster) of one composition from its energy and the energies
    (eV) of the end members with the whole mixing sublattice A (``e_end_a``) or B.

    Zero for either end member; linear interpolations of the end members give zero.
    """
    c = _counts(composition)
    a, b = pair
    m = c.get(a, 0) + c.get(b, 0)
    if m == 0:
        raise ValueError(f"{format_formula(c)} contains neither {a} nor {b}")
    x = c.get(a, 0) / m
    return float(energy - (x * e_end_a + (1.0 - x) * e_end_b))


@dataclass(frozen=True)
class MixingPoint:
    """Mixing energy of one composition (energies in eV)."""

    formula: str  #: canonical formula
    x: float  #: fraction of A on the mixing sublattice
    n_a: int  #: number of A atoms
    n_sites: int  #: sites on the mixing sublattice (A + B)
    n_atoms: int
    energy: float  #: lowest energy given for this composition (eV)
    end_a: str  #: end member formula with all sites A
    end_b: str  #: end member formula with all sites B
    e_mix: float  #: eV per cluster
    e_mix_per_atom: float  #: eV per atom


def _lowest_by_composition(energies) -> dict[str, float]:
    items = energies.items() if isinstance(energies, Mapping) else energies
    out: dict[str, float] = {}
    for formula, e in items:
        key = format_formula(_counts(formula))
        e = float(e)
        if not np.isfinite(e):
            raise ValueError(f"energy of {key} is not finite: {e}")
        out[key] = min(e, out.get(key, np.inf))
    return out


def mixing_energies(
    energies: Mapping[str, float] | Iterable[tuple[str, float]], pair: tuple[str, str] | None = None
) -> list[MixingPoint]:
    """Mixing energies of every composition given, against its own end members.

    energies: ``{formula: energy}`` or ``(formula, energy)`` pairs, eV; with
        several entries per composition (any spelling) the lowest is used.
    pair: mixing elements ``(A, B)``; detected by :func:`detect_mixing_pair` if None.

    Compositions are grouped into series by their fixed sublattice and number of
    mixing sites; each series needs both end members among the inputs, else a
    ValueError names the missing formula. Returned sorted by series then x.
    """
    lowest = _lowest_by_composition(energies)
    if not lowest:
        return []
    a, b = pair if pair is not None else detect_mixing_pair(lowest)
    points = []
    for formula, e in lowest.items():
        c = parse_formula(formula)
        fixed = {el: n for el, n in c.items() if el not in (a, b)}
        m = c.get(a, 0) + c.get(b, 0)
        if m == 0:
            raise ValueError(f"{formula} contains neither {a} nor {b}: not on the {a}-{b} pseudo-binary")
        end_a = format_formula({**fixed, a: m})
        end_b = format_formula({**fixed, b: m})
        missing = [f for f in (end_a, end_b) if f not in lowest]
        if missing:
            raise ValueError(
                f"mixing energy of {formula} needs the end member(s) {', '.join(missing)} "
                f"(same fixed sublattice, all {m} mixing sites {a} or {b}); none was given"
            )
        e_mix = mixing_energy(e, c, (a, b), lowest[end_a], lowest[end_b])
        n_atoms = sum(c.values())
        points.append(
            MixingPoint(formula, c.get(a, 0) / m, c.get(a, 0), m, n_atoms, e, end_a, end_b, e_mix, e_mix / n_atoms)
        )
    points.sort(key=lambda p: (p.end_b, p.x))
    return points


# --------------------------------------------------------------------------- #
# Convex hull
# --------------------------------------------------------------------------- #


def _cross(o, p, q) -> float:
    return (p[0] - o[0]) * (q[1] - o[1]) - (p[1] - o[1]) * (q[0] - o[0])


def lower_hull(x: np.ndarray, e: np.ndarray, *, tol: float = 1e-9) -> np.ndarray:
    """Indices of the vertices of the lower convex hull of points (x, e), sorted by x.

    Includes both end points (the lowest point at the smallest and at the largest
    x). Points lying on a hull segment within ``tol`` (eV) are not vertices; they
    have zero :func:`energy_above_hull`. Of several points at the same x only the
    lowest can be a vertex. Monotone-chain algorithm.
    """
    x = np.asarray(x, dtype=float)
    e = np.asarray(e, dtype=float)
    if x.shape != e.shape or x.ndim != 1:
        raise ValueError("x and e must be 1-D arrays of the same length")
    if len(x) == 0:
        return np.zeros(0, dtype=int)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(e))):
        raise ValueError("x and e must be finite")
    order = np.lexsort((e, x))  # by x, then lowest energy first
    hull: list[int] = []
    for i in order:
        if hull and x[hull[-1]] == x[i]:
            continue  # a higher point at the same x
        # Pop while the last vertex is on or above the chord (not a strict left turn).
        while len(hull) >= 2:
            o, p = hull[-2], hull[-1]
            cr = _cross((x[o], e[o]), (x[p], e[p]), (x[i], e[i]))
            # cr / dx is how far p lies *below* the chord o-i (eV); keep p only if below by > tol.
            if cr <= tol * (x[i] - x[o]):
                hull.pop()
            else:
                break
        hull.append(int(i))
    return np.array(hull, dtype=int)


def energy_above_hull(x: np.ndarray, e: np.ndarray, *, tol: float = 1e-9) -> np.ndarray:
    """Energy (same units as ``e``, eV) of every point above the lower hull at its x; >= 0."""
    x = np.asarray(x, dtype=float)
    e = np.asarray(e, dtype=float)
    h = lower_hull(x, e, tol=tol)
    if len(h) == 0:
        return np.zeros(0)
    hull_e = np.interp(x, x[h], e[h])
    return np.maximum(e - hull_e, 0.0)


# --------------------------------------------------------------------------- #
# Boltzmann populations
# --------------------------------------------------------------------------- #


def boltzmann_populations(energies_eV: np.ndarray, temperature_K: float = 298.15) -> np.ndarray:
    """Equilibrium populations p_i proportional to exp(-E_i / kB T); sum to 1.

    Energies in eV (any common offset), temperature in K. Shifted by the minimum
    before exponentiating, so large energies never overflow. ``+inf`` energies
    get zero population. At T = 0 the lowest level(s) share the population.
    """
    e = np.asarray(energies_eV, dtype=float)
    if e.size == 0:
        return np.zeros(0)
    if np.any(np.isnan(e)) or np.all(np.isinf(e)):
        raise ValueError("energies must be numbers with at least one finite value")
    if np.any(e == -np.inf):
        raise ValueError("energies must not be -inf")
    if temperature_K < 0 or not np.isfinite(temperature_K):
        raise ValueError(f"temperature must be finite and >= 0 K, got {temperature_K}")
    de = e - e.min()
    if temperature_K == 0:
        w = (de == 0).astype(float)
    else:
        with np.errstate(under="ignore"):  # far-away levels underflow to 0: correct
            w = np.exp(-de / (KB_EV * temperature_K))
    return w / w.sum()
