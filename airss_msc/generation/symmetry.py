"""Point-group symmetric random clusters (AIRSS ``SYMMOPS`` for clusters).

A cluster with point group G is built from orbits: a representative point on a
*site kind* (the origin, a symmetry axis, a mirror plane or a general position)
and its images under G. Each species' count is split into orbit sizes, at most
one atom in the whole cluster sits at the centre, and overlapping atoms are
pushed apart by moving the orbit representatives only, so every intermediate
structure is exactly G-symmetric and special atoms never leave their site.

Orientation: principal axis along z; a C2 along x for D groups; mirror planes
xy (Cs, sigma_h) and xz (sigma_v); cube axes along x, y, z for T and O groups;
C2 axes along x, y, z and a C5 along (0, 1, phi) for I groups.
Lengths are in Angstrom (sigma for the Lennard-Jones dummy element ``X``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import numpy as np

from airss_msc.composition import format_formula, symbols_of
from airss_msc.errors import InputError
from airss_msc.generation.confinement import Confinement, Ellipsoid, Shell, default_confinement
from airss_msc.generation.geometry import point_group_analyzer, point_group_order
from airss_msc.generation.separations import SeparationRules, meets, minsep_matrix, push_displacement

#: Largest principal-axis order n offered for Cn, Cnv, Cnh, Dn, Dnh, Dnd and S2n.
MAX_AXIS_ORDER = 8

#: Relative weight of a decomposition per orbit beyond the fewest possible:
#: fewer, larger orbits mean more atoms on general positions.
EXTRA_ORBIT_WEIGHT = 0.3

#: Decompositions with more than this many orbits beyond the fewest are not drawn.
MAX_EXTRA_ORBITS = 2

_TOL = 1e-6

# ---------------------------------------------------------------------------
# group names and operations


def _group_names() -> tuple[str, ...]:
    names = ["C1", "Cs", "Ci"]
    for n in range(2, MAX_AXIS_ORDER + 1):
        names += [f"C{n}", f"C{n}v", f"C{n}h", f"D{n}", f"D{n}h", f"D{n}d", f"S{2 * n}"]
    return tuple(names + ["T", "Td", "Th", "O", "Oh", "I", "Ih"])


#: Every point group this module builds, in a fixed order (random draws index it).
GROUP_NAMES: tuple[str, ...] = _group_names()

_ALIASES = {"s2": "Ci", "c1h": "Cs", "c1v": "Cs", "c1": "C1"}
_BY_LOWER = {name.lower(): name for name in GROUP_NAMES} | _ALIASES


def canonical_group(name: str) -> str:
    """Canonical Schoenflies symbol (``c2v`` -> ``C2v``); InputError if unknown."""
    key = str(name).strip().lower()
    if key not in _BY_LOWER:
        raise InputError(
            f"unknown point group {name!r}: choose Cs, Ci, Cn, Cnv, Cnh, Dn, Dnh, Dnd, S2n "
            f"(n = 2..{MAX_AXIS_ORDER}), T, Td, Th, O, Oh, I, Ih or random"
        )
    return _BY_LOWER[key]


def _rotation(axis, angle: float) -> np.ndarray:
    """Proper rotation by ``angle`` (radians) about ``axis`` (Rodrigues)."""
    u = np.asarray(axis, dtype=float)
    u = u / np.linalg.norm(u)
    k = np.array([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


_SIGMA_H = np.diag([1.0, 1.0, -1.0])  # mirror plane xy
_SIGMA_V = np.diag([1.0, -1.0, 1.0])  # mirror plane xz
_INVERSION = -np.eye(3)
_C2X = np.diag([1.0, -1.0, -1.0])
_C2Z = np.diag([-1.0, -1.0, 1.0])
_C3_111 = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # x->y->z->x
_SIGMA_D_CUBE = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # plane x = y
_PHI = (1.0 + np.sqrt(5.0)) / 2.0


def _generators(name: str) -> list[np.ndarray]:
    """A few matrices that generate the group in the module's orientation."""
    cubic = {
        "T": [_C2Z, _C2X, _C3_111],
        "Td": [_C2Z, _C2X, _C3_111, _SIGMA_D_CUBE],
        "Th": [_C2Z, _C2X, _C3_111, _INVERSION],
        "O": [_C2Z, _C2X, _C3_111, _rotation([0, 0, 1], np.pi / 2)],
        "Oh": [_C2Z, _C2X, _C3_111, _rotation([0, 0, 1], np.pi / 2), _INVERSION],
        "I": [_C2Z, _C3_111, _rotation([0.0, 1.0, _PHI], 2 * np.pi / 5)],
        "Ih": [_C2Z, _C3_111, _rotation([0.0, 1.0, _PHI], 2 * np.pi / 5), _INVERSION],
        "C1": [np.eye(3)],
        "Cs": [_SIGMA_H],
        "Ci": [_INVERSION],
    }
    if name in cubic:
        return cubic[name]
    letter, n, suffix = _axial(name)
    if letter == "S":  # S2n: rotate by 2 pi / 2n, then reflect through xy
        return [_SIGMA_H @ _rotation([0, 0, 1], 2 * np.pi / n)]
    gens = [_rotation([0, 0, 1], 2 * np.pi / n)]
    if letter == "D":
        gens.append(_C2X)
    if suffix == "v":
        gens.append(_SIGMA_V)
    elif suffix == "h":
        gens.append(_SIGMA_H)
    elif suffix == "d":  # vertical mirror bisecting the C2 axes at 0 and pi/n
        c, s = np.cos(np.pi / n), np.sin(np.pi / n)
        gens.append(np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, 1.0]]))
    return gens


