"""Lennard-Jones clusters (epsilon = sigma = 1, no cutoff), for tests and search benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from airss_msc.calc.engines.base import Capabilities, Engine, calculated_atoms


class LennardJonesCluster(Calculator):
    """Lennard-Jones energy and forces without cutoff (epsilon = sigma = 1).

    Exact pair sums, so energies compare directly with the Cambridge Cluster
    Database (LJ13 -44.326801). O(N^2) NumPy, fast for N <= 100.
    """

    implemented_properties = ["energy", "free_energy", "forces"]  # noqa: RUF012 (ASE types it as a list)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        pos = calculated_atoms(self).positions
        diff = pos[:, None, :] - pos[None, :, :]
        r2 = np.einsum("ijk,ijk->ij", diff, diff)
        np.fill_diagonal(r2, np.inf)
        inv6 = r2**-3
        energy = 2.0 * float(np.sum(inv6 * inv6 - inv6))  # 4 * sum_{i<j}, each pair counted twice
        # -dE/dr_i = sum_j 24 (2 r^-14 - r^-8) (r_i - r_j)
        coef = 24.0 * (2.0 * inv6 * inv6 - inv6) / r2
        forces = np.einsum("ij,ijk->ik", coef, diff)
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = forces


class LennardJones(Engine):
    name = "lj"
    distribution = "ase"
    install_hint = "pip install ase"
    models = ("lj",)
    default_model = "lj"
    aliases: ClassVar[dict[str, str]] = {"lennard-jones": "lj", "lennardjones": "lj"}

    def capabilities(self, model: str) -> Capabilities:
        # Lennard-Jones cannot collapse; a random start may brush past the floor.
        return Capabilities(energy_unit="epsilon")

    def _calculator(self, model: str, **parameters: Any) -> Calculator:
        return LennardJonesCluster()
