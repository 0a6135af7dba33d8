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

:func:`ri_tda` solves it for any auxiliary basis (with the full JK-fitting basis and ``a_x`` = 1 it
is density-fitted TDA-Hartree-Fock exactly, the check in the tests); :func:`ris_tda` is it on the
minimal basis. Pure arithmetic on a converged PySCF mean field; no files.
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


def ri_tda(mf: Any, nstates: int, auxbasis: Any, a_x: float | None = None) -> RIExcitations:
    """The ``nstates`` lowest singlets of the TDA matrix above, its integrals fitted in ``auxbasis``
    (a PySCF basis name or dict), no XC kernel, on the converged restricted ground state ``mf``."""
    from pyscf import df, gto, lib

    mo_occ = np.asarray(mf.mo_occ)
    if mo_occ.ndim != 1:
        raise InputError("TDA-ris here needs a closed-shell (restricted) ground state")
    if not np.all(np.isin(mo_occ, (0.0, 2.0))):
        raise InputError("TDA-ris needs integer occupations (a smeared ground state has none)")
    mol = mf.mol
    a_x = exact_exchange_fraction(mf) if a_x is None else float(a_x)
    e, c = np.asarray(mf.mo_energy), np.asarray(mf.mo_coeff)
    occ, vir = mo_occ > 0, mo_occ == 0
    co, cv = c[:, occ], c[:, vir]
    nocc, nvir = co.shape[1], cv.shape[1]
    nstates = min(int(nstates), nocc * nvir)
    de = (e[vir][None, :] - e[occ][:, None]).ravel()

    # the fitting functions on the same atoms (no ECP: they enter only two- and three-centre integrals)
    auxmol = gto.M(atom=mol._atom, basis=auxbasis, unit="Bohr", charge=mol.charge, spin=mol.spin, verbose=0)
    naux = auxmol.nao_nr()
    # (mu nu|P) V^-1/2, with V the Coulomb metric of the fitting functions
    metric = auxmol.intor("int2c2e")
    w, u = np.linalg.eigh(metric)
    keep = w > 1e-10 * w.max()
    half = u[:, keep] / np.sqrt(w[keep])
    eri3 = df.incore.aux_e2(mol, auxmol, intor="int3c2e", aosym="s1")
    eri3 = lib.einsum("mnP,PQ->mnQ", eri3, half)
    b_ia = lib.einsum("mi,mnP,na->iaP", co, eri3, cv).reshape(nocc * nvir, -1)
    b_ij = lib.einsum("mi,mnP,nj->ijP", co, eri3, co) if a_x else None
    b_ab = lib.einsum("ma,mnP,nb->abP", cv, eri3, cv) if a_x else None
    del eri3

    def matvec(xs: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for x in xs:
            ax = de * x + 2.0 * (b_ia @ (b_ia.T @ x))
            if a_x:
                t = lib.einsum("ijP,jb->ibP", b_ij, x.reshape(nocc, nvir))
                ax -= a_x * lib.einsum("ibP,abP->ia", t, b_ab).ravel()
            out.append(ax)
        return out

    def precond(dx: np.ndarray, e0: float, *_: Any) -> np.ndarray:
        diag = de - e0
        diag[np.abs(diag) < 1e-8] = 1e-8
        return dx / diag

    lowest = np.argsort(de)[: max(nstates + 3, 2 * nstates)]
    guess = [np.eye(1, nocc * nvir, k).ravel() for k in lowest]
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
    d_ia = lib.einsum("xmn,mi,na->xia", dip, co, cv).reshape(3, -1)
    # a singlet from a closed shell: transition dipole sqrt(2) sum_ia X_ia d_ia with |X| = 1
    mu = np.array([np.sqrt(2.0) * (d_ia @ (v / np.linalg.norm(v))) for v in vectors])
    strengths = 2.0 / 3.0 * energies * (mu**2).sum(axis=1)
    order = np.argsort(energies)
    return RIExcitations(energies[order], strengths[order], np.atleast_1d(np.asarray(conv, bool))[order], naux)


def ris_tda(mf: Any, nstates: int, theta: float = RIS_THETA, with_p: bool = False) -> RIExcitations:
    """TDA-ris singlets of the converged restricted ground state ``mf`` (:func:`ri_tda` on
    :func:`minimal_auxiliary_basis`; ``with_p``: TDA-ris+p)."""
    symbols = [mf.mol.atom_pure_symbol(i) for i in range(mf.mol.natm)]
    return ri_tda(mf, nstates, minimal_auxiliary_basis(symbols, theta, with_p))


def _charge_centre(mol: Any) -> np.ndarray:
    charges = mol.atom_charges()
    return np.einsum("i,ix->x", charges, mol.atom_coords()) / charges.sum()
