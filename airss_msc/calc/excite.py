"""The excitation job: one geometry and one method in, vertical excitations out.

``pyscf:TDA-PBE0/def2-SVP`` (Tamm-Dancoff TDDFT) gives the lowest singlets
with oscillator strengths; the report turns them into a broadened spectrum
and takes the first bright one as the band estimate. Failures (no converged
SCF, a method without excitations) become a status with a reason, never an
exception.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
from ase import Atoms

from airss_msc.calc.engines import (
    ResponseRefused,
    Role,
    SCFError,
    capabilities,
    default_method,
    engine_of,
    parse_method,
)
from airss_msc.calc.progress import reporting
from airss_msc.errors import InputError
from airss_msc.results.record import Excitations, JobStatus

#: Default excitation method: the registry's (PBE0 is the best functional for (CdSe)n
#: excitations against RI-CC2 in Azpiroz, Ugalde and Infante, JCTC 2014).
DEFAULT_EXCITATION_METHOD = default_method(Role.EXCITATION)
#: Default number of singlet states.
DEFAULT_STATES = 10


def check_excitation_method(method: str) -> str:
    """The canonical method, or an :class:`InputError` if it cannot give excitations."""
    canonical = str(parse_method(method))
    if not capabilities(canonical).excitations:
        raise InputError(f"{canonical} cannot compute excitations: use e.g. {DEFAULT_EXCITATION_METHOD}")
    return canonical


def excite(
    atoms: Atoms,
    method: str = DEFAULT_EXCITATION_METHOD,
    nstates: int = DEFAULT_STATES,
    log: Callable[[str], None] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> Excitations:
    """The lowest ``nstates`` vertical excitations of ``atoms`` (eV, oscillator strengths).

    ``log``: where progress lines go while it runs (the ground state's size and SCF cycles,
    the Davidson iterations and converged roots; see :mod:`airss_msc.calc.progress`);
    None keeps whatever reporting the caller installed (by default none).
    ``checkpoint``: a path stem for the run's progress files (a killed run rerun with the same
    stem resumes: the SCF from its last cycle, the Davidson from its last saved vectors; the
    files go once it is done). A 26-atom TDA-PBE0 is hours of one core: give one there.
    """
    with reporting(log):
        return _excite(atoms, method, nstates, checkpoint)


def _excite(atoms: Atoms, method: str, nstates: int, checkpoint: str | os.PathLike[str] | None) -> Excitations:
    start = time.perf_counter()
    empty = np.zeros(0)
    try:
        canonical = check_excitation_method(method)
        m = parse_method(canonical)
        states = engine_of(m).excitations(m.model, atoms, nstates, checkpoint)
        return Excitations(
            canonical,
            states.energies_eV,
            states.strengths,
            JobStatus.DONE,
            states.note,
            time.perf_counter() - start,
            f"{m.engine}:{states.ground_model}",
            states.ground_energy_eV,
            states.ground_gap_eV,
        )
    except SCFError as exc:
        ground = f"{m.engine}:{exc.ground_model}" if exc.ground_model else ""
        return Excitations(
            str(method), empty, empty, JobStatus.SCF_FAILED, str(exc), time.perf_counter() - start, ground
        )
    except ResponseRefused as exc:  # no states, but the converged ground state is kept (a single point)
        return Excitations(
            canonical,
            empty,
            empty,
            JobStatus.ERROR,
            str(exc),
            time.perf_counter() - start,
            f"{m.engine}:{exc.ground_model}",
            exc.ground_energy_eV,
            exc.ground_gap_eV,
        )
    except Exception as exc:  # a job reports, it does not crash the run
        return Excitations(
            str(method), empty, empty, JobStatus.ERROR, f"{type(exc).__name__}: {exc}", time.perf_counter() - start
        )
