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
import sys
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from airss_msc.analysis.report import write_report
from airss_msc.calc.engines import parse_method
from airss_msc.calc.excite import DEFAULT_EXCITATION_METHOD, DEFAULT_STATES, check_excitation_method
from airss_msc.calc.relax import DEFAULT_METHOD, RelaxSettings
from airss_msc.calc.threads import current_threads, threads_for
from airss_msc.composition import canonical_formula
from airss_msc.errors import InputError
from airss_msc.search.candidates import run_search
from airss_msc.search.config import SearchConfig, config_from_dict
from airss_msc.search.farm import FarmOutcome, InProcessExecutor, StopFlag
from airss_msc.search.rows import ROW_KINDS, RowFailure, RowsOutcome, run_rows

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The row workflows a step can run, with the method each uses when the step names none.
STEP_KINDS: dict[str, str] = {
    "refine": "pyscf:PBE/def2-SVP",
    "rescore": "tblite:GFN2-xTB",
    "spectrum": DEFAULT_EXCITATION_METHOD,
    "cap": DEFAULT_METHOD,
}

_STEP_KEYS = {"do": str, "method": str, "top": int, "energy": str, "rows": str, "relax": bool, "compositions": list,
              "fmax": (int, float), "steps": int, "states": int, "ligand": str, "sites": str}
_STUDY_KEYS = {"steps": list, "report": str, "report_energy": str, "report_top": int, "calibration": str,
               "bands": str}


@dataclass(frozen=True)
class StudyStep:
    """One row workflow of a study (see ``airss-msc refine|rescore|spectrum|cap``)."""

    name: str
    do: str
    method: str
    top: int | None = 1
    energy: str | None = None
    rows: str = "all"
    relax: bool = False
    fmax: float = 0.05  # eV/Angstrom
    steps: int = 200
    states: int = DEFAULT_STATES
    ligand: str = "NH3"
    sites: str = "auto"
    compositions: tuple[str, ...] = ()  # only these formulas (all when empty)

    def validate(self) -> "StudyStep":
        for formula in self.compositions:
            canonical_formula(formula)
        if self.do not in STEP_KINDS:
            raise InputError(f"[study.{self.name}] do = {self.do!r}: choose {', '.join(STEP_KINDS)}")
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

    def run(self, db: str, executor: Executor | None, workers: int, stop: StopFlag | None,
            log: Callable[[str], None] | None) -> RowsOutcome:
        relaxes = self.do == "cap" or (self.do == "refine" and self.relax)
        return run_rows(
            db, self.method, top=None if self.do == "rescore" else self.top, rank_energy=self.energy,
            relax=RelaxSettings(method=self.method, fmax=self.fmax, steps=self.steps) if relaxes else None,
            nstates=self.states if self.do == "spectrum" else 0, ligand=self.ligand if self.do == "cap" else "",
            sites=self.sites, rows=self.rows, formulas=self.compositions, executor=executor, workers=workers, stop=stop, log=log,
            name=self.label)

    @property
    def label(self) -> str:
        """How lines (and the rows' ``search`` key) name the step: ``spectrum_capped (spectrum)``."""
        return f"{self.name} ({self.do})"


