"""CHGNet (Materials Project trajectories; MIT): ``chgnet`` = model 0.3.0, ``chgnet:r2scan``.

The weights ship inside the chgnet wheel and are read from there; nothing is
downloaded. CHGNet is a periodic model: each cluster is centred in a cubic box
wide enough that no atom sees a periodic image within the atom-graph cutoff,
so energies are those of the isolated cluster. Only energy and forces are
predicted (no stress, no magnetic moments): cheaper, and all a relaxation needs.
Each process loads a model once and keeps it.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from functools import cache
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import CalculationFailed, Calculator, all_changes

from airss_msc.calc.engines.base import Capabilities, Engine, box_side, calculated_atoms
from airss_msc.calc.threads import current_threads

#: No orbitals and no SCF; the in-run collapse guard is off (30/30 random Cd13Se13
#: starts relaxed without collapse, BENCHMARKS.md), the final sanity check stays.
ML_CAPABILITIES = Capabilities(gap=False, scf=False, can_collapse=False, periodic_box=True)


def torch_device() -> str:
    """``cuda`` where torch sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def use_threads() -> None:
    """torch keeps its own pool: give it the process's thread count (one place decides)."""
    import torch

    n = current_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


@cache
def _model(name: str, device: str) -> Any:  # a chgnet.model.CHGNet
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its size and the device it runs on
        model = CHGNet.load(model_name=name, use_device=device, verbose=False)
    model.eval()
    # our own sanity checks report detached atoms; CHGNet would warn on every call
    model.graph_converter.set_isolated_atom_response("ignore")
    return model


class CHGNetCluster(Calculator):
    """Energy (eV) and forces (eV/Angstrom) of a bare cluster from a CHGNet model."""

    implemented_properties = ["energy", "free_energy", "forces"]  # noqa: RUF012 (ASE types it as a list)

    def __init__(self, model_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.device = torch_device()

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        from pymatgen.core import Lattice, Structure

        super().calculate(atoms, properties, system_changes)
        current = calculated_atoms(self)
        if not np.all(np.isfinite(current.positions)):
            # the models return a finite energy and zero forces for NaN coordinates
            raise CalculationFailed(f"chgnet:{self.model_name}: non-finite positions")
        use_threads()
        model = _model(self.model_name, self.device)
        cutoff = float(model.graph_converter.atom_graph_cutoff)
        side = box_side(current, cutoff)
        centred = current.positions - current.positions.mean(axis=0) + side / 2.0
        structure = Structure(Lattice.cubic(side), current.get_chemical_symbols(), centred, coords_are_cartesian=True)
        graph = model.graph_converter(structure)
        with warnings.catch_warnings():
            # torch 2.13 warns once about a tensor-to-scalar conversion inside chgnet
            warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
            prediction = model.predict_graph(graph.to(self.device), task="ef")
        per_atom = float(np.asarray(prediction["e"]).reshape(-1)[0])
        energy = per_atom * len(current) if model.is_intensive else per_atom
        forces = np.asarray(prediction["f"], dtype=float).reshape(-1, 3)
        if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
            raise CalculationFailed(f"chgnet:{self.model_name}: non-finite energy or forces")
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}


class CHGNetEngine(Engine):
    name = "chgnet"
    distribution = "chgnet"
    install_hint = (
        "chgnet is a dependency of airss-msc: reinstall it (pip install -e . or make .venv/.installed); "
        "its wheel carries the weights"
    )
    models = ("0.3.0", "r2scan")
    default_model = "0.3.0"
    aliases: ClassVar[dict[str, str]] = {"chgnet-0.3.0": "0.3.0", "mptrj": "0.3.0", "chgnet-r2scan": "r2scan"}
    #: "r2scan" alone would be ambiguous with a DFT functional.
    qualified_only = ("0.3.0", "r2scan")
    requires = ("chgnet.model", "torch")

    def capabilities(self, model: str) -> Capabilities:
        return ML_CAPABILITIES

    def _calculator(self, model: str, **parameters: Any) -> Calculator:
        return CHGNetCluster(model)
