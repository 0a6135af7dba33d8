"""PySCF density functional theory: ``pyscf:PBE/def2-SVP`` (the reference) and friends.

Kohn-Sham DFT with def2 basis sets and the def2 effective core potentials
where def2 defines them (Cd, Te: ECP; Zn, Se: all-electron), density fitting
(def2-universal-jkfit), grid level 3. Energies, analytic gradients and the
HOMO-LUMO gap, so it can score, relax and refine small clusters.

SCF failures climb a ladder inside one call (each rung from the previous
density): DIIS; DIIS with level shift and damping; second-order SCF (Newton);
Fermi smearing as a last resort (the result then says so). A rung whose energy
runs away (more than :data:`DIVERGENCE_HARTREE` above the lowest it reached) is
abandoned at once, and the next rung starts afresh from the atomic guess: plain
DIIS from the minao guess diverges on 26-atom Cd13Se13 (cycle 2 jumped by
1000 Ha), which without the guard cost 100 cycles of about 2 CPU minutes each.
The density-fitting tensor and the grid are built once per call and shared by
the rungs (about 7 CPU minutes for Cd13Se13). A closed-shell
solution with a gap under :data:`OPEN_SHELL_GAP_EV` is checked against an
unrestricted (UKS) broken-symmetry solution and the lower is kept. Optional
GPU acceleration through gpu4pyscf where it is installed.

``pyscf:TDA-PBE0/def2-SVP`` names an excitation method (Tamm-Dancoff TDDFT on
the PBE0 ground state); it scores and excites, it does not relax.
``pyscf:TDA-ris-PBE0/def2-SVP`` is the same ground state with the TDA-ris response
(:mod:`airss_msc.calc.engines.pyscf_ris`: a minimal auxiliary basis, no XC kernel; seconds
where the full response of a 26-atom cluster takes hours).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers
from ase.units import Bohr, Hartree

from airss_msc.calc import progress
from airss_msc.calc.engines.base import (
    Capabilities,
    Engine,
    ExcitedStates,
    ResponseRefused,
    SCFError,
    calculated_atoms,
    homo_lumo_gap,
)
from airss_msc.calc.threads import current_threads
from airss_msc.errors import InputError

#: Exchange-correlation functionals offered (PySCF/libxc names in lower case).
FUNCTIONALS = {
    "PBE": "pbe",
    "PBE0": "pbe0",
    "B3LYP": "b3lyp",
    "r2SCAN": "r2scan",
    "TPSS": "tpss",
    "BP86": "bp86",
    "CAM-B3LYP": "camb3lyp",
}
BASES = ("def2-SVP", "def2-TZVP")
#: def2 effective core potentials start at Rb (Z = 37).
DEF2_ECP_FROM = 37
#: A closed-shell gap below this (eV) triggers the unrestricted check.
OPEN_SHELL_GAP_EV = 0.1
#: DFT grid level of the TDA response kernel (the ground state keeps the calculator's
#: grid). Measured on Cd3Se3 (TDA-PBE/def2-SVP, 5 states, one core): level 3 (128k points)
#: 199 CPU s, level 0 (16k points) 33 CPU s, all five excitation energies equal to 1 meV;
#: tests/calc/test_pyscf.py checks the agreement on every run.
RESPONSE_GRID_LEVEL = 0
#: An SCF rung whose total energy rises this far (Hartree) above the lowest it reached
#: is divergent: the next rung takes over. Converging SCFs move by far less after the
#: first cycles; the Cd13Se13 divergence jumped by about 1000 Ha.
DIVERGENCE_HARTREE = 1.0
#: The recipe that converged 26-atom Cd13Se13 PBE/def2-SVP in 16-19 cycles (from the atomic
#: guess; measured for issue 19): level shift (Hartree) and damping of the second rung.
LEVEL_SHIFT = 0.25
DAMPING = 0.5
#: Releasing the level shift near convergence (a.u. of orbital gradient; None: never). Measured
#: and switched off: on Cd4TeSe2 a release at 1e-2 converged in 16 cycles (116 CPU s; the kept
#: shift stalled and needed second-order SCF, 335 s), but on the metal-rich Cd7TeSe3 the
#: unshifted DIIS ran from a gradient of 0.009 to 0.30 and the restored shift crawled from there.
#: A stalled shifted rung hands over to second-order SCF instead (the shifted rung's cycle limit).
LEVEL_SHIFT_RELEASE: float | None = None
#: Cycle limit of the level-shift rung (a stall hands over to second-order SCF).
SHIFTED_MAX_CYCLE = 50
#: Seconds between two saves of a checkpointed TDA run's vectors (each save is a Rayleigh-Ritz
#: step on the trial vectors seen so far: milliseconds against the minutes of one Davidson
#: iteration at 26 atoms).
TDA_SAVE_EVERY_S = 300.0

#: Gap preference (the scale of :class:`Capabilities`): hybrid PBE0 gaps sit closer to the
#: optical gap than GGA ones; other functionals follow by name.
GAP_RANK = {"PBE0/def2-SVP": 0, "PBE/def2-SVP": 1}
#: Excitation preference for the band estimate: PBE0 is the best functional for (CdSe)n
#: excitations against RI-CC2 (Azpiroz, Ugalde and Infante, JCTC 2014), then B3LYP, then PBE.
EXCITATION_RANK = {"TDA-PBE0/def2-SVP": 0, "TDA-B3LYP/def2-SVP": 1, "TDA-PBE/def2-SVP": 2}

#: A PySCF SCF callback: called after each cycle with the kernel's local variables.
SCFCallback = Callable[[dict[str, Any]], None]
#: A ladder rung: its label and how it prepares a fresh mean field (PySCF objects are untyped).
Rung = tuple[str, Callable[[Any], Any]]


class SCFDiverged(RuntimeError):
    """Raised inside an SCF rung whose energy runs away (the ladder moves on)."""


def divergence_guard(threshold: float = DIVERGENCE_HARTREE, release_gradient: float | None = None) -> SCFCallback:
    """A PySCF SCF callback that raises :class:`SCFDiverged` when the energy climbs more
    than ``threshold`` Hartree above the lowest energy of the run so far; with
    ``release_gradient`` it also drops the mean field's level shift once the orbital
    gradient (``norm_gorb``, a.u.) is below it (the converged energy does not depend on it),
    and puts it back for good if the gradient then grows past ten times that."""
    lowest = [np.inf]

    def callback(envs: dict[str, Any]) -> None:
        energy = envs.get("e_tot")
        if energy is None or not np.isfinite(energy):
            raise SCFDiverged("SCF energy is not finite")
        energy = float(energy)
        if energy - lowest[0] > threshold:
            raise SCFDiverged(
                f"SCF energy rose {energy - lowest[0]:.1f} Ha above its lowest (cycle {envs.get('cycle', '?')})"
            )
        lowest[0] = min(lowest[0], energy)
        gradient, mf = envs.get("norm_gorb"), envs.get("mf")
        if release_gradient is None or mf is None or gradient is None:
            return
        if state["shift"] is None and gradient < release_gradient:
            state["shift"] = mf.level_shift  # released once
            mf.level_shift = 0.0
        elif state["shift"] is not None and not state["back"] and gradient > 10 * release_gradient:
            # unshifted DIIS runs away on this (small-gap) system: the shift comes back for good
            mf.level_shift = state["shift"]
            state["back"] = True

    state: dict[str, Any] = {"shift": None, "back": False}
    return callback


def _save_keyed(path: str, key: str, **arrays: Any) -> None:
    """``arrays`` and ``key`` to ``path`` (.npz) through a temporary file renamed over the old one,
    so a kill during the write leaves the previous file whole."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, key=key, **arrays)
    os.replace(tmp, path)


