"""Search configuration: a TOML file with ``[search]``, ``[generate]`` and ``[relax]``.

Every key is checked (a typo is an error, not silently ignored) and turned into
the frozen settings objects the stages take. Lengths in Angstrom, forces in
eV/Angstrom, times in seconds unless written ``HH:MM:SS``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path

from airss_msc.composition import expand_compositions
from airss_msc.errors import InputError
from airss_msc.build.generate import GeneratorSettings, generate_cluster, prepare
from airss_msc.calc.engines import parse_method
from airss_msc.calc.relax import RelaxSettings
from airss_msc.build.moves import MOVES
from airss_msc.search.distributed import check_executor
from airss_msc.search.strategy import StrategySettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class SearchConfig:
    """A whole search: what to build, how to relax it, where to store it."""

    compositions: tuple[str, ...]
    candidates: int = 8
    seed: int = 1
    db: str = "results.db"
    name: str = "search"
    walltime: float | None = None
    threads: int | None = None
    #: where the tasks run: None (MPI under a launcher, else in process), "dask" or "dask://HOST:PORT"
    executor: str | None = None
    #: rank by this method's energies (the relax method or one of its single points); None: own
    rank_energy: str | None = None
    generate: GeneratorSettings = field(default_factory=GeneratorSettings)
    relax: RelaxSettings = field(default_factory=RelaxSettings)
    strategy: StrategySettings = field(default_factory=StrategySettings)
    source: str = ""

    def validate(self) -> "SearchConfig":
        """Check everything that can be checked before any work starts."""
        if not isinstance(self.candidates, int) or self.candidates < 0:
            raise InputError(f"negative or non-integer candidates {self.candidates!r}: need an integer >= 0")
        relax = self.relax.validate()
        relax.check_engines()
        rank_energy = self.rank_energy
        if rank_energy is not None:
            rank_energy = str(parse_method(rank_energy))
            computed = {*(stage.method for stage in relax.protocol()), *relax.single_points}
            if rank_energy not in computed:
                raise InputError(f"[search] rank_energy = {self.rank_energy!r} is not computed by this search: "
                                 f"add it to [relax] single_points or rank by {relax.method}")
        self.strategy.validate()
        for formula in self.compositions:
            prepare(formula, self.generate)
            # One trial structure: catches separations that pass the packing
            # bound but still cannot be met, before any job is started.
            generate_cluster(formula, 0, self.generate)
        return replace(self, relax=relax, rank_energy=rank_energy)


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


def _take(table: dict, section: str, allowed: dict[str, type | tuple]) -> dict:
    """Type-check one TOML table against ``allowed`` (key -> accepted types)."""
    if not isinstance(table, dict):
        raise InputError(f"[{section}] must be a table")
    out = {}
    for key, value in table.items():
        if key not in allowed:
            raise InputError(f"unknown key {key!r} in [{section}]; known keys: {', '.join(sorted(allowed))}")
        types = allowed[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,))):
            raise InputError(f"[{section}] {key} = {value!r} has the wrong type")
        out[key] = value
    return out


_NUM = (int, float)

_SEARCH_KEYS = {"compositions": (list, str), "candidates": int, "seed": int, "db": str, "name": str,
                "walltime": (str, int, float), "threads": int, "executor": str, "rank_energy": str}
_GENERATE_KEYS = {"minsep": dict, "slack": _NUM, "shape": str, "radius": _NUM, "axes": list,
                  "inner": _NUM, "symmetry": str, "max_attempts": int}
_STRATEGY_KEYS = {"name": str, "random_starts": int, "pool": int, "amplitude": _NUM, "swaps": int,
                  "temperature": _NUM, "moves": dict, **{name: dict for name in MOVES}}
_RELAX_KEYS = {f.name: (_NUM if f.type in ("float", "float | None") else (int if f.type == "int" else str))
               for f in fields(RelaxSettings) if f.name not in ("stages", "single_points")}


def config_from_dict(doc: dict, source: str = "") -> SearchConfig:
    """Build and validate a :class:`SearchConfig` from a parsed TOML document."""
    unknown = set(doc) - {"search", "generate", "relax", "strategy"}
    if unknown:
        raise InputError(f"unknown section [{sorted(unknown)[0]}]; known: [search], [generate], [relax], [strategy]")
    if "search" not in doc:
        raise InputError("config has no [search] section")
    s = _take(doc["search"], "search", _SEARCH_KEYS)
    if "compositions" not in s:
        raise InputError("[search] needs compositions = [\"Cd4Se4\", ...]")
    comps = s.pop("compositions")
    comps = [comps] if isinstance(comps, str) else comps
    g = _take(doc.get("generate", {}), "generate", _GENERATE_KEYS)
    if "axes" in g:
        g["axes"] = tuple(float(a) for a in g["axes"])
    for key in ("slack", "radius", "inner"):
        if key in g:
            g[key] = float(g[key])
    st = _take(doc.get("strategy", {}), "strategy", _STRATEGY_KEYS)
    for key in ("amplitude", "temperature"):
        if key in st:
            st[key] = float(st[key])
    if "moves" in st:
        st["moves"] = tuple((str(k), float(v)) for k, v in st["moves"].items())
    own = {name: st.pop(name) for name in list(st) if name in MOVES}
    if own:
        st["move_settings"] = tuple((name, tuple(sorted(table.items()))) for name, table in own.items())
    r = _take(doc.get("relax", {}), "relax", {**_RELAX_KEYS, "stage": list, "single_points": list})
    stages = r.pop("stage", [])
    if "single_points" in r:
        r["single_points"] = tuple(str(m) for m in r["single_points"])
    for k, table in enumerate([r] + stages):
        if k:
            _take(table, f"relax.stage {k}", _RELAX_KEYS)
        for key in ("fmax", "max_seconds", "maxstep", "electronic_temperature"):
            if key in table:
                table[key] = float(table[key])
    if stages:
        r["stages"] = tuple(dict(t) for t in stages)
    config = SearchConfig(
        compositions=tuple(expand_compositions(comps)),
        candidates=s.get("candidates", 8),
        seed=s.get("seed", 1),
        db=s.get("db", "results.db"),
        name=s.get("name", Path(source).stem if source else "search"),
        walltime=parse_walltime(s.get("walltime")),
        threads=s.get("threads"),
        executor=check_executor(s.get("executor")),
        rank_energy=s.get("rank_energy"),
        generate=GeneratorSettings(**g),
        relax=RelaxSettings(**r),
        strategy=StrategySettings(**st),
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
