"""The single-point job: one geometry and one method in, energy and gap out (no relaxation).

Used to score relaxed structures with other methods side by side (a GFN2-xTB
cross-check of an ML geometry, a DFT refinement). SCF engines retry along
their recovery ladder, but only with numerical help (damping, more
iterations): the physics of the first rung (e.g. the electronic temperature)
is kept, so energies stay comparable across rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from airss_msc.calc.engines import SCFError, comparable_rung, make_calculator, parse_method, scf_ladder
from airss_msc.results.record import JobStatus


@dataclass(frozen=True)
class SinglePoint:
    """Energy (eV) and HOMO-LUMO gap (eV, None without orbitals) of one method on one geometry.

    status: a :class:`~airss_msc.results.record.JobStatus`: ``ok``, ``scf_failed`` or ``error``
    (then ``message`` says why).
    """

    method: str
    energy: float | None
    gap: float | None
    status: str
    message: str = ""
    seconds: float = 0.0
    retries: int = 0


def comparable_ladder(method: str, electronic_temperature: float = 300.0) -> list[dict]:
    """The engine's SCF ladder with every rung keeping the first rung's physical settings."""
    out: list[dict] = []
    for rung in scf_ladder(method, electronic_temperature):
        merged = comparable_rung(method, rung, electronic_temperature)
        if merged not in out:
            out.append(merged)
    return out


def single_point(atoms: Atoms, method: str, electronic_temperature: float = 300.0) -> SinglePoint:
    """Energy and gap of ``atoms`` by ``method``; failures become a status, never an exception."""
    canonical = str(parse_method(method))
    start = time.perf_counter()
    work = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions())
    last = ""
    rungs = comparable_ladder(canonical, electronic_temperature)
    for k, params in enumerate(rungs):
        try:
            work.calc = make_calculator(canonical, **params)
            energy = float(work.get_potential_energy())
            gap = work.calc.results.get("homo_lumo_gap")
            gap = None if gap is None or not np.isfinite(gap) else float(gap)
            return SinglePoint(canonical, energy, gap, JobStatus.OK, "", time.perf_counter() - start, k)
        except SCFError as exc:
            last = str(exc)
        except Exception as exc:  # a job reports, it does not crash the run
            return SinglePoint(
                canonical, None, None, JobStatus.ERROR, f"{type(exc).__name__}: {exc}", time.perf_counter() - start, k
            )
        finally:
            work.calc = None
    return SinglePoint(
        canonical,
        None,
        None,
        JobStatus.SCF_FAILED,
        f"{last} (after {len(rungs) - 1} recovery attempts)",
        time.perf_counter() - start,
        len(rungs) - 1,
    )
