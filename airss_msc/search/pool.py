"""The population a search draws parents from: the lowest unique minima of each composition.

Kept by the coordinator only (workers receive their parents with the task), and
rebuilt from the database on a restart, so it spans ranks and reruns alike.
Uniqueness is species-aware (homotops stay apart): a new minimum that is a
duplicate of a stored one (the relaxing engine's energy within ``energy_tol``
eV/atom and the same structure after alignment) replaces it only if lower in the
steering energy. Basin hopping walks from a ``current`` minimum per composition,
updated by the Metropolis rule.

Parents are ordered, drawn and accepted by :attr:`Parent.energy`, the energy the
search steers by (the validated ranking energy when the search has one; CHGNet's
own energy does not rank isomers, BENCHMARKS.md). The duplicate window uses the
relaxing engine's energy: a single point of another method on copies of one
minimum scatters by a few meV/atom (the relaxing engine's energy is stationary
there), so windowing on it would keep copies apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from airss_msc.analysis.duplicates import same_structure
from airss_msc.generation.moves import Parent


@dataclass
class Pool:
    """Lowest unique minima per composition (energies eV, or epsilon for Lennard-Jones).

    size: how many of the lowest unique minima parents are drawn from.
    temperature: Metropolis temperature for basin hopping, in energy units (0: only downhill).
    """

    size: int = 5
    temperature: float = 0.0
    energy_tol: float = 1e-3
    rmsd_tol: float = 0.1
    minima: dict[str, list[Parent]] = field(default_factory=dict)
    current: dict[str, Parent] = field(default_factory=dict)

    def add(self, formula: str, parent: Parent) -> bool:
        """Add a relaxed minimum; returns whether it is new (not a duplicate of a lower one)."""
        known = self.minima.setdefault(formula, [])
        n = len(parent.symbols)
        for k, other in enumerate(known):
            if abs(other.window_energy - parent.window_energy) > self.energy_tol * n:
                continue
            if same_structure(_atoms(other), _atoms(parent), rmsd_tol=self.rmsd_tol):
                if parent.energy < other.energy:
                    known[k] = parent
                    known.sort(key=lambda p: p.energy)
                return False
        known.append(parent)
        known.sort(key=lambda p: p.energy)
        return True

    def lowest(self, formula: str) -> list[Parent]:
        return self.minima.get(formula, [])[: self.size]

    def choose(self, formula: str, count: int, rng: np.random.Generator) -> list[Parent] | None:
        """``count`` distinct parents drawn uniformly from the lowest unique minima (None: too few)."""
        pool = self.lowest(formula)
        if len(pool) < count or count == 0:
            return None if count else []
        picks = rng.choice(len(pool), size=count, replace=False)
        return [pool[int(i)] for i in picks]

    def walker(self, formula: str) -> Parent | None:
        """Where basin hopping moves from: the current minimum (the lowest until one is accepted)."""
        if formula in self.current:
            return self.current[formula]
        pool = self.lowest(formula)
        return pool[0] if pool else None

    def metropolis(self, formula: str, parent: Parent, rng: np.random.Generator) -> bool:
        """Accept ``parent`` as the basin-hopping walker with probability min(1, exp(-dE/T))."""
        here = self.walker(formula)
        if here is None or parent.energy <= here.energy:
            self.current[formula] = parent
            return True
        if self.temperature > 0 and rng.random() < math.exp(-(parent.energy - here.energy) / self.temperature):
            self.current[formula] = parent
            return True
        return False


def _atoms(parent: Parent) -> Atoms:
    return Atoms(list(parent.symbols), positions=parent.positions)
