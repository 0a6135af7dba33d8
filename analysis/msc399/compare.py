"""The MSC-399 question as a table, from a study database (after `airss-msc study`).

    python analysis/msc399/compare.py analysis/msc399/msc399.db [--top 3] [--energy METHOD]

For every composition: the lowest unique minima (ranked by the database's ranking energy,
or ``--energy``), their energy above the lowest (meV/atom) and Boltzmann population at
298 K, the rank each other stored method gives them (a disagreement is a warning), the first
bright TDDFT excitation (nm, oscillator strength, method) with its error window, the
measured bands inside that window (MSC-399 first), the SAXS-equivalent diameter against the
measured 0.8-1.0 nm, and the most abundant ESI-MS peak of the formula. Nothing here is a
number typed in: everything is computed from the database, the packaged bands and the
literature pairs.
"""

from __future__ import annotations

import argparse

from airss_msc.analysis.bands import HC_EV_NM, default_target
from airss_msc.analysis.isotopes import most_abundant_mass
from airss_msc.analysis.rank import short_method
from airss_msc.analysis.report.model import SAXS_DIAMETER_NM, analyse
from airss_msc.analysis.spectra import TDDFT_ERROR_EV, band_window_nm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--energy", default=None, help="rank by this method (default: the database's choice)")
    args = ap.parse_args()
    result = analyse(args.db, top=args.top, energy=args.energy)
    target = default_target(result.bands)
    energy = result.energy or "each row's own method"
    print(
        f"ranked by {energy}; target {target.name} at "
        f"{target.wavelength_nm:.0f} nm; SAXS diameter {SAXS_DIAMETER_NM[0]}-{SAXS_DIAMETER_NM[1]} nm"
    )
    firm = len(result.calibrating_pairs)
    print(f"excitations uncalibrated ({firm} firm literature pairs in range, 3 needed); window +-{TDDFT_ERROR_EV} eV")
    print(
        f"{'formula':<11}{'rank':>5}{'dE meV/at':>10}{'pop':>6}  {'other ranks':<22}{'bright nm':>10}"
        f"{'window':>10}{'f':>7}  {'method':<26}{'bands in window':<34}{'D nm':>6}{'m/z':>9}"
    )
    for c in result.candidates:
        r = c.row
        others = ", ".join(f"{short_method(m)}:{k}" for m, k in (r.other_ranks or {}).items()) or "-"
        if c.bright_nm is None:
            bright = window = f = method = "-"
        else:
            lo, hi = band_window_nm(HC_EV_NM / c.bright_nm)
            bright, window, f = f"{c.bright_nm:.0f}", f"{lo:.0f}-{hi:.0f}", f"{c.bright_f:.3f}"
            method = c.excitations.method
        bands = ", ".join(sorted((b.name for b in c.near_bright), key=lambda n: n != target.name)) or "-"
        mass = most_abundant_mass(r.formula)
        print(
            f"{r.formula:<11}{r.rank:>5}{r.delta_meV_per_atom:>10.1f}{r.population:>6.2f}  {others:<22}"
            f"{bright:>10}{window:>10}{f:>7}  {method:<26}{bands:<34}"
            f"{(c.diameter_nm or float('nan')):>6.2f}{mass:>9.2f}"
        )
    for note in result.notes:
        print("note:", note)


if __name__ == "__main__":
    main()
