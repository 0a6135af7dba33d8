"""The results database: an ASE SQLite database, one row per candidate.

All database side effects live here. ``ase db results.db`` lists what we store:
key-value pairs ``composition``, ``seed``, ``candidate``, ``status``, ``gap``,
``e_per_atom``, ``method``, ``steps``, ``force_calls``, ``wall_s``,
``engine_version``, ``airss_msc`` (version), the generation record (``minsep``,
``shape``, ``symmetry``), and the energy through a single-point calculator.
``data`` keeps the initial positions and the settings used.

Locking: only one process writes (the search coordinator). It holds an
``fcntl`` lock on ``<db>.writer`` that the kernel releases when the process
dies, so a killed job never leaves a lock that blocks the next one; the file
names the writer (pid, host, since when) and is removed on a clean close. ASE's
own ``<db>.lock`` file is not used; a stale one left by another ASE program
(which would make ASE writers hang forever) is detected and removed. Every wait
on a lock says at once what it waits for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect

from airss_msc.calc.engines import legacy_method_keys
from airss_msc.errors import DatabaseBusyError, InputError
from airss_msc.results.record import (
    FLOAT_PROVENANCE,
    INT_PROVENANCE,
    STATUSES,
    Excitations,
    Result,
    Status,
    method_key,
)

#: An ASE ``.lock`` file untouched this long belongs to a dead writer (ASE holds
#: it only for the duration of one write).
STALE_LOCK_SECONDS = 30.0

#: SQLite's own busy timeout: wait this long for a reader's lock, then fail.
BUSY_TIMEOUT_SECONDS = 30.0


#: Wait this long (s) for SQLite's lock before saying what is waited for: a writer's commit
#: holds it for milliseconds, which is no news.
BUSY_QUIET_SECONDS = 0.5


def _say(text: str) -> None:
    print(f"airss-msc: {text}", file=sys.stderr, flush=True)


def writer_path(path: str | os.PathLike) -> Path:
    """The lock file a writer of database ``path`` holds (``<db>.writer``)."""
    return Path(str(path) + ".writer")


def _writer_note(path: Path) -> str:
    """Who the ``.writer`` file says writes ``path`` (pid, host, since), or ""."""
    try:
        owner = writer_path(path).read_text().strip()
    except OSError:
        return ""
    match = re.match(r"pid (\d+) on (\S+)", owner)
    if match and match.group(2) == os.uname().nodename and not _alive(int(match.group(1))):
        return ""  # left by a killed writer: it holds nothing
    return f"the writer is {owner}" if owner else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clear_stale_ase_lock(path: Path, wait: float = STALE_LOCK_SECONDS) -> None:
    lock = Path(str(path) + ".lock")
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return
        if not told and age < STALE_LOCK_SECONDS:
            told = True
            _say(
                f"waiting for ASE's lock file {lock} ({age:.0f} s old: another ASE program is writing "
                f"{path.name}, or died; removed when {STALE_LOCK_SECONDS:.0f} s old)"
            )
        if age >= STALE_LOCK_SECONDS or time.monotonic() >= deadline:
            try:
                lock.unlink()
                _say(f"removed stale ASE lock file {lock} (age {age:.0f} s)")
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


class ResultsDB:
    """Reader/writer of a results database. Use as a context manager for writing.

    >>> with ResultsDB("results.db", write=True) as db:
    ...     db.add(summary)
    """

    def __init__(self, path: str | os.PathLike, write: bool = False):
        self.path = Path(path)
        self.write = write
        self._lock_fh: IO[str] | None = None
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
        """Read the row count; a lock held longer than a commit is announced, then waited for."""
        self._wait_for_sqlite_lock()
        try:
            self._db.count()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise DatabaseBusyError(f"database {self.path} is locked by another process") from None
            raise InputError(f"database {self.path} is unreadable: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise InputError(f"database {self.path} is corrupt: {exc}") from None

    def _wait_for_sqlite_lock(self) -> None:
        """Wait (up to ``BUSY_TIMEOUT_SECONDS``) for SQLite's lock, saying so at once.

        On a connection of our own: ASE's connections wait a fixed 20 s, silently.
        """
        for timeout in (BUSY_QUIET_SECONDS, BUSY_TIMEOUT_SECONDS):
            con = sqlite3.connect(self.path, timeout=timeout)
            try:
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    return  # not a lock: the probe through ASE says what it is
                if timeout == BUSY_TIMEOUT_SECONDS:
                    raise DatabaseBusyError(
                        f"database {self.path} is locked by another process (waited {BUSY_TIMEOUT_SECONDS:.0f} s)"
                    ) from None
            except sqlite3.DatabaseError:
                return
            finally:
                con.close()
            note = "" if self.write else _writer_note(self.path)
            _say(
                f"waiting for SQLite's lock on {self.path}, held by another process"
                + (f" ({note})" if note else "")
                + f"; giving up after {BUSY_TIMEOUT_SECONDS:.0f} s"
            )

    def _acquire_writer_lock(self) -> None:
        """Hold ``<db>.writer`` (refused at once, naming the holder, if another process does).

        A closing writer unlinks the file while it still holds the lock, so a process that
        opened the old file and locked it after that holds a lock on nothing: it checks that
        the path still names the file it locked, and starts again if not.
        """
        lock_path = writer_path(self.path)
        while True:
            fh = open(lock_path, "a+")  # noqa: SIM115 (held until close(): the lock lives as long as the writer)
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
            try:
                same = os.stat(lock_path).st_ino == os.fstat(fh.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            fh.close()  # unlinked (or replaced) by the writer we waited behind: lock the new file
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {os.uname().nodename} since {datetime.now().isoformat(' ', 'seconds')}")
        fh.flush()
        self._lock_fh = fh

    def close(self) -> None:
        """Release the writer lock; the ``.writer`` file goes too (unlinked while still held)."""
        if self._lock_fh is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(writer_path(self.path))
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> ResultsDB:
        return self

    def __exit__(self, *exc: object) -> None:
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

    def add(self, result: Result, extra: dict | None = None) -> int:
        """Store one :class:`Result`; returns the new row id.

        The row is committed at once, so a crash right after loses nothing already stored.
        """
        if not self.write:
            raise RuntimeError("ResultsDB opened read-only")
        atoms = Atoms(result.symbols, positions=result.positions)
        if result.energy is not None:
            atoms.calc = SinglePointCalculator(atoms, energy=result.energy)
        kv = dict((_provenance_pairs(result.provenance)).items())
        kv.update(
            {
                "composition": result.composition or "",
                "status": Status(result.status).value,  # the plain word: what older databases hold
                "method": result.method,
                "steps": int(result.steps),
                "force_calls": int(result.force_calls),
                "scf_retries": int(result.scf_retries),
                "wall_s": round(float(result.wall_seconds), 3),
                "engine_version": result.engine_version,
                "airss_msc": result.airss_msc_version,
            }
        )
        optional = {
            "e_per_atom": result.energy_per_atom,
            "gap": result.gap,
            "anion_bonds": result.anion_bonds,
            "final_fmax": result.fmax,
            "optimizer": result.optimizer or None,
            "protocol": result.protocol or None,
            "message": str(result.message)[:500] if result.message else None,
        }
        kv.update({k: v for k, v in optional.items() if v is not None})
        kv.update(_energy_pairs(result.energies, result.gaps))
        kv.update(extra or {})
        self._remember(set(result.energies) | set(result.gaps) | {result.method} - {""})
        data: dict[str, Any] = {
            "initial_positions": np.asarray(
                result.initial_positions if result.initial_positions is not None else [], dtype=float
            )
        }
        if result.settings:
            data["settings"] = result.settings
        if result.excitations:
            data["excitations"] = {m: e.as_data() for m, e in result.excitations.items()}
        try:
            return self._db.write(atoms, key_value_pairs=kv, data=data)
        except sqlite3.OperationalError as exc:
            raise DatabaseBusyError(f"cannot write to {self.path}: {exc}") from None

    @property
    def rank_energy(self) -> str | None:
        """The method this database's rows are ranked by by default (None: each row's own)."""
        return (self._db.metadata or {}).get("rank_energy")

    def set_rank_energy(self, method: str | None) -> None:
        """Record the search's ranking energy (a method stored on every row beside its own)."""
        if method == self.rank_energy:
            return
        meta = dict(self._db.metadata or {})
        meta["rank_energy"] = method
        self._db.metadata = meta

    def _methods(self) -> dict[str, str]:
        return dict((self._db.metadata or {}).get("methods", {}))

    def _remember(self, methods: Iterable[str]) -> None:
        """Keep key -> method in the database metadata so keys read back as method names."""
        known = self._methods()
        new = {method_key(m): m for m in methods if method_key(m) not in known}
        if new:
            meta = dict(self._db.metadata or {})
            meta["methods"] = {**known, **new}
            self._db.metadata = meta

    def set_single_point(self, row_id: int, method: str, energy: float | None, gap: float | None = None) -> None:
        """Store a single point of ``method`` on row ``row_id`` beside its other energies."""
        self._remember([method])
        self.set_values(
            row_id,
            **_energy_pairs({method: energy} if energy is not None else {}, {method: gap} if gap is not None else {}),
        )

    def set_excitations(self, row_id: int, excitations: Excitations) -> None:
        """Store (or replace) the excitations of one method on row ``row_id``."""
        if not self.write:
            raise RuntimeError("ResultsDB opened read-only")
        row = self._db.get(id=row_id)
        stored = dict(row.data.get("excitations", {}))
        stored[excitations.method] = excitations.as_data()
        self._db.update(row_id, data={"excitations": stored})

    def set_values(self, row_id: int, **values: Any) -> None:
        """Add or change key-value pairs of one stored row (committed at once)."""
        if not self.write:
            raise RuntimeError("ResultsDB opened read-only")
        self._db.update(row_id, **values)

    def records(self, status: Status | str | None = None) -> list[Result]:
        """Every stored row as a :class:`Result` (optionally one status only; a misspelt status is
        a :class:`ValueError`, not an empty list)."""
        if not self.path.exists():
            return []
        selection = {"status": Status.parse(status).value} if status else {}
        try:
            rows = list(self._db.select(include_data=True, **selection))
        except sqlite3.DatabaseError as exc:
            raise InputError(f"database {self.path} is unreadable: {exc}") from None
        methods = self._methods()
        return [result_from_row(row, str(self.path), methods) for row in rows]

    def get(self, row_id: int) -> Result:
        try:
            return result_from_row(self._db.get(id=row_id), str(self.path), self._methods())
        except KeyError:
            raise InputError(f"database {self.path} has no row {row_id}") from None