def _load_keyed(path: str, key: str, names: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The arrays ``names`` of the .npz at ``path`` if it was saved with ``key``; None when it is
    absent, torn, of another molecule or method, or lacks one of them (a fresh start)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            return {name: np.array(data[name]) for name in names}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


class SCFCheckpoint:
    """The density of an SCF's latest cycle on disk, so a killed run resumes where it was.

    A 26-atom PBE/def2-SVP SCF takes 16-50 cycles of about 2 CPU minutes each here: a
    process killed at cycle 40 would otherwise start again from the atomic guess. The file
    (``.npz``) holds the density matrix, the ladder rung it came from and the cycles done on
    that rung, keyed by the molecule and the method; a file with another key is ignored
    (and overwritten). Each write goes to a temporary file renamed over the old one, so a
    kill during a write leaves the previous cycle's density. The file is removed once the
    SCF converges or the ladder fails.
    """

    def __init__(self, path: str | os.PathLike[str], key: str) -> None:
        self.path = os.fspath(path)
        self.key = key

    @staticmethod
    def key_for(mol: Any, xc: str, unrestricted: bool) -> str:
        """A digest of what the density depends on: atoms (to 1e-6 Bohr), basis, charge, spin, functional."""
        import hashlib

        coords = np.round(np.asarray(mol.atom_coords()), 6)
        text = "|".join(
            [
                ",".join(mol.elements),
                np.array2string(coords, precision=6, threshold=10**9),
                str(mol.basis),
                str(mol.charge),
                str(mol.spin),
                xc.lower(),
                str(unrestricted),
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def load(self) -> tuple[str, int, np.ndarray] | None:
        """(rung label, cycles done on it, density matrix) of a matching checkpoint, else None."""
        data = _load_keyed(self.path, self.key, ("rung", "cycles", "dm"))
        return None if data is None else (str(data["rung"]), int(data["cycles"]), data["dm"])

    def save(self, rung: str, cycles: int, dm: np.ndarray) -> None:
        """Write the density of rung ``rung`` after ``cycles`` cycles (atomic rename)."""
        _save_keyed(self.path, self.key, rung=rung, cycles=cycles, dm=np.asarray(dm))

    def callback(self, rung: str, cycles_before: int = 0) -> SCFCallback:
        """A PySCF SCF callback saving each cycle's density (``cycles_before`` counts a resumed
        rung's earlier cycles)."""
        done = [cycles_before]

        def callback(envs: dict[str, Any]) -> None:
            dm = envs.get("dm")
            if dm is None:
                return
            done[0] += 1
            self.save(rung, done[0], dm.get() if hasattr(dm, "get") else dm)  # CuPy on a GPU: to host

        return callback

    def clear(self) -> None:
        """Remove the checkpoint (the SCF is over)."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)


class ExcitationCheckpoint:
    """A TDA run's progress on disk: the converged ground-state density, then the Davidson's
    latest vectors, so a killed run resumes instead of starting again.

    A 26-atom TDA-PBE0/def2-SVP run is hours of one core: its SCF (checkpointed per cycle by
    :class:`SCFCheckpoint` at ``<path>.scf.npz``) and then the Davidson. This file
    (``<path>.tda.npz``) holds the converged density (a rerun's SCF starts from it and converges
    in a cycle or two) and, every :data:`TDA_SAVE_EVERY_S` seconds, the Davidson's current Ritz
    vectors and how many matrix-vector products it had done (the rerun's Davidson starts from
    them). Keyed by molecule, functional and number of states; removed, with the SCF file, once the
    excitations are done.
    """

    def __init__(self, path: str | os.PathLike[str], mol: Any, xc: str, nstates: int) -> None:
        self.path = os.fspath(path) + ".tda.npz"
        self.scf_path = os.fspath(path) + ".scf.npz"
        self.key = f"{SCFCheckpoint.key_for(mol, xc, False)}|{int(nstates)} states"

    def load(self) -> dict[str, np.ndarray] | None:
        """``dm`` (the converged ground-state density), ``vectors`` (rows; empty before the first
        save of the Davidson) and the matrix-vector ``products`` done, or None."""
        return _load_keyed(self.path, self.key, ("dm", "vectors", "products"))

    def save(self, dm: np.ndarray, vectors: np.ndarray | None = None, products: int = 0) -> None:
        vec = np.zeros((0, 0)) if vectors is None else np.asarray(vectors)
        _save_keyed(self.path, self.key, dm=np.asarray(dm), vectors=vec, products=int(products))

    def clear(self) -> None:
        for path in (self.path, self.scf_path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)


def _chain(*callbacks: SCFCallback | None) -> SCFCallback:
    """One SCF callback calling each of ``callbacks`` (None entries skipped) in order."""
    active = [c for c in callbacks if c is not None]

    def callback(envs: dict[str, Any]) -> None:
        for c in active:
            c(envs)

    return callback


class _DavidsonLines:
    """A write-only stream for a PySCF logger: Davidson lines become progress lines."""

    _ITERATION = re.compile(r"(?:davidson|lr_eig|real_lr_eig)\s+(\d+)\s+(\d+)\s+\|r\|=\s*(\S+)")

    def __init__(self, nroots: int) -> None:
        self.nroots = nroots
        self.converged: set[int] = set()
        self.iteration = 0
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._line(line.strip())
        return len(text)

    def _line(self, line: str) -> None:
        root = re.match(r"root (\d+) converged", line)
        if root:
            self.converged.add(int(root.group(1)))
            return
        if line.startswith("converged "):
            self.converged = set(range(self.nroots))
            progress.report(
                f"TDA Davidson converged: {self.nroots}/{self.nroots} roots after {self.iteration + 1} iterations"
            )
            return
        match = self._ITERATION.match(line)
        if match:
            self.iteration = int(match.group(1))
            progress.report(
                f"TDA Davidson iteration {self.iteration + 1}: {len(self.converged)}/{self.nroots} "
                f"roots converged, max |r|={match.group(3)}, subspace {match.group(2)}",
                always=False,
            )

    def flush(self) -> None:
        pass


def watch_davidson(td: Any, nroots: int) -> None:
    """Quiet ``td`` (a PySCF TDA/TDDFT object), or, when reporting, have its Davidson
    iterations and converged roots reported (PySCF logs them at DEBUG level, no callback)."""
    td.verbose = 0
    if progress.active():
        from pyscf.lib import logger

        td.verbose = logger.DEBUG
        td.stdout = _DavidsonLines(nroots)


#: Model-name prefixes of the excitation methods: full TDA, and TDA with the ris response.
TDA_PREFIX, RIS_PREFIX = "TDA-", "TDA-ris-"


def _models() -> tuple[str, ...]:
    ground = [f"{xc}/{basis}" for xc in FUNCTIONALS for basis in BASES]
    # the ris response has no range-separated form here (pyscf_ris.exact_exchange_fraction)
    ris = [f"{RIS_PREFIX}{m}" for m in ground if not m.startswith("CAM-")]
    return tuple(ground + [f"{TDA_PREFIX}{m}" for m in ground] + ris)


def split_model(model: str) -> tuple[str, str, bool]:
    """``TDA-PBE0/def2-SVP`` -> ("pbe0", "def2-svp", True); ``TDA-ris-PBE0/def2-SVP`` the same."""
    tda = model.startswith(TDA_PREFIX)
    xc, basis = ground_model(model).split("/")
    return FUNCTIONALS[xc], basis.lower(), tda


def is_ris(model: str) -> bool:
    """Whether ``model`` takes the TDA-ris response (``TDA-ris-PBE0/def2-SVP``)."""
    return model.startswith(RIS_PREFIX)


def response_grid(mf: Any, level: int) -> None:
    """Put the mean field on a grid of ``level`` for what follows (the response kernel of
    TDA); its orbitals and energy stay those of the converged ground state."""
    from pyscf.dft import gen_grid

    grids = gen_grid.Grids(mf.mol)
    grids.level = level
    grids.build()
    mf.grids = grids


def ground_model(model: str) -> str:
    """``TDA-PBE0/def2-SVP`` (or ``TDA-ris-PBE0/def2-SVP``) -> ``PBE0/def2-SVP`` (the ground state
    of an excitation model)."""
    for prefix in (RIS_PREFIX, TDA_PREFIX):
        if model.startswith(prefix):
            return model[len(prefix) :]
    return model


@lru_cache(maxsize=1)
def has_gpu4pyscf() -> bool:
    """gpu4pyscf is installed and CuPy sees a CUDA device: the SCF then runs on the GPU
    (``mf.to_gpu()``); otherwise on the CPU, the same method to the SCF tolerance."""
    if importlib.util.find_spec("gpu4pyscf") is None:
        return False
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # no driver, no device: the CPU path
        return False


@contextlib.contextmanager
def _scratch() -> Iterator[str]:
    """PySCF writes integrals and checkpoints to its TMPDIR: keep them out of the working directory.

    PySCF reads PYSCF_TMPDIR once, at import, into ``pyscf.lib.param.TMPDIR``: the
    parameter itself is set (and restored), or a process whose first import happened
    inside an earlier scratch directory would write into that deleted directory.
    """
    from pyscf.lib import param

    with tempfile.TemporaryDirectory(prefix="airss-msc-pyscf-") as tmp:
        old, old_param = os.environ.get("PYSCF_TMPDIR"), param.TMPDIR
        os.environ["PYSCF_TMPDIR"] = tmp
        param.TMPDIR = tmp
        try:
            yield tmp
        finally:
            param.TMPDIR = old_param
            if old is None:
                os.environ.pop("PYSCF_TMPDIR", None)
            else:
                os.environ["PYSCF_TMPDIR"] = old


def build_molecule(symbols: Sequence[str], positions: np.ndarray, basis: str, charge: int = 0, spin: int = 0) -> Any:
    """A PySCF Mole with ``basis`` and the def2 ECPs where def2 has them (Angstrom in)."""
    from pyscf import gto

    atom = [(s, tuple(map(float, p))) for s, p in zip(symbols, positions, strict=True)]
    # def2 replaces the core of elements beyond Kr (Cd, Te) by an ECP; Zn and Se are all-electron.
    ecp = {el: basis for el in set(symbols) if atomic_numbers[el] > DEF2_ECP_FROM - 1}
    return gto.M(
        atom=atom, basis=basis, ecp=ecp, charge=charge, spin=spin, unit="Angstrom", verbose=0, output=os.devnull
    )


def _mean_field(mol: Any, xc: str, unrestricted: bool, grid_level: int) -> Any:
    from pyscf import dft

    mf = (dft.UKS if unrestricted else dft.RKS)(mol, xc=xc).density_fit(auxbasis="def2-universal-jkfit")
    mf.grids.level = grid_level
    # no checkpoint file: the temporary one PySCF opens in its constructor is closed (and so
    # deleted) now, not when the garbage collector finds it after the scratch directory is gone
    chk = getattr(mf, "_chkfile", None)
    if chk is not None:
        chk.close()
        mf._chkfile = None
    mf.chkfile = None
    mf.verbose = 0
    return mf


def _inner(mf: Any) -> Any:
    """The plain mean field under a Newton or smearing wrapper (where with_df and grids live)."""
    return getattr(mf, "_scf", mf)


def _gap_ev(mf: Any) -> float:
    return homo_lumo_gap(np.asarray(mf.mo_energy), np.asarray(mf.mo_occ)) * Hartree


class PySCFCluster(Calculator):
    """Kohn-Sham energy (eV), forces (eV/Angstrom) and HOMO-LUMO gap (eV) of a bare cluster.

    Parameters: ``xc``, ``basis``, ``charge``, ``spin`` (2S), ``grid_level``,
    ``conv_tol`` (Hartree), ``max_cycle``, ``smearing`` (Hartree, last rung),
    ``checkpoint`` (a file path or None: each SCF cycle's density is saved there and a
    rerun on the same molecule resumes from it, see :class:`SCFCheckpoint`).
    """

    implemented_properties = ["energy", "free_energy", "forces", "homo_lumo_gap"]  # noqa: RUF012 (ASE types it as a list)
    default_parameters = {  # noqa: RUF012 (ASE types it as a dict)
        "xc": "pbe",
        "basis": "def2-svp",
        "charge": 0,
        "spin": 0,
        "grid_level": 3,
        "conv_tol": 1e-8,
        "max_cycle": 100,
        "smearing": 0.005,
        "checkpoint": None,
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._dm: Any = None  # the last converged density: the next geometry's first guess
        self.mf: Any = None  # the last converged PySCF mean field
        self.notes: list[str] = []

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_dm=None, mf=None, atoms=None)
        return state

    def _rungs(self) -> tuple[Rung, ...]:
        """(label, how to prepare the mean field) for each SCF attempt."""

        def plain(mf: Any) -> Any:
            return mf

        def shifted(mf: Any) -> Any:
            # a shifted SCF that stalls hands over to the second-order rung, which converged the
            # stalled metal-rich Cd7TeSe3 (200 shifted cycles did not); converging shifted runs
            # took 16-19 cycles (Cd13Se13, Zn13Se13, Cd4TeSe2)
            mf.level_shift = LEVEL_SHIFT
            mf.damp = DAMPING
            mf.diis_start_cycle = 4
            mf.max_cycle = min(int(self.parameters["max_cycle"]), SHIFTED_MAX_CYCLE)
            return mf

        def newton(mf: Any) -> Any:
            return mf.newton()

        def smeared(mf: Any) -> Any:
            from pyscf.scf import addons

            return addons.smearing_(mf, sigma=float(self.parameters["smearing"]), method="fermi")

        return (("DIIS", plain), ("level shift", shifted), ("second-order SCF", newton), ("Fermi smearing", smeared))

    def _converge(self, mol: Any, unrestricted: bool, dm0: Any) -> tuple[Any, str]:
        from pyscf import lib

        lib.num_threads(current_threads())
        p = self.parameters
        errors: list[str] = []
        shared = None  # the first rung's density-fitting tensor and grid, reused by the others
        fresh = False  # after a divergence, start from the atomic guess, not the runaway density
        checkpoint = (
            SCFCheckpoint(p["checkpoint"], SCFCheckpoint.key_for(mol, p["xc"], unrestricted))
            if p["checkpoint"]
            else None
        )
        resume = checkpoint.load() if checkpoint is not None else None
        rungs = self._rungs()
        if checkpoint is not None and resume is not None and resume[0] in [label for label, _ in rungs]:
            while rungs[0][0] != resume[0]:
                rungs = rungs[1:]  # the rungs before the saved one had already failed
            dm0 = resume[2]
            progress.report(f"SCF resumed from {checkpoint.path}: {resume[0]}, after {resume[1]} cycles")
        else:
            resume = None
        try:
            converged = self._climb(mol, unrestricted, dm0, rungs, checkpoint, resume, errors, shared, fresh)
        except SCFError:
            if checkpoint is not None:
                checkpoint.clear()  # failed for good: a rerun starts afresh
            raise
        # not in a `finally`: an interrupted SCF (Ctrl-C, a stop signal) keeps its checkpoint
        if checkpoint is not None:
            checkpoint.clear()
        return converged

    def _climb(
        self,
        mol: Any,
        unrestricted: bool,
        dm0: Any,
        rungs: tuple[Rung, ...],
        checkpoint: SCFCheckpoint | None,
        resume: tuple[str, int, np.ndarray] | None,
        errors: list[str],
        shared: tuple[Any, Any] | None,
        fresh: bool,
    ) -> tuple[Any, str]:
        """Try each rung in turn (the body of :meth:`_converge`)."""
        p = self.parameters
        for label, prepare in rungs:
            if errors:
                progress.report(f"SCF {errors[-1]}; next: {label}")
            mf = _mean_field(mol, p["xc"], unrestricted, int(p["grid_level"]))
            if shared is not None:
                mf.with_df, mf.grids = shared
            mf.conv_tol = float(p["conv_tol"])
            mf.max_cycle = int(p["max_cycle"])
            mf = prepare(mf)
            before = 0
            if resume is not None and label == resume[0]:
                # the resumed rung keeps its cycle budget: a stalled shifted rung still hands over
                before = resume[1]
                mf.max_cycle = max(1, mf.max_cycle - before)
                resume = None
            if fresh and dm0 is None:
                mf.init_guess = "atom"
            gpu = has_gpu4pyscf()
            if gpu:
                mf = mf.to_gpu()
            else:
                shared = shared or (_inner(mf).with_df, _inner(mf).grids)
            guard = divergence_guard(
                release_gradient=LEVEL_SHIFT_RELEASE if label == "level shift" and LEVEL_SHIFT_RELEASE else None
            )
            # the guard may raise on a runaway cycle: it runs before that cycle is saved
            saver = checkpoint.callback(label, before) if checkpoint is not None else None
            mf.callback = progress.scf_callback(_chain(guard, saver), label)
            try:
                mf.kernel(dm0=dm0)
            except SCFDiverged as exc:
                errors.append(f"{label}: {exc}")
                fresh = True
                continue
            except Exception as exc:  # linear algebra failures inside the SCF
                errors.append(f"{label}: {type(exc).__name__}")
                continue
            if mf.converged:
                return mf, label
            errors.append(f"{label}: not converged in {mf.max_cycle} cycles")
            dm0 = mf.make_rdm1()
        raise SCFError(f"pyscf {p['xc']}/{p['basis']}: SCF failed ({'; '.join(errors)})")

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        current = calculated_atoms(self)
        p = self.parameters
        with _scratch():
            mol = build_molecule(
                current.get_chemical_symbols(), current.positions, p["basis"], int(p["charge"]), int(p["spin"])
            )
            unrestricted = bool(mol.spin) or mol.nelectron % 2 == 1
            progress.report(
                f"SCF {p['xc']}/{p['basis']}: {mol.natm} atoms, {mol.nao} basis functions, "
                f"{mol.nelectron} electrons" + (", from the previous density" if self._dm is not None else "")
            )
            dm0 = self._dm if self._dm is not None and np.ndim(self._dm) == (3 if unrestricted else 2) else None
            mf, label = self._converge(mol, unrestricted, dm0)
            notes = [] if label == "DIIS" else [f"SCF converged by {label}"]
            gap = _gap_ev(mf)
            if not unrestricted and gap < OPEN_SHELL_GAP_EV:
                # A near-zero closed-shell gap may hide a lower open-shell (broken-symmetry) solution.
                alt = self._unrestricted_check(mol, mf)
                if alt is not None and alt.e_tot < mf.e_tot - 1e-6:
                    notes.append(f"UKS below RKS by {(mf.e_tot - alt.e_tot) * Hartree:.3f} eV (kept)")
                    mf, gap = alt, _gap_ev(alt)
            energy = float(mf.e_tot) * Hartree
            self.results = {"energy": energy, "free_energy": energy, "homo_lumo_gap": gap}
            if "forces" in properties:
                grad = mf.nuc_grad_method().kernel()
                self.results["forces"] = -np.asarray(grad, dtype=float) * Hartree / Bohr
        self._dm = mf.make_rdm1()
        self.mf = mf
        self.notes = notes

    def _unrestricted_check(self, mol: Any, closed: Any) -> Any:
        """A UKS solution started from the closed-shell density with alpha/beta symmetry broken."""
        from pyscf import lib

        lib.num_threads(current_threads())
        dm = np.asarray(closed.make_rdm1()) / 2.0
        rng = np.random.default_rng(0)
        noise = rng.normal(scale=1e-2, size=dm.shape)
        noise = (noise + noise.T) / 2.0
        mf = _mean_field(mol, self.parameters["xc"], True, int(self.parameters["grid_level"]))
        mf.conv_tol = float(self.parameters["conv_tol"])
        mf.max_cycle = int(self.parameters["max_cycle"])
        try:
            mf.kernel(dm0=np.array([dm + noise, dm - noise]))
        except Exception:
            return None
        return mf if mf.converged else None


class _RitzSaver:
    """Wraps a TDA Davidson's matrix-vector product and, every :data:`TDA_SAVE_EVERY_S`, saves
    the lowest Ritz vectors of all trial vectors it has seen (PySCF's solver has no hook inside its
    loop, and restarting it to save would throw its subspace away). A resumed run starts its
    Davidson from them."""

    def __init__(self, store: ExcitationCheckpoint, dm: np.ndarray, nstates: int, done: int) -> None:
        self.store, self.dm, self.nstates, self.calls = store, dm, nstates, done
        self.vind: Callable[[np.ndarray], np.ndarray] | None = None
        self.xs: list[np.ndarray] = []
        self.axs: list[np.ndarray] = []
        self.last = time.monotonic()

    def __call__(self, zs: np.ndarray) -> np.ndarray:
        assert self.vind is not None
        out = self.vind(zs)
        self.xs.append(np.atleast_2d(np.asarray(zs)).copy())
        self.axs.append(np.atleast_2d(np.asarray(out)).copy())
        self.calls += 1
        if time.monotonic() - self.last >= TDA_SAVE_EVERY_S:
            self.save()
        return out

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """The lowest ``nstates`` Ritz vectors (rows) of the span of the trial vectors kept (the
        product is symmetric in TDA; near-dependent directions are dropped, canonical
        orthogonalisation), and their products (the same combination of the stored products)."""
        x, ax = np.vstack(self.xs), np.vstack(self.axs)
        s_val, s_vec = np.linalg.eigh(x @ x.T)
        keep = s_val > 1e-10 * s_val.max()
        t = s_vec[:, keep] / np.sqrt(s_val[keep])
        h = x @ ax.T
        w, u = np.linalg.eigh(t.T @ ((h + h.T) / 2) @ t)
        c = t @ u[:, w > 0][:, : self.nstates]
        return c.T @ x, c.T @ ax

    def save(self) -> None:
        vectors, products = self.ritz()
        self.store.save(self.dm, vectors, self.calls)
        # keep only the Ritz vectors and their products: memory stays at nstates plus what comes
        # until the next save (a trial vector of a 26-atom run is about 1.3 MB, and a long
        # Davidson passes hundreds)
        self.xs, self.axs = [vectors], [products]
        self.last = time.monotonic()


def _davidson(td: Any, store: ExcitationCheckpoint | None, dm: np.ndarray, saved: dict | None) -> None:
    """Run ``td``'s Davidson; with a ``store`` (and a restricted ground state) its Ritz vectors are
    saved as it goes (:class:`_RitzSaver`) and a killed run's saved ones are the start."""
    if store is None or np.ndim(dm) != 2:
        td.kernel()  # unrestricted: the vectors of the two spins are not saved (the ground state is)
        return
    x0, done = None, 0
    if saved is not None and saved["vectors"].size:
        x0, done = saved["vectors"], int(saved["products"])
        progress.report(f"TDA Davidson resumed from {store.path}: after {done} products")
    saver = _RitzSaver(store, dm, int(td.nstates), done)
    base = type(td)

    def gen_vind(self: Any, mf: Any = None) -> tuple[Any, Any]:
        vind, hdiag = base.gen_vind(self, mf) if mf is not None else base.gen_vind(self)
        saver.vind = vind
        return saver, hdiag

    # a subclass, not an instance attribute: PySCF warns about overwritten attributes of its objects
    td.__class__ = type(f"Checkpointed{base.__name__}", (base,), {"gen_vind": gen_vind})
    td.kernel(x0=x0)


def _states(
    model: str, energies: np.ndarray, strengths: np.ndarray, notes: list[str], converged: np.ndarray, ground: tuple
) -> ExcitedStates:
    """Sorted :class:`ExcitedStates` (eV in), a note for roots that did not converge."""
    if not np.all(converged):
        notes.append(f"{int((~converged.astype(bool)).sum())} of {len(converged)} states not converged")
    order = np.argsort(energies)
    energy, gap = ground
    return ExcitedStates(
        energies[order],
        strengths[order],
        "; ".join(notes),
        ground_model(model),
        energy,
        None if gap is None else float(gap),
    )


class PySCFEngine(Engine):
    name = "pyscf"
    distribution = "pyscf"
    install_hint = (
        "pyscf is a dependency of airss-msc: reinstall it (pip install -e .); "
        "for a GPU add the extra: pip install -e '.[gpu]'"
    )
    models = _models()
    default_model = "PBE/def2-SVP"
    qualified_only = _models()
    requires = ("pyscf.dft",)

    def canonical_model(self, text: str) -> str | None:
        found = super().canonical_model(text.replace(" ", ""))
        return found

    def capabilities(self, model: str) -> Capabilities:
        tda = model.startswith(TDA_PREFIX)
        # every SCF uses all the threads it is given (lib.num_threads), and takes minutes
        return Capabilities(
            gap=True,
            scf=True,
            can_collapse=False,
            gradients=not tda,
            excitations=True,
            reference=not tda,
            gap_rank=GAP_RANK.get(model),
            excitation_rank=EXCITATION_RANK.get(model),
            # TDA-ris lies a measured shift below TDA-PBE0 (BENCHMARKS.md, 'A cheaper band estimate')
            band_ready=not is_ris(model),
            multithreaded=True,
            slow=True,
        )

    def short_name(self, model: str) -> str:
        # a functional/basis pair names no other engine's model
        return model

    def _calculator(self, model: str, **parameters: Any) -> Calculator:
        xc, basis, _ = split_model(model)
        return PySCFCluster(xc=xc, basis=basis, **parameters)

    def excitations(
        self, model: str, atoms: Atoms, nstates: int, checkpoint: str | os.PathLike[str] | None = None
    ) -> ExcitedStates:
        """Tamm-Dancoff TDDFT singlets (restricted ground state; spin-conserving on a UKS one)
        on this model's functional: energies (eV) and length-gauge oscillator strengths. A
        ``TDA-ris-`` model takes the ris response on the same ground state (restricted or
        unrestricted, spin-conserving on the latter).

        ``checkpoint``: a path stem; the run saves its progress there and a rerun with the same
        stem resumes (:class:`ExcitationCheckpoint`)."""
        from pyscf import lib

        self.check_available()
        xc, basis, _ = split_model(model)
        if is_ris(model):  # an element the ris response has no radius for is refused before the SCF
            from airss_msc.calc.engines.pyscf_ris import minimal_auxiliary_basis

            minimal_auxiliary_basis(atoms.get_chemical_symbols())
        store, saved = None, None
        if checkpoint:
            with _scratch():
                mol = build_molecule(atoms.get_chemical_symbols(), atoms.positions, basis)
            store = ExcitationCheckpoint(checkpoint, mol, xc, nstates)
            saved = store.load()
        calc = PySCFCluster(xc=xc, basis=basis, checkpoint=store.scf_path if store is not None else None)
        if store is not None and saved is not None:
            calc._dm = saved["dm"]  # the converged ground state of the killed run: a cycle or two
            progress.report(f"TDA resumed from {store.path}: the SCF starts from its converged density")
        work = atoms.copy()
        work.calc = calc
        try:
            ground_energy = float(work.get_potential_energy())  # the ground state, with the SCF ladder
        except SCFError as exc:  # the same ladder would fail the same single point: say which it was
            exc.ground_model = ground_model(model)
            raise
        ground_gap = calc.results.get("homo_lumo_gap")
        if store is not None and saved is None:
            store.save(calc._dm)
        if is_ris(model):
            return self._ris(model, calc, nstates, store, ground_energy, ground_gap)
        with _scratch():
            lib.num_threads(current_threads())
            response_grid(calc.mf, RESPONSE_GRID_LEVEL)
            td = calc.mf.TDA()
            td.nstates = int(nstates)
            watch_davidson(td, int(nstates))  # quiet, or Davidson iterations as progress lines
            progress.report(f"TDA: {int(nstates)} singlets on the {xc} ground state")
            _davidson(td, store, calc._dm, saved)
            energies = np.asarray(td.e, dtype=float) * Hartree
            strengths = np.asarray(td.oscillator_strength(gauge="length"), dtype=float)
        if store is not None:
            store.clear()
        converged = np.atleast_1d(getattr(td, "converged", True))
        return _states(model, energies, strengths, list(calc.notes), converged, (ground_energy, ground_gap))

    def _ris(
        self,
        model: str,
        calc: PySCFCluster,
        nstates: int,
        store: ExcitationCheckpoint | None,
        ground_energy: float,
        ground_gap: float | None,
    ) -> ExcitedStates:
        """The TDA-ris singlets of ``calc``'s converged ground state (seconds; nothing to checkpoint)."""
        from pyscf import lib

        from airss_msc.calc.engines.pyscf_ris import ris_tda

        with _scratch():
            lib.num_threads(current_threads())
            progress.report(f"TDA-ris: {int(nstates)} singlets on the {calc.parameters['xc']} ground state")
            mf = calc.mf
            if has_gpu4pyscf() and hasattr(mf, "to_cpu"):
                mf = mf.to_cpu()  # the ris response here is NumPy (gpu4pyscf ships its own)
            try:
                found = ris_tda(mf, int(nstates))
            except InputError as exc:  # e.g. a smeared ground state: the converged SCF is still worth keeping
                if store is not None:
                    store.clear()  # a refused response is not retried: its files would only be left behind
                raise ResponseRefused(str(exc), ground_model(model), ground_energy, ground_gap) from exc
        # done: the progress files go (a crash above keeps them, so a rerun skips the SCF)
        if store is not None:
            store.clear()
        notes = [*calc.notes, f"TDA-ris response ({found.n_auxiliary} fitting functions, no XC kernel)"]
        return _states(
            model,
            found.energies * Hartree,
            found.strengths,
            notes,
            found.converged,
            (ground_energy, ground_gap),
        )