def _axial(name: str) -> tuple[str, int, str]:
    """(letter, n, suffix) of a canonical axial group: ``D3h`` -> ("D", 3, "h")."""
    m = re.fullmatch(r"([CDS])(\d+)([vhd]?)", name)
    if m is None:  # canonical_group admits only these and the fixed groups
        raise InputError(f"unknown point group {name!r}")
    return m.group(1), int(m.group(2)), m.group(3)


def _key(m: np.ndarray) -> bytes:
    return (np.round(m, 6) + 0.0).tobytes()  # + 0.0 turns -0.0 into 0.0


def _closure(gens: list[np.ndarray]) -> np.ndarray:
    """All products of the generators: the finite group they generate."""
    ops = [np.eye(3)]
    seen = {_key(ops[0])}
    frontier = list(ops)
    while frontier:
        grown = []
        for a in frontier:
            for g in gens:
                m = g @ a
                k = _key(m)
                if k not in seen:
                    seen.add(k)
                    ops.append(m)
                    grown.append(m)
        frontier = grown
    return np.array(ops)


def group_order(name: str) -> int:
    """Number of operations of point group ``name``."""
    name = canonical_group(name)
    fixed = {"C1": 1, "Cs": 2, "Ci": 2, "T": 12, "Td": 24, "Th": 24, "O": 24, "Oh": 48, "I": 60, "Ih": 120}
    if name in fixed:
        return fixed[name]
    letter, n, suffix = _axial(name)
    if letter == "S":
        return n
    return n * (2 if letter == "D" else 1) * (2 if suffix else 1)


@functools.cache
def _operations(name: str) -> np.ndarray:
    ops = _closure(_generators(name))
    if len(ops) != group_order(name):  # a wrong generator would silently give another group
        raise AssertionError(f"{name}: generated {len(ops)} operations, expected {group_order(name)}")
    ops.flags.writeable = False
    return ops


def point_group_operations(name: str) -> np.ndarray:
    """Orthogonal matrices (n_ops, 3, 3) of point group ``name``; identity first."""
    return _operations(canonical_group(name)).copy()


# ---------------------------------------------------------------------------
# site kinds (Wyckoff-like positions of a point group)


@dataclass(frozen=True, eq=False)
class SiteKind:
    """One kind of site of a point group: where an orbit's representative lives.

    label: ``origin``, ``C3 axis along (...)``, ``mirror plane normal (...)`` or ``general``.
    size: atoms in one orbit on this kind of site.
    dim: dimension of the site's subspace (0 origin, 1 axis, 2 plane, 3 general).
    basis: (dim, 3) orthonormal basis of the representative subspace.
    cosets: (size, 3, 3) operations taking the representative to each orbit member.
    on_line: for axes, orbit members lying on the representative axis itself.
    """

    label: str
    size: int
    dim: int
    basis: np.ndarray = field(repr=False)
    cosets: np.ndarray = field(repr=False)
    on_line: int = 0

    @functools.cached_property
    def projector(self) -> np.ndarray:
        """Orthogonal projector (3, 3) onto the representative subspace."""
        proj = self.basis.T @ self.basis
        proj.flags.writeable = False
        return proj

    def draw(self, rng: np.random.Generator, confinement: Confinement) -> np.ndarray:
        """A random point (3,) on this site, uniform over its section of ``confinement``."""
        if self.dim == 0:
            return np.zeros(3)
        if self.dim == 3:
            return confinement.sample(rng, 1)[0]
        e = confinement.extent
        while True:  # rejection sampling in the section's bounding square / segment
            coeff = rng.uniform(-e, e, size=(16, self.dim))
            pts = coeff @ self.basis
            inside = np.nonzero(confinement.contains(pts, tol=0.0))[0]
            if len(inside):
                return pts[inside[0]]

    def orbit(self, point: np.ndarray) -> np.ndarray:
        """Images (size, 3) of a representative ``point`` on this site."""
        return self.cosets @ np.asarray(point, dtype=float)


