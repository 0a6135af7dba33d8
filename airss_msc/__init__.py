"""airss-msc: ab initio random structure search for alloy magic-size clusters.

It searches for the atomic structures of alloy semiconductor magic-size clusters
(CdTeSe, Zn_xCd_(13-x)Se_13, ...) in the AIRSS way. The default protocol, measured
against PBE/def2-SVP (``BENCHMARKS.md``): relax random starts with CHGNet 0.3.0
(the geometry engine), rank each composition by a SevenNet-0 single point on the
CHGNet geometry, keep a GFN2-xTB single point beside it (xTB, via tblite), and
refine the best with PySCF DFT, as many per composition as the validation found
PBE's lowest can need at that size (PBE/def2-SVP single points or relaxations, then
TDA-TDDFT spectra).

Stages (each a module and an ``airss-msc`` subcommand): ``generate`` random
clusters (or substitute into a parent), ``relax`` them with an engine of the
registry, ``search`` (both, steered by the ranking energy, resumable, over MPI),
``rank``, ``refine``/``rescore``/``spectrum``/``cap`` over the stored rows, and
``report``. Structures travel between stages as :class:`ase.Atoms` and as plain
extxyz / ASE-database files; results as one typed record, :class:`Result`.
The subpackages: :mod:`airss_msc.generation` (structures), :mod:`airss_msc.calc`
(engines and jobs), :mod:`airss_msc.results` (record, database, files),
:mod:`airss_msc.search` (search and workflows), :mod:`airss_msc.analysis`
(ranking, energetics, spectra, report).

The main functions are importable from here (loaded on first use, so ``import
airss_msc`` stays cheap: no torch, no PySCF)::

    from airss_msc import generate_cluster, relax_structure, RelaxSettings, rank_results
    atoms = generate_cluster("Cd7TeSe3", seed=1)
    result = relax_structure(atoms, RelaxSettings(method="chgnet", single_points=("sevennet",)))
    result.status, result.energy, result.energies   # "relaxed", eV, {method: eV}
    result.atoms                                    # the relaxed structure, ase.Atoms
    rows = rank_results([result], energy="sevennet")  # per composition, by SevenNet-0

Exported names (``__all__``):

- generate: :func:`generate_cluster`, :func:`generate_many`,
  :class:`GeneratorSettings`; :func:`substituted_structures` and
  :func:`parse_substitution` (substitution into a parent; the result is a
  :class:`SubstitutedStructures`); :func:`point_group`;
- compute: :func:`relax_structure` with :class:`RelaxSettings`,
  :func:`single_point`;
- results: :class:`Result` (the record), :class:`ResultsDB` (the database),
  :func:`load_results` and :func:`rank_results` (the ``rank`` stage);
- search: :func:`run_search` with :func:`load_config` (a TOML search config);
- mass spectra: :func:`isotope_pattern`;
- ``__version__``.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
"""The package version (also stored with every result, ``Result.airss_msc_version``)."""

#: public name -> the module that defines it
_EXPORTS = {
    "generate_cluster": "airss_msc.generation.generate",
    "generate_many": "airss_msc.generation.generate",
    "GeneratorSettings": "airss_msc.generation.generate",
    "substituted_structures": "airss_msc.generation.substitute",
    "parse_substitution": "airss_msc.generation.substitute",
    "SubstitutedStructures": "airss_msc.generation.substitute",
    "point_group": "airss_msc.generation.geometry",
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
