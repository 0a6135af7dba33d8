"""Search configuration: a TOML file with ``[search]``, ``[generate]``, ``[relax]`` and ``[strategy]``.

Every key is checked (a typo is an error, not silently ignored) and turned into
the frozen settings objects the stages take. Each section's keys, types and
defaults are those of its settings class (:data:`SECTIONS`), declared once with
:func:`airss_msc.settings.setting`. Lengths in Angstrom, forces in eV/Angstrom,
times in seconds unless written ``HH:MM:SS``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from airss_msc.calc.engines import parse_method
from airss_msc.calc.relax import RelaxSettings
from airss_msc.composition import expand_compositions
from airss_msc.errors import InputError
from airss_msc.generation.generate import GeneratorSettings, generate_cluster, prepare
from airss_msc.generation.moves import MOVES
from airss_msc.search.distributed import check_executor
from airss_msc.search.strategy import StrategySettings
from airss_msc.settings import documented, read_table, setting

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parse_walltime(value) -> float | None:
    """``"11:50:00"``, ``"50:00"``, ``"90"`` or a number of seconds -> seconds."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = re.fullmatch(r"\s*(?:(?:(\d+)-)?(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)\s*", str(value))
        if not m:
            raise InputError(f"malformed walltime {value!r}: expected HH:MM:SS or seconds")
        days, a, b, c = m.groups()
        parts = [float(x) for x in (a, b) if x is not None]
        seconds = float(c)
        if len(parts) == 2:
            seconds += parts[0] * 3600 + parts[1] * 60
        elif len(parts) == 1:
            seconds += parts[0] * 60
        seconds += float(days or 0) * 86400
    if seconds <= 0:
        raise InputError(f"walltime must be positive, got {value!r}")
    return seconds


def _read_walltime(value, section: str) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(value)
    return parse_walltime(value)


def _read_compositions(value, section: str) -> tuple[str, ...]:
    """A formula or family, or a list of them -> the formulas, in order, without duplicates."""
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise TypeError(value)
    return tuple(expand_compositions(entries))


def _read_executor(value, section: str) -> str | None:
    if not isinstance(value, str):
        raise TypeError(value)
    return check_executor(value)


@documented
@dataclass(frozen=True)
class SearchConfig:
    """A whole search (the ``[search]`` table and the sections under it): what to build, how
    to relax it, where to store it."""

    compositions: tuple[str, ...] = setting(
        help='formulas or families: "Cd6Te2Se4", "cdtese:9-16", "cdtese:12:balanced", "zncdse13"',
        parse=_read_compositions,
        expects="a string or a list of strings",
    )
    candidates: int = setting(8, help="structures per composition")
    seed: int = setting(1, help="base seed; each candidate's own seed is derived and stored with it")
    db: str = setting("results.db", help="results database (relative to where the search runs)")
    name: str = setting("search", help="the search's name, stored on its rows", shown="the config file's name")
    walltime: float | None = setting(
        None,
        help='stop handing out work after this ("HH:MM:SS" or seconds); rerun to resume',
        unit="s",
        parse=_read_walltime,
        expects='"HH:MM:SS" or a number of seconds',
    )
    threads: int | None = setting(None, help="threads per process", shown="1, or SLURM_CPUS_PER_TASK")
    executor: str | None = setting(
        None,
        help='where relaxations run: "mpi" (MPI under a launcher, else in process), "dask" or "dask://HOST:PORT"',
        parse=_read_executor,
        expects="a string",
        shown='"mpi"',
    )
    batch: int = setting(
        1,
        help="candidates a worker relaxes together by FIRE, one model call per step for all (engines "
        "with a batched call, one-stage protocols; others one at a time); 1: one at a time by [relax] optimizer",
    )
    rank_energy: str | None = setting(
        None,
        help="rank and steer by this method's energies (the relax method or one of its single points)",
        shown="the relax method's",
    )
    generate: GeneratorSettings = setting(factory=GeneratorSettings, toml=False, help="the [generate] table")
    relax: RelaxSettings = setting(factory=RelaxSettings, toml=False, help="the [relax] table")
    strategy: StrategySettings = setting(factory=StrategySettings, toml=False, help="the [strategy] table")
    source: str = setting("", toml=False, help="the config file read (set by the loader)")

    def validate(self) -> SearchConfig:
        """Check everything that can be checked before any work starts."""
        if not isinstance(self.candidates, int) or self.candidates < 0:
            raise InputError(f"negative or non-integer candidates {self.candidates!r}: need an integer >= 0")
        if not isinstance(self.batch, int) or isinstance(self.batch, bool) or self.batch < 1:
            raise InputError(f"[search] batch = {self.batch!r}: need an integer >= 1 (1: one at a time)")
        relax = self.relax.validate()
        relax.check_engines()
        rank_energy = self.rank_energy
        if rank_energy is not None:
            rank_energy = str(parse_method(rank_energy))
            computed = {*(stage.method for stage in relax.protocol()), *relax.single_points}
            if rank_energy not in computed:
                raise InputError(
                    f"[search] rank_energy = {self.rank_energy!r} is not computed by this search: "
                    f"add it to [relax] single_points or rank by {relax.method}"
                )
        self.strategy.validate()
        for formula in self.compositions:
            prepare(formula, self.generate)
            # One trial structure: catches separations that pass the packing
            # bound but still cannot be met, before any job is started.
            generate_cluster(formula, 0, self.generate)
        return replace(self, relax=relax, rank_energy=rank_energy)


#: The sections of a search config, with the settings class each one fills.
SECTIONS: dict[str, type] = {
    "search": SearchConfig,
    "generate": GeneratorSettings,
    "relax": RelaxSettings,
    "strategy": StrategySettings,
}


def config_from_dict(doc: dict, source: str = "") -> SearchConfig:
    """Build and validate a :class:`SearchConfig` from a parsed TOML document."""
    unknown = set(doc) - set(SECTIONS)
    if unknown:
        raise InputError(
            f"unknown section [{sorted(unknown)[0]}]; known: " + ", ".join(f"[{name}]" for name in SECTIONS)
        )
    if "search" not in doc:
        raise InputError("config has no [search] section")
    s = read_table(SearchConfig, doc["search"], "search")
    if "compositions" not in s:
        raise InputError('[search] needs compositions = ["Cd4Se4", ...]')
    st = doc.get("strategy", {})
    if not isinstance(st, dict):
        raise InputError("[strategy] must be a table")
    # [strategy.MOVE] tables: each move's own settings (checked when the moves are built)
    own = {name: st[name] for name in MOVES if name in st}
    for name, table in own.items():
        if not isinstance(table, dict):
            raise InputError(f"[strategy.{name}] must be a table")
    strategy = read_table(
        StrategySettings, {k: v for k, v in st.items() if k not in own}, "strategy", also=tuple(MOVES)
    )
    if own:
        strategy["move_settings"] = tuple((name, tuple(sorted(table.items()))) for name, table in own.items())
    config = SearchConfig(
        **{"name": Path(source).stem if source else "search", **s},
        generate=GeneratorSettings(**read_table(GeneratorSettings, doc.get("generate", {}), "generate")),
        relax=RelaxSettings(**read_table(RelaxSettings, doc.get("relax", {}), "relax")),
        strategy=StrategySettings(**strategy),
        source=source,
    )
    if config.threads is not None and config.threads < 1:
        raise InputError(f"[search] threads must be >= 1, got {config.threads}")
    return config.validate()


def load_config(path: str | Path) -> SearchConfig:
    """Read and validate a TOML config file; every problem is an :class:`InputError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read config {path}: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"unreadable config {path}: {exc}") from None
    return config_from_dict(doc, str(path))


def default_config_text() -> str:
    """The embedded default search (the ``make demo`` job)."""
    return resources.files("airss_msc").joinpath("data/demo.toml").read_text()


def default_config(db: str | None = None) -> SearchConfig:
    config = config_from_dict(tomllib.loads(default_config_text()), "embedded demo")
    return replace(config, db=db) if db else config
