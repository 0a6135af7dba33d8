"""Measured bands and gap calibration (airss_msc.analysis.bands)."""

from __future__ import annotations

import numpy as np
import pytest

from airss_msc.analysis import bands as B
from airss_msc.errors import InputError

# (band nm, eV) as the papers tabulate them, typed here independently of bands.toml.
SCIENCE_TABLE = {
    399: 3.107,
    371: 3.342,
    415: 2.988,
    299: 4.147,
    311: 3.987,
    322: 3.850,
    464: 2.672,
    520: 2.384,
    330: 3.757,
    360: 3.444,
    390: 3.179,
}


def test_nm_ev_conversion():
    assert B.nm_to_ev(399) == pytest.approx(3.107, abs=5e-4)
    assert B.ev_to_nm(B.nm_to_ev(415.0)) == pytest.approx(415.0)
    with pytest.raises(InputError):
        B.nm_to_ev(0)


def test_packaged_bands_match_science_table():
    bands = B.load_bands()
    target = B.default_target(bands)
    assert target.name == "CdTeSe MSC-399" and target.wavelength_nm == 399
    by_nm = {b.wavelength_nm: b for b in bands}
    assert 448 in by_nm and by_nm[448].material == "CdTe"
    for nm, ev in SCIENCE_TABLE.items():
        assert by_nm[nm].energy_eV == pytest.approx(ev, abs=1e-3)
        assert by_nm[nm].source


def _se_pred(gaps, bands, x0):
    """Standard error of prediction, matrix form (independent of the module)."""
    X = np.c_[np.ones(len(gaps)), gaps]
    beta, *_ = np.linalg.lstsq(X, bands, rcond=None)
    resid = bands - X @ beta
    s2 = resid @ resid / (len(gaps) - 2)
    x = np.array([1.0, x0])
    return beta, np.sqrt(s2 * (1 + x @ np.linalg.inv(X.T @ X) @ x))


def test_linear_fit_recovers_line_and_prediction_error():
    gaps = np.array([1.6, 1.9, 2.3, 2.6, 3.1])
    exact = [(g, 0.8 * g + 1.2) for g in gaps]
    cal = B.fit_calibration(exact)
    assert cal.slope == pytest.approx(0.8) and cal.intercept == pytest.approx(1.2)
    assert cal.predict(2.0)[0] == pytest.approx(2.8)

    noise = np.array([0.03, -0.02, 0.01, -0.04, 0.02])
    bands = 0.8 * gaps + 1.2 + noise
    cal = B.fit_calibration(zip(gaps, bands, strict=True), method="GFN1-xTB")
    beta, se = _se_pred(gaps, bands, 3.5)
    assert (cal.intercept, cal.slope) == pytest.approx(tuple(beta))
    energy, unc = cal.predict(3.5)
    assert energy == pytest.approx(beta[0] + beta[1] * 3.5)
    assert unc == pytest.approx(se)
    # Extrapolation is less certain than interpolation.
    assert cal.predict(gaps.mean())[1] < unc
    rms = np.sqrt(np.mean((bands - (beta[0] + beta[1] * gaps)) ** 2))
    assert cal.rms_residual_eV == pytest.approx(rms)
    nm, unc_nm = cal.predict_nm(3.5)
    assert nm == pytest.approx(1239.84 / energy)
    step = 1e-6
    slope_nm_per_ev = abs(1239.84 / (energy + step) - 1239.84 / energy) / step
    assert unc_nm == pytest.approx(slope_nm_per_ev * unc, rel=1e-4)


def test_two_pairs_do_not_claim_zero_uncertainty():
    cal = B.fit_calibration([(2.5, B.nm_to_ev(415)), (1.7, B.nm_to_ev(371))])
    energy, unc = cal.predict(2.0)
    assert unc is None and cal.sigma_eV is None
    assert cal.predict(2.5)[0] == pytest.approx(B.nm_to_ev(415))
    floored = B.fit_calibration([(2.5, 3.0), (1.7, 3.3)], uncertainty_floor_eV=0.1)
    assert floored.predict(2.0)[1] == 0.1
    with pytest.raises(InputError):
        B.match_bands(energy, unc)


