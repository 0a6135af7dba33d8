"""airss-msc: ab initio random structure search for alloy magic-size clusters.

Stages (each a module and an ``airss-msc`` subcommand): ``generate`` random
clusters (or substitute into a parent), ``relax`` them with an engine of the
registry (CHGNet geometries, SevenNet-0 ranking single points, xTB, PySCF DFT),
``search`` (both, steered by the ranking energy, resumable), ``rank`` and
``report``. Structures travel between stages as :class:`ase.Atoms` and as plain
extxyz / ASE-database files; results as one typed record, :class:`Result`.

The main functions are importable from here (loaded on first use, so ``import
airss_msc`` stays cheap)::

    from airss_msc import generate_cluster, relax_structure, RelaxSettings, rank_results
    atoms = generate_cluster("Cd7TeSe3", seed=1)
    result = relax_structure(atoms, RelaxSettings(method="chgnet", single_points=("sevennet",)))
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "generate_cluster": "airss_msc.build.generate",
    "generate_many": "airss_msc.build.generate",
    "GeneratorSettings": "airss_msc.build.generate",
    "substituted_structures": "airss_msc.build.substitute",
    "parse_substitution": "airss_msc.build.substitute",
    "point_group": "airss_msc.build.geometry",
    "relax_structure": "airss_msc.calc.relax",
    "RelaxSettings": "airss_msc.calc.relax",
    "single_point": "airss_msc.calc.single_point",
    "Result": "airss_msc.results.record",
    "ResultsDB": "airss_msc.results.store",
    "load_results": "airss_msc.analysis.rank",
    "rank_results": "airss_msc.analysis.rank",
    "isotope_pattern": "airss_msc.analysis.isotopes",
    "run_search": "airss_msc.search.candidates",
    "load_config": "airss_msc.search.config",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'airss_msc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
