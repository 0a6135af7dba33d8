"""Per species-pair minimum separations (Angstrom), like AIRSS's MINSEP.

Defaults come from chemistry: cation-anion separations sit just below the bulk
bond length, while cation-cation and anion-anion separations are wider, because
random starts with anion-anion contacts relax into Se-Se bonded junk (as this
project's first searches found). A separation may be a range ``lo-hi``; one value is then
drawn per structure (as buildcell does) and stored with it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase.data import atomic_numbers, covalent_radii

from airss_msc.composition import ANIONS, CATIONS, FORMAL_CHARGE
from airss_msc.errors import InputError
from airss_msc.generation.geometry import BOND_FACTOR, radius

#: Bulk (zinc blende / wurtzite) cation-anion bond lengths, Angstrom.
BOND_LENGTH = {
    ("Cd", "S"): 2.52,
    ("Cd", "Se"): 2.63,
    ("Cd", "Te"): 2.81,
    ("Zn", "S"): 2.34,
    ("Zn", "Se"): 2.45,
    ("Zn", "Te"): 2.64,
    ("Hg", "S"): 2.53,
    ("Hg", "Se"): 2.63,
    ("Hg", "Te"): 2.80,
}

#: Scale factors on the bond length: close contacts allowed for unlike ions,
#: wide ones for like ions (anion-anion widest).
CATION_ANION_SCALE = 0.92
CATION_CATION_SCALE = 1.15
ANION_ANION_SCALE = 1.30

#: Lennard-Jones dummy element X, reduced units (sigma = 1).
LJ_MINSEP = 0.90


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def _bond(cation: str, anion: str) -> float:
    if (cation, anion) in BOND_LENGTH:
        return BOND_LENGTH[(cation, anion)]
    return float(covalent_radii[atomic_numbers[cation]] + covalent_radii[atomic_numbers[anion]])


def _mean_bond(elements: set[str], partners: set[str], default: float) -> float:
    bonds = [_bond(a, b) for a in elements for b in partners]
    return float(np.mean(bonds)) if bonds else default


def default_minsep(a: str, b: str, present: set[str] | None = None) -> float:
    """Chemistry-based default minimum separation (Angstrom) between species a and b.

    ``present`` is the set of elements in the cluster; like-ion separations are
    scaled from the mean bond length to the opposite ions that are present.
    """
    present = set(present or {a, b})
    if a == "X" or b == "X":
        return LJ_MINSEP
    anions = (present & ANIONS) or {"Se"}
    cations = (present & CATIONS) or {"Cd"}
    if {a, b} <= CATIONS | ANIONS:
        if a in CATIONS and b in ANIONS:
            return round(CATION_ANION_SCALE * _bond(a, b), 3)
        if b in CATIONS and a in ANIONS:
            return round(CATION_ANION_SCALE * _bond(b, a), 3)
        if a in CATIONS:  # both cations
            bond = 0.5 * (_mean_bond({a}, anions, 2.6) + _mean_bond({b}, anions, 2.6))
            return round(CATION_CATION_SCALE * bond, 3)
        bond = 0.5 * (_mean_bond(cations, {a}, 2.6) + _mean_bond(cations, {b}, 2.6))
        return round(ANION_ANION_SCALE * bond, 3)
    # Elements outside II-VI chemistry: a fraction of the covalent bond length.
    ra, rb = covalent_radii[atomic_numbers[a]], covalent_radii[atomic_numbers[b]]
    return round(0.85 * float(ra + rb), 3)


_SPEC = re.compile(r"^\s*([A-Z][a-z]?)\s*-\s*([A-Z][a-z]?)\s*=\s*([0-9.]+)\s*(?:-\s*([0-9.]+))?\s*$")


def _check_element(el: str, spec: str) -> None:
    if el not in atomic_numbers:
        raise InputError(f"unknown element {el!r} in separation {spec!r}")


def parse_minsep_spec(spec: str) -> tuple[tuple[str, str], tuple[float, float]]:
    """Parse ``Cd-Se=2.5`` or ``Cd-Se=2.4-2.7`` into ((a, b), (lo, hi)), Angstrom."""
    m = _SPEC.match(spec)
    if not m:
        raise InputError(f"malformed separation {spec!r}: expected A-B=D or A-B=LO-HI, e.g. Cd-Se=2.5")
    a, b = m.group(1), m.group(2)
    _check_element(a, spec)
    _check_element(b, spec)
    try:
        lo = float(m.group(3))
        hi = float(m.group(4)) if m.group(4) else lo
    except ValueError:
        raise InputError(f"malformed separation {spec!r}: not a number") from None
    return _pair(a, b), _validated_range(lo, hi, spec)


def _validated_range(lo: float, hi: float, spec: str) -> tuple[float, float]:
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0 or hi < lo:
        raise InputError(f"impossible separation {spec!r}: need 0 < LO <= HI (Angstrom)")
    return (lo, hi)


def _range_from_value(value, spec: str) -> tuple[float, float]:
    """Config values: a number, a two-item list, or a string ``2.4-2.7``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _validated_range(float(value), float(value), spec)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            return _validated_range(float(value[0]), float(value[1]), spec)
        except (TypeError, ValueError):
            pass
    if isinstance(value, str):
        return parse_minsep_spec(f"{spec}={value}")[1]
    raise InputError(f"malformed separation {spec}={value!r}: expected a number or [lo, hi]")


