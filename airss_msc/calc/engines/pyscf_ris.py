"""Tamm-Dancoff excitations with a resolution of the identity in the response, and TDA-ris.

TDA-ris (Zhou, Della Sala and Parker, J. Phys. Chem. Lett. 14, 1968 (2023)) keeps the Kohn-Sham
ground state as it is and approximates only the response: the two-electron integrals of the TDA
matrix by a resolution of the identity in a *minimal* auxiliary basis (one s Gaussian per atom,
exponent ``theta / R_A**2`` with the atom's radius ``R_A``, ``theta`` = 0.2), and no
exchange-correlation kernel. On organic molecules its authors report about 0.06 eV from full TDDFT
at a few hundred times less cost; the response then costs seconds where the full TDA-PBE0 Davidson
of a 26-atom cluster costs hours of one core (the ground state still costs what it costs).
Whether it tracks TDA-PBE0 on Cd/Zn chalcogenide clusters is measured in BENCHMARKS.md, not
assumed.

The singlet TDA matrix of a closed-shell ground state, with ``B`` the fitted three-index integrals
(``(pq|rs) ~ sum_P B_pq^P B_rs^P``) and ``a_x`` the functional's fraction of exact exchange::

    A_ia,jb = (e_a - e_i) delta_ij delta_ab + 2 (ia|jb) - a_x (ij|ab)

and of an unrestricted one (an open shell, or a broken-symmetry solution of an even-electron
metal-rich cluster) the spin-conserving matrix over both spins, ``(ia|jb)`` between them and the
exchange term within each. :func:`ri_tda` solves it for any auxiliary basis (with the full
JK-fitting basis and ``a_x`` = 1 it is density-fitted TDA-Hartree-Fock exactly, restricted or
unrestricted, the checks in the tests); :func:`ris_tda` is it on the minimal basis. Pure
arithmetic on a converged PySCF mean field; no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from airss_msc.errors import InputError

#: Atomic radii (Angstrom) of Ghosh and Biswas, J. Mol. Struct. THEOCHEM 865, 60 (2008), the radii
#: TDDFT-ris is parametrised on; the elements of the project's clusters and ligands.
GB_RADII_ANGSTROM = {
    "H": 0.5292,
    "C": 0.6513,
    "N": 0.5428,
    "O": 0.4652,
    "S": 0.8739,
    "Zn": 1.6654,
    "Se": 1.0424,
    "Cd": 1.9465,
    "Te": 1.2183,
}
#: The one global parameter of TDDFT-ris (exponent = theta / R_A**2, R_A in Bohr).
RIS_THETA = 0.2
BOHR_ANGSTROM = 0.52917721092
#: Davidson: residual norm of a converged root (Hartree) and iteration limit.
RIS_TOL = 1e-5
RIS_MAX_CYCLE = 100


@dataclass(frozen=True)
class RIExcitations:
    """Singlet excitations from :func:`ri_tda`: energies (Hartree), length-gauge oscillator
    strengths, whether each root converged, and the auxiliary functions used."""

    energies: np.ndarray
    strengths: np.ndarray
    converged: np.ndarray
    n_auxiliary: int


def minimal_auxiliary_basis(symbols: Sequence[str], theta: float = RIS_THETA, with_p: bool = False) -> dict:
    """PySCF basis input of TDA-ris: per element one normalised s Gaussian (and, with ``with_p``,
    a p of the same exponent on every atom but H: TDA-ris+p)."""
    basis: dict[str, list] = {}
    for el in sorted(set(symbols)):
        if el not in GB_RADII_ANGSTROM:
            raise InputError(f"TDA-ris has no atomic radius for {el} (known: {', '.join(GB_RADII_ANGSTROM)})")
        alpha = theta / (GB_RADII_ANGSTROM[el] / BOHR_ANGSTROM) ** 2
        shells = [[0, [alpha, 1.0]]]
        if with_p and el != "H":
            shells.append([1, [alpha, 1.0]])
        basis[el] = shells
    return basis


def exact_exchange_fraction(mf: Any) -> float:
    """The fraction of exact exchange of ``mf``'s functional (0 for PBE, 0.25 for PBE0; 1 for HF).
    Range-separated functionals are refused: their response needs a second, attenuated fit."""
    if not hasattr(mf, "xc"):
        return 1.0  # Hartree-Fock
    omega, _, hyb = mf._numint.rsh_and_hybrid_coeff(mf.xc, spin=mf.mol.spin)
    if omega != 0:
        raise InputError(f"TDA-ris here handles global hybrids and pure functionals, not {mf.xc}")
    return float(hyb)


@dataclass(frozen=True)
class _Spin:
    """One spin channel's part of the response: occupied and virtual orbitals, orbital-energy
    differences (Hartree) and the fitted three-index integrals (ia, ij, ab blocks)."""

    co: np.ndarray
    cv: np.ndarray
    de: np.ndarray
    b_ia: np.ndarray
    b_ij: np.ndarray | None
    b_ab: np.ndarray | None

    @property
    def size(self) -> int:
        return self.co.shape[1] * self.cv.shape[1]


def _fitted_integrals(mol: Any, auxbasis: Any) -> tuple[np.ndarray, int]:
    """(mu nu|P) V^-1/2 (V: the Coulomb metric of the fitting functions) and the number of them."""
    from pyscf import df, gto, lib

    # the fitting functions on the same atoms (no ECP: they enter only two- and three-centre integrals)
    auxmol = gto.M(atom=mol._atom, basis=auxbasis, unit="Bohr", charge=mol.charge, spin=mol.spin, verbose=0)
    metric = auxmol.intor("int2c2e")
    w, u = np.linalg.eigh(metric)
    keep = w > 1e-10 * w.max()
    half = u[:, keep] / np.sqrt(w[keep])
    eri3 = df.incore.aux_e2(mol, auxmol, intor="int3c2e", aosym="s1")
    return lib.einsum("mnP,PQ->mnQ", eri3, half), auxmol.nao_nr()


def _spin(e: np.ndarray, c: np.ndarray, occupied: np.ndarray, eri3: np.ndarray, exchange: bool) -> _Spin:
    from pyscf import lib

    co, cv = c[:, occupied], c[:, ~occupied]
    de = (e[~occupied][None, :] - e[occupied][:, None]).ravel()
    b_ia = lib.einsum("mi,mnP,na->iaP", co, eri3, cv).reshape(co.shape[1] * cv.shape[1], -1)
    b_ij = lib.einsum("mi,mnP,nj->ijP", co, eri3, co) if exchange else None
    b_ab = lib.einsum("ma,mnP,nb->abP", cv, eri3, cv) if exchange else None
    return _Spin(co, cv, de, b_ia, b_ij, b_ab)


def ri_tda(mf: Any, nstates: int, auxbasis: Any, a_x: float | None = None) -> RIExcitations:
    """The ``nstates`` lowest states of the TDA matrix above, its integrals fitted in ``auxbasis``
    (a PySCF basis name or dict), no XC kernel, on the converged ground state ``mf``: singlets of a
    restricted one; of an unrestricted one (an open shell, or the broken-symmetry solution the SCF's
    unrestricted check keeps) the spin-conserving states, ``A = de + (ia|jb) - a_x delta_st (ij|ab)``
    over both spins."""
    from pyscf import lib

    mo_occ = np.asarray(mf.mo_occ)
    unrestricted = mo_occ.ndim == 2
    full = 1.0 if unrestricted else 2.0
    if not np.all(np.isin(mo_occ, (0.0, full))):
        raise InputError("TDA-ris needs integer occupations (a smeared ground state has none)")
    mol = mf.mol
    a_x = exact_exchange_fraction(mf) if a_x is None else float(a_x)
    eri3, naux = _fitted_integrals(mol, auxbasis)
    energies_mo, coeffs = np.asarray(mf.mo_energy), np.asarray(mf.mo_coeff)
    if unrestricted:
        spins = [_spin(energies_mo[k], coeffs[k], mo_occ[k] > 0, eri3, bool(a_x)) for k in (0, 1)]
    else:
        spins = [_spin(energies_mo, coeffs, mo_occ > 0, eri3, bool(a_x))]
    del eri3
    # a closed-shell singlet couples its two spins into 2 (ia|jb); separate spins once each
    coulomb = 1.0 if unrestricted else 2.0
    sizes = [sp.size for sp in spins]
    cuts = np.cumsum(sizes)[:-1]
    de = np.concatenate([sp.de for sp in spins])
    dim = int(sum(sizes))
    nstates = min(int(nstates), dim)

    def matvec(xs: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for x in xs:
            parts = np.split(x, cuts)
            fitted = sum(sp.b_ia.T @ xp for sp, xp in zip(spins, parts, strict=True))
            ax = []
            for sp, xp in zip(spins, parts, strict=True):
                y = sp.de * xp + coulomb * (sp.b_ia @ fitted)
                if a_x:
                    t = lib.einsum("ijP,jb->ibP", sp.b_ij, xp.reshape(sp.co.shape[1], sp.cv.shape[1]))
                    y -= a_x * lib.einsum("ibP,abP->ia", t, sp.b_ab).ravel()
                ax.append(y)
            out.append(np.concatenate(ax))
        return out

    def precond(dx: np.ndarray, e0: float, *_: Any) -> np.ndarray:
        diag = de - e0
        diag[np.abs(diag) < 1e-8] = 1e-8
        return dx / diag

    lowest = np.argsort(de)[: max(nstates + 3, 2 * nstates)]
    guess = [np.eye(1, dim, k).ravel() for k in lowest]
    conv, energies, vectors = lib.davidson1(
        matvec,
        guess,
        precond,
        tol=RIS_TOL**2,
        tol_residual=RIS_TOL,
        max_cycle=RIS_MAX_CYCLE,
        max_space=max(40, 8 * nstates),
        nroots=nstates,
        verbose=0,
    )
    energies = np.atleast_1d(np.asarray(energies, dtype=float))
    with mol.with_common_orig(_charge_centre(mol)):
        dip = mol.intor_symmetric("int1e_r", comp=3)
    d_ia = np.concatenate([lib.einsum("xmn,mi,na->xia", dip, sp.co, sp.cv).reshape(3, -1) for sp in spins], axis=1)
    # transition dipole sum X d over both spins, |X| = 1; a closed-shell singlet has sqrt(2) of one spin's
    scale = 1.0 if unrestricted else np.sqrt(2.0)
    mu = np.array([scale * (d_ia @ (v / np.linalg.norm(v))) for v in vectors])
    strengths = 2.0 / 3.0 * energies * (mu**2).sum(axis=1)
    order = np.argsort(energies)
    return RIExcitations(energies[order], strengths[order], np.atleast_1d(np.asarray(conv, bool))[order], naux)


def ris_tda(mf: Any, nstates: int, theta: float = RIS_THETA, with_p: bool = False) -> RIExcitations:
    """TDA-ris states of the converged ground state ``mf``, restricted or unrestricted (:func:`ri_tda`
    on :func:`minimal_auxiliary_basis`; ``with_p``: TDA-ris+p)."""
    symbols = [mf.mol.atom_pure_symbol(i) for i in range(mf.mol.natm)]
    return ri_tda(mf, nstates, minimal_auxiliary_basis(symbols, theta, with_p))


def _charge_centre(mol: Any) -> np.ndarray:
    charges = mol.atom_charges()
    return np.einsum("i,ix->x", charges, mol.atom_coords()) / charges.sum()