def test_one_pair_is_a_pure_shift():
    cal = B.fit_calibration([(2.5, 3.0)])
    assert cal.model == "shift" and cal.slope == 1.0
    assert cal.predict(2.0) == (pytest.approx(2.5), None)
    with pytest.raises(InputError):
        B.fit_calibration([])
    with pytest.raises(InputError):
        B.fit_calibration([(2.5, 3.0), (2.5, 3.1)], model="linear")  # slope undetermined


def test_match_bands_flags_399_not_415():
    names = [b.name for b in B.match_bands(3.10, 0.02)]
    assert "CdTeSe MSC-399" in names
    assert "CdSe MSC-415" not in names and "CdSe MSC-390" not in names


def test_packaged_calibration_has_no_invented_gaps():
    spec = B.load_calibration()
    assert spec.method and spec.pairs == ()
    with pytest.raises(InputError):
        spec.fit()


def test_calibration_file_with_database_lookup(tmp_path):
    path = tmp_path / "cal.toml"
    path.write_text(
        'method = "GFN1-xTB"\n'
        '[[pair]]\nlabel = "a"\nband = "CdSe MSC-415"\nformula = "Se13Cd13"\nsource = "test"\n'
        '[[pair]]\nlabel = "b"\nband_nm = 371\ngap_eV = 1.7\nsource = "test"\n'
        '[[pair]]\nlabel = "c"\nband_nm = 399\nstructure = "42"\nsource = "test"\n'
    )
    spec = B.load_calibration(path)
    assert spec.pairs[0].formula == "Cd13Se13" and spec.pairs[0].band_nm == 415
    with pytest.raises(InputError):
        spec.resolve()  # gaps missing and nobody to look them up
    gaps = {"Cd13Se13": 2.5, "42": 2.1}
    cal = spec.fit(lambda p: gaps[p.formula or p.structure])
    assert cal.n == 3 and cal.method == "GFN1-xTB"
    assert cal.gaps_eV == (2.5, 1.7, 2.1)


@pytest.mark.parametrize(
    "text",
    [
        '[[band]]\nname = "x"\n',  # no band_nm
        '[[band]]\nname = "x"\nband_nm = -3\n',
        '[[band]]\nname = "x"\nband_nm = 400\nwavelength = 400\n',  # typo key
        '[[band]]\nname = "x"\nband_nm = 400\n[[band]]\nname = "x"\nband_nm = 410\n',
        "[[band]\n",
    ],
)
def test_malformed_bands_file(tmp_path, text):
    path = tmp_path / "bands.toml"
    path.write_text(text)
    with pytest.raises(InputError):
        B.load_bands(path)


def test_calibration_typo_is_rejected(tmp_path):
    path = tmp_path / "cal.toml"
    path.write_text('[[pair]]\nlabel = "a"\nband_nm = 415\ngap_ev = 2.5\nsource = "t"\n')
    with pytest.raises(InputError, match="gap_ev"):
        B.load_calibration(path)


