"""Substitution into a parent cluster: the seed paper's pathway (pure functions).

CdTeSe MSC-399 is thought to form by substitution (CdSe parent + CdTe
fragments and vice versa), and Zn_xCd_(13-x)Se_13 by Cd-for-Zn cation exchange
of (ZnSe)13. ``--template parent.xyz --substitute Se:Te=2`` replaces exactly 2
Se by Te in every symmetry-distinct way; ``Cd:Zn=0.3`` replaces 30 % (rounded)
of the Cd. The parent's point-group operations, found by pymatgen, permute
its atoms; two arrangements related by such a permutation are the same
structure, so only one of each orbit is kept, with the orbit size as its
multiplicity (its weight in configurational statistics). When the number of
arrangements is too large to enumerate, random ones are drawn from the seed
and deduplicated the same way; the result says which was done.

Entry points: :func:`parse_substitution` (the ``OLD:NEW=N`` text form) and
:func:`substituted_structures` (the structures, as a
:class:`SubstitutedStructures`); :func:`arrangements` and
:func:`atom_permutations` are the symmetry machinery underneath.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from airss_msc.composition import canonical_formula
from airss_msc.errors import InputError
from airss_msc.generation.geometry import point_group_analyzer

ENUMERATION_LIMIT = 200_000
"""Enumerate every arrangement up to this many combinations; sample beyond."""

_SPEC = re.compile(r"^\s*([A-Z][a-z]?)\s*:\s*([A-Z][a-z]?)\s*=\s*([0-9.]+)\s*$")


@dataclass(frozen=True)
class Substitution:
    """Replace ``count`` (or ``fraction``) of the ``old`` atoms by ``new``."""

    old: str
    new: str
    count: int | None = None
    fraction: float | None = None

    def resolve(self, available: int) -> int:
        """Number of atoms to replace when the parent has ``available`` ``old`` atoms."""
        if self.count is not None:
            n = self.count
        elif self.fraction is not None:
            n = round(self.fraction * available)
        else:
            raise InputError(f"substitution {self.old}:{self.new} gives neither a count nor a fraction")
        if n > available:
            raise InputError(f"cannot replace {n} {self.old} by {self.new}: the template has {available} {self.old}")
        return n

    def __str__(self) -> str:
        return f"{self.old}:{self.new}={self.count if self.count is not None else self.fraction}"


def parse_substitution(text: str) -> Substitution:
    """``Se:Te=2`` (exactly two) or ``Cd:Zn=0.3`` (a fraction, 0 < f <= 1)."""
    from ase.data import atomic_numbers

    m = _SPEC.match(text)
    if not m:
        raise InputError(f"malformed substitution {text!r}: expected OLD:NEW=N or OLD:NEW=FRACTION, e.g. Se:Te=2")
    old, new, value = m.groups()
    for el in (old, new):
        if el not in atomic_numbers:
            raise InputError(f"unknown element {el!r} in substitution {text!r}")
    if old == new:
        raise InputError(f"substitution {text!r} replaces an element by itself")
    if re.fullmatch(r"\d+", value):
        return Substitution(old, new, count=int(value))
    try:
        fraction = float(value)
    except ValueError:
        raise InputError(f"malformed substitution {text!r}: {value!r} is not a number") from None
    if not 0 < fraction <= 1:
        raise InputError(f"substitution fraction in {text!r} must be in (0, 1]")
    return Substitution(old, new, fraction=fraction)


def atom_permutations(atoms: Atoms, tolerance: float = 0.3) -> np.ndarray:
    """Atom permutations induced by the cluster's point-group operations.

    Row g maps atom i to atom perm[g, i]. Operations come from pymatgen's
    PointGroupAnalyzer (``tolerance`` in Angstrom); an operation that does not
    map every atom onto an atom of the same element within 2 x tolerance is
    dropped, so the result is always a set of valid symmetries (at least the
    identity).
    """
    symbols = atoms.get_chemical_symbols()
    pos = atoms.positions - atoms.positions.mean(axis=0)
    identity = np.arange(len(atoms))
    if len(atoms) < 2:
        return identity[None, :]
    analyzer = point_group_analyzer(symbols, pos, tolerance)
    if analyzer is None:
        return identity[None, :]
    try:
        centred = analyzer.centered_mol.cart_coords
        ops = analyzer.get_symmetry_operations()
    except Exception:  # pymatgen gives up on some degenerate geometries: no symmetry then
        return identity[None, :]
    species = np.array(symbols)
    perms = {tuple(identity)}
    for op in ops:
        moved = op.operate_multi(centred)
        d = np.linalg.norm(moved[:, None, :] - centred[None, :, :], axis=-1)
        d[species[:, None] != species[None, :]] = np.inf
        perm = d.argmin(axis=1)
        if d[identity, perm].max() <= 2 * tolerance and len(set(perm.tolist())) == len(perm):
            perms.add(tuple(perm.tolist()))
    return np.array(sorted(perms))


def _canonical(subset: tuple[int, ...], perms: np.ndarray) -> tuple[int, ...]:
    images = np.sort(perms[:, list(subset)], axis=1)
    return tuple(min(map(tuple, images.tolist())))


@dataclass
class Arrangement:
    """One symmetry-distinct substitution pattern of a parent."""

    sites: tuple[int, ...]
    multiplicity: int


def arrangements(
    atoms: Atoms,
    substitution: Substitution,
    rng: np.random.Generator | None = None,
    max_count: int | None = None,
    tolerance: float = 0.3,
) -> tuple[list[Arrangement], str]:
    """Symmetry-distinct ways to apply ``substitution`` to ``atoms``.

    Returns the arrangements (canonical lowest site tuples, in lexicographic
    order when enumerated, in draw order when sampled) and ``"enumerated"`` or
    ``"sampled"``. Sampling (when the combinations exceed
    :data:`ENUMERATION_LIMIT`) draws uniformly from ``rng`` until ``max_count``
    distinct arrangements (default 100) are found or draws run out.
    """
    symbols = atoms.get_chemical_symbols()
    candidates = [i for i, s in enumerate(symbols) if s == substitution.old]
    if not candidates:
        raise InputError(f"the template has no {substitution.old} to replace")
    k = substitution.resolve(len(candidates))
    perms = atom_permutations(atoms, tolerance)
    total = math.comb(len(candidates), k)
    if total <= ENUMERATION_LIMIT:
        orbits: dict[tuple[int, ...], int] = {}
        for subset in itertools.combinations(candidates, k):
            key = _canonical(subset, perms)
            orbits[key] = orbits.get(key, 0) + 1
        found = [Arrangement(key, n) for key, n in sorted(orbits.items())]
        if max_count and len(found) > max_count:
            return found[:max_count], f"enumerated (first {max_count} of {len(found)})"
        return found, "enumerated"
    rng = rng or np.random.default_rng(0)
    want = max_count or 100
    seen: dict[tuple[int, ...], Arrangement] = {}
    for _ in range(50 * want):
        subset = tuple(sorted(rng.choice(candidates, size=k, replace=False).tolist()))
        key = _canonical(subset, perms)
        if key not in seen:
            # The orbit size is the number of distinct images under the group.
            images = {tuple(sorted(p[list(key)].tolist())) for p in perms}
            seen[key] = Arrangement(key, len(images))
            if len(seen) >= want:
                break
    return list(seen.values()), "sampled"


@dataclass(frozen=True)
class SubstitutedStructures:
    """What :func:`substituted_structures` returns: the structures and how they were found.

    ``structures``: the symmetry-distinct substituted clusters (:class:`ase.Atoms`,
    the parent's positions in Angstrom), each with ``info`` holding ``formula``,
    ``template``, ``substitution``, ``sites`` (0-based indices replaced, space
    separated), ``multiplicity`` (orbit size: the weight in configurational
    statistics), ``mode``, ``seed`` and ``generator``.

    ``mode``: ``"enumerated"`` (every arrangement was enumerated; with
    ``max_count`` possibly ``"enumerated (first N of M)"``) or ``"sampled"``
    (too many to enumerate: random draws from the seed, deduplicated).

    Not a tuple on purpose: ``images, mode = substituted_structures(...)``
    raises rather than silently unpacking; use ``.structures`` and ``.mode``.
    ``len()`` is the number of structures.
    """

    structures: list[Atoms]
    mode: str

    @property
    def enumerated(self) -> bool:
        """True when every arrangement was enumerated (not sampled)."""
        return self.mode.startswith("enumerated")

    def __len__(self) -> int:
        return len(self.structures)


def substituted_structures(
    template: Atoms,
    substitutions: list[Substitution],
    seed: int = 0,
    max_count: int | None = None,
    tolerance: float = 0.3,
) -> SubstitutedStructures:
    """Apply one or more substitutions (in order) to ``template``.

    With several substitutions the arrangements of each are combined with the
    distinct arrangements of the next on every intermediate structure (the
    symmetry of each intermediate is recomputed). ``seed`` drives the sampling
    when there are too many arrangements to enumerate; ``max_count`` caps the
    number returned; ``tolerance`` (Angstrom) is the symmetry tolerance.
    Returns a :class:`SubstitutedStructures`: ``.structures`` (each with its
    ``info``: ``formula``, ``sites``, ``multiplicity``, ...) and ``.mode``
    (``enumerated`` or ``sampled``). Raises :class:`~airss_msc.errors.InputError`
    for a substitution the template cannot take.
    """
    if not substitutions:
        raise InputError("no substitution given (e.g. --substitute Se:Te=2)")
    rng = np.random.default_rng(seed)
    # (structure, the sites substituted so far, multiplicity)
    stage: list[tuple[Atoms, tuple[int, ...], int]] = [(template.copy(), (), 1)]
    mode = "enumerated"
    for sub in substitutions:
        nxt: list[tuple[Atoms, tuple[int, ...], int]] = []
        for atoms, sites, mult in stage:
            found, how = arrangements(atoms, sub, rng, max_count, tolerance)
            mode = how if how != "enumerated" else mode
            for arr in found:
                new = atoms.copy()
                syms = new.get_chemical_symbols()
                for i in arr.sites:
                    syms[i] = sub.new
                new.set_chemical_symbols(syms)
                nxt.append((new, sites + arr.sites, mult * arr.multiplicity))
        stage = nxt
    if max_count:
        stage = stage[:max_count]
    out = []
    name = str(template.info.get("name") or template.info.get("formula") or template.get_chemical_formula())
    for atoms, sites, mult in stage:
        atoms.info = {
            "formula": canonical_formula(atoms.get_chemical_formula()),
            "template": name,
            "substitution": " ".join(str(s) for s in substitutions),
            "sites": " ".join(str(i) for i in sites),
            "multiplicity": int(mult),
            "mode": mode,
            "seed": int(seed),
            "generator": "substitution",
        }
        out.append(atoms)
    return SubstitutedStructures(out, mode)
