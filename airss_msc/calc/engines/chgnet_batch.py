"""CHGNet's batched call: the graphs of many boxed clusters through one ``CHGNet.forward``.

Each cluster is boxed exactly as :class:`~airss_msc.calc.engines.chgnet.CHGNetCluster` boxes it
(a cube of :func:`~airss_msc.calc.engines.base.box_side` beyond the atom-graph cutoff, centred on
the mean position), so a batched energy is the single call's up to float32 summation order.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from airss_msc.calc.engines.base import box_side
from airss_msc.calc.engines.batched import BatchModel, Evaluation, finite, finite_positions, torch_release
from airss_msc.calc.engines.chgnet import _model, torch_device, use_threads


class CHGNetBatch(BatchModel):
    """A CHGNet model (loaded once per process and device) evaluating lists of clusters."""

    def __init__(self, model_name: str, device: str | None = None):
        self.model_name = model_name
        self.device = device or torch_device()

    def on(self, device: str) -> CHGNetBatch:
        return CHGNetBatch(self.model_name, device)

    def release(self) -> None:
        torch_release()

    def evaluate(self, clusters: Sequence[Atoms]) -> list[Evaluation]:
        from pymatgen.core import Lattice, Structure

        use_threads()
        model = _model(self.model_name, self.device)
        cutoff = float(model.graph_converter.atom_graph_cutoff)
        label = f"chgnet:{self.model_name}"
        ok = finite_positions(clusters)
        graphs = []
        for atoms, good in zip(clusters, ok, strict=True):
            if not good:
                continue
            side = box_side(atoms, cutoff)
            centred = atoms.positions - atoms.positions.mean(axis=0) + side / 2.0
            structure = Structure(Lattice.cubic(side), atoms.get_chemical_symbols(), centred, coords_are_cartesian=True)
            graphs.append(model.graph_converter(structure))
        predictions: list[dict] = []
        if graphs:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
                out = model.predict_graph(graphs, task="ef", batch_size=len(graphs))
            predictions = [out] if isinstance(out, dict) else list(out)
        results, k = [], 0
        for atoms, good in zip(clusters, ok, strict=True):
            if not good:
                results.append(Evaluation(error=f"{label}: non-finite positions"))
                continue
            prediction = predictions[k]
            k += 1
            per_atom = float(np.asarray(prediction["e"]).reshape(-1)[0])
            energy = per_atom * len(atoms) if model.is_intensive else per_atom
            results.append(finite(energy, np.asarray(prediction["f"], dtype=float), label))
        return results