@dataclass(frozen=True)
class Study:
    """A search, the steps over its rows, and where its report goes (relative to the config)."""

    search: SearchConfig
    steps: tuple[StudyStep, ...] = ()
    mode: str = ""
    report: str = "report"
    report_energy: str | None = None
    report_top: int = 5
    calibration: str | None = None
    bands: str | None = None
    modes: tuple[str, ...] = field(default=())


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
        return [(self.labels.get(name, name), f) for name, o in self.stages if isinstance(o, RowsOutcome)
                for f in o.failures]

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
    names = table.get("steps", [])
    own = {k: v for k, v in table.items() if k in _STUDY_KEYS}
    # step tables may be defined and left out of a mode's steps; any other key is a typo
    unknown = [k for k in table if k not in _STUDY_KEYS and not isinstance(table[k], dict)]
    if unknown:
        raise InputError(f"unknown key {unknown[0]!r} in [study]; known keys: {', '.join(sorted(_STUDY_KEYS))} "
                         "and step tables")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError("[study] steps must be a list of step names")
    for key, kind in _STUDY_KEYS.items():
        if key in own and not isinstance(own[key], kind):
            raise InputError(f"[study] {key} = {own[key]!r} has the wrong type")
    missing = [n for n in names if not isinstance(table.get(n), dict)]
    if missing:
        raise InputError(f"step {missing[0]!r} named in [study] steps has no [study.{missing[0]}] table")
    steps = []
    for name in [k for k in table if isinstance(table[k], dict)]:
        spec = table[name]
        bad = [k for k in spec if k not in _STEP_KEYS]
        if bad:
            raise InputError(f"unknown key {bad[0]!r} in [study.{name}]; known keys: {', '.join(sorted(_STEP_KEYS))}")
        for key, kind in _STEP_KEYS.items():
            if key in spec and (not isinstance(spec[key], kind) or (isinstance(spec[key], bool) and kind is not bool)):
                raise InputError(f"[study.{name}] {key} = {spec[key]!r} has the wrong type")
        do = spec.get("do", name)
        values = {k: v for k, v in spec.items() if k != "do"}
        values.setdefault("method", STEP_KINDS.get(do, ""))
        if "fmax" in values:
            values["fmax"] = float(values["fmax"])
        if "compositions" in values:
            values["compositions"] = tuple(str(f) for f in values["compositions"])
        steps.append(StudyStep(name=name, do=do, **values).validate())
    steps = [next(s for s in steps if s.name == n) for n in names]  # every table checked, listed ones run
    search = config_from_dict(doc, source)
    if db:
        search = replace(search, db=db)
    base = Path(source).parent if source else Path(".")
    report = own.get("report", "report")
    return Study(search=search, steps=tuple(steps), mode=mode or "",
                 report=str(Path(search.db).parent / report) if db else str(base / report),
                 report_energy=own.get("report_energy"), report_top=own.get("report_top", 5),
                 calibration=str(base / own["calibration"]) if "calibration" in own else None,
                 bands=str(base / own["bands"]) if "bands" in own else None, modes=tuple(sorted(modes)))


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


#: Engines a study stage keeps every requested thread for. Everything else (the ML potentials, xTB,
#: Lennard-Jones) runs on one: relaxing 4 Cd7TeSe3 starts with CHGNet beside two busy DFT
#: processes on 2 cores took 13 ms CPU / 31 ms wall per force call on 1 torch thread and
#: 78 ms / 96 ms on 2 (issue 21; the study's search had shown 0.26 CPU s per step against
#: 0.03 in the demo's single-threaded MPI ranks); DFT on ~100-400 basis functions does gain.
MULTITHREADED_ENGINES = frozenset({"pyscf"})


def stage_threads(methods: list[str], requested: int) -> int:
    """Threads for a stage computing with ``methods``: ``requested`` if one is DFT, else 1."""
    wide = any(parse_method(m).engine in MULTITHREADED_ENGINES for m in methods)
    return requested if wide else 1


def _search_methods(search: SearchConfig) -> list[str]:
    return [*(stage.method for stage in search.relax.protocol()), *search.relax.single_points]


def run_study(study: Study, executor: Executor | None = None, workers: int = 1, stop: StopFlag | None = None,
              log: Callable[[str], None] | None = None) -> StudyOutcome:
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
            say(f"{name}: {n} thread (not {requested}): {', '.join(dict.fromkeys(methods))} on small clusters "
                f"run slower on more; the DFT steps use {requested}")
        return n

    with threads_for(threads("search", _search_methods(study.search))):
        outcome.stages.append(("search", run_search(study.search, executor=executor, workers=workers, log=log,
                                                    stop=stop)))
    for step in study.steps:
        if outcome.interrupted or (stop is not None and stop):
            return outcome
        outcome.labels[step.name] = step.label
        with threads_for(threads(step.label, [step.method])):
            outcome.stages.append((step.name, step.run(study.search.db, executor, workers, stop, log)))
    if not outcome.interrupted:
        outcome.report = write_report(study.search.db, study.report, top=study.report_top,
                                      calibration=study.calibration, bands=study.bands,
                                      energy=study.report_energy)
    return outcome


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
