"""Workflows over stored rows: rescore every relaxed row, refine the best ones with DFT,
compute excitations of the best ones.

All run on the task farm (serially or spread over MPI ranks, resumable like
``search``). A single point is stored on its row beside the other energies
(``e_<method>``, ``gap_<method>``); a failed one leaves ``sp_<method>`` with its
status, so a rerun neither repeats it nor loses it. A refining relaxation is a
new row linked to the one it started from (``refined_from``). Excitations are
stored in the row's data under their method, with their status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

import numpy as np
from ase import Atoms

from airss_msc.analysis.bands import HC_EV_NM
from airss_msc.analysis.rank import rank_results
from airss_msc.calc.engines import capabilities, check_available, is_reference, method_accuracy, parse_method
from airss_msc.calc.excite import check_excitation_method, excite
from airss_msc.calc.progress import reporting
from airss_msc.calc.relax import RelaxSettings, relax_structure
from airss_msc.calc.single_point import SinglePoint, single_point
from airss_msc.composition import canonical_formula
from airss_msc.errors import InputError
from airss_msc.generation.ligands import cap, get_ligand
from airss_msc.results.record import STATUS_MEANING, Excitations, JobStatus, Result, Status, method_key
from airss_msc.results.store import ResultsDB
from airss_msc.search.farm import Farm, FarmOutcome, StopFlag, run_farm, stop_on_signals, summary_line


@dataclass(frozen=True)
class RowTask:
    """One stored structure and what to do with it (picklable)."""

    row: int
    formula: str
    symbols: tuple[str, ...]
    positions: np.ndarray
    method: str
    relax: RelaxSettings | None = None
    electronic_temperature: float = 300.0
    nstates: int = 0
    ligand: str = ""
    sites: str = "auto"
    #: path stem of an excitation run's progress files (empty: none), see ``excite``
    checkpoint: str = ""

    def atoms(self) -> Atoms:
        atoms = Atoms(list(self.symbols), positions=self.positions)
        atoms.info.update(formula=self.formula, refined_from=self.row, move=f"refine {self.method}", generator="refine")
        return atoms


def capped_start(task: RowTask) -> Atoms:
    """The stored structure with model ligands on its under-coordinated cations (lineage in ``info``)."""
    bare = Atoms(list(task.symbols), positions=task.positions)
    capped = cap(bare, task.ligand, task.sites, seed=task.row)
    capped.info.update(
        formula=canonical_formula(capped.get_chemical_formula()),
        bare_parent=task.row,
        bare_formula=task.formula,
        move=f"cap {task.ligand}",
        generator="cap",
    )
    return capped


#: The last finished job per method in this process: (atoms, wall seconds), for the next estimate.
_LAST_JOB: dict[str, tuple[int, float]] = {}


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def start_line(task: RowTask, what: str) -> str:
    """``Cd7TeSe3 row 5: TDA ... started (11 atoms); expect about 6m29s (...)``.

    The estimate scales the previous job of the same method in this process by atoms^3 (DFT and
    TDA cost grow about so: BENCHMARKS.md, 'Excitations'); the first one has none.
    """
    natoms = len(task.symbols)
    head = f"{task.formula} row {task.row}: {what} started ({natoms} atoms)"
    last = _LAST_JOB.get(what)
    if last is None:
        return head + "; no estimate before the first one of this run finishes (SCF cycles below show the pace)"
    n0, seconds = last
    expect = seconds * (natoms / n0) ** 3
    return head + f"; expect about {_duration(expect)} (the previous, {n0} atoms, took {_duration(seconds)})"


@contextlib.contextmanager
def _progress(task: RowTask, what: str):
    """Start line and in-run progress (to stderr: under MPI this runs in a worker) for slow engines."""
    # only slow engines (minutes to hours a structure: Capabilities.slow) announce each job with an
    # estimate and report SCF cycles / Davidson iterations while it runs
    if not capabilities(task.method).slow:
        yield
        return
    _stderr(start_line(task, what))
    start = time.monotonic()
    with reporting(_stderr, prefix=f"  {task.formula} row {task.row}: "):
        yield
    _LAST_JOB[what] = (len(task.symbols), time.monotonic() - start)


def run_row(task: RowTask) -> SinglePoint | Result | Excitations:
    """Excitations (``nstates`` > 0), a capped relaxation (``ligand``), a relaxation (``relax`` set)
    or a single point of one stored structure."""
    what = (
        f"{task.method} ({task.nstates} states)"
        if task.nstates
        else f"{task.method} relaxation"
        if task.relax is not None
        else f"{task.method} single point"
    )
    with _progress(task, what):
        return _run_row(task)


def _run_row(task: RowTask) -> SinglePoint | Result | Excitations:
    if task.ligand:
        try:
            start = capped_start(task)
        except InputError as exc:
            return Result(
                symbols=(),
                positions=np.zeros((0, 3)),
                status=Status.ERROR,
                message=str(exc),
                method=task.method,
                provenance={"bare_parent": task.row, "ligand": task.ligand},
            )
        return relax_structure(start, task.relax)
    if task.nstates:
        return excite(task.atoms(), task.method, task.nstates, checkpoint=task.checkpoint or None)
    if task.relax is not None:
        return relax_structure(task.atoms(), task.relax)
    return single_point(task.atoms(), task.method, task.electronic_temperature)


#: Exit code of a row workflow (and a study) that finished but failed on some structure; 3 means
#: "stopped early, rerun to resume", 2 bad input.
EXIT_FAILED = 1


@dataclass(frozen=True)
class RowFailure:
    """One structure whose step result is a failure status (``stored``: found from an earlier run)."""

    formula: str
    row: int
    status: str
    message: str = ""
    new_row: int | None = None  # the relaxation's own row (cap, refine --relax)
    stored: bool = False

    def line(self, step: str) -> str:
        """``FAILED: cap: Cd7TeSe3 row 5 -> row 31: fragmented (the cluster split or lost an atom)``."""
        target = f"row {self.row}" + (f" -> row {self.new_row}" if self.new_row is not None else "")
        why = self.message or _meaning(self.status)
        return (
            f"FAILED: {step}: {self.formula} {target}: {self.status}"
            + (f" ({why})" if why else "")
            + (" [stored by an earlier run]" if self.stored else "")
        )


def _meaning(status: str) -> str:
    """What a relaxation status means, in words ("" for another word: a job status)."""
    return STATUS_MEANING.get(Status(status), "") if status in {s.value for s in Status} else ""


def _stored_row(res: Result) -> int:
    """The row of a result read from the database (every stored result has one)."""
    if res.id is None:
        raise ValueError(f"{res.composition}: a stored result without a row id")
    return res.id


@dataclass
class RowsOutcome(FarmOutcome):
    """A farm outcome with the structures whose result was a failure, this run's and stored ones."""

    failures: list[RowFailure] = field(default_factory=list)


