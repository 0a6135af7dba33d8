"""The results database: an ASE SQLite database, one row per candidate.

All database side effects live here. ``ase db results.db`` lists what we store:
key-value pairs ``composition``, ``seed``, ``candidate``, ``status``, ``gap``,
``e_per_atom``, ``method``, ``steps``, ``force_calls``, ``wall_s``,
``engine_version``, ``airss_msc`` (version), the generation record (``minsep``,
``shape``, ``symmetry``), and the energy through a single-point calculator.
``data`` keeps the initial positions and the settings used.

Locking: only one process writes (the search coordinator). It holds an
``fcntl`` lock on ``<db>.writer`` that the kernel releases when the process
dies, so a killed job never leaves a lock that blocks the next one. ASE's own
``<db>.lock`` file is not used; a stale one left by another ASE program (which
would make ASE writers hang forever) is detected and removed.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect

from airss_msc.composition import canonical_formula
from airss_msc.errors import DatabaseBusyError, InputError

#: An ASE ``.lock`` file untouched this long belongs to a dead writer (ASE holds
#: it only for the duration of one write).
STALE_LOCK_SECONDS = 30.0

#: SQLite's own busy timeout: wait this long for a reader's lock, then fail.
BUSY_TIMEOUT_SECONDS = 30.0


def _clear_stale_ase_lock(path: Path, wait: float = STALE_LOCK_SECONDS) -> None:
    lock = Path(str(path) + ".lock")
    deadline = time.monotonic() + wait
    while lock.exists():
        age = time.time() - lock.stat().st_mtime
        if age >= STALE_LOCK_SECONDS or time.monotonic() >= deadline:
            try:
                lock.unlink()
                print(f"airss-msc: removed stale ASE lock file {lock} (age {age:.0f} s)", file=sys.stderr)
            except FileNotFoundError:
                pass
            return
        time.sleep(0.5)


def _check_sqlite(path: Path) -> None:
    """Refuse a file that is not an SQLite database (before ASE sees it)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise InputError(f"cannot read database {path}: {exc.strerror}") from None
    if head and not head.startswith(b"SQLite format 3"):
        raise InputError(f"{path} is not an SQLite/ASE database (corrupt or wrong file)")


@dataclass
class Record:
    """One stored result, as rank and report see it (energies eV, gap eV)."""

    id: int
    composition: str
    status: str
    energy: float | None
    energy_per_atom: float | None
    gap: float | None
    seed: int | None
    method: str
    atoms: Atoms
    key_value_pairs: dict
    source: str = ""


