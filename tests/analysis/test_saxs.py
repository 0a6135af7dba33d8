"""Electron-weighted size and Debye/Guinier scattering (Angstrom, 1/Angstrom)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from airss_msc.analysis.saxs import (
    debye_intensity,
    equivalent_diameter,
    equivalent_diameter_nm,
    guinier_fit,
    guinier_rg,
    radius_of_gyration,
)
from airss_msc.generation.generate import generate_cluster


def test_single_atom_has_zero_rg():
    assert radius_of_gyration(Atoms("Cd", positions=[[1.0, -2.0, 3.0]])) == 0.0


def test_homonuclear_dimer_rg_is_half_distance():
    d = 2.47
    assert radius_of_gyration(Atoms("Se2", positions=[[0, 0, 0], [d, 0, 0]])) == pytest.approx(d / 2)


def test_rg_is_electron_weighted():
    # Cd (Z=48) and Se (Z=34) at distance d: centre is nearer Cd, and
    # Rg^2 = d^2 Z1 Z2 / (Z1 + Z2)^2; an unweighted Rg would give d/2.
    d = 2.6
    rg = radius_of_gyration(Atoms("CdSe", positions=[[0, 0, 0], [0, 0, d]]))
    assert rg == pytest.approx(d * np.sqrt(48 * 34) / 82)


def test_equivalent_diameter_of_homogeneous_sphere():
    # A homogeneous sphere of radius R has Rg = sqrt(3/5) R, so D must be 2R.
    radius = 5.0
    assert equivalent_diameter(np.sqrt(3 / 5) * radius) == pytest.approx(2 * radius)
    a = Atoms("Se2", positions=[[0, 0, 0], [2.0, 0, 0]])
    assert equivalent_diameter_nm(a) == pytest.approx(equivalent_diameter(1.0) / 10)


def test_debye_forward_intensity_and_dimer():
    a = generate_cluster("Cd13Se13", 0)
    q = np.array([0.0, 0.1, 0.5])
    intensity = debye_intensity(a, q)
    assert intensity[0] == pytest.approx(a.get_atomic_numbers().sum() ** 2, rel=1e-12)
    assert intensity.shape == q.shape and intensity[1] > intensity[2]
    # Dimer by hand: I = 2 Z^2 (1 + sin(q d) / (q d)).
    d, z = 2.3, 34
    dimer = Atoms("Se2", positions=[[0, 0, 0], [0, d, 0]])
    qs = np.array([0.0, 0.7, 2.0])
    expect = 2 * z**2 * (1 + np.sinc(qs * d / np.pi))
    np.testing.assert_allclose(debye_intensity(dimer, qs), expect, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_guinier_fit_of_debye_reproduces_rg(seed):
    a = generate_cluster("Cd13Se13", seed)
    rg = radius_of_gyration(a)
    q = np.linspace(0.0, 0.6, 121)  # well past q Rg = 1.3 so the q-range cut matters
    fit_rg, i0 = guinier_fit(q, debye_intensity(a, q))
    assert fit_rg == pytest.approx(rg, rel=0.02)
    assert i0 == pytest.approx(a.get_atomic_numbers().sum() ** 2, rel=0.02)
    assert guinier_rg(q, debye_intensity(a, q)) == fit_rg


def test_guinier_exact_on_gaussian_profile():
    rg = 4.0
    q = np.linspace(0.01, 1.0, 200)
    assert guinier_rg(q, 7.0 * np.exp(-((q * rg) ** 2) / 3)) == pytest.approx(rg, rel=1e-9)


def test_guinier_refuses_too_few_low_q_points():
    q = np.array([0.5, 0.8, 1.0, 1.5])
    with pytest.raises(ValueError, match="in the Guinier range"):
        guinier_rg(q, np.exp(-((q * 4.0) ** 2) / 3))
