"""Structure files: extended XYZ (``.xyz``/``.extxyz``) and AIRSS SHELX ``.res``.

Clusters are non-periodic: every structure read comes back as an
:class:`ase.Atoms` with ``pbc=False``, positions in Angstrom and, when the file
carries one, its energy in ``atoms.info["energy"]`` (eV). Metadata in
``atoms.info`` (seed, formula, status, gap_eV, ...) survives a round trip
through every format.

``.res`` files follow the AIRSS conventions so that AIRSS's ``cryan`` reads
ours and we read AIRSS's::

    TITL <name> <pressure/GPa> <volume/A^3> <enthalpy/eV> <spin> <|spin|> <natoms> (<symm>) n - <times found>
    REM <key>=<value>          (our metadata; values are JSON unless a plain string)
    CELL 1.0 a b c alpha beta gamma
    LATT -1
    SFAC Cd Se
    Cd 1 x y z 1.0             (fractional coordinates)
    END

Several TITL..END blocks may follow each other in one file (``cat *.res``).

Extended XYZ is read and written by ASE (``ase.io``); ``.res`` is written by
:class:`ase.io.res.Res` with our REM lines after TITL. The ``.res`` reader is
ours: ``ase.io.res`` and ``pymatgen.io.res`` read one structure per file, cannot
read an ``n/a`` enthalpy (ASE then drops the whole TITL, name included;
pymatgen raises), keep no REM metadata (ASE) and report bad input without a
line (pymatgen) or not at all (ASE drops an atom line its pattern does not
match, e.g. ``6.1e-01``).

A structure without an energy, or one whose relaxation did not finish
(``status`` other than ``relaxed``), has ``n/a`` as its enthalpy, as AIRSS
writes ``(n/a)`` for an unknown symmetry: AIRSS has no other mark for "no
energy" (``buildcell | cabal cell res`` writes 0.0, which cryan ranks as a
real energy), cryan 0.9.1 keeps its "unknown" value for a field it cannot
read (the structure sorts last or is left out, never ranked as 0 eV), and
cabal 0.9.1 does not read the TITL numbers. An energy of an unfinished
relaxation stays in ``REM energy=``. Names are kept to
:data:`CRYAN_NAME_WIDTH` characters (cryan cuts longer ones), no REM line
contains ``TITL`` (cryan starts a new structure at any line that does), and
the structures of one write share one cubic box that holds any orientation of
each (:func:`res_box`), so cryan can recognise rotated copies.

:func:`export_res` writes database rows (:class:`~airss_msc.results.record.Result`)
as one ``.res`` per row, named ``<composition>-r<row id>`` (``Cd6Se6-r12``),
with seed, status, method and gap in REM lines.

ASE's ``read``/``write`` are always called with ``parallel=False``: once
mpi4py is imported ASE would otherwise broadcast from rank 0 and hang in
worker ranks that read files on their own. All writes are atomic (temporary
file in the same directory, then :func:`os.replace`).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO, cast

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols
from ase.geometry import cellpar_to_cell
from ase.io.res import Res

from airss_msc.composition import format_formula
from airss_msc.errors import InputError
from airss_msc.results.record import Result

#: File extension -> format name.
FORMATS = {".xyz": "xyz", ".extxyz": "extxyz", ".res": "res"}
#: Extensions read as structure files (anything else given to ``rank`` is a database).
STRUCTURE_SUFFIXES = frozenset(FORMATS)

#: Minimum gap (Angstrom) between a cluster and its periodic images in the box
#: written to ``.res`` files; enough that codes treating the box as periodic
#: see isolated clusters.
RES_VACUUM = 10.0

#: Info keys that live in the TITL line rather than in REM lines.
_TITL_KEYS = ("name", "energy", "symmetry")

#: The enthalpy field of a TITL line for a structure without one (see the module docstring).
NO_ENERGY = "n/a"

#: Longest structure name cryan 0.9.1 shows whole: it prints names in 20 columns and
#: cuts longer ones to their first 8 and last 9 characters (``Cd6Se6-1*456789012``).
CRYAN_NAME_WIDTH = 20

_REM_KEY_VALUE = re.compile(r"REM\s+([A-Za-z_][A-Za-z0-9_.\-]*)=(.*)", re.IGNORECASE)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._+\-]")
_ELEMENTS = frozenset(chemical_symbols)


# --------------------------------------------------------------------------- API


def format_of(path: str | os.PathLike, fmt: str | None = None) -> str:
    """Format name (``xyz``, ``extxyz`` or ``res``) given explicitly or from the extension."""
    if fmt is not None:
        name = fmt.lower().lstrip(".")
        if name not in FORMATS.values():
            raise InputError(f"{path}: unknown structure format {fmt!r}; use xyz, extxyz or res")
        return name
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        shown = repr(suffix) if suffix else "(none)"
        raise InputError(f"{path}: unknown structure file extension {shown}; use .xyz, .extxyz or .res")
    return FORMATS[suffix]


def read_structures(path: str | os.PathLike, fmt: str | None = None) -> list[Atoms]:
    """All structures in ``path`` (Angstrom, ``pbc=False``, energy in ``info["energy"]``/eV).

    ``.res`` structures are converted from fractional coordinates of their box
    and centred at the origin (centroid). Raises :class:`InputError` for a
    missing, empty, truncated or otherwise unreadable file.
    """
    path = Path(path)
    kind = format_of(path, fmt)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text structure file (undecodable bytes)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    images = _parse_res(text, str(path)) if kind == "res" else _parse_xyz(text, str(path))
    if not images:
        raise InputError(f"{path}: no structures in file (empty?)")
    return images


def write_structures(path: str | os.PathLike, images: Atoms | Iterable[Atoms], fmt: str | None = None) -> int:
    """Write ``images`` atomically to ``path``; returns the number written.

    The format comes from ``fmt`` or the extension. ``.xyz`` is written as
    extended XYZ (still readable by plain-XYZ programs) so metadata survives.
    A ``.res`` file holds one TITL..END block per structure, all in one box
    (see :func:`res_box`).
    """
    path = Path(path)
    kind = format_of(path, fmt)
    items = _as_list(images, path)
    if kind == "res":
        names = [structure_name(a, i) for i, a in enumerate(items)]

        def write(fh: TextIO) -> None:
            # Blocks are rendered one at a time so that a bad structure late in
            # the list fails inside the temporary file, never in ``path``.
            box = res_box(items, path)
            for atoms, name in zip(items, names, strict=True):
                fh.write(_res_block(atoms, name, path, box))
    else:

        def write(fh: TextIO) -> None:
            # ASE's extxyz writer, one frame at a time: a bad structure late in the
            # list fails inside the temporary file, and no copy of the list is held.
            for atoms in items:
                ase.io.write(fh, _for_extxyz(atoms, path), format="extxyz", parallel=False)

    _atomic_write(path, write)
    return len(items)


def write_res_files(directory: str | os.PathLike, images: Atoms | Iterable[Atoms]) -> list[Path]:
    """One ``<name>.res`` per structure in ``directory`` (created if needed), AIRSS style.

    Names come from ``info["name"]`` or ``<formula>-<seed>`` (see
    :func:`structure_name`). Two structures with the same name are refused
    rather than one silently overwriting the other. All files have the same
    box (:func:`res_box`). Returns the paths written.
    """
    directory = Path(directory)
    items = _as_list(images, directory)
    names = [structure_name(a, i) for i, a in enumerate(items)]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(
                f"{directory}: two structures are both named {name!r}; give them distinct info['name'] or seeds"
            )
        seen.add(name)
    box = res_box(items, directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{directory}: cannot create directory: {exc.strerror or exc}") from None
    paths = []
    for atoms, name in zip(items, names, strict=True):
        target = directory / f"{name}.res"

        def write(fh: TextIO, a: Atoms = atoms, n: str = name, t: Path = target) -> None:
            fh.write(_res_block(a, n, t, box))

        _atomic_write(target, write)
        paths.append(target)
    return paths


def convert(src: str | os.PathLike, dst: str | os.PathLike) -> int:
    """Read every structure of ``src`` and write them to ``dst`` (formats from the
    extensions); returns the number converted.

    A results database as ``src`` gives its relaxed rows as :func:`export_res`
    writes them (into one file: a ``.res`` destination holds what
    ``cat OUT_DIR/*.res`` of an export would).
    """
    if _is_database(src):
        format_of(dst)  # an unknown destination is refused before the database is read
        results, left_out = select_rows(src)
        if not results:
            raise InputError(
                f"{src}: no relaxed rows to convert ({_left_out_text(left_out)}); "
                f"'airss-msc export {src} OUT_DIR --all' writes the others"
            )
        return write_structures(dst, [result_atoms(r) for r in results])
    return write_structures(dst, read_structures(src))


#: What :func:`result_atoms` writes of a computed result, not of how the structure was made: a file
#: relaxed again leaves these behind (they would describe the old relaxation).
RESULT_INFO_KEYS = ("energy", "status", "method", "geometry_method", "geometry_energy", "gap_eV", "gaps", "anion_bonds")


def result_atoms(result: Result, energy: str | None = None) -> Atoms:
    """A database row as :class:`ase.Atoms` for writing: its short unique name (see
    :func:`export_name`), the energy of ``energy`` (a canonical method; None: the
    row's own) and, in ``info``, formula, seed, status, method, gap and row id (and, when
    ``energy`` is another method's, the geometry engine and its energy). ``gap_eV`` is the
    written method's own gap (eV); ``gaps`` the other stored ones by method (an ML row's
    GFN2-xTB or PBE gap: the ML engines have none)."""
    method = energy or result.method
    value = result.energy_by(energy)
    gap = result.gap_by(energy)
    atoms = Atoms(result.symbols, positions=result.positions, pbc=False)
    info = {
        "name": export_name(result),
        "energy": value,
        "formula": result.composition,
        "seed": result.seed,
        "status": result.status,
        "method": method,
        "geometry_method": result.method if method != result.method else None,
        # the relaxing engine's own energy: ranking decides duplicates on it (see analysis.rank)
        "geometry_energy": result.energy if method != result.method else None,
        "gap_eV": gap,
        "gaps": {m: float(g) for m, g in sorted(result.gaps.items()) if m != method} or None,
        "anion_bonds": result.anion_bonds,
        "row": result.id,
        "db": Path(result.source).name if result.source else None,
        "search": result.provenance.get("search"),
    }
    atoms.info.update({k: v for k, v in info.items() if v is not None and v != ""})
    return atoms


def export_name(result: Result) -> str:
    """``<composition>-r<row id>`` (``Cd6Se6-r12``): short, unique within a database and
    whole in cryan's output; ``r<row id>`` alone when that would pass
    :data:`CRYAN_NAME_WIDTH` characters. The seed (19 digits) goes in a REM line."""
    if result.id is None:
        raise InputError(f"cannot name a {result.composition or 'structure'} without a database row id")
    tail = f"r{result.id}"
    name = f"{result.composition}-{tail}" if result.composition else tail
    return name if len(name) <= CRYAN_NAME_WIDTH else tail


def export_res(results: Iterable[Result], directory: str | os.PathLike, energy: str | None = None) -> list[Path]:
    """One AIRSS ``.res`` per result in ``directory`` (created if needed): TITL with the
    short name, the energy (eV) and the atom count; seed, status, method, gap, row and
    database in REM lines. ``energy``: a canonical method whose stored energy to write
    instead of the row's own. Results without an energy, or not ``relaxed``, get
    ``n/a`` in place of the enthalpy. Returns the paths written."""
    return write_res_files(directory, [result_atoms(r, energy) for r in results])


def select_rows(
    db: str | os.PathLike, include_all: bool = False, energy: str | None = None
) -> tuple[list[Result], dict[str, int]]:
    """The rows of a results database to export, and how many were left out, by reason.

    Only ``relaxed`` rows unless ``include_all`` (rows with no atoms, from failed
    generations, are always left out); with ``energy`` (any spelling of a method)
    only rows with a stored energy of that method.
    """
    from airss_msc.calc.engines import parse_method  # the engine registry: only load it here
    from airss_msc.results.store import ResultsDB  # ASE's database: slow to import

    if not Path(db).is_file():
        raise InputError(f"{db}: no such database")
    method = str(parse_method(energy)) if energy else None
    chosen: list[Result] = []
    left_out: dict[str, int] = {}
    for result in ResultsDB(db).records():
        if not result.natoms:
            reason = "without atoms"
        elif result.status != "relaxed" and not include_all:
            reason = "not relaxed"
        elif method is not None and result.energy_by(method) is None:
            reason = f"without a {method} energy"
        else:
            chosen.append(result)
            continue
        left_out[reason] = left_out.get(reason, 0) + 1
    return chosen, left_out


def export_database(
    db: str | os.PathLike, directory: str | os.PathLike, include_all: bool = False, energy: str | None = None
) -> tuple[list[Path], dict[str, int]]:
    """:func:`export_res` of the rows :func:`select_rows` chooses; returns the paths
    written and the rows left out by reason. No rows to write is an :class:`InputError`."""
    from airss_msc.calc.engines import parse_method

    method = str(parse_method(energy)) if energy else None
    results, left_out = select_rows(db, include_all, method)
    if not results:
        raise InputError(
            f"{db}: nothing to export ({_left_out_text(left_out) or 'no rows'})"
            + ("; --all also exports rows that are not relaxed" if not include_all else "")
        )
    return export_res(results, directory, method), left_out


def _left_out_text(left_out: dict[str, int]) -> str:
    return ", ".join(f"{n} row(s) {reason}" for reason, n in left_out.items())


def _is_database(path: str | os.PathLike) -> bool:
    """An SQLite file (a results database) named without a structure-file extension."""
    path = Path(path)
    if path.suffix.lower() in FORMATS or not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(16).startswith(b"SQLite format 3")
    except OSError:
        return False


def energy_of(atoms: Atoms) -> float | None:
    """Energy in eV from ``info["energy"]``, else from the attached calculator's
    stored results (never triggers a calculation); None if unknown."""
    value = atoms.info.get("energy")
    if value is None and atoms.calc is not None:
        value = (getattr(atoms.calc, "results", None) or {}).get("energy")
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"energy {value!r} of {atoms.get_chemical_formula()} is not a number") from None


def structure_name(atoms: Atoms, index: int = 0) -> str:
    """Name used in ``.res`` TITL lines and file names.

    ``info["name"]`` if set, else ``<formula>-c<candidate>`` for generated structures,
    else ``<formula>-<seed>`` for a short seed, else ``<formula>-<index+1>``; a 19-digit
    derived seed goes into a REM line, not the name,
    because cryan shows at most 20 characters of a name. Characters other than letters,
    digits and ``._+-`` become ``_`` because AIRSS splits TITL lines at whitespace.
    """
    name = str(atoms.info.get("name") or "").strip()
    if not name:
        formula = atoms.info.get("formula") or format_formula(_counts(atoms))
        candidate, seed = atoms.info.get("candidate"), atoms.info.get("seed")
        if candidate is not None:
            name = f"{formula}-c{candidate}"
        elif seed is not None and len(str(seed)) <= 8:
            name = f"{formula}-{seed}"
        else:
            name = f"{formula}-{index + 1}"
    return _SAFE_NAME.sub("_", name)


def to_molecule(atoms: Atoms) -> Any:  # a pymatgen.core.Molecule (imported only when called)
    """:class:`pymatgen.core.Molecule` with the same species and positions (Angstrom).

    ``info`` (plus the energy, eV) goes into ``Molecule.properties``;
    ``info["charge"]`` and ``info["spin_multiplicity"]`` are used if present.
    """
    from pymatgen.core import Molecule  # pymatgen is slow to import; only load it here

    properties = dict(atoms.info)
    energy = energy_of(atoms)
    if energy is not None:
        properties["energy"] = energy
    try:
        return Molecule(
            atoms.get_chemical_symbols(),
            np.asarray(atoms.positions, dtype=float),
            charge=float(atoms.info.get("charge", 0) or 0),
            spin_multiplicity=atoms.info.get("spin_multiplicity"),
            properties=properties,
        )
    except ValueError as exc:
        raise InputError(f"cannot convert {atoms.get_chemical_formula()} to a pymatgen Molecule: {exc}") from None


def from_molecule(mol: Any) -> Atoms:
    """Non-periodic :class:`ase.Atoms` from a pymatgen Molecule (Angstrom).

    ``Molecule.properties`` become ``info``; a non-zero charge is kept as
    ``info["charge"]``. Oxidation states on species are dropped.
    """
    symbols = [getattr(site.specie, "symbol", str(site.specie)) for site in mol]
    unknown = sorted({s for s in symbols if s not in _ELEMENTS})
    if unknown:
        raise InputError(f"cannot convert Molecule {mol.formula}: unknown element(s) {', '.join(unknown)}")
    atoms = Atoms(symbols, positions=np.array(mol.cart_coords, dtype=float), pbc=False)
    atoms.info.update(_plain(dict(getattr(mol, "properties", None) or {})))
    if mol.charge:
        charge = float(mol.charge)
        atoms.info["charge"] = int(charge) if charge.is_integer() else charge
    return atoms


# ------------------------------------------------------------------ extended XYZ


def _parse_xyz(text: str, where: str) -> list[Atoms]:
    """Split into frames ourselves so errors name the frame's line, then let ASE's
    extxyz reader parse each frame (it understands Properties= columns)."""
    lines = text.splitlines()
    images: list[Atoms] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        start = i
        try:
            natoms = int(lines[i].strip())
        except ValueError:
            raise InputError(
                f"{where}:{i + 1}: expected the number of atoms of a frame, got {lines[i].strip()[:40]!r}"
            ) from None
        if natoms <= 0:
            raise InputError(f"{where}:{i + 1}: frame with {natoms} atoms")
        end = start + 2 + natoms
        if end > len(lines):
            found = max(0, len(lines) - start - 2)
            raise InputError(
                f"{where}:{start + 1}: truncated frame: {natoms} atoms announced, {found} atom lines present"
            )
        for j in range(start + 2, end):
            if not lines[j].strip():
                raise InputError(f"{where}:{j + 1}: blank line inside a frame of {natoms} atoms (wrong atom count?)")
        chunk = "\n".join(lines[start:end]) + "\n"
        try:
            # one index: one Atoms (ASE's annotation covers slices too)
            atoms = cast(Atoms, ase.io.read(io.StringIO(chunk), index=0, format="extxyz", parallel=False))
        except Exception as exc:  # ASE raises anything from KeyError to IndexError here
            line, problem = _locate(lines[start:end], exc)
            raise InputError(f"{where}:{start + 1 + line}: unreadable frame {len(images) + 1}: {problem}") from None
        images.append(_finish(atoms))
        i = end
    return images


def _locate(frame: list[str], exc: Exception) -> tuple[int, str]:
    """Offset within ``frame`` of the line that ASE choked on, and a readable reason.

    ASE reports neither line nor cause clearly ("could not assign tuple of
    length 3 ..."), so look for an atom line with the wrong number of columns,
    then for the token named in the error.
    """
    widths = [len(line.split()) for line in frame[2:]]
    expected = max(set(widths), key=widths.count)
    props = re.search(r"Properties=(\S+)", frame[1])
    if props:
        with contextlib.suppress(ValueError):  # a malformed Properties= leaves the commonest width
            expected = sum(int(n) for n in props.group(1).split(":")[2::3])
    for k, width in enumerate(widths):
        if width != expected:
            return k + 2, (f"atom line has {width} columns, expected {expected} (wrong atom count or truncated line?)")
    token = re.search(r"'([^']*)'", str(exc))
    if token:
        for k, line in enumerate(frame[2:]):
            if token.group(1) in line.split():
                return k + 2, _describe(exc)
    return 0, _describe(exc)


def _finish(atoms: Atoms) -> Atoms:
    """Common post-processing of frames read by ASE: non-periodic, plain Python
    info values (ASE returns NumPy scalars, which JSON and SQLite reject), and
    the calculator energy exposed as ``info["energy"]``."""
    atoms.pbc = False
    atoms.info = _plain(atoms.info)
    if "energy" not in atoms.info and atoms.calc is not None:
        energy = atoms.calc.results.get("energy")
        if energy is not None:
            atoms.info["energy"] = float(energy)
    return atoms


def _for_extxyz(atoms: Atoms, path: Path) -> Atoms:
    """Copy ready for ASE's extxyz writer: the energy travels once, as a calculator
    result (ASE refuses or duplicates it when it is both in info and results)."""
    _check_atoms(atoms, path)
    out = atoms.copy()
    energy = energy_of(atoms)
    out.info.pop("energy", None)
    # extxyz writes a None as a bare key, which reads back as True: drop it instead.
    out.info = {k: v for k, v in out.info.items() if v is not None}
    results = dict(getattr(atoms.calc, "results", None) or {}) if atoms.calc is not None else {}
    if energy is not None:
        results["energy"] = energy
    if results:
        out.calc = SinglePointCalculator(out, **results)
    return out


# --------------------------------------------------------------------- AIRSS res


def _parse_res(text: str, where: str) -> list[Atoms]:
    """Every TITL..END block of a (possibly concatenated) ``.res`` file."""
    images = []
    block: list[tuple[int, str]] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        key = line.split()[0].upper()
        if key == "TITL":
            if block is not None:
                raise InputError(
                    f"{where}:{lineno}: TITL before END of the structure starting at "
                    f"line {block[0][0]} (truncated file?)"
                )
            block = [(lineno, line)]
        elif block is None:
            raise InputError(f"{where}:{lineno}: expected TITL, got {line[:40]!r}")
        else:
            block.append((lineno, line))
            if key == "END":
                images.append(_parse_res_block(block, where))
                block = None
    if block is not None:
        raise InputError(f"{where}:{block[0][0]}: structure has no END line (truncated file?)")
    return images


def _parse_titl(line: str, where: str) -> tuple[dict, int | None]:
    """Info from an AIRSS TITL line and the atom count it announces (None if absent)."""
    tokens = line.split()[1:]
    if not tokens:
        return {}, None
    info: dict = {"name": tokens[0]}
    if len(tokens) == 1:  # plain SHELX title, no AIRSS fields
        return info, None
    if len(tokens) < 7:
        raise InputError(
            f"{where}: malformed TITL line (expected name pressure volume enthalpy "
            f"spin |spin| natoms (symm) n - times): {line[:80]!r}"
        )
    try:
        pressure, _volume = (float(t) for t in tokens[1:3])
        enthalpy = None if tokens[3].lower() == NO_ENERGY else float(tokens[3])
        _spin, _modspin = (float(t) for t in tokens[4:6])
        natoms = int(tokens[6])
    except ValueError:
        raise InputError(f"{where}: bad number in TITL line {line[:80]!r}") from None
    if enthalpy is not None:
        info["energy"] = enthalpy
    if pressure != 0.0:  # clusters are relaxed at zero pressure; only keep the unusual
        info["pressure"] = pressure
    symm = re.search(r"\(([^)]*)\)", " ".join(tokens[7:]))
    if symm and symm.group(1).strip() not in ("", "n/a"):
        info["symmetry"] = symm.group(1).strip()
    if len(tokens) >= 10 and tokens[-2] == "-":
        try:
            times = int(tokens[-1])
        except ValueError:
            raise InputError(f"{where}: bad times-found count in TITL line {line[:80]!r}") from None
        if times != 1:
            info["times_found"] = times
    return info, natoms


def _parse_res_block(block: list[tuple[int, str]], where: str) -> Atoms:
    """One TITL..END block -> centred, non-periodic Atoms."""
    titl_line, titl = block[0]
    info, natoms = _parse_titl(titl, f"{where}:{titl_line}")
    rem: dict = {}
    cellpar: list[float] | None = None
    sfac: list[str] | None = None
    symbols: list[str] = []
    frac: list[list[float]] = []
    for lineno, line in block[1:-1]:
        at = f"{where}:{lineno}"
        tokens = line.split()
        key = tokens[0].upper()
        if key == "REM":
            match = _REM_KEY_VALUE.fullmatch(line)
            if match:  # other REM lines (AIRSS run logs) are comments
                rem[match.group(1)] = _decode_value(match.group(2).strip())
        elif sfac is None:
            if key == "CELL":
                cellpar = _parse_cell(tokens, at)
            elif key == "LATT":
                if tokens[1:] != ["-1"]:
                    raise InputError(f"{at}: only 'LATT -1' (all atoms listed, no centring) is supported, got {line!r}")
            elif key == "SYMM":
                raise InputError(f"{at}: SYMM operators are not supported; list all atoms with LATT -1")
            elif key in ("ZERR", "UNIT"):
                continue
            elif key == "SFAC":
                sfac = tokens[1:]
                bad = [s for s in sfac if s not in _ELEMENTS]
                if not sfac or bad:
                    raise InputError(f"{at}: SFAC must list element symbols, got {line!r}")
            else:
                raise InputError(f"{at}: unexpected line before SFAC: {line[:60]!r}")
        else:
            symbol, xyz = _parse_atom(tokens, sfac, at)
            symbols.append(symbol)
            frac.append(xyz)
    if cellpar is None:
        raise InputError(f"{where}:{titl_line}: structure has no CELL line")
    if not symbols:
        raise InputError(f"{where}:{titl_line}: structure has no atoms")
    if natoms is not None and natoms != len(symbols):
        raise InputError(f"{where}:{titl_line}: TITL announces {natoms} atoms but {len(symbols)} atom lines follow")
    cell = cellpar_to_cell(cellpar)
    positions = _unwrap(np.asarray(frac) % 1.0) @ cell
    positions -= positions.mean(axis=0)
    atoms = Atoms(symbols, positions=positions, pbc=False)
    info.update(rem)  # our REM values are authoritative (e.g. a symmetry TITL cannot hold)
    if "energy" in info and info["energy"] is None:  # written as "no energy", see _res_block
        del info["energy"]
    atoms.info.update(info)
    return atoms


def _parse_cell(tokens: list[str], at: str) -> list[float]:
    """``CELL wavelength a b c alpha beta gamma`` -> cell parameters (Angstrom, degrees)."""
    try:
        values = [float(t) for t in tokens[1:]]
    except ValueError:
        raise InputError(f"{at}: bad number in CELL line {' '.join(tokens)!r}") from None
    if len(values) != 7:
        raise InputError(f"{at}: CELL needs wavelength a b c alpha beta gamma, got {' '.join(tokens)!r}")
    par = values[1:]
    if not all(math.isfinite(v) for v in par) or min(par[:3]) <= 0 or not all(0 < a < 180 for a in par[3:]):
        raise InputError(f"{at}: impossible cell {' '.join(tokens[1:])}")
    return par


def _parse_atom(tokens: list[str], sfac: list[str], at: str) -> tuple[str, list[float]]:
    """``Symbol <sfac index> x y z [occupancy [spin]]`` -> element, fractional xyz."""
    if len(tokens) < 5:
        raise InputError(f"{at}: atom line needs 'Symbol index x y z occupancy', got {' '.join(tokens)!r}")
    label = tokens[0]
    # SHELX labels may carry a number (Cd1); AIRSS writes bare symbols.
    element = label if label in _ELEMENTS else re.sub(r"[^A-Za-z].*$", "", label)
    if element not in _ELEMENTS:
        raise InputError(f"{at}: unknown element {label!r}")
    try:
        index = int(tokens[1])
        xyz = [float(t) for t in tokens[2:5]]
        for t in tokens[5:]:
            float(t)
    except ValueError:
        raise InputError(f"{at}: bad number in atom line {' '.join(tokens)!r}") from None
    if not all(math.isfinite(v) for v in xyz):
        raise InputError(f"{at}: non-finite coordinate in atom line {' '.join(tokens)!r}")
    if not 1 <= index <= len(sfac) or sfac[index - 1] != element:
        raise InputError(
            f"{at}: atom {label!r} has SFAC index {index}, which is not {element} in SFAC {' '.join(sfac)}"
        )
    return element, xyz


def _unwrap(frac: np.ndarray) -> np.ndarray:
    """Make a cluster contiguous in its box.

    AIRSS relaxes clusters in periodic boxes, so an atom can drift across a face
    and reappear on the other side (x = 0.98 next to x = 0.02). Along each axis
    the vacuum is the largest gap between sorted coordinates (going round the
    periodic boundary); cutting there restores the whole cluster. A cluster
    already inside the box is left untouched.
    """
    out = frac.copy()
    if len(out) < 2:
        return out
    for k in range(3):
        x = np.sort(out[:, k])
        gaps = np.diff(np.append(x, x[0] + 1.0))
        j = int(np.argmax(gaps))
        if j != len(x) - 1:  # the vacuum is inside the box: move the low side up by one box
            out[:, k] = np.where(out[:, k] < x[j + 1], out[:, k] + 1.0, out[:, k])
    return out


def res_box(images: list[Atoms], path: Path) -> float:
    """Edge (Angstrom) of the cubic box the structures of one write share in ``.res``.

    Each cluster sits with its centroid at the centre, so the box holds any
    orientation of any of them with at least :data:`RES_VACUUM` between images:
    a rotated copy gets the same box. One box for all matters to cryan: it
    rescales distances by the volumes of the two structures it compares (AIRSS
    cluster searches use one fixed box), so different boxes keep duplicates apart.
    """
    radius = 0.0
    for atoms in images:
        _check_atoms(atoms, path)
        positions = np.asarray(atoms.positions, dtype=float)
        radius = max(radius, float(np.sqrt(((positions - positions.mean(axis=0)) ** 2).sum(axis=1)).max()))
    return math.ceil((2.0 * radius + RES_VACUUM) * 1e6) / 1e6  # as written (6 decimals), never smaller


def _res_block(atoms: Atoms, name: str, path: Path, box: float) -> str:
    """One AIRSS TITL..END block: the cluster's centroid at the centre of a cubic box of edge
    ``box`` (Angstrom; see :func:`res_box`).

    ASE's :class:`ase.io.res.Res` writes TITL (AIRSS's fields: name, pressure, volume,
    enthalpy, spin, |spin|, atoms, (symmetry), n - times found), CELL, LATT, SFAC, the atoms
    and END; what is ours is the box, the ``n/a`` enthalpy and the REM lines after TITL."""
    _check_atoms(atoms, path)
    # The box length as written, so fractions read back to ~1e-11 Angstrom.
    box = float(f"{box:.6f}")
    positions = np.asarray(atoms.positions, dtype=float)
    boxed = Atoms(atoms.numbers, positions=positions - positions.mean(axis=0) + box / 2, cell=[box, box, box], pbc=True)

    energy = energy_of(atoms)
    rem: dict = {k: v for k, v in atoms.info.items() if k not in _TITL_KEYS}
    enthalpy = NO_ENERGY
    if energy is not None and math.isfinite(energy):
        if str(atoms.info.get("status", "relaxed")) == "relaxed":
            enthalpy = repr(energy)
        else:
            rem["energy"] = energy  # not a minimum: kept, but not where cryan would rank it
    symmetry = str(atoms.info.get("symmetry") or "").strip()
    if symmetry and re.search(r"[\s()]", symmetry):
        rem["symmetry"] = symmetry  # cannot sit between TITL's parentheses
        symmetry = ""
    lines = []
    for key, value in rem.items():
        # cryan takes any line containing TITL for the start of a structure
        if isinstance(key, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", key) and "TITL" not in key:
            text = _encode_value(value)
            if "TITL" in text:  # only inside a string: the JSON escape reads back the same
                text = json.dumps(_plain(value)).replace("TITL", "\\u0054ITL")
            lines.append(f"REM {key}={text}\n")
    # ASE writes "(P1)" for no symmetry, AIRSS "(n/a)"
    res = Res(
        boxed,
        name=name,
        pressure=0.0,
        energy=enthalpy,
        spacegroup=symmetry or "n/a",
        times_found=int(atoms.info.get("times_found", 1) or 1),
    )
    titl, body = res.get_string(significant_figures=12).split("\n", 1)
    return f"{titl}\n{''.join(lines)}{body}\n"


def _encode_value(value: Any) -> str:
    """REM value text: a plain string as is when that is unambiguous, else JSON.

    Strings that would parse as JSON (``"123"``, ``"true"``), or that have
    surrounding whitespace, newlines or non-ASCII characters, are JSON-quoted so
    :func:`_decode_value` returns exactly the string.
    """
    value = _plain(value)
    if isinstance(value, str):
        if value and value == value.strip() and value.isascii() and value.isprintable() and not _parses_as_json(value):
            return value
        return json.dumps(value)
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return json.dumps(str(value))  # arbitrary objects: keep at least their text


def _decode_value(text: str) -> Any:
    """Inverse of :func:`_encode_value`."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parses_as_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------ shared bits


def _plain(value: Any) -> Any:
    """NumPy scalars/arrays (nested in dicts/lists too) -> plain Python values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _counts(atoms: Atoms) -> dict[str, int]:
    counts: dict[str, int] = {}
    for symbol in atoms.get_chemical_symbols():
        counts[symbol] = counts.get(symbol, 0) + 1
    return counts


def _as_list(images: Atoms | Iterable[Atoms], path: Path) -> list[Atoms]:
    items = [images] if isinstance(images, Atoms) else list(images)
    if not items:
        raise InputError(f"{path}: no structures to write")
    return items


def _check_atoms(atoms: object, path: Path) -> None:
    if not isinstance(atoms, Atoms):
        raise InputError(f"{path}: cannot write {type(atoms).__name__}, expected ase.Atoms")
    if len(atoms) == 0:
        raise InputError(f"{path}: cannot write a structure with no atoms")
    if not np.isfinite(atoms.positions).all():
        raise InputError(f"{path}: structure {structure_name(atoms)} has non-finite positions")


def _describe(exc: Exception) -> str:
    """One line for an exception from ASE's parser (KeyError('Qq') is an unknown element)."""
    if isinstance(exc, KeyError):
        return f"unknown element or column {exc.args[0]!r}" if exc.args else "missing key"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _atomic_write(path: Path, write: Callable[[TextIO], None]) -> None:
    """Run ``write`` on a temporary file next to ``path``, then rename it over ``path``.

    A crash or error leaves any earlier ``path`` intact and no temporary file.
    The temporary file is created with mode 0666 so the umask applies as for a
    normal file; an existing file keeps its permissions.
    """
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"{path}: cannot write: directory {directory} does not exist")
    if path.is_dir():
        raise InputError(f"{path}: cannot write: is a directory")
    tmp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
        raise