def _stored_failures(
    chosen: list[Result], results: list[Result], method: str, *, ligand: str, nstates: int, relax: RelaxSettings | None
) -> list[RowFailure]:
    """Failures an earlier run stored for the chosen rows (so a rerun reports them again, not 0 failed)."""
    out = []
    for r in chosen:
        if ligand or relax is not None:

            def made_from(x: Result, r: Result = r) -> bool:
                if ligand:
                    return (
                        x.provenance.get("bare_parent") == r.id
                        and x.provenance.get("ligand") == ligand
                        and x.method == method
                    )
                return x.provenance.get("refined_from") == r.id and x.method == method

            made = [x for x in results if made_from(x)]
            if made and not any(x.status == Status.RELAXED for x in made):
                last = max(made, key=lambda x: x.id or 0)
                out.append(RowFailure(r.composition, _stored_row(r), last.status, last.message, last.id, True))
        elif nstates:
            exc = r.excitations.get(method)
            if exc is not None and exc.status != JobStatus.DONE:
                out.append(RowFailure(r.composition, _stored_row(r), exc.status, exc.message, None, True))
        else:
            note = r.provenance.get(f"sp_{method_key(method)}")
            if method not in r.energies and note:
                status, _, message = str(note).partition(": ")
                out.append(RowFailure(r.composition, _stored_row(r), status, message, None, True))
    return out


def _failed(task: RowTask, message: str) -> SinglePoint | Excitations:
    if task.nstates:
        return Excitations(task.method, np.zeros(0), np.zeros(0), JobStatus.ERROR, message)
    return SinglePoint(task.method, None, None, JobStatus.ERROR, message)


