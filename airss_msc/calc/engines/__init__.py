"""Energy engines behind one registry (:mod:`.registry`): tblite and xtb-python (xTB),
CHGNet and SevenNet (machine-learned potentials), PySCF (DFT), Lennard-Jones (tests)."""

from airss_msc.calc.engines.base import Capabilities, Engine, Method, SCFError, homo_lumo_gap
from airss_msc.calc.engines.registry import (
    DEFAULTS, ENGINES, Role, capabilities, check_available, comparable_rung, default_method, engine_of, engine_version,
    is_reference, known_methods, legacy_method_keys, make_calculator, measured_error, parse_method,
    preferred_excitation_method, preferred_gap_method, scf_ladder, short_name, VALIDATED_RANKING,
)

__all__ = ["Capabilities", "Engine", "Method", "SCFError", "homo_lumo_gap", "ENGINES", "capabilities",
           "check_available", "comparable_rung", "engine_of", "engine_version", "is_reference", "known_methods",
           "make_calculator", "measured_error", "parse_method", "scf_ladder", "VALIDATED_RANKING", "DEFAULTS", "Role",
           "default_method", "legacy_method_keys", "preferred_excitation_method", "preferred_gap_method",
           "short_name"]
