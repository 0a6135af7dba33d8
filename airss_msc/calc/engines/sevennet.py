"""SevenNet (MIT): ``sevennet`` = SevenNet-0 (``7net-0``), also ``sevennet:7net-l3i5`` and
``sevennet:7net-mf-0`` (the multi-fidelity SevenNet-MF-0 on its PBE fidelity, the reference's).

The checkpoints ship inside the sevenn wheel; their path is resolved here and
handed over as a file, so sevenn never reaches for its download link. The model
sees the cluster in a cubic box beyond its cutoff (isolated-cluster energies).
Each process loads a model once and keeps it.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Sequence
from functools import cache
from typing import Any, ClassVar

from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from airss_msc.calc.engines.base import Capabilities, ClusterInBox, Engine
from airss_msc.calc.engines.chgnet import ML_CAPABILITIES, torch_device, use_threads
from airss_msc.errors import InputError

#: Model name -> checkpoint constant in sevenn._const (files inside the wheel).
CHECKPOINTS = {"7net-0": "SEVENNET_0_11Jul2024", "7net-l3i5": "SEVENNET_l3i5", "7net-mf-0": "SEVENNET_MF_0"}
#: Multi-fidelity models: the fidelity (sevenn's "modal") whose energies this engine returns.
MODALS = {"7net-mf-0": "PBE"}


def checkpoint_path(model: str) -> str:
    """The installed checkpoint file of ``model``; an error (never a download) if it is absent."""
    from sevenn import _const

    path = getattr(_const, CHECKPOINTS[model])
    if not os.path.isfile(path):
        raise InputError(
            f"SevenNet checkpoint for {model} is not installed at {path}; reinstall sevenn "
            f"(airss-msc never downloads model weights at run time)"
        )
    return path


@cache
def _calculator(model: str, device: str) -> Any:  # a sevenn.calculator.SevenNetCalculator
    from sevenn.calculator import SevenNetCalculator

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # the CUDA tensor-product accelerators do not exist on CPU; the warning says nothing new
        warnings.filterwarnings("ignore", message="No tensor product accelerator")
        return SevenNetCalculator(
            model=checkpoint_path(model), file_type="checkpoint", device=device, modal=MODALS.get(model)
        )


class SevenNetCluster(ClusterInBox):
    """Energy and forces from a SevenNet model (loaded once per process)."""

    def __init__(self, model: str, **kwargs: Any) -> None:
        inner = _calculator(model, torch_device())
        super().__init__(inner, cutoff=float(inner.cutoff), **kwargs)
        self.model = model

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        use_threads()
        super().calculate(atoms, properties, system_changes)


class SevenNetEngine(Engine):
    name = "sevennet"
    distribution = "sevenn"
    install_hint = (
        "sevenn is a dependency of airss-msc: reinstall it (pip install -e . or make .venv/.installed); "
        "its wheel carries the SevenNet-0 weights"
    )
    models = tuple(CHECKPOINTS)
    default_model = "7net-0"
    aliases: ClassVar[dict[str, str]] = {
        "sevennet-0": "7net-0",
        "sevennet-l3i5": "7net-l3i5",
        "sevennet-mf-0": "7net-mf-0",
    }
    requires = ("sevenn.calculator", "torch")

    def capabilities(self, model: str) -> Capabilities:
        return ML_CAPABILITIES

    def _calculator(self, model: str, **parameters: Any) -> Calculator:
        return SevenNetCluster(model)
