import re

import pytest

from airss_msc.config import config_from_dict
from airss_msc.report import write_report
from airss_msc.search import run_search


@pytest.fixture(scope="module")
def lj_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("rep") / "r.db"
    cfg = config_from_dict({
        "search": {"compositions": ["X7", "X9"], "candidates": 6, "seed": 3, "db": str(db)},
        "relax": {"method": "lj", "fmax": 0.005, "steps": 1000},
    })
    run_search(cfg, log=lambda s: None)
    return db


def test_report_renders_all_figures_self_contained(lj_db, tmp_path):
    page = write_report(str(lj_db), tmp_path / "rep", top=3)
    text = page.read_text()
    for png in ("energy_spectrum.png", "bands.png", "size.png", "best_X7.png", "best_X9.png"):
        data = (tmp_path / "rep" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    # every figure is embedded; nothing is fetched from elsewhere
    assert text.count("data:image/png;base64,") == 5
    assert not re.search(r"(src|href)=['\"]https?:", text)
    assert text.count("<canvas class='cluster'") == 2
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| 1 |" in md and "X7" in md and "![Energy spectrum](energy_spectrum.png)" in md


def test_report_ranks_copies_of_the_lj7_minimum(lj_db, tmp_path):
    write_report(str(lj_db), tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| 1 |") and "X7" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[3]) == pytest.approx(-16.505384, abs=1e-3)  # LJ7 global minimum
    assert cells[7] == "D5h"  # pentagonal bipyramid
