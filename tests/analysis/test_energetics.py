"""Mixing energies, lower convex hull, Boltzmann populations (energies in eV)."""

from __future__ import annotations

import numpy as np
import pytest

from airss_msc.analysis.energetics import (
    KB_EV,
    boltzmann_populations,
    detect_mixing_pair,
    energy_above_hull,
    lower_hull,
    mixing_energies,
    mixing_energy,
)

# --------------------------------------------------------------------------- mixing

E_CD = -100.0  # Cd13Se13
E_ZN = -90.0  # Zn13Se13


def test_detect_mixing_pair():
    assert detect_mixing_pair(["Zn4Cd9Se13", "Cd13Se13", "Zn13Se13"]) == ("Zn", "Cd")
    assert detect_mixing_pair(["Cd6Te2Se4", {"Cd": 7, "Te": 1, "Se": 3}]) == ("Te", "Se")
    with pytest.raises(ValueError, match="pseudo-binary"):
        detect_mixing_pair(["Zn2Cd2Te2Se2"])  # two elements on both sublattices
    with pytest.raises(ValueError, match="pseudo-binary"):
        detect_mixing_pair(["Cd13Se13"])  # nothing mixes


def test_zncdse_mixing_energy_exact():
    linear = (4 * E_ZN + 9 * E_CD) / 13
    energies = {
        "Cd13Se13": E_CD,
        "Zn13Se13": E_ZN,
        "Zn4Cd9Se13": linear - 0.26,
        "Zn6Cd7Se13": (6 * E_ZN + 7 * E_CD) / 13,
    }
    points = {p.formula: p for p in mixing_energies(energies)}
    assert points["Cd13Se13"].e_mix == 0.0 and points["Zn13Se13"].e_mix == 0.0
    p = points["Zn4Cd9Se13"]
    assert p.x == pytest.approx(4 / 13) and p.n_a == 4 and p.n_sites == 13 and p.n_atoms == 26
    assert p.e_mix == pytest.approx(-0.26, abs=1e-12)
    assert p.e_mix_per_atom == pytest.approx(-0.01, abs=1e-12)
    # An exact linear combination of the end members does not mix.
    assert points["Zn6Cd7Se13"].e_mix == pytest.approx(0.0, abs=1e-12)
    assert [q.formula for q in mixing_energies(energies)] == ["Cd13Se13", "Zn4Cd9Se13", "Zn6Cd7Se13", "Zn13Se13"]


def test_lowest_energy_per_composition_is_used():
    pairs = [
        ("Cd13Se13", E_CD),
        ("Zn13Se13", E_ZN),
        ("Zn13Se13", E_ZN - 1.3),
        ("Zn1Cd12Se13", -99.0),
        ("Se13Cd12Zn", -99.5),
    ]  # same composition, two spellings
    p = {q.formula: q for q in mixing_energies(pairs)}
    assert p["Zn13Se13"].energy == E_ZN - 1.3
    assert p["ZnCd12Se13"].e_mix == pytest.approx(-99.5 - ((E_ZN - 1.3) + 12 * E_CD) / 13)


def test_cdtese_end_members_share_fixed_cation_count():
    # Cd7TeSe3 (x_Te = 1/4) against Cd7Te4 and Cd7Se4; Cd6Te2Se4 against Cd6Te6/Cd6Se6.
    energies = {
        "Cd7Te4": -40.0,
        "Cd7Se4": -44.0,
        "Cd7TeSe3": -43.5,
        "Cd6Te6": -50.0,
        "Cd6Se6": -56.0,
        "Cd6Te2Se4": -54.2,
    }
    p = {q.formula: q for q in mixing_energies(energies)}
    assert p["Cd7TeSe3"].x == 0.25 and p["Cd7TeSe3"].end_a == "Cd7Te4"
    assert p["Cd7TeSe3"].e_mix == pytest.approx(-43.5 - (0.25 * -40.0 + 0.75 * -44.0))
    assert p["Cd6Te2Se4"].e_mix == pytest.approx(-54.2 - (-50.0 / 3 + 2 * -56.0 / 3))
    assert p["Cd6Te2Se4"].e_mix_per_atom == pytest.approx(p["Cd6Te2Se4"].e_mix / 12)
    assert mixing_energy(-43.5, "Cd7TeSe3", ("Te", "Se"), -40.0, -44.0) == pytest.approx(p["Cd7TeSe3"].e_mix)


def test_missing_end_member_is_a_clear_error():
    with pytest.raises(ValueError, match="Zn13Se13"):
        mixing_energies({"Cd13Se13": E_CD, "Zn4Cd9Se13": -97.0})
    with pytest.raises(ValueError, match="Cd7Se4"):
        mixing_energies({"Cd7Te4": -40.0, "Cd7TeSe3": -43.5, "Cd6Te6": -1.0, "Cd6Se6": -1.0})


# --------------------------------------------------------------------------- hull


def test_lower_hull_constructed_case():
    #            0     1      2      3      4     5 (on edge 0-1)  6 (above 2)
    x = np.array([0.0, 0.25, 0.50, 0.75, 1.00, 0.125, 0.50])
    e = np.array([0.0, -0.10, -0.15, -0.02, 0.00, -0.05, -0.10])
    perm = np.array([3, 6, 0, 4, 1, 5, 2])  # unsorted input must not matter
    hull = perm[lower_hull(x[perm], e[perm])]
    assert hull.tolist() == [0, 1, 2, 4]
    above = np.empty(len(x))
    above[perm] = energy_above_hull(x[perm], e[perm])
    # By hand: x=0.75 lies on chord (0.5,-0.15)-(1,0) at -0.075 -> 0.055 above;
    # the collinear x=0.125 point is on the hull; the second x=0.5 point is 0.05 above.
    np.testing.assert_allclose(above, [0, 0, 0, 0.055, 0, 0, 0.05], atol=1e-12)


def test_hull_all_above_line_keeps_only_end_points():
    x = np.linspace(0, 1, 6)
    e = 0.3 * x * (1 - x)  # concave: every interior point is above the tie-line
    assert lower_hull(x, e).tolist() == [0, 5]
    np.testing.assert_allclose(energy_above_hull(x, e), e, atol=1e-12)


# --------------------------------------------------------------------------- Boltzmann


def test_boltzmann_equal_energies():
    np.testing.assert_allclose(boltzmann_populations([-5.0, -5.0, -5.0, -5.0]), 0.25)


def test_boltzmann_one_kT_gap_ratio():
    kt = KB_EV * 298.15  # 25.69 meV
    p = boltzmann_populations([0.0, kt])
    assert p[1] / p[0] == pytest.approx(np.exp(-1.0), rel=1e-12)
    p = boltzmann_populations([1.0, 1.0257], 298.15)
    assert p[1] / p[0] == pytest.approx(np.exp(-1.0), rel=2e-3)
    assert p.sum() == pytest.approx(1.0)


def test_boltzmann_huge_energies_do_not_overflow():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p = boltzmann_populations([-1.0e5, -1.0e5 + 0.05, 1.0e6, np.inf], 300.0)
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0)
    assert p[0] / p[1] == pytest.approx(np.exp(0.05 / (KB_EV * 300.0)))
    assert p[2] == 0.0 and p[3] == 0.0


def test_boltzmann_zero_kelvin_and_bad_input():
    np.testing.assert_allclose(boltzmann_populations([0.1, 0.0, 0.0], 0.0), [0.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="at least one finite value"):
        boltzmann_populations([0.0, np.nan])
    with pytest.raises(ValueError, match="temperature must be finite and >= 0 K"):
        boltzmann_populations([0.0], -1.0)
