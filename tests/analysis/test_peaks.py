"""ESI-MS peak lists and their assignment (airss_msc.analysis.peaks)."""

from __future__ import annotations

import numpy as np
import pytest

from airss_msc.analysis import isotopes as iso
from airss_msc.analysis import peaks as pk
from airss_msc.errors import InputError

M_E = 5.48579909065e-4  # electron mass, Da


def _mix(species: list[tuple[str, float]]) -> np.ndarray:
    """Centroided synthetic spectrum: predicted patterns summed; lines of two
    species at the same nominal mass merge into one centroid, as on a TOF."""
    lines = sorted((mz, w * y) for f, w in species for mz, y in iso.isotope_pattern(f, min_abundance=1e-3))
    merged: list[list[float]] = []
    for mz, y in lines:
        if merged and mz - merged[-1][0] < 0.25:
            m0, y0 = merged[-1]
            merged[-1] = [(m0 * y0 + mz * y) / (y0 + y), y0 + y]
        else:
            merged.append([mz, y])
    return np.array(merged)


def _at(assignments, mz: float):
    return min(assignments, key=lambda a: abs(a.mz - mz))


def test_synthetic_mixture_assigned_to_the_right_formulas():
    spectrum = _mix([("Cd7TeSe3", 1.0), ("Cd6Te2Se3", 0.6)])
    species = pk.match_species(spectrum)
    assert {s.formula for s in species[:2]} == {"Cd7TeSe3", "Cd6Te2Se3"}
    weights = {s.formula: s.weight for s in species}
    assert weights["Cd6Te2Se3"] / weights["Cd7TeSe3"] == pytest.approx(0.6, rel=0.02)

    assignments = pk.assign_peaks(spectrum)
    for formula in ("Cd7TeSe3", "Cd6Te2Se3"):
        peak = _at(assignments, iso.most_abundant_mass(formula) - M_E)
        assert peak.best.formula == formula
        assert peak.best.species.score > 0.95
    # The two envelopes overlap: a peak between the two maxima lists both.
    shared = _at(assignments, 1159.0)
    assert {"Cd7TeSe3", "Cd6Te2Se3"} <= {c.formula for c in shared.candidates}


def test_noisy_mixture_still_assigned():
    rng = np.random.default_rng(7)
    spectrum = _mix([("Cd7TeSe3", 1.0), ("Cd6Te2Se3", 0.6)])
    spectrum[:, 1] *= 1 + 0.05 * rng.standard_normal(len(spectrum))
    spectrum[:, 0] += 0.005 * rng.standard_normal(len(spectrum))
    spectrum = spectrum[spectrum[:, 1] > 2.0]  # a 2 % noise floor removes the tails
    assignments = pk.assign_peaks(spectrum)
    for formula in ("Cd7TeSe3", "Cd6Te2Se3"):
        assert _at(assignments, iso.most_abundant_mass(formula)).best.formula == formula


def test_pattern_shape_and_mass_separate_near_isobars():
    # Cd2Se2 and Te3 weigh the same to ~0.1 Da: Cd5Te4Se shadows Cd7TeSe3.
    species = pk.match_species(_mix([("Cd5Te4Se", 1.0)]))
    assert species[0].formula == "Cd5Te4Se"
    assert "Cd7TeSe3" in species[0].ambiguous_with
    forced = pk.match_species(_mix([("Cd5Te4Se", 1.0)]), candidates=["Cd7TeSe3"])
    assert forced[0].cosine > 0.9  # the shape alone nearly fits ...
    assert abs(forced[0].mass_error) > 0.05  # ... but the tallest peak is off by ~0.07
    assert forced[0].score < 0.5


def test_profile_spectrum_is_centroided_and_assigned():
    lines = _mix([("Cd7TeSe3", 1.0)])
    grid = np.arange(1120.0, 1185.0, 0.01)
    profile = sum(y * np.exp(-0.5 * ((grid - mz) / 0.04) ** 2) for mz, y in lines)
    peaks = pk.centroid(np.c_[grid, profile])
    strong = lines[lines[:, 1] > 1.0]
    found = np.array(peaks)
    for mz, _ in strong:
        assert np.min(np.abs(found[:, 0] - mz)) < 0.01
    species = pk.match_species(np.c_[grid, profile])
    assert species[0].formula == "Cd7TeSe3"


def test_candidate_formulas_include_binaries_and_off_stoichiometry():
    formulas = pk.candidate_formulas(("Cd", "Te", "Se"), (11, 11))
    assert len(formulas) == 78  # compositions of 11 into 3 parts >= 0
    assert {"Cd7TeSe3", "Cd6Te2Se3", "Cd7Se4", "Cd11"} <= set(formulas)
    assert "Cd7Se4" not in pk.candidate_formulas(("Cd", "Te", "Se"), (11, 11), require_all=True)


def test_read_peaks_csv(tmp_path):
    with_header = tmp_path / "a.csv"
    with_header.write_text("intensity,mz\n10,1151.98\n5.5,1152.98\n")
    assert pk.read_peaks_csv(with_header) == [(1151.98, 10.0), (1152.98, 5.5)]
    bare = tmp_path / "b.csv"
    bare.write_text("# exported\n1151.98, 10\n\n1152.98,5.5\n")
    assert pk.read_peaks_csv(bare) == [(1151.98, 10.0), (1152.98, 5.5)]


@pytest.mark.parametrize(
    "text",
    [
        "mz,intensity\n1151.98,abc\n",
        "1151.98\n",
        "mass,height\n1,2\n",
        "1151.98,-3\n",
        "",
        "mz,intensity\n",
    ],
)
def test_read_peaks_csv_malformed(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        pk.read_peaks_csv(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_crowded_noisy_spectrum_recovers_all_species_and_weights():
    # Seven overlapping species, 5 % noise, a random background peak at every m/z.
    # Cd9Te3Se2 has the near-isobar Cd7Te6; without the mass-error term the fit
    # splits the weight between them.
    truth = {
        "Cd7TeSe3": 1.0,
        "Cd6Te2Se3": 0.8,
        "Cd8Se4": 0.5,
        "Cd9Te3Se2": 0.4,
        "Cd5TeSe4": 0.3,
        "Cd10Te2Se3": 0.3,
        "Cd6Se5": 0.2,
    }
    rng = np.random.default_rng(3)
    spectrum = _mix(list(truth.items()))
    background = np.c_[np.arange(950, 1700) + 0.3, rng.uniform(0, 1.5, 750)]
    spectrum = np.vstack([spectrum, background])
    spectrum[:, 1] *= 1 + 0.05 * rng.standard_normal(len(spectrum))
    species = pk.match_species(spectrum[spectrum[:, 1] > 0.5])
    good = {s.formula: s.weight for s in species if s.score > 0.9}
    assert set(good) == set(truth)
    scale = good["Cd7TeSe3"] / truth["Cd7TeSe3"]
    for formula, w in truth.items():
        assert good[formula] / scale == pytest.approx(w, rel=0.15)


def test_bad_inputs_raise_input_error(tmp_path):
    with pytest.raises(InputError):
        pk.read_peaks_csv(tmp_path / "missing.csv")
    with pytest.raises(InputError):
        pk.assign_peaks([(1151.98, 10.0)], tolerance=0.6)
