"""SevenNet's batched call: the graphs of many boxed clusters as one torch_geometric batch.

The model is built from the installed checkpoint a second time (batch mode is a switch on the
model's modules, and the single-structure calculator keeps its own in single mode); clusters are
boxed as :class:`~airss_msc.calc.engines.sevennet.SevenNetCluster` boxes them (a cube of
:func:`~airss_msc.calc.engines.base.box_side` beyond the cutoff, ``Atoms.center``).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
from ase import Atoms

from airss_msc.calc.engines.base import box_side
from airss_msc.calc.engines.batched import BatchModel, Evaluation, finite, finite_positions, torch_release
from airss_msc.calc.engines.sevennet import checkpoint_path, torch_device, use_threads


@cache
def _batch_model(model: str, device: str) -> tuple[Any, float]:
    """(the model in batch mode on ``device``, its cutoff in Angstrom), once per process."""
    import sevenn._keys as keys
    import sevenn.util as util

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No tensor product accelerator")
        checkpoint = util.load_checkpoint(checkpoint_path(model))
        net = checkpoint.build_model()
    net.set_is_batch_data(True)
    net.to(device)
    net.eval()
    return net, float(checkpoint.config[keys.CUTOFF])


class SevenNetBatch(BatchModel):
    """A SevenNet model evaluating lists of clusters in one call."""

    def __init__(self, model: str, device: str | None = None):
        self.model = model
        self.device = device or torch_device()

    def on(self, device: str) -> SevenNetBatch:
        return SevenNetBatch(self.model, device)

    def release(self) -> None:
        torch_release()

    def evaluate(self, clusters: Sequence[Atoms]) -> list[Evaluation]:
        import sevenn._keys as keys
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph
        from torch_geometric.data import Batch  # type: ignore[import-untyped]

        use_threads()
        net, cutoff = _batch_model(self.model, self.device)
        label = f"sevennet:{self.model}"
        ok = finite_positions(clusters)
        graphs = []
        for atoms, good in zip(clusters, ok, strict=True):
            if not good:
                continue
            boxed = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions)
            boxed.set_cell([box_side(boxed, cutoff)] * 3)
            boxed.center()
            boxed.pbc = True
            graphs.append(AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(boxed, cutoff, with_shift=False)))
        energies: np.ndarray = np.zeros(0)
        forces: list[np.ndarray] = []
        if graphs:
            batch = Batch.from_data_list(graphs).to(self.device)
            output = net(batch)
            energies = output[keys.PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1)
            all_forces = output[keys.PRED_FORCE].detach().cpu().numpy()
            owner = output[keys.BATCH].detach().cpu().numpy()
            forces = [all_forces[owner == k] for k in range(len(graphs))]
        results, k = [], 0
        for good in ok:
            if not good:
                results.append(Evaluation(error=f"{label}: non-finite positions"))
                continue
            results.append(finite(float(energies[k]), forces[k], label))
            k += 1
        return results