def _fixed_basis(mats: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d, 3) of the vectors fixed by every matrix in ``mats``."""
    stacked = (mats - np.eye(3)).reshape(-1, 3)
    _, s, vt = np.linalg.svd(stacked)
    s = np.concatenate([s, np.zeros(3 - len(s))])
    return vt[s < _TOL]


def _direction_text(v: np.ndarray) -> str:
    v = v / np.abs(v).max()
    v = np.where(np.abs(v) < _TOL, 0.0, v)
    if v[np.nonzero(np.abs(v) > _TOL)[0][0]] < 0:
        v = -v
    return "(" + ", ".join(f"{x:.3g}" for x in v + 0.0) + ")"


def _generic_point(basis: np.ndarray) -> np.ndarray:
    # Irrational coefficients keep the point off every smaller symmetry element.
    return np.array([0.7548776662, 0.5698402910, 0.3176721962])[: len(basis)] @ basis


def _site_kind(ops: np.ndarray, basis: np.ndarray, label: str) -> SiteKind:
    p = _generic_point(basis) if len(basis) else np.zeros(3)
    images = ops @ p
    cosets: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    for op, x in zip(ops, images, strict=True):
        if not any(np.linalg.norm(x - y) < _TOL for y in kept):
            kept.append(x)
            cosets.append(op)
    on_line = 0
    if len(basis) == 1:
        proj = basis.T @ basis
        on_line = sum(bool(np.linalg.norm(proj @ x - x) < _TOL) for x in kept)
    operations = np.array(cosets)
    operations.flags.writeable = False
    basis = basis.copy()
    basis.flags.writeable = False
    return SiteKind(label, len(operations), len(basis), basis, operations, int(on_line))


@functools.cache
def _site_kinds(name: str) -> tuple[SiteKind, ...]:
    ops = _operations(name)
    kinds: list[SiteKind] = []
    # The centre is a site of its own only when no axis or plane is fixed by
    # the whole group (in Cnv the centre is just a point on the axis).
    if len(_fixed_basis(ops)) == 0:
        kinds.append(_site_kind(ops, np.zeros((0, 3)), "origin"))
    # Axes and planes: fixed subspaces of single operations, one per class of
    # subspaces related by the group.
    seen: set[bytes] = set()
    for dim in (1, 2):
        for g in ops[1:]:
            basis = _fixed_basis(g[None])
            if len(basis) != dim:
                continue
            proj = basis.T @ basis
            if _key(proj) in seen:
                continue
            for h in ops:
                seen.add(_key(h @ proj @ h.T))
            if dim == 1:
                stab = ops[[np.allclose(h @ basis[0], basis[0], atol=_TOL) for h in ops]]
                order = int(np.count_nonzero(np.linalg.det(stab) > 0))
                label = f"C{order} axis along {_direction_text(basis[0])}"
            else:
                normal = np.cross(basis[0], basis[1])
                label = f"mirror plane normal {_direction_text(normal)}"
            kinds.append(_site_kind(ops, basis, label))
    kinds.append(_site_kind(ops, np.eye(3), "general"))
    for kind in kinds:  # orbit-stabiliser theorem: guards against a non-generic point
        fixing = sum(np.allclose(h @ kind.basis.T, kind.basis.T, atol=_TOL) for h in ops)
        if kind.size * fixing != len(ops):
            raise AssertionError(f"{name}: orbit of {kind.label} has size {kind.size}")
    return tuple(kinds)


def orbit_options(name: str) -> list[SiteKind]:
    """Site kinds of point group ``name``: origin (if special), axes, planes, general.

    Each :class:`SiteKind` gives its orbit size and ``draw(rng, confinement)`` for a
    random representative point; ``orbit(point)`` gives the whole orbit.
    """
    return list(_site_kinds(canonical_group(name)))


# ---------------------------------------------------------------------------
# feasibility: splitting counts into orbits


def _counts_key(counts: dict[str, int]) -> tuple[tuple[str, int], ...]:
    order = list(dict.fromkeys(symbols_of(counts)))
    return tuple((el, int(counts[el])) for el in order)


def _line_kinds(kinds: tuple[SiteKind, ...]) -> list[int]:
    return [i for i, k in enumerate(kinds) if k.dim == 1]


def _boundary_distance(directions: np.ndarray, confinement: Confinement) -> np.ndarray:
    """Distance (Angstrom) from the centre to the outer surface along unit ``directions``."""
    if isinstance(confinement, Ellipsoid):
        return 1.0 / np.linalg.norm(directions / np.asarray(confinement.axes), axis=1)
    return np.full(len(directions), float(confinement.extent))


def _line_capacity(direction: np.ndarray, confinement: Confinement, spacing: float) -> int:
    """Atoms that fit on the axis ``direction`` within ``confinement``, ``spacing`` apart.

    Callers pass the largest separation so any order of species along the axis
    fits (atoms on an axis cannot pass each other while being pushed apart).
    """
    if isinstance(confinement, Shell):
        return 2 * (int(np.floor((confinement.outer - confinement.inner) / spacing)) + 1)
    half = float(_boundary_distance(direction[None], confinement)[0])
    return int(np.floor(2.0 * half / spacing)) + 1


@functools.cache
def _unit_spread(name: str) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per site kind: sample unit directions on the site, and the smallest distance
    between orbit members of a representative at unit distance from the centre."""
    sampler = np.random.default_rng(20240601)  # fixed: the same samples on every machine
    out = []
    for kind in _site_kinds(name):
        if kind.size == 1:
            out.append((np.zeros((0, 3)), np.zeros(0)))
            continue
        if kind.dim == 1:
            dirs = np.array([kind.basis[0], -kind.basis[0]])
        else:
            dirs = sampler.normal(size=(512, kind.dim)) @ kind.basis
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        images = np.einsum("cij,sj->sci", kind.cosets[1:], dirs)  # cosets[0] is the identity
        out.append((dirs, np.linalg.norm(images - dirs[:, None, :], axis=2).min(axis=1)))
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _orbit_reach(name: str, confinement: Confinement) -> tuple[float, ...]:
    """Per site kind, the largest smallest distance (Angstrom) between members of one
    orbit that lies inside ``confinement`` (inf for one-atom orbits).

    A species whose like-pair separation exceeds this cannot use that kind: e.g.
    twelve Se on one ring of C6v do not fit in a 6 Angstrom sphere.
    """
    reach = []
    for dirs, spread in _unit_spread(name):
        if len(dirs) == 0:
            reach.append(float("inf"))
        else:
            reach.append(float(np.max(spread * _boundary_distance(dirs, confinement))))
    return tuple(reach)