@dataclass(frozen=True)
class SeparationRules:
    """Minimum separations for one composition: user overrides on top of defaults.

    ``ranges`` maps sorted element pairs to (lo, hi) in Angstrom; ``slack``
    multiplies every drawn value (AIRSS-like knob to loosen or tighten all).
    """

    elements: tuple[str, ...]
    ranges: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    slack: float = 1.0
    #: overrides naming an element the cluster does not have (ignored; the CLI warns)
    ignored: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        elements,
        overrides: dict | Sequence[str] | None = None,
        slack: float = 1.0,
    ) -> SeparationRules:
        """Defaults for ``elements`` with ``overrides`` applied.

        ``overrides`` is a mapping ``{"Cd-Se": 2.4 | [2.4, 2.7] | "2.4-2.7"}`` (config)
        or a list of ``"Cd-Se=2.4"`` strings (command line). Pairs naming elements
        absent from the cluster are ignored, so one config serves many compositions.
        """
        elements = tuple(sorted(set(elements)))
        for el in elements:
            if el not in atomic_numbers:
                raise InputError(f"unknown element {el!r}")
        if not (isinstance(slack, (int, float)) and slack > 0 and np.isfinite(slack)):
            raise InputError(f"impossible separation slack {slack!r}: must be a positive number")
        present = set(elements)
        ranges: dict[tuple[str, str], tuple[float, float]] = {}
        for a, b in itertools.combinations_with_replacement(elements, 2):
            d = default_minsep(a, b, present)
            ranges[_pair(a, b)] = (d, d)
        items: list[tuple[tuple[str, str], tuple[float, float]]] = []
        if isinstance(overrides, dict):
            for key, value in overrides.items():
                m = re.fullmatch(r"\s*([A-Z][a-z]?)\s*-\s*([A-Z][a-z]?)\s*", str(key))
                if not m:
                    raise InputError(f"malformed separation key {key!r}: expected A-B, e.g. Cd-Se")
                _check_element(m.group(1), key)
                _check_element(m.group(2), key)
                items.append((_pair(m.group(1), m.group(2)), _range_from_value(value, str(key))))
        elif overrides:
            items = [parse_minsep_spec(s) for s in overrides]
        ignored = []
        for pair, rng in items:
            if pair in ranges:
                ranges[pair] = rng
            else:
                ignored.append(f"{pair[0]}-{pair[1]}")
        for (a, b), (lo, _) in ranges.items():
            # a cation-anion pair kept beyond bonding distance cannot form a cluster: the
            # generator would only make fragments (Cd3 beside Se3)
            if FORMAL_CHARGE.get(a, 0) * FORMAL_CHARGE.get(b, 0) < 0:
                reach = BOND_FACTOR * (radius(a) + radius(b))
                if lo * slack >= reach:
                    raise InputError(
                        f"impossible separation {a}-{b} >= {lo * slack:.2f} A: {a} and {b} bond only "
                        f"below {reach:.2f} A ({BOND_FACTOR} x covalent radii), so no {a}-{b} bond could "
                        "form and the cluster would fall apart"
                    )
        return cls(elements, ranges, float(slack), tuple(ignored))

    def draw(self, rng: np.random.Generator) -> dict[tuple[str, str], float]:
        """One value per pair (uniform in its range) times the slack, Angstrom.

        Pairs are visited in sorted order so the draw is reproducible from the seed.
        """
        out = {}
        for pair in sorted(self.ranges):
            lo, hi = self.ranges[pair]
            value = lo if hi == lo else float(rng.uniform(lo, hi))
            out[pair] = round(value * self.slack, 3)  # stored exactly with the structure
        return out

    def typical_bond(self, symbols) -> float:
        """Mean nearest-neighbour distance implied by the separations' low ends (Angstrom)."""
        lo = {pair: r[0] for pair, r in self.ranges.items()}
        if len(symbols) < 2:
            return float(min(lo.values())) / CATION_ANION_SCALE
        need = minsep_matrix(symbols, lo)
        np.fill_diagonal(need, np.inf)
        return float(np.mean(need.min(axis=1)) / CATION_ANION_SCALE)

    def largest(self) -> dict[tuple[str, str], float]:
        """Upper end of every range times the slack: the worst case for feasibility."""
        return {p: hi * self.slack for p, (lo, hi) in self.ranges.items()}