class ResultsDB:
    """Reader/writer of a results database. Use as a context manager for writing.

    >>> with ResultsDB("results.db", write=True) as db:
    ...     db.add(summary)
    """

    def __init__(self, path: str | os.PathLike, write: bool = False):
        self.path = Path(path)
        self.write = write
        self._lock_fh = None
        if not write and not self.path.exists():
            raise InputError(f"database {self.path} does not exist")
        if self.path.exists():
            if self.path.is_dir():
                raise InputError(f"database {self.path} is a directory")
            _check_sqlite(self.path)
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._acquire_writer_lock()
            _clear_stale_ase_lock(self.path)
        # serial=True: never use ASE's MPI broadcasts (they hang in MPI jobs).
        self._db = connect(str(self.path), type="db", use_lock_file=False, serial=True)
        self._db.timeout = BUSY_TIMEOUT_SECONDS
        if self.path.exists():
            self._probe()

    def _probe(self) -> None:
        try:
            self._db.count()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise DatabaseBusyError(f"database {self.path} is locked by another process") from None
            raise InputError(f"database {self.path} is unreadable: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise InputError(f"database {self.path} is corrupt: {exc}") from None

    def _acquire_writer_lock(self) -> None:
        lock_path = Path(str(self.path) + ".writer")
        fh = open(lock_path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "unknown"
            fh.close()
            raise DatabaseBusyError(
                f"database {self.path} is being written by another airss-msc process ({owner}); "
                f"wait for it to finish or stop it"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {os.uname().nodename}")
        fh.flush()
        self._lock_fh = fh

    def close(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> "ResultsDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self._db.count() if self.path.exists() else 0

    def done_seeds(self) -> set[tuple[str, int]]:
        """(composition, seed) of every stored row: what a resumed search skips."""
        if not self.path.exists():
            return set()
        out = set()
        for row in self._db.select(include_data=False):
            kv = row.key_value_pairs
            if "composition" in kv and "seed" in kv:
                out.add((kv["composition"], int(kv["seed"])))
        return out

    def add(self, summary: dict, extra: dict | None = None) -> int:
        """Store one relaxation summary (see :func:`airss_msc.calc.relax.relax_structure`).

        Returns the new row id. The row is committed at once, so a crash right
        after loses nothing already stored.
        """
        if not self.write:
            raise RuntimeError("ResultsDB opened read-only")
        info = summary.get("info", {})
        atoms = Atoms(summary["symbols"], positions=summary["positions"])
        if summary.get("energy") is not None:
            atoms.calc = SinglePointCalculator(atoms, energy=summary["energy"])
        kv = {
            "composition": canonical_formula(info.get("formula") or atoms.get_chemical_formula()),
            "status": summary["status"],
            "method": summary["method"],
            "steps": int(summary["steps"]),
            "force_calls": int(summary["force_calls"]),
            "scf_retries": int(summary.get("scf_retries", 0)),
            "wall_s": round(float(summary["wall_seconds"]), 3),
            "engine_version": summary["engine_version"],
            "airss_msc": summary["airss_msc_version"],
        }
        for key in ("seed", "candidate", "attempts", "parent", "multiplicity"):
            if info.get(key) is not None:
                kv[key] = int(info[key])
        if info.get("parent_energy") is not None:
            kv["parent_energy"] = float(info["parent_energy"])
        for key in ("minsep", "shape", "symmetry", "generator", "source", "strategy", "move",
                    "template", "substitution", "sites"):
            if info.get(key):
                kv[key] = str(info[key])
        if summary.get("energy_per_atom") is not None:
            kv["e_per_atom"] = float(summary["energy_per_atom"])
        if summary.get("gap") is not None:
            kv["gap"] = float(summary["gap"])
        if summary.get("anion_bonds") is not None:
            kv["anion_bonds"] = int(summary["anion_bonds"])
        if summary.get("fmax") is not None:
            kv["final_fmax"] = float(summary["fmax"])
        if summary.get("protocol") and " -> " in summary["protocol"]:
            kv["protocol"] = summary["protocol"]
        if summary.get("message"):
            kv["message"] = str(summary["message"])[:500]
        kv.update(extra or {})
        data = {"initial_positions": np.asarray(summary.get("initial_positions", []), dtype=float)}
        if summary.get("settings"):
            data["settings"] = summary["settings"]
        try:
            return self._db.write(atoms, key_value_pairs=kv, data=data)
        except sqlite3.OperationalError as exc:
            raise DatabaseBusyError(f"cannot write to {self.path}: {exc}") from None

    def set_values(self, row_id: int, **values) -> None:
        """Add or change key-value pairs of one stored row (committed at once)."""
        if not self.write:
            raise RuntimeError("ResultsDB opened read-only")
        self._db.update(row_id, **values)

    def records(self, status: str | None = None) -> list[Record]:
        """Every stored row as a :class:`Record` (optionally one status only)."""
        if not self.path.exists():
            return []
        out = []
        selection = {"status": status} if status else {}
        try:
            rows = list(self._db.select(include_data=False, **selection))
        except sqlite3.DatabaseError as exc:
            raise InputError(f"database {self.path} is unreadable: {exc}") from None
        for row in rows:
            kv = dict(row.key_value_pairs)
            energy = row.get("energy")
            out.append(Record(
                id=row.id,
                composition=kv.get("composition", row.formula),
                status=kv.get("status", "relaxed" if energy is not None else "unknown"),
                energy=energy,
                energy_per_atom=kv.get("e_per_atom", energy / row.natoms if energy is not None else None),
                gap=kv.get("gap"),
                seed=kv.get("seed"),
                method=kv.get("method", ""),
                atoms=row.toatoms(),
                key_value_pairs=kv,
                source=str(self.path),
            ))
        return out
