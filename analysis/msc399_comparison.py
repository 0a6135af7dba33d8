"""Recipe: which candidates could explain CdTeSe MSC-399? From a results database.

    python analysis/msc399_comparison.py RESULTS.db [--calibration my_calibration.toml] [--top 3]

For every composition in the database it prints the lowest unique minima with
their energies (meV/atom above the lowest), Boltzmann populations at 298 K,
raw HOMO-LUMO gaps and wavelengths, the calibrated band estimate with its
uncertainty (when a calibration with >= 3 reference pairs is given; see
calibration.toml in this folder), whether the estimate is within its
uncertainty of 399 nm, the SAXS equivalent diameter against the measured
0.8-1.0 nm, and the most abundant ESI-MS peak of the formula. Nothing here is
a number typed in: everything is computed from the database and the measured
bands in bands.toml.
"""

from __future__ import annotations

import argparse

from airss_msc.analysis.bands import default_target
from airss_msc.analysis.isotopes import most_abundant_mass
from airss_msc.analysis.report import SAXS_DIAMETER_NM, analyse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--calibration", default=None)
    ap.add_argument("--top", type=int, default=3)
    args = ap.parse_args()
    result = analyse(args.db, top=args.top, calibration_path=args.calibration)
    target = default_target(result.bands)
    print(f"target: {target.name} at {target.wavelength_nm:.0f} nm ({target.energy_eV:.3f} eV); "
          f"SAXS diameter {SAXS_DIAMETER_NM[0]}-{SAXS_DIAMETER_NM[1]} nm")
    if result.calibration is None:
        print("no calibration: raw gaps only (they are not band predictions)")
    else:
        print(result.calibration.describe())
    print(f"{'formula':<12}{'rank':>5}{'dE meV/at':>10}{'pop':>7}{'gap eV':>8}{'raw nm':>8}"
          f"{'est nm':>14}{'399?':>6}{'D nm':>6}{'SAXS':>6}{'ESI-MS m/z':>11}")
    for c in result.candidates:
        r = c.row
        est = "-" if c.band_nm is None else f"{c.band_nm:.0f}" + (f"+-{c.band_unc_nm:.0f}" if c.band_unc_nm else "")
        hit = "-" if c.band_nm is None or c.band_unc_nm is None else ("yes" if target in c.matches else "no")
        mass = most_abundant_mass(r.formula) if "X" not in r.formula else float("nan")
        print(f"{r.formula:<12}{r.rank:>5}{r.delta_meV_per_atom:>10.1f}{r.population:>7.3f}"
              f"{(r.gap_eV or float('nan')):>8.3f}{(r.wavelength_nm or float('nan')):>8.0f}{est:>14}{hit:>6}"
              f"{(c.diameter_nm or float('nan')):>6.2f}{('yes' if c.in_saxs_range else 'no'):>6}{mass:>11.2f}")
    for note in result.notes:
        print("note:", note)


if __name__ == "__main__":
    main()
