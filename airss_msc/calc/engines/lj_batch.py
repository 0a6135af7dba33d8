"""Lennard-Jones, batched (the toy engine of the batched relaxation's tests): the same pair sums
as :class:`~airss_msc.calc.engines.lj.LennardJonesCluster`, cluster by cluster in one call."""

from __future__ import annotations

from collections.abc import Sequence

from ase import Atoms

from airss_msc.calc.engines.batched import BatchModel, Evaluation, finite, finite_positions
from airss_msc.calc.engines.lj import LennardJonesCluster


class LennardJonesBatch(BatchModel):
    """Energy and forces of each cluster (epsilon = sigma = 1); CPU only."""

    def __init__(self, model: str = "lj", device: str | None = None):
        self.model = model
        self.device = "cpu"

    def on(self, device: str) -> LennardJonesBatch:
        return LennardJonesBatch(self.model)

    def evaluate(self, clusters: Sequence[Atoms]) -> list[Evaluation]:
        out = []
        for atoms, good in zip(clusters, finite_positions(clusters), strict=True):
            if not good:
                out.append(Evaluation(error="lj: non-finite positions"))
                continue
            calc = LennardJonesCluster()
            calc.calculate(atoms.copy(), ["energy", "forces"])
            out.append(finite(calc.results["energy"], calc.results["forces"], "lj"))
        return out