def excitation_checkpoint(db_path: str, method: str, nstates: int, row: int) -> str:
    """The path stem of one row's excitation progress files: in ``<db>.work/`` beside the database."""
    return f"{db_path}.work/excite-{method_key(method)}-{int(nstates)}states-row{int(row)}"


def _task(
    res: Result,
    method: str,
    relax: RelaxSettings | None,
    temperature: float,
    nstates: int,
    ligand: str = "",
    sites: str = "auto",
) -> RowTask:
    return RowTask(
        _stored_row(res),
        res.composition,
        res.symbols,
        res.positions,
        method,
        relax,
        temperature,
        nstates,
        ligand,
        sites,
    )


#: Which stored rows a workflow may pick: every row, bare clusters, ligand-capped ones.
ROW_KINDS: dict[str, Callable[[Result], bool]] = {
    "all": lambda r: True,
    "bare": lambda r: "ligand" not in r.provenance,
    "capped": lambda r: "ligand" in r.provenance,
}


def select_rows(results: list[Result], top: int | None, energy: str | None = None) -> list[Result]:
    """The ``top`` lowest unique relaxed structures per composition (all relaxed rows if None),
    ranked by ``energy`` (a method) or each row's own method."""
    if top is None:
        return [r for r in results if r.status == Status.RELAXED]
    rows = rank_results(results, energy=energy, top=top, symmetry_tol=None)
    wanted = {(row.result.source, row.result.id) for row in rows if row.rank is not None and row.result is not None}
    return [r for r in results if (r.source, r.id) in wanted]


def _done_single_point(res: Result, method: str) -> bool:
    key = method_key(method)
    return method in res.energies or f"sp_{key}" in res.provenance


def refinement_depth_notes(method: str, rank_energy: str | None, top: int, sizes: set[int]) -> list[str]:
    """Warnings for a reference refinement of the ``top`` lowest by ``rank_energy`` where the
    validation found the reference's lowest deeper in that energy's order at these cluster sizes
    (atoms): how many it takes, by the measured size class (:mod:`airss_msc.calc.engines.accuracy`)."""
    measured = method_accuracy(rank_energy) if rank_energy and is_reference(method) else None
    if measured is None:
        return []
    notes = []
    for size_class in dict.fromkeys(c for n in sorted(sizes) if (c := measured.at(n)) is not None):
        depth, deepest = size_class.depth(), len(size_class.lowest_within_top)
        where = f"note: at {size_class.label} (validated against {measured.reference}, {size_class.formulas} formulas)"
        if depth is not None and top < depth:
            notes.append(
                f"{where} the reference's lowest was among {measured.label}'s {depth} lowest in every formula, "
                f"not always among its {top} lowest: top = {top} may miss it (refine at least {depth}; BENCHMARKS.md)"
            )
        elif depth is None and deepest and top <= deepest:
            notes.append(
                f"{where} the reference's lowest was not always among even {measured.label}'s {deepest} lowest: "
                f"top = {top} may miss it (rank by a validated energy; BENCHMARKS.md)"
            )
    return notes


def refinement_counts(method: str, rank_energy: str | None, top: int, sizes: set[int]) -> dict[int, int]:
    """How many of the lowest by ``rank_energy`` a reference refinement by ``method`` recomputes per
    composition at each cluster size (atoms): ``top``, raised to the validation's measured depth
    where ``rank_energy``'s order held the reference's lowest only deeper than that in some formula
    of the size class (:meth:`~airss_msc.calc.engines.accuracy.ClassAccuracy.depth`; a class where
    it was not always within the depths measured keeps ``top`` and gets a note instead)."""
    measured = method_accuracy(rank_energy) if rank_energy and is_reference(method) else None
    out = {}
    for n in sizes:
        size_class = measured.at(n) if measured is not None else None
        depth = size_class.depth() if size_class is not None else None
        out[n] = max(top, depth or 0)
    return out


