"""Species-aware duplicate detection for relaxed clusters (pure functions, no I/O).

AIRSS's ``cryan`` compares sorted pair-distance lists that ignore species, so it
merges homotops (a Zn and a Cd swapped on the same frame). Here two clusters are
the same structure only if a rigid motion (optionally with a reflection) maps
every atom onto an atom *of the same element*:

1. Pre-filter: for every unordered species pair (A, B) the sorted A-B distances
   (Angstrom). The RMS difference of these lists is at most twice the aligned
   RMSD (triangle inequality; sorting is the optimal matching of two lists), so
   with ``descriptor_tol = 2 * rmsd_tol`` the filter never rejects a pair that the
   alignment would accept: it only saves time.
2. Decision: optimal superposition. From several starting rotations (principal
   axes, and frames built on matching anchor atoms), alternate a Hungarian
   assignment within each element and a Kabsch rotation until the assignment is
   stable; the structure is a duplicate if the best RMSD <= ``rmsd_tol``.

All lengths in Angstrom, energies in eV.
"""

from __future__ import annotations

import bisect
from collections import Counter
from itertools import combinations_with_replacement

import numpy as np
from ase import Atoms
from scipy.optimize import linear_sum_assignment

#: Refinement sweeps (assignment + rotation) per starting rotation; the
#: assignment is usually stable after 2-3.
_MAX_REFINE = 8
#: Starting rotations tried per handedness, best anchor matches first.
_MAX_STARTS = 48


# --------------------------------------------------------------------------- #
# Descriptor (pre-filter)
# --------------------------------------------------------------------------- #


def composition_key(atoms: Atoms) -> tuple[tuple[str, int], ...]:
    """Hashable composition, e.g. ``(("Cd", 7), ("Se", 13), ("Zn", 6))``."""
    return tuple(sorted(Counter(atoms.get_chemical_symbols()).items()))


def _species_pairs(symbols: list[str]) -> list[tuple[str, str]]:
    return list(combinations_with_replacement(sorted(set(symbols)), 2))


def distance_descriptor(atoms: Atoms) -> dict[tuple[str, str], np.ndarray]:
    """Sorted A-B distances (Angstrom) for every unordered element pair (A <= B).

    Invariant under rotation, translation, reflection and permutation of atoms of
    the same element; unlike cryan's list it keeps Zn-Se apart from Cd-Se.
    """
    symbols = np.array(atoms.get_chemical_symbols())
    pos = atoms.get_positions()
    out: dict[tuple[str, str], np.ndarray] = {}
    for a, b in _species_pairs(list(symbols)):
        pa, pb = pos[symbols == a], pos[symbols == b]
        d = np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=-1)
        if a == b:
            d = d[np.triu_indices(len(pa), k=1)]
        out[(a, b)] = np.sort(d.ravel())
    return out


def _descriptor_vector(atoms: Atoms) -> np.ndarray:
    """All sorted per-pair lists concatenated in a fixed order (same composition -> same length)."""
    desc = distance_descriptor(atoms)
    return np.concatenate([desc[k] for k in sorted(desc)]) if desc else np.zeros(0)


def descriptor_difference(a: Atoms, b: Atoms) -> float:
    """RMS difference (Angstrom) of the species-resolved sorted distance lists.

    ``inf`` for different compositions. Bounded by 2 x the aligned RMSD.
    """
    if composition_key(a) != composition_key(b):
        return float("inf")
    va, vb = _descriptor_vector(a), _descriptor_vector(b)
    if va.size == 0:
        return 0.0
    return float(np.sqrt(np.mean((va - vb) ** 2)))


# --------------------------------------------------------------------------- #
# Alignment (decision)
# --------------------------------------------------------------------------- #