def minsep_matrix(symbols, drawn: dict[tuple[str, str], float]) -> np.ndarray:
    """Matrix of minimum separations (Angstrom) for a list of symbols."""
    symbols = list(symbols)
    species = sorted(set(symbols))
    index = {el: i for i, el in enumerate(species)}
    idx = np.array([index[s] for s in symbols])
    return species_table(species, drawn)[np.ix_(idx, idx)]


def species_table(species, drawn: dict[tuple[str, str], float]) -> np.ndarray:
    """(S, S) minimum separations (Angstrom) between the ``species`` in the given order.

    ``species_table(species, drawn)[idx[:, None], idx]`` is :func:`minsep_matrix` for
    symbols ``species[idx]``: callers that draw many structures of one composition
    index it instead of rebuilding the matrix from symbols.
    """
    species = list(species)
    table = np.zeros((len(species), len(species)))
    for i, a in enumerate(species):
        for j in range(i, len(species)):
            table[i, j] = table[j, i] = drawn[_pair(a, species[j])]
    return table


#: Pairs closer than their minimum separation by at most this much (Angstrom) count as meeting it.
OVERLAP_TOLERANCE = 1e-9

#: Atoms closer than this (Angstrom) are coincident: they have no direction to be pushed
#: along, so they are separated along a random one.
COINCIDENT = 1e-8


def push_displacement(pos: np.ndarray, need: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """One push-apart step: the displacement (N, 3) of every atom, or None when no
    pair overlaps.

    The one push-apart rule of the package (random clusters, moves from parents
    and symmetric clusters all use it): each pair closer than its minimum
    separation ``need`` (N, N, Angstrom, zero diagonal) is pushed apart along the
    line joining it by a little more than the overlap (1.05 x overlap + 1e-6 A in
    all), half for each atom. Coincident atoms have no such line: they are pushed
    along a random direction, three normals from ``rng`` per pair, pairs i < j in
    row-major order.
    """
    diff = pos[:, None, :] - pos[None, :, :]
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    overlap = need - dist
    bad = overlap > OVERLAP_TOLERANCE
    if not bad.any():
        return None
    if dist[bad].min() <= COINCIDENT:
        same = bad & (dist <= COINCIDENT)
        for i, j in zip(*np.nonzero(np.triu(same)), strict=True):  # separate along a random direction
            r = rng.normal(size=3)
            diff[i, j] = r / np.linalg.norm(r)
            diff[j, i] = -diff[i, j]
            dist[i, j] = dist[j, i] = 1.0
    weight = np.zeros_like(dist)
    np.divide(0.5 * 1.05 * overlap + 1e-6, dist, out=weight, where=bad)
    return np.einsum("ij,ijk->ik", weight, diff)


def meets(pos: np.ndarray, need: np.ndarray, tol: float = OVERLAP_TOLERANCE) -> bool:
    """Whether every pair of atoms is at least its minimum separation ``need`` (N, N,
    Angstrom; the diagonal is ignored) apart, within ``tol``."""
    diff = pos[:, None, :] - pos[None, :, :]
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    np.fill_diagonal(dist, np.inf)
    return bool((dist >= need - tol).all())


def format_minsep(drawn: dict[tuple[str, str], float]) -> str:
    """``Cd-Cd=3.02 Cd-Se=2.42 ...``: the form stored with each structure."""
    return " ".join(f"{a}-{b}={d:.6g}" for (a, b), d in sorted(drawn.items()))


def violations(
    positions: np.ndarray, symbols, drawn: dict[tuple[str, str], float], tol: float = 1e-6
) -> list[tuple[int, int, float, float]]:
    """Pairs (i, j, distance, minimum) closer than their minimum separation."""
    pos = np.asarray(positions, dtype=float)
    need = minsep_matrix(symbols, drawn)
    diff = pos[:, None, :] - pos[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    i, j = np.nonzero(np.triu(dist < need - tol, k=1))
    return [(int(a), int(b), float(dist[a, b]), float(need[a, b])) for a, b in zip(i, j, strict=True)]
