"""Absorption spectra from computed excitations (pure functions).

Each excitation (energy E_i in eV, oscillator strength f_i) becomes a Gaussian
in energy with full width at half maximum :data:`DEFAULT_FWHM_EV`; the sum is
reported on a wavelength axis (nm = 1239.84 / eV). The width is a display
choice, not physics: 0.15 eV is typical of the first excitonic peak of
magic-size clusters at room temperature (MSC-399 and its neighbours are
10-20 nm wide, i.e. 0.08-0.16 eV). The band estimate of a structure is its
first bright excitation (f >= :data:`BRIGHT_F`), never a HOMO-LUMO gap.
"""

from __future__ import annotations

import numpy as np

from airss_msc.analysis.bands import HC_EV_NM
from airss_msc.results.record import Excitations

#: Full width at half maximum of each excitation's Gaussian, eV.
DEFAULT_FWHM_EV = 0.15
#: Oscillator strength from which an excitation counts as bright.
BRIGHT_F = 0.01

#: Error of a TDDFT lowest excitation (eV) quoted with every uncalibrated band estimate.
#: Sources: no hybrid functional gets below 0.30 eV RMSE against measured 0-0 energies
#: (organic benchmark, 36 functionals), and RI-CC2, the reference of the II-VI cluster
#: benchmarks, is itself uncertain by 0.2-0.3 eV (Kannar and Szalay, JCTC 2014, 10, 3757);
#: PBE0 is the best of 26 functionals for (MX)6 excitations against RI-CC2, GGAs such as
#: PBE do poorly (Azpiroz, Ugalde and Infante, JCTC 2014). Bare clusters add the missing
#: ligands' shift on top (amines: small; phosphines: blue shifts growing with coverage).
TDDFT_ERROR_EV = 0.3


def band_window_nm(energy_eV: float, error_eV: float = TDDFT_ERROR_EV) -> tuple[float, float]:
    """(shortest, longest) wavelength, nm, of an excitation energy +- ``error_eV``."""
    return HC_EV_NM / (energy_eV + error_eV), HC_EV_NM / max(energy_eV - error_eV, 1e-6)


def broadened(excitations: Excitations, energies_eV: np.ndarray, fwhm_eV: float = DEFAULT_FWHM_EV) -> np.ndarray:
    """Sum of Gaussians (area f_i each, width ``fwhm_eV``) on the energy grid ``energies_eV``."""
    sigma = fwhm_eV / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    e = np.asarray(energies_eV, dtype=float)[:, None]
    centres = np.asarray(excitations.energies_eV, dtype=float)[None, :]
    f = np.asarray(excitations.oscillator_strengths, dtype=float)[None, :]
    return (f * np.exp(-0.5 * ((e - centres) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))).sum(axis=1)


def spectrum_nm(excitations: Excitations, wavelengths_nm: np.ndarray, fwhm_eV: float = DEFAULT_FWHM_EV) -> np.ndarray:
    """The broadened spectrum sampled at ``wavelengths_nm`` (arbitrary units, Gaussian in energy)."""
    return broadened(excitations, HC_EV_NM / np.asarray(wavelengths_nm, dtype=float), fwhm_eV)


def first_bright_nm(excitations: Excitations, threshold: float = BRIGHT_F) -> tuple[float, float] | None:
    """(wavelength nm, f) of the lowest excitation with f >= ``threshold``; None if there is none."""
    found = excitations.first_bright(threshold)
    if found is None:
        return None
    energy, f = found
    return HC_EV_NM / energy, f


def covered_to_nm(excitations: Excitations) -> float | None:
    """Shortest wavelength the computed states reach (nm): bands below it are not covered."""
    if len(excitations.energies_eV) == 0:
        return None
    return HC_EV_NM / float(np.max(excitations.energies_eV))