def _compatible(name: str, confinement: Confinement) -> bool:
    """Whether every operation maps ``confinement`` onto itself (spheres, shells: always)."""
    if not isinstance(confinement, Ellipsoid):
        return True
    metric = np.diag(1.0 / np.asarray(confinement.axes) ** 2)
    ops = _operations(name)
    return bool(np.allclose(np.einsum("nji,jk,nkl->nil", ops, metric, ops), metric, atol=1e-9))


@dataclass(frozen=True)
class _Room:
    """What the confinement and separations leave room for, for one group and composition.

    caps: atoms that fit on each axis kind; centre: whether the centre is inside;
    allowed: per species, which site kinds one of its orbits fits on.
    """

    caps: tuple[int, ...]
    centre: bool
    allowed: tuple[tuple[bool, ...], ...]

    @classmethod
    def unlimited(cls, name: str, counts_key: tuple) -> _Room:
        kinds = _site_kinds(name)
        return cls(
            tuple(10**6 for _ in _line_kinds(kinds)), True, tuple(tuple(True for _ in kinds) for _ in counts_key)
        )


def _room(name: str, counts_key: tuple, drawn: dict, confinement: Confinement) -> _Room:
    return _room_cached(name, counts_key, tuple(sorted(drawn.items())), confinement)


