"""The relax stage over a structure file: every frame relaxed, one database row each.

Runs on the task farm like ``search`` (serially in process, or spread over MPI
ranks). Each result is stored the moment it is done, so an interrupted run keeps
everything finished; a rerun skips every input already stored with the same
method (by the fingerprint of its starting geometry), so nothing is relaxed or
stored twice. A signal or the walltime stops handing out work (the outcome says
so; the CLI exits 3).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from airss_msc.calc.relax import RelaxSettings, relax_structure
from airss_msc.results.formats import RESULT_INFO_KEYS, read_structures
from airss_msc.results.record import Result, Status
from airss_msc.results.store import ResultsDB
from airss_msc.search.farm import Farm, FarmOutcome, StopFlag, run_farm, stop_on_signals, summary_line


def input_fingerprint(atoms: Atoms) -> str:
    """Symbols and positions rounded to 1e-4 Angstrom: which input a stored row was relaxed from
    (``sha1:`` and 16 hex digits; the prefix keeps ASE's database from reading it as a number)."""
    text = " ".join(atoms.get_chemical_symbols()) + "|" + " ".join(f"{x:.4f}" for x in np.ravel(atoms.positions))
    return "sha1:" + hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RelaxTask:
    """One frame of the input file and how to relax it (picklable)."""

    index: int
    total: int
    atoms: Atoms
    settings: RelaxSettings


def relax_task(task: RelaxTask) -> Result:
    return relax_structure(task.atoms, task.settings)


def _failed(task: RelaxTask, message: str) -> Result:
    return Result(
        symbols=tuple(task.atoms.get_chemical_symbols()),
        positions=task.atoms.positions,
        status=Status.ERROR,
        message=message,
        method=task.settings.protocol()[-1].method,
        provenance={k: v for k, v in task.atoms.info.items() if isinstance(v, (str, int, float))},
    )


def relax_file(
    path: str | os.PathLike,
    db: str | os.PathLike,
    settings: RelaxSettings,
    log: Callable[[str], None] = print,
    executor: Executor | None = None,
    workers: int = 1,
    stop: StopFlag | None = None,
) -> FarmOutcome:
    """Relax every structure of ``path`` not yet stored in ``db`` (same method, same start)."""
    path = Path(path)
    images = read_structures(path)
    method = settings.protocol()[-1].method
    stop = stop if stop is not None else StopFlag()
    with stop_on_signals(stop), ResultsDB(db, write=True) as store:
        done = {(r.provenance.get("input_fingerprint"), r.method) for r in store.records()}
        tasks = []
        for k, atoms in enumerate(images, 1):
            atoms.info.setdefault("source", f"{path.name}:{k}")
            for key in RESULT_INFO_KEYS:  # an exported result relaxed again: its old energy is not provenance
                atoms.info.pop(key, None)
            atoms.info["input_fingerprint"] = input_fingerprint(atoms)
            if (atoms.info["input_fingerprint"], method) not in done:
                tasks.append(RelaxTask(k, len(images), atoms, settings))

        def keep(task: RelaxTask, result: Result) -> tuple[str, bool]:
            row = store.add(result)
            energy = f"  E={result.energy:.4f} eV" if result.energy is not None else ""
            line = (
                f"{result.composition} (frame {task.index} of {task.total}) -> row {row}: {result.status}{energy}"
                + (f"  ({result.message})" if result.message else "")
            )
            return line, result.status == Status.RELAXED

        skipped = len(images) - len(tasks)
        headline = (
            f"relax {path.name}: {len(images)} structure(s), {skipped} already in {db}, {len(tasks)} to relax "
            f"({method}, {max(workers, 1)} worker(s))"
        )
        outcome = run_farm(
            Farm(work=relax_task, store=keep, on_error=_failed),
            tasks,
            planned=len(images),
            skipped=skipped,
            executor=executor,
            workers=workers,
            stop=stop,
            say=log,
            headline=headline,
            progress_every=60.0,
        )
    log(summary_line(f"relax {path.name}", outcome))
    return outcome