def _kabsch(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Proper rotation R minimising sum |R p_i - q_i|^2 (both centred)."""
    h = p.T @ q
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def _frame(v1: np.ndarray, v2: np.ndarray) -> np.ndarray | None:
    """Orthonormal frame (rows) from two non-parallel vectors, or None if degenerate."""
    n1 = np.linalg.norm(v1)
    if n1 < 1e-6:
        return None
    e1 = v1 / n1
    w = v2 - (v2 @ e1) * e1
    n2 = np.linalg.norm(w)
    if n2 < 1e-3 * max(1.0, float(np.linalg.norm(v2))):
        return None
    e2 = w / n2
    return np.array([e1, e2, np.cross(e1, e2)])


def _principal_axes(pos: np.ndarray) -> np.ndarray:
    """Eigenvectors (rows) of the geometric gyration tensor, largest first."""
    _w, v = np.linalg.eigh(pos.T @ pos)
    return v[:, ::-1].T


def _starts(
    pa: np.ndarray, pb: np.ndarray, groups: list[tuple[np.ndarray, np.ndarray]], anchor_tol: float
) -> list[np.ndarray]:
    """Starting rotations R (apply as ``pb @ R.T``) that roughly map b onto a.

    Anchor frames: atom p of a (rarest element, far from the centre) and a second
    atom q making the best-conditioned frame with it; every same-element pair
    (p', q') of b with matching radii and p-q distance gives one frame. If b is
    a duplicate, the true images of p and q are among them. Principal-axis
    frames (4 proper sign choices) are added as a fallback.
    """
    starts: list[tuple[float, np.ndarray]] = []
    ra, rb = np.linalg.norm(pa, axis=1), np.linalg.norm(pb, axis=1)
    el_of_a = np.empty(len(pa), dtype=int)
    el_of_b = np.empty(len(pb), dtype=int)
    for g, (ia, ib) in enumerate(groups):
        el_of_a[ia] = g
        el_of_b[ib] = g
    # p: an atom of the rarest element, farthest out (its direction is best defined).
    cand_p = min((ia for ia, _ in groups), key=len)
    p = int(cand_p[np.argmax(ra[cand_p])])
    # q: maximise |r_p x r_q|, i.e. the best-conditioned second axis.
    cross = np.linalg.norm(np.cross(pa[p], pa), axis=1)
    cross[p] = -1.0
    q = int(np.argmax(cross))
    fa = _frame(pa[p], pa[q]) if len(pa) > 1 else None
    if fa is not None:
        dpq = np.linalg.norm(pa[p] - pa[q])
        bp = np.flatnonzero((el_of_b == el_of_a[p]) & (np.abs(rb - ra[p]) <= anchor_tol))
        bq = np.flatnonzero((el_of_b == el_of_a[q]) & (np.abs(rb - ra[q]) <= anchor_tol))
        for i in bp:
            dist = np.linalg.norm(pb[bq] - pb[i], axis=1)
            for j, d in zip(bq, dist, strict=True):
                if j == i or abs(d - dpq) > anchor_tol:
                    continue
                fb = _frame(pb[i], pb[j])
                if fb is None:
                    continue
                score = abs(rb[i] - ra[p]) + abs(rb[j] - ra[q]) + abs(d - dpq)
                starts.append((score, fa.T @ fb))
    starts.sort(key=lambda t: t[0])
    out = [r for _, r in starts[:_MAX_STARTS]]
    ea, eb = _principal_axes(pa), _principal_axes(pb)
    for s1, s2 in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        sb = eb * np.array([s1, s2, 1.0])[:, None]
        sb[2] = np.cross(sb[0], sb[1])  # keep it a proper rotation
        ea_ = ea.copy()
        ea_[2] = np.cross(ea_[0], ea_[1])
        out.append(ea_.T @ sb)
    return out


def _refine(pa: np.ndarray, pb: np.ndarray, groups, rot: np.ndarray) -> float:
    """Alternate per-element Hungarian assignment and Kabsch rotation; return RMSD."""
    n = len(pa)
    perm = np.arange(n)
    prev = None
    rmsd = np.inf
    for _ in range(_MAX_REFINE):
        rb = pb @ rot.T
        for ia, ib in groups:
            cost = ((pa[ia][:, None, :] - rb[ib][None, :, :]) ** 2).sum(-1)
            rows, cols = linear_sum_assignment(cost)
            perm[ia[rows]] = ib[cols]
        if prev is not None and np.array_equal(perm, prev):
            break
        prev = perm.copy()
        rot = _kabsch(pb[perm], pa)
        rmsd = float(np.sqrt(np.mean(((pb[perm] @ rot.T) - pa) ** 2) * 3.0))
    return rmsd


def _element_groups(sa: np.ndarray, sb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.flatnonzero(sa == el), np.flatnonzero(sb == el)) for el in sorted(set(sa))]


def _best_rmsd(a: Atoms, b: Atoms, allow_mirror: bool, stop_below: float) -> float:
    sa, sb = np.array(a.get_chemical_symbols()), np.array(b.get_chemical_symbols())
    # The plain centroid is the optimal translation for any assignment.
    pa = a.get_positions() - a.get_positions().mean(axis=0)
    pb0 = b.get_positions() - b.get_positions().mean(axis=0)
    groups = _element_groups(sa, sb)
    if len(pa) == 1:
        return 0.0
    # Anchor radii may differ by more than the RMSD for a single atom.
    anchor_tol = max(0.5, 5.0 * stop_below) if np.isfinite(stop_below) else 0.5
    best = np.inf
    # Inversion turns every proper rotation into an improper one (mirror images).
    for pb in [pb0, -pb0] if allow_mirror else [pb0]:
        for rot in _starts(pa, pb, groups, anchor_tol):
            best = min(best, _refine(pa, pb, groups, rot))
            if best <= stop_below:
                return best
    return float(best)


def alignment_rmsd(a: Atoms, b: Atoms, *, allow_mirror: bool = True) -> float:
    """Smallest RMSD (Angstrom, over all atoms) after superposition with
    element-respecting atom assignment; ``inf`` for different compositions.

    Heuristic global search (multiple starts + local refinement): an upper bound
    on the true optimum, exact in practice for clusters that really match.
    """
    if composition_key(a) != composition_key(b):
        return float("inf")
    return _best_rmsd(a, b, allow_mirror, stop_below=-1.0)


def same_structure(
    a: Atoms, b: Atoms, *, rmsd_tol: float = 0.1, descriptor_tol: float | None = None, allow_mirror: bool = True
) -> bool:
    """True if ``b`` is ``a`` up to rotation, translation, permutation of atoms
    of the same element (and a reflection if ``allow_mirror``) within
    ``rmsd_tol`` Angstrom RMSD.

    ``descriptor_tol`` (Angstrom, RMS of sorted species-pair distances) is the
    cheap pre-filter; None means ``2 * rmsd_tol``, which provably never rejects
    a pair the alignment would accept. Different compositions are never the same.
    Homotops (two elements swapped) are different unless a symmetry operation of
    the frame maps one onto the other.
    """
    if composition_key(a) != composition_key(b):
        return False
    dtol = 2.0 * rmsd_tol if descriptor_tol is None else descriptor_tol
    if descriptor_difference(a, b) > dtol:
        return False
    return _best_rmsd(a, b, allow_mirror, stop_below=rmsd_tol) <= rmsd_tol


def group_duplicates(
    images: list[Atoms],
    energies: list[float],
    *,
    energy_tol: float = 1e-3,
    rmsd_tol: float = 0.1,
    descriptor_tol: float | None = None,
    allow_mirror: bool = True,
) -> list[list[int]]:
    """Group duplicate structures; returns lists of indices into ``images``.

    energies: total energies (eV), one per image.
    energy_tol: eV **per atom**; two structures of N atoms can merge only if
        their energies differ by at most ``energy_tol * N`` (default 1 meV/atom,
        26 meV for 26 atoms: wide enough for loosely converged relaxations of the
        same minimum; the structural test decides, the window only saves work).

    Each group is sorted by energy, lowest first: ``group[0]`` is the
    representative. A structure joins the lowest-energy existing group whose
    representative it matches (:func:`same_structure`); it is compared with
    representatives only, so groups do not chain. Different compositions never
    merge. Groups are ordered by composition (first appearance in ``images``),
    then by representative energy. Every index appears in exactly one group.

    Cost: structures are visited in energy order and compared only with
    representatives inside the energy window, the descriptor filter is
    vectorised, and only survivors are aligned; fine for ~1000 per composition.
    """
    if len(images) != len(energies):
        raise ValueError(f"{len(images)} images but {len(energies)} energies")
    e = np.asarray(energies, dtype=float)
    if not np.all(np.isfinite(e)):
        raise ValueError("energies must be finite numbers (eV)")
    dtol = 2.0 * rmsd_tol if descriptor_tol is None else descriptor_tol

    by_comp: dict[tuple, list[int]] = {}
    for i, atoms in enumerate(images):
        by_comp.setdefault(composition_key(atoms), []).append(i)

    result: list[list[int]] = []
    for indices in by_comp.values():
        order = sorted(indices, key=lambda i: (e[i], i))
        window = energy_tol * len(images[order[0]])
        desc = {i: _descriptor_vector(images[i]) for i in order}
        rep_idx: list[int] = []  # representatives, in energy order
        rep_e: list[float] = []
        rep_desc: list[np.ndarray] = []
        groups: list[list[int]] = []
        for i in order:
            lo = bisect.bisect_left(rep_e, e[i] - window)
            joined = False
            if lo < len(rep_idx):
                cand = np.arange(lo, len(rep_idx))
                d = desc[i]
                diff = np.sqrt(np.mean((np.array(rep_desc[lo:]) - d) ** 2, axis=1)) if d.size else np.zeros(len(cand))
                for g in cand[diff <= dtol]:  # lowest-energy representative first
                    if _best_rmsd(images[rep_idx[g]], images[i], allow_mirror, rmsd_tol) <= rmsd_tol:
                        groups[g].append(i)
                        joined = True
                        break
            if not joined:
                rep_idx.append(i)
                rep_e.append(float(e[i]))
                rep_desc.append(desc[i])
                groups.append([i])
        result.extend(groups)
    return result
