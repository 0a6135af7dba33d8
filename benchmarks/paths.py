"""Every path the benchmarks read or write, defined once.

``benchmarks/`` holds the scripts (modules of this package, run as ``python -m benchmarks.<name>``
from the repository root); ``benchmarks/reference/`` holds data only: the reference structures,
their PBE/def2-SVP energies and the committed engine results the tables are computed from;
``benchmarks/out/`` holds what runs write (tables, run logs, resumable run files; not committed).
"""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
OUT = BENCHMARKS / "out"
LOGS = OUT / "logs"
#: resumable benchmark runs that cost CPU hours (one JSON line per finished run), committed so
#: that a rerun on another machine or a later session resumes them instead of starting over
RUNS = BENCHMARKS / "runs"
#: BENCHMARKS.md and the prose it is assembled around
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
NARRATIVE = BENCHMARKS / "narrative.md"
#: the committed (MX)13 parents and other structures the README ranks
PARENT_STRUCTURES = REPO / "structures"
#: the PBE-gap map the series reports use (airss_msc.analysis.bands.load_gap_map), written by
#: ``excitation_validation.py --write-map``
GAP_MAP = REPO / "airss_msc" / "data" / "gap_map.toml"
RIS_MAP = REPO / "airss_msc" / "data" / "ris_map.toml"
MEASURED_ERRORS = REPO / "airss_msc" / "data" / "measured_errors.toml"

# --------------------------------------------------------------------------- #
# Reference data (benchmarks/reference/)
# --------------------------------------------------------------------------- #

REFERENCE = BENCHMARKS / "reference"
#: one ``<formula>.extxyz`` per formula (CHGNet geometries) and a ``<formula>.log`` of what was dropped
SETS = REFERENCE / "sets"
#: the whole set in one file: the sets in build order plus the PBE-relaxed structures
STRUCTURES = REFERENCE / "structures.extxyz"
#: PBE/def2-SVP single points: a settings line, then one line per (structure name, geometry fingerprint)
PBE = REFERENCE / "pbe_def2svp.jsonl"
#: PBE/def2-SVP relaxations, one line per chunk of optimizer steps
PBE_RELAX = REFERENCE / "pbe_relax.jsonl"
#: energy_validation.py's engine single points, relaxations from the reference geometries and Cd13Se13 runs
ENGINE_SINGLE_POINTS = REFERENCE / "engine_single_points.jsonl"
PROTOCOL_RELAX = REFERENCE / "protocol_relax.jsonl"
ROBUSTNESS_CD13SE13 = REFERENCE / "robustness_cd13se13.jsonl"
#: the frozen random 12-atom starts of default_protocol.py
METHOD_VALIDATION_STARTS = REFERENCE / "method_validation_starts.extxyz"

#: caches, not committed (benchmarks/reference/.gitignore); whatever reads them recreates them
WORK = REFERENCE / "work"
#: every relaxation build_reference.py ran, one JSON line each
RELAX_CACHE = WORK / "relax_cache.jsonl"
#: compute_reference.py's lock files, one per job in progress
CLAIMS = WORK / "claims"
#: compute_reference.py's SCF checkpoints (the density of the last cycle), one per single point in
#: progress: a killed 26-atom point resumes at the cycle it reached, not from the atomic guess
SCF_CHECKPOINTS = WORK / "scf"
#: excitation_validation.py --large: progress files of the 26-atom TDA runs (converged ground state,
#: Davidson vectors), so a killed run of hours resumes (airss_msc.calc.engines.pyscf.ExcitationCheckpoint)
TDA_CHECKPOINTS = WORK / "tda"
