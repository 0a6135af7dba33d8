# UNFINISHED cross-check (helper, 2026-11-21): PBE/def2-SVP single points (PySCF) of GFN1-xTB Cd6Se6
# geometries in dft_crosscheck_cd6se6.xyz (segregated Se6+Cd6 minimum, E_GFN1 -698.70 eV, vs the
# Cd-Se drum, E_GFN1 -693.10 eV). Did not finish within 9 min on one core; needs pyscf + ase.
# Usage: python dft_crosscheck_cd6se6.py dft_crosscheck_cd6se6.xyz def2-svp
import sys, time
from ase.io import read
from pyscf import gto, dft
from pyscf.data.nist import HARTREE2EV
frames = read(sys.argv[1], ":")
basis = sys.argv[2] if len(sys.argv) > 2 else "def2-svp"
res = []
for a in frames:
    t = time.time()
    mol = gto.M(atom=[(s, p) for s, p in zip(a.get_chemical_symbols(), a.positions)],
                basis=basis, ecp={"Cd": basis, "Te": basis}, charge=0, spin=0, verbose=0)
    mf = dft.RKS(mol).density_fit()
    mf.xc = "pbe"
    mf.max_cycle = 200
    mf.conv_tol = 1e-7
    mf = mf.newton() if False else mf
    mf.level_shift = 0.2
    e = mf.kernel()
    import numpy as np
    mo_e = mf.mo_energy; nocc = mol.nelectron // 2
    gap = (mo_e[nocc] - mo_e[nocc - 1]) * HARTREE2EV
    res.append((a.info.get("tag"), a.info.get("E_gfn1"), e * HARTREE2EV, gap, mf.converged))
    print(a.info.get("tag"), "E_gfn1=%.3f" % a.info.get("E_gfn1"), "E_pbe=%.3f eV" % (e * HARTREE2EV), "gap=%.2f" % gap,
          "conv", mf.converged, "%.0fs" % (time.time() - t), "nao", mol.nao, flush=True)
ref = res[-1]
for tag, eg, ep, gap, c in res:
    print(f"{tag:20s} dE_gfn1 vs {ref[0]} = {eg - ref[1]:+.2f} eV   dE_pbe = {ep - ref[2]:+.2f} eV")
