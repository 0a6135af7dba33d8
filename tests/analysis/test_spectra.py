"""Broadened spectra, the band estimate's error window, the literature pairs and the report's spectra section."""

import numpy as np
import pytest

from airss_msc.analysis.bands import COMPUTABLE_HEAVY_ATOMS, HC_EV_NM, load_literature_pairs
from airss_msc.analysis.report import write_report
from airss_msc.analysis.spectra import TDDFT_ERROR_EV, band_window_nm, broadened, first_bright_nm
from airss_msc.errors import InputError
from airss_msc.results.record import Excitations
from airss_msc.results.store import ResultsDB
from tests.results.test_store import _result

EXC = Excitations("pyscf:TDA-PBE0/def2-SVP", np.array([2.80, 3.10, 3.40]), np.array([0.001, 0.20, 0.05]))


def test_each_state_contributes_its_oscillator_strength_and_dark_states_are_not_bands():
    grid = np.linspace(1.0, 5.0, 4001)
    area = broadened(EXC, grid).sum() * (grid[1] - grid[0])
    assert area == pytest.approx(EXC.oscillator_strengths.sum(), rel=1e-3)
    nm, f = first_bright_nm(EXC)
    assert nm == pytest.approx(HC_EV_NM / 3.10) and f == pytest.approx(0.20)  # 2.80 eV is dark


def test_the_error_window_brackets_the_estimate_and_widens_to_the_red():
    lo, hi = band_window_nm(3.10)
    assert lo == pytest.approx(HC_EV_NM / (3.10 + TDDFT_ERROR_EV))
    assert lo < HC_EV_NM / 3.10 < hi and (hi - HC_EV_NM / 3.10) > (HC_EV_NM / 3.10 - lo)


def test_packaged_literature_pairs_are_sourced_and_none_calibrates_yet():
    pairs = load_literature_pairs()
    assert len(pairs) >= 3 and all(p.source for p in pairs)
    # the one crystal structure small enough to compute has no readable band: nothing calibrates
    assert not [p for p in pairs if p.calibrates(COMPUTABLE_HEAVY_ATOMS)]
    assert [p for p in pairs if p.calibrates(100)]  # the large firm ones would, at their size


def test_malformed_literature_file_is_an_input_error(tmp_path):
    bad = tmp_path / "lit.toml"
    bad.write_text('[[pair]]\nstructure = "Cd13Se13"\nheavy_atoms = 26\nbasis = "guess"\nsource = "x"\n')
    with pytest.raises(InputError, match="basis must be one of"):
        load_literature_pairs(bad)


def test_report_shows_the_spectrum_window_and_says_it_is_uncalibrated(tmp_path):
    db = tmp_path / "r.db"
    ring = np.array([[0, 0, 0], [2.6, 0, 0], [2.6, 2.6, 0], [0, 2.6, 0.0]])
    with ResultsDB(db, write=True) as store:
        row = store.add(_result(positions=ring))
        store.set_excitations(row, EXC)
    write_report(str(db), tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    lo, hi = band_window_nm(3.10)
    assert f"{lo:.0f}-{hi:.0f}" in md and "Uncalibrated" in md
    assert "CdTeSe MSC-399" in md.split("## Computed absorption")[1]  # 399 nm lies in the window