def _refined_selection(
    candidates: list[Result], method: str, rank_energy: str | None, top: int, measured_depth: bool, log
) -> list[Result]:
    """The rows a refinement of the ``top`` lowest per composition takes (raised to the measured
    depth with ``measured_depth``), and the lines that say so or warn that it may miss."""
    sizes = {r.natoms for r in candidates}
    counts = refinement_counts(method, rank_energy, top, sizes) if measured_depth else dict.fromkeys(sizes, top)
    measured = method_accuracy(rank_energy) if rank_energy else None
    lines: list[str] = []
    if measured_depth and is_reference(method) and measured is None and sizes:
        ranked_by = rank_energy or "each row's own method"
        lines.append(
            f"note: no refine depth measured for {ranked_by}: "
            f"top = {top} per composition (rank by a validated energy to refine to its depth; BENCHMARKS.md)"
        )
    for k in sorted(set(counts.values())):  # the notes judge each size class at the count it gets
        lines += refinement_depth_notes(method, rank_energy, k, {n for n in sizes if counts[n] == k})
    if measured is not None:  # a count above top is the class's measured depth (refinement_counts)
        for size_class in dict.fromkeys(c for n in sorted(sizes) if counts[n] > top and (c := measured.at(n))):
            lines.append(
                f"refine: the {size_class.depth()} lowest by {measured.label} per composition at {size_class.label}, "
                f"not {top}: {measured.reference}'s lowest was among its {size_class.depth()} lowest in every "
                f"formula of the validation ({size_class.formulas} formulas; BENCHMARKS.md; --no-depth keeps {top})"
            )
    if log is not None:
        for line in lines:
            log(line)
    wanted = {
        (r.source, r.id)
        for k in sorted(set(counts.values()))
        for r in select_rows([c for c in candidates if counts[c.natoms] == k], k, rank_energy)
    }
    return [r for r in candidates if (r.source, r.id) in wanted]


