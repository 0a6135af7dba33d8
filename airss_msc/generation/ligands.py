"""Model amine ligands on under-coordinated surface cations (pure geometry).

Magic-size clusters carry amine and phosphine ligands (the MSC-399 synthesis
uses oleylamine and TOP) that bind through a lone pair to surface Cd/Zn. Model
amines (NH3, CH3NH2) stand in for them: each is placed with its nitrogen on
the outward bisector of a cation's bonds to its anion neighbours, at the
metal-nitrogen bond length, lone pair toward the metal, substituents
staggered, then turned about the M-N axis to keep clear of everything placed
so far. The capped cluster is then relaxed by an engine that knows C, N and H
(the ML potentials do). Lengths in Angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from airss_msc.composition import ANIONS
from airss_msc.errors import InputError
from airss_msc.generation.geometry import distances, radius

#: Metal-nitrogen bond lengths of amine complexes (Cd-N 2.25-2.35, Zn-N 2.05-2.15 A).
METAL_N = {"Cd": 2.30, "Zn": 2.10, "Hg": 2.40}
#: A cation with fewer anion neighbours than this is a capping site (four-fold is saturated).
SATURATED = 4
#: Anion neighbours lie within this multiple of the covalent radii sum.
NEIGHBOUR_FACTOR = 1.15
_TETRA = np.radians(180.0 - 109.47)  # substituent polar angle from the axis away from the lone pair


def _cone(n: int, length: float, polar: float, phase: float = 0.0) -> np.ndarray:
    phis = phase + 2 * np.pi * np.arange(n) / n
    return length * np.column_stack(
        [np.sin(polar) * np.cos(phis), np.sin(polar) * np.sin(phis), np.full(n, np.cos(polar))]
    )


def _frame(axis: np.ndarray) -> np.ndarray:
    """Rotation taking +z onto ``axis`` (rows: x', y', z' as columns of the result)."""
    z = axis / np.linalg.norm(axis)
    helper = np.array([1.0, 0, 0]) if abs(z[0]) < 0.9 else np.array([0, 1.0, 0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return np.column_stack([x, np.cross(z, x), z])


@dataclass(frozen=True)
class Ligand:
    """A model ligand: symbols and positions with the donor N at the origin and its lone
    pair along -z (the metal goes there); substituents point toward +z."""

    name: str
    symbols: tuple[str, ...]
    positions: np.ndarray


def _ammonia() -> Ligand:
    return Ligand("NH3", ("N", "H", "H", "H"), np.vstack([np.zeros(3), _cone(3, 1.015, _TETRA)]))


def _methylamine() -> Ligand:
    subs = _cone(3, 1.0, _TETRA)  # N-C along the first, N-H along the other two
    c = 1.47 * subs[0]
    hs_n = 1.015 * subs[1:]
    # methyl H: staggered cone about the N->C axis, 109.47 deg from C->N
    local = _cone(3, 1.09, _TETRA, phase=np.pi / 3)
    hs_c = c + local @ _frame(c).T
    return Ligand("CH3NH2", ("N", "C", "H", "H", "H", "H", "H"), np.vstack([np.zeros(3), c, hs_n, hs_c]))


#: Every ligand by name.
LIGANDS = {"NH3": _ammonia, "CH3NH2": _methylamine}


def get_ligand(name: str) -> Ligand:
    try:
        return LIGANDS[name]()
    except KeyError:
        raise InputError(f"unknown ligand {name!r}: choose {', '.join(LIGANDS)}") from None


def capping_sites(atoms: Atoms) -> list[tuple[int, int]]:
    """(cation index, anion neighbours) of every cation with fewer than four anion neighbours,
    fewest neighbours first."""
    symbols = atoms.get_chemical_symbols()
    d = distances(atoms.positions)
    out = []
    for i, s in enumerate(symbols):
        if s not in METAL_N:
            continue
        cn = sum(
            1 for j, t in enumerate(symbols) if t in ANIONS and d[i, j] < NEIGHBOUR_FACTOR * (radius(s) + radius(t))
        )
        if cn < SATURATED:
            out.append((i, cn))
    return sorted(out, key=lambda t: (t[1], t[0]))


def _outward(atoms: Atoms, i: int) -> np.ndarray:
    """Away from the cation's anion neighbours (or from the centre when they cancel)."""
    symbols = atoms.get_chemical_symbols()
    pos = atoms.positions
    vec = np.zeros(3)
    for j, t in enumerate(symbols):
        if t in ANIONS:
            r = pos[j] - pos[i]
            dist = np.linalg.norm(r)
            if dist < NEIGHBOUR_FACTOR * (radius(symbols[i]) + radius(t)):
                vec -= r / dist
    radial = pos[i] - pos.mean(axis=0)
    if np.linalg.norm(vec) < 0.3:  # linear or planar neighbours: use the radial direction
        vec = radial if np.linalg.norm(radial) > 1e-6 else np.array([0, 0, 1.0])
    elif np.dot(vec, radial) < 0 and np.linalg.norm(radial) > 1e-6:
        vec = vec + radial / np.linalg.norm(radial)  # keep the ligand outside the cluster
    return vec / np.linalg.norm(vec)


def cap(atoms: Atoms, ligand: str = "NH3", sites: str | int = "auto", seed: int = 0) -> Atoms:
    """``atoms`` with model ligands on its under-coordinated cations.

    sites: ``auto`` caps every cation with fewer than four anion neighbours; an
    integer caps that many, the least coordinated first. The result's ``info``
    says which cations were capped (``sites``), the ligand and how many.
    """
    template = get_ligand(ligand)
    found = capping_sites(atoms)
    if sites != "auto":
        try:
            count = int(sites)
        except (TypeError, ValueError):
            raise InputError(f"--sites must be 'auto' or a number, got {sites!r}") from None
        if count < 1:
            raise InputError(f"--sites must be >= 1, got {count}")
        found = found[:count]
    if not found:
        raise InputError(f"{atoms.get_chemical_formula()} has no under-coordinated Cd/Zn/Hg to cap")
    rng = np.random.default_rng(seed)
    symbols = list(atoms.get_chemical_symbols())
    pos = list(atoms.positions)
    for i, _ in found:
        axis = _outward(atoms, i)
        donor = atoms.positions[i] + METAL_N[symbols[i]] * axis
        frame = _frame(axis)
        best: np.ndarray | None = None
        best_gap = -np.inf
        # turn the ligand about the M-N axis to the orientation farthest from everything placed
        for turn in rng.permutation(24) * (2 * np.pi / 24):
            c, s = np.cos(turn), np.sin(turn)
            spin = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
            placed = donor + template.positions @ spin.T @ frame.T
            others = np.array(pos)
            gap = np.min(np.linalg.norm(placed[1:, None, :] - others[None, :, :], axis=-1))
            if gap > best_gap:
                best, best_gap = placed, gap
        if best is None:  # every gap NaN
            raise InputError(f"cannot place a ligand on atom {i}: non-finite distances")
        symbols += list(template.symbols)
        pos += list(best)
    capped = Atoms(symbols, positions=np.array(pos))
    capped.info.update(ligand=template.name, ligands=len(found), sites=" ".join(str(i) for i, _ in found))
    return capped