def _gap_map_file(tmp_path, pairs: list[tuple[str, float, float]]):
    lines = ['gap_method = "pyscf:PBE/def2-SVP"', 'reference = "TDA-PBE0 first bright"']
    for i, (formula, gap, ref) in enumerate(pairs):
        lines += ["[[pair]]", f'name = "s{i}"', f'formula = "{formula}"', "natoms = 4"]
        lines += [f"gap_eV = {gap}", f"reference_eV = {ref}"]
    path = tmp_path / "gap_map.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_gap_map_shift_and_its_leave_one_formula_out_window(tmp_path):
    # reference - gap: 1.0, 1.2 (formula A, twice), 1.5 (B), 1.3 (C): shift = mean = 1.25;
    # leaving A out predicts it with 1.4 (errors 0.4, 0.2); B with 1.1667 (0.333); C with 1.2333 (0.067)
    pairs = [("Cd2Se2", 1.0, 2.0), ("Cd2Se2", 1.0, 2.2), ("Cd3Se3", 2.0, 3.5), ("Cd2Te2", 0.8, 2.1)]
    m = B.load_gap_map(_gap_map_file(tmp_path, pairs))
    assert m.shift_eV == pytest.approx(1.25)
    assert m.window_eV == pytest.approx(0.4)
    est, shortest, longest = m.estimate_nm(1.5)
    assert est == pytest.approx(B.HC_EV_NM / 2.75)
    assert (shortest, longest) == pytest.approx((B.HC_EV_NM / 3.15, B.HC_EV_NM / 2.35))
    # another error (the reference method against experiment) widens the window in quadrature
    assert m.estimate_nm(1.5, 0.3)[1] == pytest.approx(B.HC_EV_NM / 3.25)
    # a window wider than the estimate has no long-wavelength bound; a metallic gap gives no estimate
    assert m.estimate_nm(0.12, 3.0)[2] == float("inf")
    assert m.estimate_nm(0.05) is None and m.estimate_nm(float("nan")) is None
    assert "beyond 4 atoms an extrapolation" in m.describe()
    assert "at 26 atoms an extrapolation (fitted at 4-4)" in m.describe(26) and "extrapolation" not in m.describe(4)


def test_a_gap_map_of_too_few_formulas_is_none_and_bad_files_are_refused(tmp_path):
    assert B.load_gap_map(_gap_map_file(tmp_path, [("Cd2Se2", 1.0, 2.0), ("Cd3Se3", 1.1, 2.2)])) is None
    path = _gap_map_file(tmp_path, [("Cd2Se2", 1.0, 2.0), ("Cd3Se3", 2.0, 3.5), ("Cd2Te2", 0.8, 2.1)])
    good = path.read_text()
    path.write_text(good.replace("gap_eV", "gap_ev", 1))
    with pytest.raises(InputError, match="pair #1: unknown key"):
        B.load_gap_map(path)
    path.write_text(good.replace('gap_method = "pyscf:PBE/def2-SVP"', ""))
    with pytest.raises(InputError, match="gap_method is missing"):
        B.load_gap_map(path)


def test_the_packaged_gap_map_is_the_one_the_committed_validation_runs_give():
    """A stale data/gap_map.toml (validation runs added, the file not rewritten) would give every
    report an estimate the benchmark no longer supports."""
    from benchmarks import excitation_validation as ev

    packaged = B.load_gap_map()
    measured = ev.gap_map(ev.table_rows(ev.small_rows(ev.load())))
    assert packaged is not None and measured is not None
    assert packaged.pairs == measured.pairs
    assert packaged.gap_method == ev.GAP_MAP_METHOD


def test_the_packaged_ris_map_is_the_one_the_committed_validation_runs_give():
    """data/ris_map.toml: the TDA-ris-PBE first bright singlets against TDA-PBE0 of the committed runs, a
    map of an excitation method that is not a band as computed (so the report shifts it)."""
    from airss_msc.calc.engines import capabilities
    from benchmarks import excitation_validation as ev

    packaged = B.load_gap_map(packaged=B.RIS_MAP_FILE)
    measured = ev.gap_map(ev.table_rows(ev.small_rows(ev.load())), "TDA-ris-PBE first bright")
    assert packaged is not None and measured is not None
    assert packaged.pairs == measured.pairs and packaged.quantity == "first bright"
    assert packaged.gap_method == ev.RIS_PBE and not capabilities(packaged.gap_method).band_ready
    assert B.load_gap_map(packaged="no_such_map.toml") is None
