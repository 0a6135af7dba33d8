"""Cluster size as SAXS sees it (pure functions, no I/O).

X-rays scatter from electrons, so sizes are electron-weighted with weights Z
(the forward-scattering limit of the atomic form factor). Lengths in Angstrom,
q in 1/Angstrom (q = 4 pi sin(theta) / lambda), unless a name says ``_nm``.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

#: Guinier's law holds to about 1 % in ln I for q Rg below this (compact particles).
GUINIER_QRG_MAX = 1.3

#: D = 2 sqrt(5/3) Rg: the diameter of the homogeneous sphere with this Rg.
_SPHERE_FACTOR = 2.0 * np.sqrt(5.0 / 3.0)

#: Pairs x q values evaluated at once by :func:`debye_intensity` (bounds memory).
_DEBYE_CHUNK = 4_000_000


def _electron_weights(atoms: Atoms) -> np.ndarray:
    z = atoms.get_atomic_numbers().astype(float)
    if len(z) == 0 or z.sum() <= 0:
        raise ValueError("no electrons: need at least one atom with Z > 0 (dummy X has Z = 0)")
    return z


def radius_of_gyration(atoms: Atoms) -> float:
    """Electron-weighted radius of gyration (Angstrom).

    Rg = sqrt(sum Z_i |r_i - r_c|^2 / sum Z_i), r_c the electron-weighted centre.
    """
    z = _electron_weights(atoms)
    pos = atoms.get_positions()
    rc = z @ pos / z.sum()
    return float(np.sqrt(z @ ((pos - rc) ** 2).sum(axis=1) / z.sum()))


def equivalent_diameter(rg: float) -> float:
    """Diameter (same unit as ``rg``, normally Angstrom) of the homogeneous
    sphere with radius of gyration ``rg``: D = 2 sqrt(5/3) Rg."""
    return float(_SPHERE_FACTOR * rg)


def equivalent_diameter_nm(atoms: Atoms) -> float:
    """Equivalent sphere diameter of a cluster in nm (as SAXS papers quote it)."""
    return equivalent_diameter(radius_of_gyration(atoms)) / 10.0


def debye_intensity(atoms: Atoms, q: np.ndarray) -> np.ndarray:
    """Debye-equation scattering I(q) = sum_ij Z_i Z_j sin(q r_ij) / (q r_ij)
    (electrons^2; q in 1/Angstrom). I(0) = (sum Z)^2.

    Form factors are the constant f = Z (no q dependence, no solvent): fine for
    the Guinier region of sub-nm clusters, not for wide-angle peak shapes.
    """
    z = _electron_weights(atoms)
    q = np.asarray(q, dtype=float)
    flat = np.atleast_1d(q).ravel()
    pos = atoms.get_positions()
    iu, ju = np.triu_indices(len(z), k=1)
    r = np.linalg.norm(pos[iu] - pos[ju], axis=1)
    w = 2.0 * z[iu] * z[ju]  # each unordered pair counts twice
    out = np.full(flat.shape, float(z @ z))  # i == j terms
    if r.size:
        step = max(1, _DEBYE_CHUNK // r.size)
        for s in range(0, flat.size, step):
            qr = np.outer(flat[s : s + step], r)
            # np.sinc(t) = sin(pi t)/(pi t) with the t = 0 limit handled.
            out[s : s + step] += np.sinc(qr / np.pi) @ w
    return out.reshape(q.shape)


def guinier_fit(
    q: np.ndarray, intensity: np.ndarray, *, qrg_max: float = GUINIER_QRG_MAX, max_iter: int = 50
) -> tuple[float, float]:
    """Guinier fit ln I = ln I0 - (Rg^2 / 3) q^2; returns (Rg in Angstrom, I0).

    Starts from the points with I above half the lowest-q intensity (Guinier
    gives I/I0 = 0.57 at q Rg = 1.3), then refits using q <= qrg_max / Rg until
    the point set stops changing. Needs at least 3 points in the final range:
    sample q finely below ~1/Rg. Raises ValueError when no Guinier region is found.
    """
    q = np.asarray(q, dtype=float).ravel()
    i = np.asarray(intensity, dtype=float).ravel()
    if q.shape != i.shape:
        raise ValueError("q and I must have the same length")
    keep = (i > 0) & np.isfinite(i) & np.isfinite(q) & (q >= 0)
    q, i = q[keep], i[keep]
    order = np.argsort(q)
    q, i = q[order], i[order]
    if q.size < 3:
        raise ValueError("need at least 3 points with I > 0 for a Guinier fit")
    mask = i >= 0.5 * i[0]

    def fit(m: np.ndarray) -> tuple[float, float]:
        if m.sum() < 3:
            raise ValueError(f"only {int(m.sum())} points in the Guinier range q Rg <= {qrg_max}; sample lower q")
        slope, intercept = np.polyfit(q[m] ** 2, np.log(i[m]), 1)
        if slope >= 0:
            raise ValueError("ln I does not decrease with q^2: no Guinier region")
        return float(np.sqrt(-3.0 * slope)), float(np.exp(intercept))

    rg, i0 = fit(mask)
    for _ in range(max_iter):
        new = q <= qrg_max / rg
        if np.array_equal(new, mask):
            break
        mask = new
        rg, i0 = fit(mask)
    return rg, i0


def guinier_rg(q: np.ndarray, intensity: np.ndarray, *, qrg_max: float = GUINIER_QRG_MAX) -> float:
    """Radius of gyration (Angstrom) from a Guinier fit; see :func:`guinier_fit`."""
    return guinier_fit(q, intensity, qrg_max=qrg_max)[0]