def run_rows(
    db_path: str,
    method: str,
    *,
    top: int | None = None,
    measured_depth: bool = False,
    rank_energy: str | None = None,
    relax: RelaxSettings | None = None,
    electronic_temperature: float = 300.0,
    nstates: int = 0,
    ligand: str = "",
    sites: str = "auto",
    rows: str = "all",
    formulas: tuple[str, ...] = (),
    executor: Executor | None = None,
    workers: int = 1,
    stop: StopFlag | None = None,
    walltime: float | None = None,
    log: Callable[[str], None] | None = None,
    name: str = "refine",
) -> RowsOutcome:
    """Single points (or, with ``relax``, relaxations; with ``nstates``, excitations) by ``method``
    of stored structures.

    top: the K lowest unique structures per composition (ranked by ``rank_energy``, by default
        the database's ranking energy); None takes every relaxed row (``rescore``). Rows already
        done are skipped.
    measured_depth: a reference (DFT) refinement, single points or relaxations, takes at least as
        many per composition as the validation found it needs at that size (:func:`refinement_counts`).
    rows: ``all``, ``bare`` (no model ligands) or ``capped`` (ligand-capped rows only).
    formulas: only these compositions (all when empty).
    """
    if rows not in ROW_KINDS:
        raise InputError(f"rows must be one of {', '.join(ROW_KINDS)}, got {rows!r}")
    method = check_excitation_method(method) if nstates else str(parse_method(method))
    check_available(method)
    if ligand:
        get_ligand(ligand)
        relax = replace(relax or RelaxSettings(), method=method).validate()
    elif relax is not None:
        relax = replace(relax, method=method).validate()
        if not capabilities(method).gradients:
            raise InputError(f"{method} gives no forces: refine it without --relax")
    stop = stop if stop is not None else StopFlag()
    with ResultsDB(db_path, write=True) as db, stop_on_signals(stop):
        results = db.records()
        if rank_energy is None:
            rank_energy = db.rank_energy
        elif rank_energy.strip().lower() == "own":
            rank_energy = None
        wanted = {canonical_formula(f) for f in formulas}
        candidates = [r for r in results if ROW_KINDS[rows](r) and (not wanted or r.composition in wanted)]
        if top is not None and not nstates and not ligand:  # a refinement: deep enough for the reference
            chosen = _refined_selection(candidates, method, rank_energy, top, measured_depth, log)
        else:
            chosen = select_rows(candidates, top, rank_energy)
        if ligand:
            chosen = [r for r in chosen if "ligand" not in r.provenance]  # cap bare clusters only
            capped = {(r.provenance.get("bare_parent"), r.provenance.get("ligand"), r.method) for r in results}
            pending = [r for r in chosen if (r.id, ligand, method) not in capped]
        elif nstates:
            pending = [r for r in chosen if method not in r.excitations]
        elif relax is None:
            pending = [r for r in chosen if not _done_single_point(r, method)]
        else:
            refined = {(r.provenance.get("refined_from"), r.method) for r in results}
            pending = [r for r in chosen if (r.id, method) not in refined]
        tasks = [_task(r, method, relax, electronic_temperature, nstates, ligand, sites) for r in pending]
        if nstates:  # hours each at 26 atoms: a killed run (walltime, Ctrl-C) resumes from its files
            tasks = [replace(t, checkpoint=excitation_checkpoint(db_path, method, nstates, t.row)) for t in tasks]
        pending_ids = {r.id for r in pending}
        failures = _stored_failures(
            [r for r in chosen if r.id not in pending_ids], results, method, ligand=ligand, nstates=nstates, relax=relax
        )

        def store(task: RowTask, outcome) -> tuple[str, bool]:
            line, ok, new_row = _store(task, outcome)
            if not ok:
                failures.append(RowFailure(task.formula, task.row, outcome.status, outcome.message, new_row))
            return line, ok

        def _store(task: RowTask, outcome) -> tuple[str, bool, int | None]:
            if isinstance(outcome, Excitations):
                db.set_excitations(task.row, outcome)
                if outcome.ground_energy_eV is not None:  # the SCF under the excitations is a single point too
                    db.set_single_point(
                        task.row, outcome.ground_method, outcome.ground_energy_eV, outcome.ground_gap_eV
                    )
                elif outcome.status == JobStatus.SCF_FAILED and outcome.ground_method:
                    # and so is its failure: a refinement would rerun the same SCF ladder (an hour at 26 atoms)
                    db.set_values(
                        task.row,
                        **{f"sp_{method_key(outcome.ground_method)}": f"{outcome.status}: {outcome.message}"[:300]},
                    )
                bright = outcome.first_bright()
                text = (
                    f"first bright {HC_EV_NM / bright[0]:.0f} nm (f={bright[1]:.3f})"
                    if bright
                    else outcome.message or "no bright state"
                )
                if bright and not capabilities(task.method).band_ready:
                    text += " as computed, not a band (the report shifts it onto its reference)"
                return (
                    (
                        f"{task.formula} row {task.row}: {outcome.status}  {len(outcome.energies_eV)} states  "
                        f"{text}  {outcome.wall_seconds:.1f} s"
                    ),
                    outcome.status == JobStatus.DONE,
                    None,
                )
            if isinstance(outcome, Result):
                row = db.add(outcome, extra={"search": name})
                energy = f"  E={outcome.energy:.4f} eV" if outcome.energy is not None else ""
                return (
                    (
                        f"{task.formula} row {task.row} -> row {row}: {outcome.status}{energy}"
                        + (f"  ({outcome.message})" if outcome.message else "")
                    ),
                    outcome.status == Status.RELAXED,
                    row,
                )
            if outcome.energy is not None:
                db.set_single_point(task.row, method, outcome.energy, outcome.gap)
            else:
                db.set_values(task.row, **{f"sp_{method_key(method)}": f"{outcome.status}: {outcome.message}"[:300]})
            text = f"E={outcome.energy:.4f} eV" if outcome.energy is not None else outcome.message
            gap = f"  gap={outcome.gap:.2f} eV" if outcome.gap is not None else ""
            return (
                f"{task.formula} row {task.row}: {outcome.status}  {text}{gap}  {outcome.seconds:.1f} s",
                outcome.status == JobStatus.OK,
                None,
            )

        what = (
            "capped relaxations"
            if ligand
            else "excitation runs"
            if nstates
            else "relaxations"
            if relax is not None
            else "single points"
        )
        headline = (
            f"{name}: {len(chosen)} structure(s) chosen, {len(chosen) - len(pending)} already done, "
            f"{len(pending)} {what} with {method}"
        )
        farmed = run_farm(
            Farm(work=run_row, store=store, on_error=_failed),
            tasks,
            planned=len(chosen),
            skipped=len(chosen) - len(pending),
            executor=executor,
            workers=workers,
            stop=stop,
            walltime=walltime,
            say=log,
            headline=headline,
        )
    outcome = RowsOutcome(**dataclasses.asdict(farmed), failures=failures)
    say = log or _stderr
    say(summary_line(name, outcome, "failed"))
    for failure in failures:
        say(failure.line(name))
    return outcome


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