#: Key-value pairs that are fields of the record (everything else is provenance).
_RECORD_KEYS = {
    "composition",
    "status",
    "method",
    "steps",
    "force_calls",
    "scf_retries",
    "wall_s",
    "engine_version",
    "airss_msc",
    "e_per_atom",
    "gap",
    "anion_bonds",
    "final_fmax",
    "optimizer",
    "protocol",
    "message",
}


def _provenance_pairs(provenance: dict[str, Any]) -> dict[str, int | float | bool | str]:
    """Provenance as storable key-value pairs (ints, floats, short strings; no clash with ASE's own keys)."""
    out: dict[str, int | float | bool | str] = {}
    for key, value in provenance.items():
        if value is None or value == "" or key in _RECORD_KEYS or key in _ASE_RESERVED or not key.isidentifier():
            continue
        if key.startswith(("e_", "gap_")):
            continue
        if key in INT_PROVENANCE:
            out[key] = int(value)
        elif key in FLOAT_PROVENANCE or (isinstance(value, (float, np.floating)) and not isinstance(value, bool)):
            out[key] = float(value)
        elif isinstance(value, (bool, np.bool_)):
            out[key] = bool(value)
        elif isinstance(value, (int, np.integer)):
            out[key] = int(value)
        elif isinstance(value, str):
            out[key] = value[:500]
    return out


