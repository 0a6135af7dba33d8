"""Batched energy and forces: many clusters in one model call (the engines that can).

A :class:`BatchModel` evaluates a list of clusters in one forward pass of the model (CHGNet and
SevenNet batch their graphs; TorchSim does the same for other potentials). It is what the batched
relaxation (:mod:`airss_msc.calc.relax_batch`) calls once per optimizer step. Engines without a
batched call return None from :func:`batch_model`; callers then relax one structure at a time.

Adding a batched engine is its ``*_batch`` module and one line in :func:`_factories`. A model is
loaded once per process and device (as the engines' calculators are).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from airss_msc.calc.engines.base import Method
from airss_msc.calc.engines.registry import engine_of, parse_method


@dataclass(frozen=True)
class Evaluation:
    """One cluster's energy (eV, total) and forces (eV/Angstrom, natoms x 3), or why there are none."""

    energy: float = float("nan")
    forces: np.ndarray | None = None
    gap: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


class BatchModel(ABC):
    """Energy and forces of many clusters in one model call, on one device."""

    #: ``cpu`` or ``cuda``: where the model runs (the out-of-memory fallback moves it to CPU).
    device: str = "cpu"

    @abstractmethod
    def evaluate(self, clusters: Sequence[Atoms]) -> list[Evaluation]:
        """One forward pass over ``clusters`` (one :class:`Evaluation` each, in order).

        A cluster whose numbers are not finite gets an error evaluation, the others their values;
        an exception (out of memory, a library error) means the whole call gave nothing.
        """

    @abstractmethod
    def on(self, device: str) -> BatchModel:
        """The same model on ``device``."""

    def release(self) -> None:  # noqa: B027 (a default, not abstract: a CPU model holds nothing)
        """Give back what a failed call left allocated (the GPU cache); nothing on CPU."""


def finite(energy: float, forces: np.ndarray, label: str) -> Evaluation:
    """An evaluation of ``energy`` and ``forces``, or an error if either is not finite."""
    if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
        return Evaluation(error=f"{label}: non-finite energy or forces")
    return Evaluation(energy=float(energy), forces=np.asarray(forces, dtype=float).reshape(-1, 3))


def finite_positions(clusters: Sequence[Atoms]) -> list[bool]:
    """Which clusters have finite coordinates (ML models give a finite energy for NaN ones)."""
    return [bool(np.all(np.isfinite(c.positions))) for c in clusters]


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a device running out of memory (torch's CUDA error, or its message)."""
    if type(exc).__name__ == "OutOfMemoryError" or isinstance(exc, MemoryError):
        return True
    return "out of memory" in str(exc).lower()


def torch_release() -> None:
    """Empty torch's CUDA cache after a failed call (nothing where there is no GPU)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _factories() -> dict[str, Callable[[str, str | None], BatchModel]]:
    # imported here: listing methods must not import torch
    from airss_msc.calc.engines.chgnet import CHGNetEngine
    from airss_msc.calc.engines.chgnet_batch import CHGNetBatch
    from airss_msc.calc.engines.lj import LennardJones
    from airss_msc.calc.engines.lj_batch import LennardJonesBatch
    from airss_msc.calc.engines.sevennet import SevenNetEngine
    from airss_msc.calc.engines.sevennet_batch import SevenNetBatch

    return {CHGNetEngine.name: CHGNetBatch, SevenNetEngine.name: SevenNetBatch, LennardJones.name: LennardJonesBatch}


def can_batch(method: str | Method) -> bool:
    """Whether ``method``'s engine has a batched energy and forces call."""
    return parse_method(method).engine in _factories()


def batch_model(method: str | Method, device: str | None = None) -> BatchModel | None:
    """The batched model of ``method`` on ``device`` (None: the engine's own choice, a GPU where torch
    sees one), or None if the engine has no batched call."""
    m = parse_method(method)
    factory = _factories().get(m.engine)
    if factory is None:
        return None
    engine_of(m).check_available()
    return factory(m.model, device)


__all__ = ["BatchModel", "Evaluation", "batch_model", "can_batch", "finite", "is_out_of_memory"]
