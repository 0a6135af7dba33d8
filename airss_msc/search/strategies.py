"""Search strategies: where the next candidate's start comes from (pure functions).

- ``random``: every candidate is a fresh random structure (AIRSS).
- ``shake``: relax-and-shake (AIRSS ``-num/-amp``): after ``random_starts``
  random candidates per composition, each new candidate takes one of the
  ``pool`` lowest distinct minima found so far and displaces every atom by a
  random vector of length up to ``amplitude``.
- ``basin``: basin hopping from the current best (``pool`` = 1): a shake of
  the lowest minimum; a lower result becomes the next parent.
- ``swap``: for alloys, exchange ``swaps`` pairs of unlike atoms on one
  sublattice (Zn/Cd or Te/Se) of a pool member, plus a small shake; for one
  species it falls back to a shake.

Every derived candidate records its lineage (parent row, move) in the database.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from airss_msc.errors import InputError
from airss_msc.build.separations import ANIONS, CATIONS

STRATEGIES = ("random", "shake", "basin", "swap")


@dataclass(frozen=True)
class StrategySettings:
    """How starts are chosen. Lengths in Angstrom (sigma for LJ)."""

    name: str = "random"
    random_starts: int = 10
    pool: int = 5
    amplitude: float = 0.6
    swaps: int = 1

    def validate(self) -> "StrategySettings":
        if self.name not in STRATEGIES:
            raise InputError(f"unknown strategy {self.name!r}: choose {', '.join(STRATEGIES)}")
        if self.random_starts < 1 or self.pool < 1 or self.swaps < 1:
            raise InputError("random_starts, pool and swaps must be >= 1")
        if not self.amplitude > 0:
            raise InputError(f"shake amplitude must be positive, got {self.amplitude!r}")
        return self

    @property
    def effective_pool(self) -> int:
        return 1 if self.name == "basin" else self.pool


@dataclass(frozen=True)
class Parent:
    """A relaxed structure that moves start from (energy eV, positions Angstrom)."""

    row: int
    energy: float
    symbols: tuple[str, ...]
    positions: np.ndarray


def select_parent(minima: list[Parent], pool: int, rng: np.random.Generator,
                  distinct_ev_per_atom: float = 1e-4) -> Parent | None:
    """Uniform choice among the ``pool`` lowest minima with distinct energies.

    Energies closer than ``distinct_ev_per_atom`` count as one minimum, so the
    pool is not filled with copies of the same structure.
    """
    if not minima:
        return None
    n = len(minima[0].symbols)
    chosen: list[Parent] = []
    for m in sorted(minima, key=lambda p: p.energy):
        if all(abs(m.energy - c.energy) > distinct_ev_per_atom * n for c in chosen):
            chosen.append(m)
        if len(chosen) == pool:
            break
    return chosen[int(rng.integers(len(chosen)))]


def shake(positions: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Displace every atom uniformly within a ball of radius ``amplitude``."""
    v = rng.normal(size=positions.shape)
    v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-12
    r = amplitude * rng.random(len(positions)) ** (1.0 / 3.0)
    return positions + v * r[:, None]


def swap_sublattice(symbols: list[str]) -> list[str] | None:
    """Elements of the sublattice that has more than one element (None if none)."""
    present = set(symbols)
    for lattice in (CATIONS, ANIONS):
        mine = sorted(present & lattice)
        if len(mine) >= 2:
            return mine
    others = sorted(present - CATIONS - ANIONS)
    return others if len(others) >= 2 else None


def swap_atoms(symbols: list[str], swaps: int, rng: np.random.Generator) -> tuple[list[str], list[tuple[int, int]]]:
    """Exchange ``swaps`` random pairs of unlike atoms of the mixed sublattice."""
    lattice = swap_sublattice(symbols)
    if lattice is None:
        return list(symbols), []
    out = list(symbols)
    done = []
    for _ in range(swaps):
        a, b = rng.choice(lattice, size=2, replace=False)
        ia = [i for i, s in enumerate(out) if s == a]
        ib = [i for i, s in enumerate(out) if s == b]
        i, j = int(rng.choice(ia)), int(rng.choice(ib))
        out[i], out[j] = out[j], out[i]
        done.append((i, j))
    return out, done


def derive_start(parent: Parent, settings: StrategySettings, rng: np.random.Generator) -> tuple[list[str], np.ndarray, str]:
    """The move applied to ``parent``: (symbols, positions, description)."""
    symbols = list(parent.symbols)
    if settings.name == "swap":
        symbols, pairs = swap_atoms(symbols, settings.swaps, rng)
        if pairs:
            # a small shake breaks the parent's symmetry so the swap can relax
            pos = shake(parent.positions, 0.25 * settings.amplitude, rng)
            return symbols, pos, "swap " + " ".join(f"{i}<->{j}" for i, j in pairs)
    pos = shake(parent.positions, settings.amplitude, rng)
    return symbols, pos, f"shake amp={settings.amplitude:g}"