#: ASE reserves these names for its own columns.
_ASE_RESERVED = {
    "id",
    "unique_id",
    "ctime",
    "mtime",
    "user",
    "calculator",
    "energy",
    "natoms",
    "formula",
    "age",
    "charge",
    "mass",
    "magmom",
    "fmax",
    "smax",
    "volume",
    "pbc",
    "energy_per_atom",
    "name",
}


def _energy_pairs(energies: Mapping[str, float | None], gaps: Mapping[str, float | None]) -> dict[str, float]:
    out = {f"e_{method_key(m)}": float(e) for m, e in energies.items() if e is not None}
    out.update({f"gap_{method_key(m)}": float(g) for m, g in gaps.items() if g is not None})
    return out


def result_from_row(row: Any, source: str = "", methods: dict[str, str] | None = None) -> Result:
    """A stored ASE database row as a :class:`Result` (old databases included).

    methods: stored key -> canonical method (the database's metadata), for the
    ``e_<key>``/``gap_<key>`` single points; legacy keys are always understood.
    """
    kv = dict(row.key_value_pairs)
    keys = {**legacy_method_keys(), **(methods or {})}
    method = str(kv.get("method", ""))
    if method:
        keys.setdefault(method_key(method), method)
    energies, gaps, provenance = {}, {}, {}
    for key, value in kv.items():
        if key.startswith("e_") and key != "e_per_atom" and key[2:] in keys:
            energies[keys[key[2:]]] = float(value)
        elif key.startswith("gap_") and key[4:] in keys:
            gaps[keys[key[4:]]] = float(value)
        elif key not in _RECORD_KEYS:
            provenance[key] = value
    energy = row.get("energy")
    if "composition" in kv:
        provenance["formula"] = kv["composition"]
    status = kv.get("status", Status.RELAXED if energy is not None else Status.ERROR)
    message = str(kv.get("message", ""))
    if status not in STATUSES:
        # one misspelt row (edited by hand, another program's word) leaves the database readable,
        # but is not ranked and says why
        message = f"unknown stored status {status!r}, read as {Status.ERROR}" + (f"; {message}" if message else "")
        status = Status.ERROR
    data = row.get("data") or {}
    excitations = {m: Excitations.from_data(d) for m, d in (data.get("excitations") or {}).items()}
    if energy is not None and method:
        energies.setdefault(method, float(energy))
    return Result(
        symbols=tuple(row.symbols),
        positions=row.positions,
        status=status,
        message=message,
        method=method,
        energy=energy,
        gap=kv.get("gap"),
        energies=energies,
        gaps=gaps,
        excitations=excitations,
        fmax=kv.get("final_fmax"),
        steps=int(kv.get("steps", 0)),
        force_calls=int(kv.get("force_calls", 0)),
        scf_retries=int(kv.get("scf_retries", 0)),
        wall_seconds=float(kv.get("wall_s", 0.0)),
        optimizer=str(kv.get("optimizer", "")),
        engine_version=str(kv.get("engine_version", "")),
        protocol=str(kv.get("protocol", "")),
        airss_msc_version=str(kv.get("airss_msc", "")),
        anion_bonds=kv.get("anion_bonds"),
        provenance=provenance,
        initial_positions=data.get("initial_positions"),
        settings=dict(data.get("settings") or {}),
        id=row.id,
        source=source,
    )
