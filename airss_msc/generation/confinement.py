"""Confinement volumes for random clusters: sphere, ellipsoid, shell (Angstrom).

Each shape draws points uniformly in its volume, projects stray points back in,
and tells whether points are inside. Shapes are frozen dataclasses so they can
be stored, compared and pickled to MPI workers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from airss_msc.composition import symbols_of
from airss_msc.errors import InputError

#: Bulk CdSe volume per atom is about 1.52 b^3 (b = bond length); random starts
#: are drawn in a looser volume so relaxation has room to find the shape.
VOLUME_PER_ATOM_IN_BOND3 = 1.52
LOOSENESS = 1.35
#: Close-packed particles (the Lennard-Jones dummy X): fcc has b^3/sqrt(2) per
#: atom. Starts this dense relax to the LJ13 icosahedron about twice as often as
#: the open II-VI density (38 % vs 20 % of random starts, benchmarks/search_efficiency.py).
CLOSE_PACKED_VOLUME_IN_BOND3 = 0.70

_EPS = 1e-9


def _norms(pos: np.ndarray, keepdims: bool = False) -> np.ndarray:
    """Row norms, exactly as ``np.linalg.norm(pos, axis=1)`` computes them (without
    its argument handling, which costs more than the arithmetic for a cluster)."""
    squares = pos * pos
    return np.sqrt(np.add.reduce(squares, axis=1, keepdims=True) if keepdims else np.add.reduce(squares, axis=1))


def _unit_ball(rng: np.random.Generator, n: int) -> np.ndarray:
    """n points uniform in the unit ball."""
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True) + _EPS
    return v * rng.random(n)[:, None] ** (1.0 / 3.0)


@dataclass(frozen=True)
class Sphere:
    """Ball of radius ``radius`` (Angstrom) about the origin: a hard cap."""

    radius: float

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return _unit_ball(rng, n) * self.radius

    def project(self, pos: np.ndarray) -> np.ndarray:
        r = _norms(pos, keepdims=True)
        outside = r > self.radius
        if not outside.any():
            return np.array(pos, dtype=float)
        return np.where(outside, pos * (self.radius / (r + _EPS)), pos)

    def contains(self, pos: np.ndarray, tol: float = 1e-6) -> np.ndarray:
        return _norms(pos) <= self.radius + tol

    @property
    def volume(self) -> float:
        return 4.0 / 3.0 * np.pi * self.radius**3

    @property
    def extent(self) -> float:
        return self.radius

    def grown_volume(self, h: float) -> float:
        """Volume of the shape grown by ``h`` (an upper bound where not exact)."""
        return 4.0 / 3.0 * np.pi * (self.radius + h) ** 3

    def describe(self) -> str:
        return f"sphere r={self.radius:.6g}"


@dataclass(frozen=True)
class Ellipsoid:
    """Axis-aligned ellipsoid with semi-axes (a, b, c) in Angstrom."""

    axes: tuple[float, float, float]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return _unit_ball(rng, n) * np.asarray(self.axes)

    def project(self, pos: np.ndarray) -> np.ndarray:
        # Radial scaling in the normalised frame: cheap, and lands on the surface.
        ax = np.asarray(self.axes)
        s = _norms(pos / ax, keepdims=True)
        return np.where(s > 1.0, pos / (s + _EPS), pos)

    def contains(self, pos: np.ndarray, tol: float = 1e-6) -> np.ndarray:
        return _norms(pos / np.asarray(self.axes)) <= 1.0 + tol / min(self.axes)

    @property
    def volume(self) -> float:
        a, b, c = self.axes
        return 4.0 / 3.0 * np.pi * a * b * c

    @property
    def extent(self) -> float:
        return max(self.axes)

    def grown_volume(self, h: float) -> float:
        a, b, c = self.axes
        return 4.0 / 3.0 * np.pi * (a + h) * (b + h) * (c + h)

    def describe(self) -> str:
        return "ellipsoid axes={:.6g},{:.6g},{:.6g}".format(*self.axes)


@dataclass(frozen=True)
class Shell:
    """Spherical shell: atoms between ``inner`` and ``outer`` radii (Angstrom), core empty."""

    inner: float
    outer: float

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        v = rng.normal(size=(n, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True) + _EPS
        u = rng.random(n)
        r = (self.inner**3 + u * (self.outer**3 - self.inner**3)) ** (1.0 / 3.0)
        return v * r[:, None]

    def project(self, pos: np.ndarray) -> np.ndarray:
        r = _norms(pos, keepdims=True)
        target = np.clip(r, self.inner, self.outer)
        # An atom exactly at the centre has no direction: push it along +z.
        direction = np.where(r > _EPS, pos / (r + _EPS), np.array([0.0, 0.0, 1.0]))
        return np.where((r < self.inner) | (r > self.outer), direction * target, pos)

    def contains(self, pos: np.ndarray, tol: float = 1e-6) -> np.ndarray:
        r = _norms(pos)
        return (r >= self.inner - tol) & (r <= self.outer + tol)

    @property
    def volume(self) -> float:
        return 4.0 / 3.0 * np.pi * (self.outer**3 - self.inner**3)

    @property
    def extent(self) -> float:
        return self.outer

    def grown_volume(self, h: float) -> float:
        return 4.0 / 3.0 * np.pi * ((self.outer + h) ** 3 - max(self.inner - h, 0.0) ** 3)

    def describe(self) -> str:
        return f"shell r={self.inner:.6g}-{self.outer:.6g}"


Confinement = Sphere | Ellipsoid | Shell


def default_radius(n_atoms: int, bond: float, close_packed: bool = False) -> float:
    """Sphere radius (Angstrom) holding ``n_atoms`` at a loosened bulk density.

    ``bond`` is the typical nearest-neighbour distance (Angstrom or sigma);
    ``close_packed`` uses the close-packed density instead of the open II-VI one.
    """
    per_atom = CLOSE_PACKED_VOLUME_IN_BOND3 if close_packed else VOLUME_PER_ATOM_IN_BOND3 * LOOSENESS
    volume = n_atoms * per_atom * bond**3
    return float((3.0 * volume / (4.0 * np.pi)) ** (1.0 / 3.0))


def make_confinement(
    shape: str,
    n_atoms: int,
    bond: float,
    radius: float | None = None,
    axes: tuple[float, float, float] | None = None,
    inner: float | None = None,
    close_packed: bool = False,
) -> Confinement:
    """Build a confinement from command-line / config options.

    ``shape`` is ``sphere``, ``ellipsoid`` or ``shell``. Missing sizes default from
    the composition: the ellipsoid keeps the default sphere's volume with axes
    ratio 1.4:1:0.7 when ``axes`` is absent; the shell's core is 40 % of its radius.
    """
    for name, value in (("radius", radius), ("inner radius", inner)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise InputError(f"impossible {name} {value!r}: must be a positive number (Angstrom)")
    # Defaults are rounded to 0.001 Angstrom so the stored description is exact.
    r = radius if radius is not None else round(default_radius(n_atoms, bond, close_packed), 3)
    shape = shape.lower()
    if shape == "sphere":
        return Sphere(float(r))
    if shape == "ellipsoid":
        if axes is None:
            k = (1.0 / (1.4 * 0.7)) ** (1.0 / 3.0)
            axes = (round(1.4 * k * r, 3), round(k * r, 3), round(0.7 * k * r, 3))
        if len(axes) != 3 or not all(np.isfinite(a) and a > 0 for a in axes):
            raise InputError(f"impossible ellipsoid axes {axes!r}: need three positive numbers")
        return Ellipsoid((float(axes[0]), float(axes[1]), float(axes[2])))
    if shape == "shell":
        # Keep the shell's volume equal to the default sphere's when not given.
        rin = inner if inner is not None else round(0.4 * r, 3)
        outer = r if radius is not None else round(float((r**3 + rin**3) ** (1.0 / 3.0)), 3)
        if rin >= outer:
            raise InputError(f"impossible shell: inner radius {rin:.3g} >= outer radius {outer:.3g}")
        return Shell(float(rin), float(outer))
    raise InputError(f"unknown shape {shape!r}: choose sphere, ellipsoid or shell")


def default_confinement(
    counts: dict[str, int],
    rules,
    shape: str = "sphere",
    radius: float | None = None,
    axes: tuple[float, float, float] | None = None,
    inner: float | None = None,
) -> Confinement:
    """The confinement of ``shape`` for a composition, sized from its separation ``rules``
    (a :class:`~airss_msc.generation.separations.SeparationRules`) where unset."""
    symbols = symbols_of(counts)
    return make_confinement(
        shape,
        len(symbols),
        rules.typical_bond(symbols),
        radius=radius,
        axes=axes,
        inner=inner,
        close_packed=set(symbols) == {"X"},
    )


def parse_axes(text: str) -> tuple[float, float, float]:
    """Parse ``6,5,4`` into three semi-axes (Angstrom)."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(f"malformed axes {text!r}: expected A,B,C in Angstrom") from None
    if len(values) != 3:
        raise InputError(f"malformed axes {text!r}: expected three numbers A,B,C")
    return values
