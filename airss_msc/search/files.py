"""The relax stage over a structure file: every frame relaxed, one database row each.

Runs in process (a file of starts is the laptop case; ``search`` is the parallel
one). Each result is stored the moment it is done, so an interrupted run keeps
everything finished.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from airss_msc.calc.relax import RelaxSettings, relax_structure
from airss_msc.results.formats import RESULT_INFO_KEYS, read_structures
from airss_msc.results.store import ResultsDB


def relax_file(path: str | os.PathLike, db: str | os.PathLike, settings: RelaxSettings,
               log: Callable[[str], None] = print) -> int:
    """Relax every structure of ``path`` into ``db``; returns how many were relaxed."""
    path = Path(path)
    images = read_structures(path)
    with ResultsDB(db, write=True) as store:
        for k, atoms in enumerate(images, 1):
            atoms.info.setdefault("source", f"{path.name}:{k}")
            for key in RESULT_INFO_KEYS:  # an exported result relaxed again: its old energy is not provenance
                atoms.info.pop(key, None)
            result = relax_structure(atoms, settings)
            row = store.add(result)
            energy = f"  E={result.energy:.4f} eV" if result.energy is not None else ""
            log(f"[{k}/{len(images)}] {atoms.get_chemical_formula()} -> row {row}: {result.status}{energy}"
                + (f"  ({result.message})" if result.message else ""))
    return len(images)
