"""Search moves: each one small class that makes a new start from its parents (in the spirit of ASE-GA).

A move takes the relaxed parents it needs (``parents`` of them: 0 for fresh
starts, 1 for a shake, twist, relocation, swap or permutation, 2 for
cut-and-splice) and a random stream, and returns the new start as
:class:`ase.Atoms` with its lineage in ``info``. A move that cannot make
anything new for a composition says so in :meth:`Move.applies` (a swap needs
two elements on one sublattice), and the strategy leaves it out there.
The search loop knows none of their names: it asks :data:`MOVES` by the name
the config gives. Adding a move is one class here plus one line in
:data:`MOVES`; its settings are its dataclass fields (config table
``[strategy.<name>]``). Lengths in Angstrom (sigma for Lennard-Jones).

Every derived start has overlaps pushed apart to the composition's drawn
minimum separations, so moves cannot hand the relaxation a collapsed start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

import numpy as np
from ase import Atoms

from airss_msc.composition import ANIONS, CATIONS, parse_formula, symbols_of
from airss_msc.errors import InputError
from airss_msc.generation import symmetry
from airss_msc.generation.confinement import Sphere
from airss_msc.generation.generate import GeneratorSettings, generate_cluster, prepare, push_apart
from airss_msc.generation.geometry import distances, radii_sums
from airss_msc.generation.separations import format_minsep, minsep_matrix


@dataclass(frozen=True)
class Parent:
    """A relaxed structure that moves start from (database row, energy eV, positions Angstrom).

    ``energy`` is the energy the search steers by (the ranking energy: a single point of the
    validated method on this geometry); ``geometry_energy`` the relaxing engine's own energy,
    which is stationary at the minimum and so tells copies of one minimum apart from
    neighbours (None: the same as ``energy``).
    """

    row: int
    energy: float
    symbols: tuple[str, ...]
    positions: np.ndarray
    geometry_energy: float | None = None

    @property
    def window_energy(self) -> float:
        """The energy duplicate tests compare (the relaxing engine's, where known)."""
        return self.energy if self.geometry_energy is None else self.geometry_energy


@dataclass(frozen=True)
class Move:
    """Base of every move: ``name``, how many ``parents`` it takes, and :meth:`new_candidate`."""

    name: ClassVar[str]
    parents: ClassVar[int]

    def new_candidate(self, formula: str, seed: int, parents: Sequence[Parent], generate: GeneratorSettings) -> Atoms:
        """A new start of ``formula`` from ``parents``, reproducible from ``seed``."""
        raise NotImplementedError

    def validate(self) -> Move:
        return self

    def applies(self, symbols: Sequence[str]) -> bool:
        """Whether this move can make a new start for a cluster of these elements."""
        return True

    @classmethod
    def settings_keys(cls) -> dict[str, type | str]:
        """Setting name -> its annotation (a string: annotations are postponed in this module)."""
        return {f.name: f.type for f in fields(cls)}


def relieve_overlaps(
    formula: str, symbols: Sequence[str], positions: np.ndarray, rng: np.random.Generator, generate: GeneratorSettings
) -> tuple[np.ndarray, str]:
    """Push atoms apart to the composition's minimum separations (drawn from ``rng``).

    No confinement beyond a generous sphere: the parents already have their shape.
    Returns the positions (centred) and the drawn separations as text.
    """
    _, rules, _ = prepare(formula, generate)
    drawn = rules.draw(rng)
    pos = np.asarray(positions, dtype=float) - np.asarray(positions, dtype=float).mean(axis=0)
    free = Sphere(float(np.linalg.norm(pos, axis=1).max()) + 10.0)
    pos, _ = push_apart(pos, minsep_matrix(list(symbols), drawn), free, rng, generate.push_iterations)
    return pos, format_minsep(drawn)


def _derived(formula: str, seed: int, symbols, positions, rng, generate, move: str, parents: Sequence[Parent]) -> Atoms:
    pos, minsep = relieve_overlaps(formula, symbols, positions, rng, generate)
    atoms = Atoms(list(symbols), positions=pos)
    atoms.info.update(
        seed=int(seed),
        formula=formula,
        minsep=minsep,
        move=move,
        parent=parents[0].row,
        parent_energy=float(parents[0].energy),
        generator=f"{move.split()[0]} move",
    )
    if len(parents) > 1:
        atoms.info["parent2"] = parents[1].row
    return atoms


def shake_positions(positions: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Displace every atom uniformly within a ball of radius ``amplitude``."""
    v = rng.normal(size=positions.shape)
    v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-12
    r = amplitude * rng.random(len(positions)) ** (1.0 / 3.0)
    return positions + v * r[:, None]


@dataclass(frozen=True)
class RandomStart(Move):
    """A fresh random structure (AIRSS buildcell): no parents."""

    name: ClassVar[str] = "random"
    parents: ClassVar[int] = 0

    def new_candidate(self, formula, seed, parents, generate):
        atoms = generate_cluster(formula, seed, generate)
        atoms.info["move"] = "random"
        return atoms


@dataclass(frozen=True)
class SymmetricStart(Move):
    """A fresh random structure with a random feasible point group (``group`` to fix one).

    ``order_power`` weights the random group: probability proportional to the group's order
    ** ``order_power`` among the groups that can build the composition (0: uniform, as
    ``[generate] symmetry = "random"``). High-order groups (Oh, Td, D5h, ...) put most atoms on
    a few large orbits, the way AIRSS's symmetric starts find compact, magic-number minima.
    """

    name: ClassVar[str] = "symmetric"
    parents: ClassVar[int] = 0
    group: str = "random"
    order_power: float = 0.0

    #: weighted draws tried before falling back to the uniform draw (a group feasible at the
    #: low-end separations can still be too crowded for the separations one seed draws)
    TRIES: ClassVar[int] = 8

    def validate(self):
        if not isinstance(self.order_power, (int, float)) or not self.order_power >= 0:
            raise InputError(f"symmetric: order_power must be >= 0, got {self.order_power!r}")
        if self.order_power and str(self.group).strip().lower() != "random":
            raise InputError(f"symmetric: order_power weights random groups only, not group = {self.group!r}")
        if str(self.group).strip().lower() != "random":
            symmetry.canonical_group(self.group)  # an unknown name fails at config time
        return self

    def new_candidate(self, formula, seed, parents, generate):
        if self.order_power and str(self.group).strip().lower() == "random":
            counts, _, confinement = prepare(formula, replace(generate, symmetry=None))
            # its own stream: the structure itself is still drawn from ``seed`` as any start
            rng = np.random.default_rng([int(seed), 1])
            for _ in range(self.TRIES):
                group = symmetry.choose_group(
                    counts, "random", rng, confinement=confinement, order_power=float(self.order_power)
                )
                try:
                    atoms = generate_cluster(formula, seed, replace(generate, symmetry=group))
                except InputError:
                    continue
                break
            else:
                atoms = generate_cluster(formula, seed, replace(generate, symmetry="random"))
        else:
            atoms = generate_cluster(formula, seed, replace(generate, symmetry=self.group))
        atoms.info["move"] = f"symmetric {atoms.info.get('symmetry', self.group)}"
        return atoms


@lru_cache(maxsize=32)
def _template(path: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Symbols and positions (Angstrom, centred) of a template structure file."""
    from ase.io import read

    try:
        atoms = cast(Atoms, read(path))  # no index: the last frame, one Atoms
    except FileNotFoundError:
        raise InputError(f"frame template {path} not found") from None
    except Exception as exc:
        raise InputError(f"cannot read frame template {path}: {exc}") from None
    pos = atoms.positions - atoms.positions.mean(axis=0)
    pos.setflags(write=False)
    return tuple(atoms.get_chemical_symbols()), pos


def _sublattices(symbols: Sequence[str]) -> tuple[int, int, int]:
    """How many cations, anions and other atoms."""
    cations = sum(s in CATIONS for s in symbols)
    anions = sum(s in ANIONS for s in symbols)
    return cations, anions, len(symbols) - cations - anions


@dataclass(frozen=True)
class FrameStart(Move):
    """A fresh start on the sites of a parent cluster: the formula's cations dealt at random over
    the template's cation sites and its anions over the anion sites (a homotop of the frame, as
    substitution or cation exchange would leave it), shaken by ``amplitude``. ``templates`` are
    structure files (one is drawn per start from those whose sublattices fit the formula)."""

    name: ClassVar[str] = "frame"
    parents: ClassVar[int] = 0
    templates: tuple[str, ...] = ()
    amplitude: float = 0.1

    def validate(self):
        if not self.templates:
            raise InputError('frame: give templates = ["parent.xyz", ...]')
        if isinstance(self.templates, str):
            raise InputError("frame: templates must be a list of files")
        if self.amplitude < 0:
            raise InputError(f"frame amplitude must be >= 0, got {self.amplitude!r}")
        for path in self.templates:
            _template(str(path))
        return replace(self, templates=tuple(str(p) for p in self.templates))  # TOML gives a list

    def fitting(self, symbols: Sequence[str]) -> list[str]:
        """The templates whose cation, anion and other site counts are the formula's."""
        want = _sublattices(symbols)
        return [str(p) for p in self.templates if _sublattices(_template(str(p))[0]) == want]

    def applies(self, symbols):
        return bool(self.fitting(symbols))

    def new_candidate(self, formula, seed, parents, generate):
        rng = np.random.default_rng(seed)
        wanted = symbols_of(parse_formula(formula))
        choices = self.fitting(wanted)
        if not choices:
            raise InputError(f"frame: no template has the sublattices of {formula}")
        path = choices[int(rng.integers(len(choices)))]
        sites, pos = _template(path)
        symbols = list(sites)
        for lattice in (CATIONS, ANIONS, None):

            def on(s, lattice=lattice):
                return s in lattice if lattice is not None else s not in CATIONS and s not in ANIONS

            where = [i for i, s in enumerate(sites) if on(s)]
            mine = [s for s in wanted if on(s)]
            for i, s in zip(where, rng.permutation(mine), strict=True):
                symbols[i] = str(s)
        new, minsep = relieve_overlaps(
            formula, symbols, shake_positions(np.array(pos), self.amplitude, rng), rng, generate
        )
        atoms = Atoms(symbols, positions=new)
        atoms.info.update(
            seed=int(seed),
            formula=formula,
            minsep=minsep,
            move=f"frame {Path(path).name}",
            generator="frame move",
            template=Path(path).name,
        )
        return atoms


@dataclass(frozen=True)
class Shake(Move):
    """Relax-and-shake (AIRSS ``-amp``): every atom of the parent displaced by up to ``amplitude``."""

    name: ClassVar[str] = "shake"
    parents: ClassVar[int] = 1
    amplitude: float = 0.6

    def validate(self):
        if not self.amplitude > 0:
            raise InputError(f"shake amplitude must be positive, got {self.amplitude!r}")
        return self

    def new_candidate(self, formula, seed, parents, generate):
        rng = np.random.default_rng(seed)
        pos = shake_positions(parents[0].positions, self.amplitude, rng)
        return _derived(formula, seed, parents[0].symbols, pos, rng, generate, f"shake amp={self.amplitude:g}", parents)


def mixed_sublattice(symbols: Sequence[str]) -> list[str] | None:
    """Elements of the sublattice (cations or anions) that holds more than one element."""
    present = set(symbols)
    for lattice in (CATIONS, ANIONS):
        mine = sorted(present & lattice)
        if len(mine) >= 2:
            return mine
    others = sorted(present - CATIONS - ANIONS)
    return others if len(others) >= 2 else None


@dataclass(frozen=True)
class HomotopMove(Move):
    """A move that rearranges the elements of the mixed sublattice (Zn/Cd or Te/Se) of one
    parent; a parent without a mixed sublattice is shaken instead. Subclasses give
    ``amplitude`` and :meth:`rearrange`."""

    parents: ClassVar[int] = 1
    if TYPE_CHECKING:  # each subclass's own field (a declaration here, not a dataclass field)
        amplitude: float

    def applies(self, symbols):
        return mixed_sublattice(symbols) is not None

    def rearrange(
        self, symbols: list[str], lattice: list[str], positions: np.ndarray, rng: np.random.Generator
    ) -> tuple[str, np.ndarray]:
        """Change ``symbols`` in place; return the move's label and the new positions (Angstrom)."""
        raise NotImplementedError

    def new_candidate(self, formula, seed, parents, generate):
        rng = np.random.default_rng(seed)
        symbols = list(parents[0].symbols)
        lattice = mixed_sublattice(symbols)
        if lattice is None:
            pos = shake_positions(parents[0].positions, max(self.amplitude, 0.3), rng)
            return _derived(formula, seed, symbols, pos, rng, generate, f"shake (nothing to {self.name})", parents)
        label, pos = self.rearrange(symbols, lattice, parents[0].positions, rng)
        return _derived(formula, seed, symbols, pos, rng, generate, label, parents)


@dataclass(frozen=True)
class Swap(HomotopMove):
    """Homotop move for alloys: exchange ``swaps`` pairs of unlike atoms on the mixed sublattice
    (Zn/Cd or Te/Se), plus a small shake (``amplitude``) that lets the swap relax.
    A parent with no mixed sublattice is shaken instead."""

    name: ClassVar[str] = "swap"
    swaps: int = 1
    amplitude: float = 0.15

    def validate(self):
        if self.swaps < 1 or not self.amplitude >= 0:
            raise InputError("swap: swaps must be >= 1 and amplitude >= 0")
        return self

    def rearrange(self, symbols, lattice, positions, rng):
        done = []
        for _ in range(self.swaps):
            a, b = rng.choice(lattice, size=2, replace=False)
            i = int(rng.choice([k for k, s in enumerate(symbols) if s == a]))
            j = int(rng.choice([k for k, s in enumerate(symbols) if s == b]))
            symbols[i], symbols[j] = symbols[j], symbols[i]
            done.append(f"{i}<->{j}")
        return "swap " + " ".join(done), shake_positions(positions, self.amplitude, rng)


@dataclass(frozen=True)
class CutAndSplice(Move):
    """Deaven-Ho cut-and-splice: a random plane through both parents' centres; the new
    start takes the atoms above it from the first parent and below it from the second,
    element by element, so the composition is exact. ``amplitude`` adds a small shake."""

    name: ClassVar[str] = "cut_splice"
    parents: ClassVar[int] = 2
    amplitude: float = 0.1

    def new_candidate(self, formula, seed, parents, generate):
        rng = np.random.default_rng(seed)
        a, b = parents[0], parents[1]
        normal = rng.normal(size=3)
        normal /= np.linalg.norm(normal)
        # Random orientations of the parents relative to each other: a plane alone
        # would always splice the same halves of two aligned minima.
        rot = _random_rotation(rng)
        pa = np.asarray(a.positions) - np.asarray(a.positions).mean(axis=0)
        pb = (np.asarray(b.positions) - np.asarray(b.positions).mean(axis=0)) @ rot.T
        sa, sb = np.array(a.symbols), np.array(b.symbols)
        ha, hb = pa @ normal, pb @ normal
        # How many of each element come from A: those above the plane in A.
        symbols, positions = [], []
        for element in sorted(set(a.symbols)):
            ia = np.nonzero(sa == element)[0]
            ib = np.nonzero(sb == element)[0]
            if len(ia) != len(ib):
                raise InputError(
                    f"cut-and-splice needs parents of one composition, got {element} {len(ia)} and {len(ib)}"
                )
            take_a = int((ha[ia] > 0).sum())
            above_a = ia[np.argsort(-ha[ia])][:take_a]
            below_b = ib[np.argsort(hb[ib])][: len(ib) - take_a]
            symbols += [element] * len(ia)
            positions += [pa[above_a], pb[below_b]]
        pos = shake_positions(np.vstack(positions), self.amplitude, rng) if self.amplitude > 0 else np.vstack(positions)
        return _derived(formula, seed, symbols, pos, rng, generate, "cut_splice", parents)


@dataclass(frozen=True)
class Permute(HomotopMove):
    """Random homotop: the elements of the mixed sublattice (Zn/Cd or Te/Se) dealt out
    afresh over its sites, the frame kept, plus a small shake (``amplitude``). Where a
    swap takes one step between homotops, this jumps to any of them."""

    name: ClassVar[str] = "permute"
    amplitude: float = 0.1

    def validate(self):
        if not self.amplitude >= 0:
            raise InputError("permute: amplitude must be >= 0")
        return self

    def rearrange(self, symbols, lattice, positions, rng):
        sites = [k for k, s in enumerate(symbols) if s in lattice]
        dealt = [symbols[k] for k in sites]
        rng.shuffle(dealt)
        for k, s in zip(sites, dealt, strict=True):
            symbols[k] = s
        pos = (
            shake_positions(positions, self.amplitude, rng)
            if self.amplitude > 0
            else np.asarray(positions, dtype=float)
        )
        return "permute", pos


@dataclass(frozen=True)
class Twist(Move):
    """Deaven-Ho twist: the atoms on one side of a random plane through the centre turn
    by a random angle (uniform in ``min_angle``..360 - ``min_angle`` degrees) about the
    plane's normal; ``amplitude`` adds a small shake."""

    name: ClassVar[str] = "twist"
    parents: ClassVar[int] = 1
    min_angle: float = 30.0
    amplitude: float = 0.05

    def validate(self):
        if not 0 <= self.min_angle < 180 or not self.amplitude >= 0:
            raise InputError("twist: min_angle must be in [0, 180) degrees and amplitude >= 0")
        return self

    def new_candidate(self, formula, seed, parents, generate):
        rng = np.random.default_rng(seed)
        pos = np.asarray(parents[0].positions, dtype=float)
        pos = pos - pos.mean(axis=0)
        normal = rng.normal(size=3)
        normal /= np.linalg.norm(normal)
        angle = np.radians(rng.uniform(self.min_angle, 360.0 - self.min_angle))
        upper = pos @ normal > 0
        pos = pos.copy()
        pos[upper] = pos[upper] @ rotation_about(normal, angle).T
        if self.amplitude > 0:
            pos = shake_positions(pos, self.amplitude, rng)
        return _derived(
            formula, seed, parents[0].symbols, pos, rng, generate, f"twist {np.degrees(angle):.0f} deg", parents
        )


@dataclass(frozen=True)
class Relocate(Move):
    """Surface move: the ``count`` least-coordinated atoms (ties broken at random) leave
    their sites and each lands beside a random surface atom (a counter-ion where the
    cluster has two sublattices), on the outward side, at the parent's typical bond
    length. Keeps the core, reshapes the surface (the angular moves of Doye and Wales)."""

    name: ClassVar[str] = "relocate"
    parents: ClassVar[int] = 1
    count: int = 1

    def validate(self):
        if self.count < 1:
            raise InputError("relocate: count must be >= 1")
        return self

    def new_candidate(self, formula, seed, parents, generate):
        rng = np.random.default_rng(seed)
        symbols = list(parents[0].symbols)
        pos = np.asarray(parents[0].positions, dtype=float)
        pos = pos - pos.mean(axis=0)
        n = len(pos)
        count = min(self.count, max(n - 2, 1))
        d = distances(pos)
        np.fill_diagonal(d, np.inf)
        coordination = (d < 1.35 * radii_sums(symbols)).sum(axis=1)
        # least coordinated first, random among equals
        order = np.lexsort((rng.random(n), coordination))
        movers = [int(i) for i in order[:count]]
        bond = float(np.median(d.min(axis=1)))
        stay = np.array([k for k in range(n) if k not in movers])
        radial = np.linalg.norm(pos[stay], axis=1)
        surface = stay[radial >= np.median(radial)]
        new = pos.copy()
        for i in movers:
            hosts = [int(j) for j in surface if _counter_ion(symbols[i], symbols[j])] or [int(j) for j in surface]
            j = hosts[int(rng.integers(len(hosts)))]
            out = pos[j] / (np.linalg.norm(pos[j]) + 1e-12)
            for _ in range(100):  # a random direction on the outward hemisphere of the host
                u = rng.normal(size=3)
                u /= np.linalg.norm(u)
                if u @ out > 0.3:
                    break
            new[i] = pos[j] + bond * u
        return _derived(
            formula, seed, symbols, new, rng, generate, "relocate " + ",".join(str(i) for i in movers), parents
        )


def _counter_ion(a: str, b: str) -> bool:
    """Whether ``b`` is on the other sublattice from ``a`` (cation next to anion)."""
    return (a in CATIONS and b in ANIONS) or (a in ANIONS and b in CATIONS)


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix by ``angle`` (radians) about the unit vector ``axis`` (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


#: Every move, by config name.
MOVES: dict[str, type[Move]] = {
    cls.name: cls
    for cls in (RandomStart, SymmetricStart, FrameStart, Shake, Swap, CutAndSplice, Permute, Twist, Relocate)
}


def make_move(name: str, **settings) -> Move:
    """The move called ``name`` with its settings; unknown names or keys are an :class:`InputError`."""
    cls = MOVES.get(name)
    if cls is None:
        raise InputError(f"unknown move {name!r}: choose {', '.join(MOVES)}")
    known = cls.settings_keys()
    bad = set(settings) - set(known)
    if bad:
        raise InputError(
            f"unknown setting(s) {', '.join(sorted(bad))} for move {name!r}; it takes {', '.join(known) or 'none'}"
        )
    try:
        return cls(**settings).validate()
    except TypeError as exc:
        raise InputError(f"move {name!r}: {exc}") from None
