"""A study: one config that chains the stages into one resumable job.

The ``[search]``, ``[generate]``, ``[relax]`` and ``[strategy]`` tables are a
search config as ``airss-msc search`` reads it. ``[study]`` adds the steps run
over the stored rows afterwards, in order, each one of the row workflows
(``refine``, ``rescore``, ``spectrum``, ``cap``: :func:`run_rows`), and the
report. ``[mode.<name>]`` tables hold overrides merged into the document when
that mode is chosen (``reduced`` for a laptop, ``full`` for a cluster), so one
file describes both scales::

    [study]
    steps = ["refine", "spectrum"]
    report = "report"
    [study.refine]
    do = "refine"
    method = "pyscf:PBE/def2-SVP"
    top = 3
    [mode.reduced.study.refine]
    top = 1

Every step skips what is already stored, so rerunning a stopped study resumes it.
A step whose structures end in a failure status (a capped cluster ``fragmented``,
an SCF that failed) is listed in :attr:`StudyOutcome.failures`, also on reruns
(the stored status counts), so the command can exit non-zero for it.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from airss_msc.analysis.report import write_report
from airss_msc.calc.engines import Role, capabilities, default_method, parse_method
from airss_msc.calc.excite import DEFAULT_STATES, check_excitation_method
from airss_msc.calc.relax import REFINE_RELAX, RelaxSettings
from airss_msc.calc.threads import current_threads, threads_for
from airss_msc.composition import canonical_formula
from airss_msc.errors import InputError
from airss_msc.generation.generate import GeneratorSettings
from airss_msc.generation.ligands import LIGANDS
from airss_msc.search.candidates import run_search
from airss_msc.search.config import SECTIONS, SearchConfig, config_from_dict
from airss_msc.search.farm import FarmOutcome, InProcessExecutor, StopFlag
from airss_msc.search.rows import ROW_KINDS, RowFailure, RowsOutcome, run_rows
from airss_msc.search.strategy import StrategySettings
from airss_msc.settings import (
    default_of,
    documented,
    markdown_section,
    read_table,
    setting,
    toml_section,
    toml_value,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The row workflows a step can run, each with the settings where it starts from other defaults
#: than :class:`StudyStep`'s: the method of its role, and a refinement's relaxation
#: (:data:`~airss_msc.calc.relax.REFINE_RELAX`). ``airss-msc refine|rescore|spectrum|cap`` take
#: their option defaults from the same objects (:func:`step_defaults`).
STEP_KINDS: dict[str, dict[str, Any]] = {
    "refine": {"method": REFINE_RELAX.method, "fmax": REFINE_RELAX.fmax, "steps": REFINE_RELAX.steps},
    "rescore": {"method": default_method(Role.CROSS_CHECK), "top": None},
    "spectrum": {"method": default_method(Role.EXCITATION)},
    "cap": {"method": default_method(Role.CAPPING)},
}


def _read_names(value, section: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise TypeError(value)
    return tuple(value)


@documented
@dataclass(frozen=True)
class StudyStep:
    """One row workflow of a study, a ``[study.NAME]`` table (see ``airss-msc refine|rescore|spectrum|cap``)."""

    name: str = setting(toml=False, help="the step's name: its table is [study.NAME]")
    do: str = setting(help="the row workflow: " + " | ".join(STEP_KINDS), shown="the table's NAME")
    method: str = setting(
        help="the method the step computes with",
        shown="by workflow: " + ", ".join(f"{k} {v['method']}" for k, v in STEP_KINDS.items()),
    )
    top: int | None = setting(3, help="lowest unique structures per composition (rescore: every relaxed row)")
    depth: bool = setting(
        True,
        help="refine: at least as many per composition as the validation found the DFT lowest needs at "
        "that cluster size in the ranking energy's order (measured_errors.toml)",
    )
    energy: str | None = setting(
        None,
        help="choose the top structures by this method's energies ('own': each row's own method)",
        shown="the search's rank_energy",
    )
    rows: str = setting("all", help="which rows: " + " | ".join(ROW_KINDS) + " (bare or ligand-capped)")
    relax: bool = setting(False, help="refine: relax with the method (new rows) instead of single points")
    fmax: float = setting(
        default_of(RelaxSettings, "fmax"), help="force convergence of the step's relaxations", unit="eV/Angstrom"
    )
    steps: int = setting(
        default_of(RelaxSettings, "steps"),
        help="step limit per relaxation (refine --relax, cap)",
        shown=f"refine {REFINE_RELAX.steps}, cap {default_of(RelaxSettings, 'steps')}",
    )
    states: int = setting(DEFAULT_STATES, help="excited singlets (spectrum)")
    ligand: str = setting("NH3", help="model amine (cap): " + " | ".join(LIGANDS))
    sites: str = setting(
        "auto", help="cap: 'auto' (every Cd/Zn with fewer than 4 anion neighbours) or how many, least coordinated first"
    )
    compositions: tuple[str, ...] = setting((), help="only these formulas", shown="all")

    def validate(self) -> StudyStep:
        for formula in self.compositions:
            canonical_formula(formula)
        _check_kind(self.name, self.do)
        if self.top is not None and self.top < 1:
            raise InputError(f"[study.{self.name}] top must be >= 1")
        if self.rows not in ROW_KINDS:
            raise InputError(f"[study.{self.name}] rows must be one of {', '.join(ROW_KINDS)}")
        if self.do == "spectrum":
            if self.states < 1:
                raise InputError(f"[study.{self.name}] states must be >= 1")
            check_excitation_method(self.method)
        else:
            parse_method(self.method)
        if self.energy and self.energy.strip().lower() != "own":
            parse_method(self.energy)
        return self

    def run(
        self, db: str, executor: Executor | None, workers: int, stop: StopFlag | None, log: Callable[[str], None] | None
    ) -> RowsOutcome:
        relaxes = self.do == "cap" or (self.do == "refine" and self.relax)
        return run_rows(
            db,
            self.method,
            top=None if self.do == "rescore" else self.top,
            measured_depth=self.depth and self.do == "refine",
            rank_energy=self.energy,
            relax=RelaxSettings(method=self.method, fmax=self.fmax, steps=self.steps) if relaxes else None,
            nstates=self.states if self.do == "spectrum" else 0,
            ligand=self.ligand if self.do == "cap" else "",
            sites=self.sites,
            rows=self.rows,
            formulas=self.compositions,
            executor=executor,
            workers=workers,
            stop=stop,
            log=log,
            name=self.label,
        )

    @property
    def label(self) -> str:
        """How lines (and the rows' ``search`` key) name the step: ``spectrum_capped (spectrum)``."""
        return f"{self.name} ({self.do})"


def _check_kind(name: str, do: str) -> None:
    if do not in STEP_KINDS:
        raise InputError(f"[study.{name}] do = {do!r}: choose {', '.join(STEP_KINDS)}")


def step_defaults(do: str, name: str | None = None) -> StudyStep:
    """The step ``do`` runs when nothing is set: :class:`StudyStep`'s defaults with its kind's."""
    _check_kind(name or do, do)
    return StudyStep(name=name or do, do=do, **STEP_KINDS[do])


@documented
@dataclass(frozen=True)
class Study:
    """A search, the steps over its rows, and where its report goes (relative to the config):
    the ``[study]`` table."""

    search: SearchConfig = setting(toml=False, help="the search: [search], [generate], [relax], [strategy]")
    steps: tuple[StudyStep, ...] = setting(
        (),
        parse=_read_names,
        expects="a list of step names",
        help="the steps to run, in order: names of [study.NAME] tables",
    )
    mode: str = setting("", toml=False, help="the [mode.NAME] overrides applied (--mode)")
    report: str = setting("report", help="the report's folder (relative to the config)")
    report_energy: str | None = setting(
        None,
        help="the report ranks by this method's energies",
        shown="a reference (DFT) energy refined to the measured depth in every composition, "
        "else the search's rank_energy",
    )
    report_top: int = setting(5, help="structures per composition shown in detail")
    calibration: str | None = setting(None, help="gap-to-band calibration (TOML, relative to the config)")
    bands: str | None = setting(None, help="measured bands (TOML, relative to the config)", shown="packaged")
    modes: tuple[str, ...] = setting((), toml=False, help="the config's [mode.NAME] tables")


@dataclass
class StudyOutcome:
    """What each stage did; ``interrupted`` when a stage stopped early (rerun to resume);
    ``failures`` the structures a step failed on (step label, failure)."""

    stages: list[tuple[str, FarmOutcome]] = field(default_factory=list)
    report: Path | None = None
    labels: dict[str, str] = field(default_factory=dict)  # stage name -> label in lines

    @property
    def interrupted(self) -> bool:
        return any(o.interrupted for _, o in self.stages)

    @property
    def failures(self) -> list[tuple[str, RowFailure]]:
        # the search's unrelaxed candidates are not failures: a search expects most starts to
        # end elsewhere; a step's structure that fails is a result missing from the study
        return [
            (self.labels.get(name, name), f)
            for name, o in self.stages
            if isinstance(o, RowsOutcome)
            for f in o.failures
        ]

    def failure_lines(self) -> list[str]:
        return [f.line(label) for label, f in self.failures]


def merge(base: dict, override: dict) -> dict:
    """``override`` merged into a copy of ``base``, table by table (values replace)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _move_files_from(doc: dict, base: Path) -> dict:
    """``doc`` with the files a move reads (``[strategy.<move>] templates``) taken relative to
    ``base`` (the config's folder), so a study runs the same from any directory; absolute paths
    are kept."""
    strategy = doc.get("strategy")
    if not isinstance(strategy, dict):
        return doc
    moved = {}
    for name, table in strategy.items():
        files = table.get("templates") if isinstance(table, dict) else None
        if isinstance(files, list) and all(isinstance(f, str) for f in files):
            here = [f if Path(f).is_absolute() else os.path.normpath(base / f) for f in files]
            moved[name] = {**table, "templates": here}
    return {**doc, "strategy": {**strategy, **moved}} if moved else doc


def study_from_dict(doc: dict, source: str = "", mode: str | None = None, db: str | None = None) -> Study:
    """Build and validate a :class:`Study` from a parsed TOML document (``mode`` overrides merged)."""
    doc = dict(doc)
    modes = doc.pop("mode", {})
    if not isinstance(modes, dict) or not all(isinstance(v, dict) for v in modes.values()):
        raise InputError("[mode.<name>] must be tables of overrides")
    if mode:
        if mode not in modes:
            known = ", ".join(sorted(modes)) or "none"
            raise InputError(f"unknown mode {mode!r}: this config has {known}")
        doc = merge(doc, modes[mode])
    table = doc.pop("study", {})
    if not isinstance(table, dict):
        raise InputError("[study] must be a table")
    # step tables may be defined and left out of a mode's steps; any other key is read as a setting
    specs = {k: v for k, v in table.items() if isinstance(v, dict)}
    own = read_table(Study, {k: v for k, v in table.items() if k not in specs}, "study", also=("step tables",))
    names = own.get("steps", ())
    missing = [n for n in names if n not in specs]
    if missing:
        raise InputError(f"step {missing[0]!r} named in [study] steps has no [study.{missing[0]}] table")
    steps = {}
    for name, spec in specs.items():
        values = read_table(StudyStep, spec, f"study.{name}")
        steps[name] = replace(step_defaults(values.pop("do", name), name), **values).validate()
    chosen = tuple(steps[n] for n in names)  # every table checked, the listed ones run
    base = Path(source).parent if source else Path(".")
    search = config_from_dict(_move_files_from(doc, base), source)
    if db:
        search = replace(search, db=db)
    report = own.pop("report", default_of(Study, "report"))
    for key in ("calibration", "bands"):
        if key in own:
            own[key] = str(base / own[key])
    return Study(
        **{**own, "steps": chosen},
        search=search,
        mode=mode or "",
        modes=tuple(sorted(modes)),
        report=str(Path(search.db).parent / report) if db else str(base / report),
    )


def defaults_document(markdown: bool = False) -> str:
    """Every config key with its default, unit and meaning, from the settings classes: a
    commented TOML document (``airss-msc config --defaults``), or the README's Markdown tables."""
    if markdown:
        parts = [markdown_section(cls, name) for name, cls in SECTIONS.items()]
        parts += [markdown_section(Study, "study"), markdown_section(StudyStep, "study.NAME")]
        return "\n".join(parts)
    parts = [toml_section(cls, name) for name, cls in SECTIONS.items()]
    parts.append(toml_section(Study, "study"))
    parts += [toml_section(StudyStep, f"study.{kind}", source=step_defaults(kind)) for kind in STEP_KINDS]
    return "\n".join(parts)


def resolved_document(study: Study) -> str:
    """``study`` as TOML with every key filled in (defaults included, paths and compositions as
    resolved): what a config means, for ``airss-msc config CONFIG``."""
    search = study.search
    parts = [toml_section(SearchConfig, "search", search), toml_section(GeneratorSettings, "generate", search.generate)]
    relax = toml_section(RelaxSettings, "relax", search.relax, exclude=("stages",))
    for stage in search.relax.stages:
        relax += "\n[[relax.stage]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in stage.items())
    parts.append(relax)
    strategy = search.strategy
    text = toml_section(StrategySettings, "strategy", strategy, exclude=("moves",))
    if strategy.moves:
        text += f"moves = {toml_value(dict(strategy.moves))}\n"
    for move, table in strategy.move_settings:
        text += f"\n[strategy.{move}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table)
    parts.append(text)
    names = toml_value([step.name for step in study.steps])
    parts.append(toml_section(Study, "study", study, exclude=("steps",)) + f"steps = {names}\n")
    parts += [toml_section(StudyStep, f"study.{step.name}", step) for step in study.steps]
    return "\n".join(parts)


def load_study(path: str | Path, mode: str | None = None, db: str | None = None) -> Study:
    """Read a study config; the database and report paths are relative to the config's folder
    unless ``db`` is given (then the report goes beside the database)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read config {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"unreadable config {path}: {exc}") from None
    study = study_from_dict(doc, str(path), mode, db)
    if db is None and not Path(study.search.db).is_absolute():
        study = replace(study, search=replace(study.search, db=str(path.parent / study.search.db)))
    return study


def stage_threads(methods: list[str], requested: int) -> int:
    """Threads for a stage computing with ``methods``: ``requested`` if one of them is multithreaded
    (a DFT SCF), else 1. The ML potentials, xTB and Lennard-Jones run on one: relaxing 4 Cd7TeSe3
    starts with CHGNet beside two busy DFT processes on 2 cores took 13 ms CPU / 31 ms wall per
    force call on 1 torch thread and 78 ms / 96 ms on 2 (issue 21; the study's search had shown
    0.26 CPU s per step against 0.03 in the demo's single-threaded MPI ranks); DFT on ~100-400
    basis functions does gain."""
    wide = any(capabilities(m).multithreaded for m in methods)
    return requested if wide else 1


def _search_methods(search: SearchConfig) -> list[str]:
    return [*(stage.method for stage in search.relax.protocol()), *search.relax.single_points]


def run_study(
    study: Study,
    executor: Executor | None = None,
    workers: int = 1,
    stop: StopFlag | None = None,
    log: Callable[[str], None] | None = None,
) -> StudyOutcome:
    """Search, then each step over the stored rows, then the report; stops after a stage that
    was interrupted (nothing stored is lost; rerun to resume). Run in this process, the search
    and the steps that are not DFT compute on one thread (:func:`stage_threads`)."""
    outcome = StudyOutcome()
    requested = current_threads()
    say = log or _stderr

    def threads(name: str, methods: list[str]) -> int:
        if executor is not None and not isinstance(executor, InProcessExecutor):
            return requested  # the work runs in other processes (MPI ranks), on their own threads
        n = stage_threads(methods, requested)
        if n != requested:
            say(
                f"{name}: {n} thread (not {requested}): {', '.join(dict.fromkeys(methods))} on small clusters "
                f"run slower on more; the DFT steps use {requested}"
            )
        return n

    with threads_for(threads("search", _search_methods(study.search))):
        outcome.stages.append(
            ("search", run_search(study.search, executor=executor, workers=workers, log=log, stop=stop))
        )
    for step in study.steps:
        if outcome.interrupted or (stop is not None and stop):
            return outcome
        outcome.labels[step.name] = step.label
        with threads_for(threads(step.label, [step.method])):
            outcome.stages.append((step.name, step.run(study.search.db, executor, workers, stop, log)))
    if not outcome.interrupted:
        outcome.report = write_report(
            study.search.db,
            study.report,
            top=study.report_top,
            calibration=study.calibration,
            bands=study.bands,
            energy=study.report_energy,
        )
    return outcome


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
