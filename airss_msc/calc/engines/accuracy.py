"""How well each method's energies order cluster isomers like the DFT reference, as measured.

The numbers live in one packaged file, ``data/measured_errors.toml``, written by
``python -m benchmarks.energy_validation --write-errors`` from the committed reference set
(PBE/def2-SVP single points and every engine's single points on the same geometries); a test
fails when the file no longer matches what the committed runs give. Nothing here is typed by
hand: reports, reaction tables and mixing energies quote :func:`describe` of these records.

Per size class (4-8, 9-16, 26-27 atoms) a record holds the median Spearman rank correlation
over formulas, in how many formulas the reference's lowest isomer is ranked first, and the mean
absolute error of relative isomer energies (meV/atom); per method the share of
(anion-bonded, alternating) pairs whose energy difference has the reference's sign.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from airss_msc.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The packaged file (in ``airss_msc/data``).
MEASURED_ERRORS_FILE = "measured_errors.toml"


@dataclass(frozen=True)
class ClassAccuracy:
    """One method against the reference on one size class of clusters."""

    label: str  #: e.g. "9-16 atoms"
    min_atoms: int
    max_atoms: int
    formulas: int  #: formulas with enough reference energies to rank
    spearman_median: float  #: median over formulas
    lowest_first: int  #: formulas where the reference's lowest isomer is ranked first
    mae_meV_per_atom: float  #: mean over formulas of the mean |relative energy error|, meV/atom
    #: formulas whose reference-lowest isomer is among the method's k lowest, k = 1, 2, ...
    lowest_within_top: tuple[int, ...] = ()

    def depth(self) -> int | None:
        """The fewest lowest-by-this-method isomers that held the reference's lowest in every formula
        of the class (how many a refinement must recompute; None: not within the depths measured)."""
        return next((k for k, n in enumerate(self.lowest_within_top, 1) if n == self.formulas), None)

    def words(self) -> str:
        """This class's numbers in one clause (the order :meth:`Accuracy.describe` explains)."""
        return (
            f"{self.label} ({self.formulas} formula{'s' if self.formulas != 1 else ''}) "
            f"{self.spearman_median:.2f}, {self.lowest_first}/{self.formulas}, {self.mae_meV_per_atom:.1f} meV/atom"
        )


@dataclass(frozen=True)
class Accuracy:
    """One method's measured accuracy against the reference, by size class."""

    method: str  #: canonical method name, e.g. ``sevennet:7net-0``
    label: str  #: its short name in words
    reference: str  #: e.g. "PBE/def2-SVP"
    geometries: str  #: the geometries both were computed on, e.g. "CHGNet 0.3.0"
    classes: tuple[ClassAccuracy, ...]
    anion_sign: tuple[int, int] | None = None  #: (pairs with the reference's sign, pairs)
    measured_as: str | None = None  #: the method actually measured, when this one shares its model

    def at(self, natoms: int) -> ClassAccuracy | None:
        """The size class holding ``natoms`` atoms (None: no class measured there)."""
        return next((c for c in self.classes if c.min_atoms <= natoms <= c.max_atoms), None)

    def _subject(self) -> str:
        return f"{self.label} single points on {self.geometries} geometries against {self.reference}" + (
            f" (measured as {self.measured_as}, the same model)" if self.measured_as else ""
        )

    def describe(self) -> str:
        """The whole record in words, the way reports state a number's error."""
        text = (
            self._subject()
            + f", by size class (median Spearman over formulas, {self.reference}'s lowest ranked first, mean "
            "absolute error of relative isomer energies): "
            + ("; ".join(c.words() for c in self.classes) or "no size class measured")
        )
        if self.anion_sign is not None:
            right, pairs = self.anion_sign
            text += f"; the anion-anion bond energy has the reference's sign in {right}/{pairs} pairs"
        return text + " (BENCHMARKS.md)"

    def describe_at(self, natoms: int) -> str:
        """The size class holding ``natoms`` in words (the whole record when none was measured there)."""
        c = self.at(natoms)
        if c is None:
            return self.describe()
        depth = c.depth()
        return (
            self._subject() + f" at {c.label} ({c.formulas} formula{'s' if c.formulas != 1 else ''}): median Spearman "
            f"{c.spearman_median:.2f}, {self.reference}'s lowest ranked first in {c.lowest_first}/{c.formulas}, "
            f"mean absolute error of relative isomer energies {c.mae_meV_per_atom:.1f} meV/atom"
            + (
                f", {self.reference}'s lowest among its {depth} lowest in every formula"
                if depth not in (None, 1)
                else ""
            )
            + " (BENCHMARKS.md)"
        )


def _field(table: dict, key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (
        not isinstance(value, kind)
        or isinstance(value, bool)
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise InputError(f"{where}: '{key}' must be a {kind.__name__}, not {value!r}")
    return value


def _count(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InputError(f"{where}: 'lowest_within_top' must hold counts, not {value!r}")
    return value


def parse_accuracies(doc: dict, where: str = MEASURED_ERRORS_FILE) -> dict[str, Accuracy]:
    """The records of a parsed ``measured_errors.toml``, by canonical method name (a method listed
    under another's ``same_model`` gets that record, ``measured_as`` set). Raises InputError."""
    reference = _field(doc, "reference_label", str, where)
    geometries = _field(doc, "geometries", str, where)
    out: dict[str, Accuracy] = {}
    for i, entry in enumerate(doc.get("method", [])):
        at = f"{where}: method {i + 1}"
        classes = tuple(
            ClassAccuracy(
                _field(c, "label", str, at),
                _field(c, "min_atoms", int, at),
                _field(c, "max_atoms", int, at),
                _field(c, "formulas", int, at),
                _field(c, "spearman_median", float, at),
                _field(c, "lowest_first", int, at),
                _field(c, "mae_meV_per_atom", float, at),
                tuple(_count(n, at) for n in c.get("lowest_within_top", [])),
            )
            for c in entry.get("size_class", [])
        )
        sign = None
        if "anion_sign_pairs" in entry:
            sign = (_field(entry, "anion_sign_same", int, at), _field(entry, "anion_sign_pairs", int, at))
        method = _field(entry, "method", str, at)
        record = Accuracy(method, _field(entry, "label", str, at), reference, geometries, classes, sign)
        out[method] = record
        for twin in entry.get("same_model", []):
            out[twin] = Accuracy(twin, record.label, reference, geometries, classes, sign, measured_as=method)
    return out


@cache
def packaged_accuracies() -> dict[str, Accuracy]:
    """The packaged records (read once)."""
    where = f"packaged {MEASURED_ERRORS_FILE}"
    try:
        text = resources.files("airss_msc").joinpath("data").joinpath(MEASURED_ERRORS_FILE).read_text("utf-8")
        doc = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{where}: cannot read ({exc.__class__.__name__}); reinstall airss-msc") from None
    return parse_accuracies(doc, where)


def accuracy(method: str) -> Accuracy | None:
    """The measured record of canonical ``method`` (None: not measured, e.g. the reference itself)."""
    return packaged_accuracies().get(method)