@functools.lru_cache(maxsize=8192)
def _room_cached(name: str, counts_key: tuple, drawn_key: tuple, confinement: Confinement) -> _Room:
    drawn = dict(drawn_key)
    kinds = _site_kinds(name)
    spacing = max(drawn.values())
    caps = tuple(_line_capacity(kinds[i].basis[0], confinement, spacing) for i in _line_kinds(kinds))
    centre = bool(confinement.contains(np.zeros((1, 3)))[0])
    reach = _orbit_reach(name, confinement)
    allowed = tuple(tuple(r >= drawn[(el, el)] - 1e-9 for r in reach) for el, _ in counts_key)
    return _Room(caps, centre, allowed)


@dataclass(frozen=True)
class _Option:
    """One split of one species' count: orbits per site kind, and what it uses."""

    per_kind: tuple[int, ...]
    line_use: tuple[int, ...]
    centre: bool
    weight: float


def _species_options(
    name: str, count: int, caps: tuple[int, ...], centre_ok: bool, allowed: tuple[bool, ...]
) -> list[_Option]:
    """Ways to split ``count`` atoms into orbits of group ``name``.

    Only splits within the axis capacities, using allowed kinds and at most
    MAX_EXTRA_ORBITS more orbits than the fewest possible; weighted towards few orbits.
    """
    kinds = _site_kinds(name)
    lines = _line_kinds(kinds)
    free = [i for i, k in enumerate(kinds) if k.dim > 0 and allowed[i]]
    free.sort(key=lambda i: -kinds[i].size)  # big orbits first: prune early
    origin = [i for i, k in enumerate(kinds) if k.dim == 0]
    starts = [False]
    if origin and centre_ok and allowed[origin[0]] and count >= 1 and all(c >= 1 for c in caps):
        starts.append(True)

    def search(pos: int, left: int, per: list[int], use: list[int], n: int, bound: int, found: list) -> None:
        if left == 0:
            found.append((tuple(per), n))
            return
        if pos == len(free) or n + -(-left // kinds[free[pos]].size) > bound:
            return
        i = free[pos]
        slot = lines.index(i) if i in lines else None
        most = min(left // kinds[i].size, bound - n)
        if slot is not None:
            most = min(most, (caps[slot] - use[slot]) // kinds[i].on_line)
        for take in range(most, -1, -1):
            per[i] = take
            if slot is not None:
                use[slot] += take * kinds[i].on_line
            search(pos + 1, left - take * kinds[i].size, per, use, n + take, bound, found)
            if slot is not None:
                use[slot] -= take * kinds[i].on_line
        per[i] = 0

    def splits(bound: int) -> list[tuple[bool, tuple[int, ...], int]]:
        out = []
        for centre in starts:
            per = [0] * len(kinds)
            if centre:
                per[origin[0]] = 1
            found: list = []
            search(0, count - int(centre), per, [int(centre)] * len(lines), int(centre), bound, found)
            out += [(centre, p, n) for p, n in found]
        return out

    # Iterative deepening on the number of orbits finds the fewest, then a few more.
    for bound in range(1, count + 1):
        if splits(bound):
            fewest = bound
            break
    else:
        return []
    options = []
    for centre, per, n in sorted(splits(fewest + MAX_EXTRA_ORBITS)):
        use = tuple(int(centre) + per[i] * kinds[i].on_line for i in lines)
        options.append(_Option(per, use, centre, EXTRA_ORBIT_WEIGHT ** (n - fewest)))
    return options


@dataclass(frozen=True)
class _Plan:
    """Joint splits of all species: forward tables for exact weighted sampling."""

    options: tuple[tuple[_Option, ...], ...]
    tables: tuple[dict, ...]  # tables[j][(line_use, centre_used)] = total weight after j species
    caps: tuple[int, ...]

    @property
    def total(self) -> float:
        return float(sum(self.tables[-1].values()))

    @functools.cached_property
    def sampler(self) -> tuple:
        """What :func:`_sample_plan` draws from, worked out once per plan: the final
        states with their probabilities, and per species (last first) the
        (previous state, option) pairs leading to each state with theirs."""
        final = sorted(self.tables[-1].items())
        weights = np.array([w for _, w in final])
        steps = []
        for j in range(len(self.options) - 1, -1, -1):
            leading: dict = {}
            for prev, w in sorted(self.tables[j].items()):
                for opt in self.options[j]:
                    state = _add(prev, opt, self.caps)
                    if state is not None:
                        cands, ws = leading.setdefault(state, ([], []))
                        cands.append((prev, opt))
                        ws.append(w * opt.weight)
            steps.append({state: (cands, np.array(ws) / np.array(ws).sum()) for state, (cands, ws) in leading.items()})
        return [state for state, _ in final], weights / weights.sum(), steps


def _add(state: tuple, opt: _Option, caps: tuple[int, ...]) -> tuple | None:
    use, centre = state
    if centre and opt.centre:
        return None  # only one atom may sit at the centre
    new = tuple(a + b for a, b in zip(use, opt.line_use, strict=True))
    if any(u > c for u, c in zip(new, caps, strict=True)):
        return None
    return (new, centre or opt.centre)


@functools.lru_cache(maxsize=4096)
def _plan(name: str, counts_key: tuple, room: _Room) -> _Plan:
    options = tuple(
        tuple(_species_options(name, n, room.caps, room.centre, allowed))
        for (_, n), allowed in zip(counts_key, room.allowed, strict=True)
    )
    tables: list[dict] = [{(tuple(0 for _ in room.caps), False): 1.0}]
    for opts in options:
        nxt: dict = {}
        for state, w in tables[-1].items():
            for opt in opts:
                new = _add(state, opt, room.caps)
                if new is not None:
                    nxt[new] = nxt.get(new, 0.0) + w * opt.weight
        tables.append(nxt)
    return _Plan(options, tuple(tables), room.caps)


def _sample_plan(plan: _Plan, rng: np.random.Generator) -> list[_Option]:
    """One joint split, drawn with probability proportional to its weight."""
    finals, p_final, steps = plan.sampler
    state = finals[int(rng.choice(len(finals), p=p_final))]
    chosen: list[_Option] = []
    for leading in steps:
        cands, p = leading[state]
        prev, opt = cands[int(rng.choice(len(cands), p=p))]
        chosen.append(opt)
        state = prev
    return chosen[::-1]


@functools.lru_cache(maxsize=256)
def _default_geometry(counts_key: tuple) -> tuple[tuple, Confinement]:
    """Separations (low ends) and sphere the generator uses for a composition by default."""
    counts = dict(counts_key)
    rules = SeparationRules.build(counts)
    drawn = tuple(sorted((pair, lo * rules.slack) for pair, (lo, _) in rules.ranges.items()))
    return drawn, default_confinement(counts, rules)


def _resolve_geometry(
    counts: dict[str, int], drawn: dict | None, confinement: Confinement | None
) -> tuple[dict, Confinement]:
    default_drawn, default_conf = _default_geometry(_counts_key(counts))
    return (dict(default_drawn) if drawn is None else drawn, default_conf if confinement is None else confinement)


def _infeasible_reason(counts: dict[str, int], name: str, drawn: dict, confinement: Confinement) -> str | None:
    """Why ``name`` cannot build ``counts`` here, or None if it can."""
    if name == "C1":
        return None
    if not _compatible(name, confinement):
        return (
            f"point group {name} does not map {confinement.describe()} onto itself; "
            f"use a sphere or shell (or an ellipsoid with matching axes) for {name}"
        )
    key = _counts_key(counts)
    room = _room(name, key, drawn, confinement)
    if _plan(name, key, room).total > 0:
        return None
    formula = format_formula(counts)
    sizes = ", ".join(str(k.size) for k in _site_kinds(name))
    loose = _plan(name, key, _Room.unlimited(name, key))
    if loose.total == 0:
        impossible = [f"{el}{n}" for (el, n), opts in zip(key, loose.options, strict=True) if not opts]
        if impossible:
            return (
                f"point group {name} cannot build {formula}: {', '.join(impossible)} is not a sum "
                f"of its orbit sizes ({sizes}; the centre holds one atom)"
            )
        needy = [f"{el}{n}" for (el, n), opts in zip(key, loose.options, strict=True) if all(o.centre for o in opts)]
        return (
            f"point group {name} cannot build {formula}: {' and '.join(needy)} would each need an "
            f"atom at the centre (orbit sizes {sizes}), but only one atom can sit there"
        )
    no_centre = _Room(_Room.unlimited(name, key).caps, False, _Room.unlimited(name, key).allowed)
    if not room.centre and _plan(name, key, no_centre).total == 0:
        return f"point group {name} needs an atom at the centre of {formula}, which {confinement.describe()} excludes"
    return (
        f"point group {name} cannot build {formula} in {confinement.describe()} with separations "
        f"up to {max(drawn.values()):.3g}: its orbits would crowd a symmetry axis or ring; "
        f"use a larger radius, smaller separations or another group"
    )


# ---------------------------------------------------------------------------
# public entry points used by airss_msc.generation.generate


def check_request(
    counts: dict[str, int], name: str, drawn: dict | None = None, confinement: Confinement | None = None
) -> None:
    """Raise InputError unless point group ``name`` (or ``random``) can build ``counts``.

    Without ``drawn`` separations and ``confinement`` the generator's defaults for
    the composition are assumed (these only matter for atoms on symmetry axes).
    """
    drawn, confinement = _resolve_geometry(counts, drawn, confinement)
    if str(name).strip().lower() == "random":
        if not feasible_groups(counts, drawn, confinement):
            raise InputError(
                f"no point group other than C1 can build {format_formula(counts)} "
                f"in {confinement.describe()}; use symmetry C1"
            )
        return
    reason = _infeasible_reason(counts, canonical_group(name), drawn, confinement)
    if reason:
        raise InputError(reason)


@functools.lru_cache(maxsize=1024)
def _feasible_cached(counts_key: tuple, rooms: tuple[_Room | None, ...]) -> tuple[str, ...]:
    return tuple(
        name
        for name, room in zip(GROUP_NAMES[1:], rooms, strict=True)
        if room is not None and _plan(name, counts_key, room).total > 0
    )


def feasible_groups(
    counts: dict[str, int], drawn: dict | None = None, confinement: Confinement | None = None
) -> list[str]:
    """Point groups other than C1 that can build ``counts`` (fixed order).

    ``drawn`` (Angstrom) and ``confinement`` default to the generator's defaults.
    """
    drawn, confinement = _resolve_geometry(counts, drawn, confinement)
    return list(_feasible_for(_counts_key(counts), tuple(sorted(drawn.items())), confinement))


@functools.lru_cache(maxsize=4096)
def _feasible_for(counts_key: tuple, drawn_key: tuple, confinement: Confinement) -> tuple[str, ...]:
    drawn = dict(drawn_key)
    # Feasibility depends on the geometry only through the room it leaves, so
    # cache the plans on that rather than on every drawn separation.
    rooms = tuple(
        _room(name, counts_key, drawn, confinement) if _compatible(name, confinement) else None
        for name in GROUP_NAMES[1:]
    )
    return _feasible_cached(counts_key, rooms)


def group_weights(groups: list[str], order_power: float = 0.0) -> np.ndarray:
    """Draw probabilities of ``groups``: proportional to group order ** ``order_power``
    (0: uniform; 1: a group as likely as its number of operations)."""
    if not order_power >= 0:
        raise InputError(f"order_power must be >= 0, got {order_power!r}")
    w = np.array([float(group_order(g)) ** order_power for g in groups])
    return w / w.sum()


def choose_group(
    counts: dict[str, int],
    name_or_random: str,
    rng: np.random.Generator,
    drawn: dict | None = None,
    confinement: Confinement | None = None,
    order_power: float = 0.0,
) -> str:
    """Canonical group name; for ``random`` one feasible group drawn with ``rng``, uniformly
    (``order_power`` 0) or with probability proportional to its order ** ``order_power``."""
    if str(name_or_random).strip().lower() != "random":
        return canonical_group(name_or_random)
    groups = feasible_groups(counts, drawn, confinement)
    if not groups:
        check_request(counts, "random", drawn, confinement)  # raises with the message
    if order_power == 0:  # the uniform draw as before: the same group from the same stream
        return groups[int(rng.integers(len(groups)))]
    return groups[int(rng.choice(len(groups), p=group_weights(groups, order_power)))]


def symmetric_cluster(
    counts: dict[str, int],
    group: str,
    drawn: dict[tuple[str, str], float],
    confinement: Confinement,
    rng: np.random.Generator,
    iterations: int = 300,
) -> tuple[list[str], np.ndarray, bool]:
    """One random cluster of ``counts`` with point group ``group`` (or higher).

    Returns symbols (canonical element order), positions (N, 3) in Angstrom about
    the origin, and ok: True only if every pair meets its drawn separation and
    every atom is inside ``confinement``. Raises InputError when the group cannot
    build the composition in this confinement at all.

    Only orbit representatives move: each sweep takes the push-apart field of
    the whole cluster (:func:`airss_msc.generation.separations.push_displacement`, the same
    rule as for random clusters), averages it over each orbit back to the
    representative, projects that onto the representative's site (axis, plane
    or free) and rebuilds the orbits, so every intermediate structure is exactly
    symmetric.
    """
    name = canonical_group(group)
    reason = _infeasible_reason(counts, name, drawn, confinement)
    if reason:
        raise InputError(reason)
    kinds = _site_kinds(name)
    key = _counts_key(counts)
    choice = _sample_plan(_plan(name, key, _room(name, key, drawn, confinement)), rng)

    symbols: list[str] = []
    cosets, orbit_of, projectors, reps = [], [], [], []
    for (element, _), opt in zip(key, choice, strict=True):
        for i, how_many in enumerate(opt.per_kind):
            for _ in range(how_many):
                kind = kinds[i]
                reps.append(kind.draw(rng, confinement))
                projectors.append(kind.projector)
                cosets.append(kind.cosets)
                orbit_of += [len(reps) - 1] * kind.size
                symbols += [element] * kind.size
    mats = np.concatenate(cosets)
    orbit_of_arr = np.array(orbit_of)
    proj = np.array(projectors)
    reps_arr = np.array(reps)
    sizes = np.bincount(orbit_of_arr)
    # Mean over each orbit of R^T d: the symmetric part of a displacement field,
    # carried back to the representatives.
    average = (orbit_of_arr[None, :] == np.arange(len(reps))[:, None]) / sizes[:, None]
    need = minsep_matrix(symbols, drawn)
    np.fill_diagonal(need, 0.0)

    def place(r: np.ndarray) -> np.ndarray:
        return np.einsum("nij,nj->ni", mats, r[orbit_of_arr])

    for _ in range(iterations):
        pos = place(reps_arr)
        disp = push_displacement(pos, need, rng)
        if disp is None and bool(confinement.contains(pos).all()):
            break
        if disp is not None:
            back = np.einsum("nji,nj->ni", mats, disp)
            reps_arr = reps_arr + np.einsum("kij,kj->ki", proj, average @ back)
        # Radial projections commute with the operations, so orbits stay symmetric.
        reps_arr = confinement.project(reps_arr)
    pos = place(reps_arr)
    ok = meets(pos, need) and bool(confinement.contains(pos).all())
    return symbols, pos, ok


def is_symmetric(symbols, positions: np.ndarray, group: str, tol: float = 1e-6) -> bool:
    """Whether every operation of ``group`` maps the cluster onto itself: each atom to
    within ``tol`` (Angstrom) of an atom of its own species."""
    pos = np.asarray(positions, dtype=float)
    species = np.unique(np.asarray(symbols), return_inverse=True)[1]
    alike = species[:, None] == species[None, :]
    ops = _operations(canonical_group(group))
    chunk = max(1, 200_000 // max(len(pos) ** 2, 1))  # operations per vectorised block
    for k in range(0, len(ops), chunk):
        moved = np.einsum("gij,nj->gni", ops[k : k + chunk], pos)  # (ops, atoms, 3)
        diff = moved[:, :, None, :] - pos[None, None, :, :]
        close = (np.einsum("gnmk,gnmk->gnm", diff, diff) <= tol * tol) & alike
        if not close.any(axis=2).all():
            return False
    return True


def detected_by_pymatgen(symbols, positions: np.ndarray, group: str, tolerance: float = 0.1) -> bool:
    """Whether pymatgen's PointGroupAnalyzer (``tolerance`` Angstrom) finds ``group``
    or a larger group in the structure.

    Our structures are exact to 1e-15 Angstrom, but pymatgen misses about 3 % of them
    when two moments of inertia nearly coincide; the generator redraws those so every
    symmetric structure it writes is recognised by standard tools. A structure on
    which pymatgen fails, or starts generating more operations than any point group
    has (it found an operation that holds only within the tolerance), counts as
    not detected.
    """
    found = point_group_analyzer(symbols, positions, tolerance)
    if found is None:
        return False
    try:
        # pymatgen lists S2n groups with half their operations: compare by name first
        if found.sch_symbol == canonical_group(group):
            return True
    except Exception:
        return False
    order = point_group_order(found)
    return order is not None and order >= group_order(group)
