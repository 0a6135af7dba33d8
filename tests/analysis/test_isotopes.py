"""Isotope patterns (airss_msc.analysis.isotopes)."""

from __future__ import annotations

import numpy as np
import pytest

from airss_msc.analysis import isotopes as iso
from airss_msc.errors import InputError

M_E = 5.48579909065e-4  # electron mass, Da

# Natural abundances (%) (IUPAC), typed here independently of molmass.
CD = {106: 1.25, 108: 0.89, 110: 12.49, 111: 12.80, 112: 24.13, 113: 12.22, 114: 28.73, 116: 7.49}
SE = {74: 0.89, 76: 9.37, 77: 7.63, 78: 23.77, 80: 49.61, 82: 8.73}
# Lightest-isotope masses (AME/NIST), Da.
CD106, TE120, SE74, SE82 = 105.9064599, 119.9040593, 73.9224759, 81.9166995


def test_single_cd_matches_natural_abundances():
    pattern = iso.isotope_pattern("Cd", min_abundance=0)
    assert len(pattern) == len(CD)
    for (mz, inten), (a, pct) in zip(pattern, sorted(CD.items()), strict=True):
        assert round(mz) == a
        assert inten == pytest.approx(100 * pct / CD[114], abs=1e-6)
    two_tallest = sorted(pattern, key=lambda p: -p[1])[:2]
    assert [round(mz) for mz, _ in two_tallest] == [114, 112]
    assert two_tallest[0][1] == pytest.approx(100.0)
    # Bare cation: one electron removed.
    assert pattern[0][0] == pytest.approx(CD106 - M_E, abs=1e-6)


def test_se2_peak_positions_and_intensities():
    pattern = iso.isotope_pattern("Se2", min_abundance=1e-6)
    nominal = sorted({a + b for a in SE for b in SE})
    # 149, 161, 163 cannot be formed from two Se isotopes.
    assert [round(mz) for mz, _ in pattern] == nominal
    assert pattern[0][0] == pytest.approx(2 * SE74 - M_E, abs=1e-6)
    assert pattern[-1][0] == pytest.approx(2 * SE82 - M_E, abs=1e-6)
    # Bin 158 = 78+80 and 76+82; bin 160 = 80+80 and 78+82 (the tallest).
    f = {a: p / 100 for a, p in SE.items()}
    p158 = 2 * f[78] * f[80] + 2 * f[76] * f[82]
    p160 = f[80] ** 2 + 2 * f[78] * f[82]
    by_nominal = {round(mz): y for mz, y in pattern}
    assert by_nominal[160] == pytest.approx(100.0)
    assert by_nominal[158] == pytest.approx(100 * p158 / p160, rel=1e-3)


def test_mass_conventions_cd7tese3():
    mono = iso.monoisotopic_mass("Cd7TeSe3")
    assert mono == pytest.approx(7 * CD106 + TE120 + 3 * SE74, abs=1e-4)  # 1083.017
    # Not molmass's "monoisotopic" (most abundant isotope per element, 1166.98).
    assert abs(mono - 1166.979) > 1
    top = iso.most_abundant_mass("Cd7TeSe3")
    assert top == pytest.approx(1151.98, abs=0.01)  # nominal mass number 1153
    tallest_mz = max(iso.isotope_pattern("Cd7TeSe3"), key=lambda p: p[1])[0]
    assert tallest_mz == pytest.approx(top - M_E, abs=1e-9)


def test_exact_fine_structure_bins_to_nominal_pattern():
    formula = "Cd2TeSe"
    nominal = iso.isotope_pattern(formula, min_abundance=1e-6)
    exact = np.array(iso.isotope_pattern(formula, mode="exact", min_abundance=1e-9))
    bins = np.rint(exact[:, 0] + 0.3)  # mass defect ~ -0.3 Da for 4 heavy atoms
    totals = {b: exact[bins == b, 1].sum() for b in np.unique(bins)}
    scale = max(totals.values())
    for mz, inten in nominal:
        b = np.rint(mz + 0.3)
        sel = bins == b
        assert 100 * totals[b] / scale == pytest.approx(inten, rel=1e-6)
        centroid = np.dot(exact[sel, 0], exact[sel, 1]) / exact[sel, 1].sum()
        assert centroid == pytest.approx(mz, abs=1e-6)
        assert np.ptp(exact[sel, 0]) < 0.05  # fine structure is only mDa wide


def test_exact_pruning_loses_no_line_above_the_cut():
    full = np.array(iso.isotope_pattern("Cd4TeSe2", mode="exact", min_abundance=1e-7))
    expected = np.sort(full[full[:, 1] >= 0.1, 0])  # >= 1e-3 of the tallest line
    pruned = np.array(iso.isotope_pattern("Cd4TeSe2", mode="exact", min_abundance=1e-3))
    assert len(pruned) == len(expected)
    assert np.allclose(np.sort(pruned[:, 0]), expected, atol=1e-9)


def test_charge_two_halves_mz():
    one = iso.isotope_pattern("Cd6Te2Se3", charge=1)
    two = iso.isotope_pattern("Cd6Te2Se3", charge=2)
    assert [y for _, y in one] == pytest.approx([y for _, y in two])
    for (m1, _), (m2, _) in zip(one, two, strict=True):
        assert m2 == pytest.approx((m1 + M_E - 2 * M_E) / 2, abs=1e-9)


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError):
        iso.isotope_pattern("Cd7TeSe3", charge=0)
    with pytest.raises(InputError):
        iso.isotope_pattern("Cd7TeSe3", mode="fine")
    with pytest.raises(InputError):
        iso.isotope_pattern("X13")
    with pytest.raises(InputError, match="too large"):
        iso.isotope_pattern("Zn7Cd6Se13", mode="exact", min_abundance=1e-9)  # ~1e9 lines: refused
