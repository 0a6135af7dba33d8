"""benchmarks/excitation_validation.py without DFT: resume logic on synthetic stored lines, and the fit arithmetic."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import excitation_validation as ev


def _line(name: str, method: str, nstates: int, **extra: object) -> dict:
    row = {
        "name": name,
        "formula": name.split("-")[0],
        "natoms": 4,
        "fingerprint": f"fp-{name}",
        "isomer_rank": 0,
        "ranked_by": "PBE/def2-SVP",
        "method": method,
        "nstates": nstates,
        "kind": "gap" if nstates == 0 else "tda",
        "status": "ok" if nstates == 0 else "done",
        "cpu_s": 1.0,
    }
    row.update(extra)
    return row


def _jobs(name: str) -> list[ev.Job]:
    return [
        ev.Job(name, name.split("-")[0], f"fp-{name}", m, n, (i,))
        for i, (m, n) in enumerate(
            [
                ("tblite:GFN2-xTB", 0),
                ("tblite:GFN1-xTB", 0),
                (ev.TDA_PBE, ev.STATES),
                (ev.REFERENCE_METHOD, ev.STATES),
            ]
        )
    ]


def test_finished_points_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    ev.append(_line("Cd2Se2-ring", "tblite:GFN2-xTB", 0, gap_eV=2.0), path)
    ev.append(_line("Cd2Se2-ring", ev.TDA_PBE, ev.STATES, first_bright_eV=1.5), path)
    todo = ev.pending(_jobs("Cd2Se2-ring"), ev.load(path))
    assert [(j.method, j.nstates) for j in todo] == [("tblite:GFN1-xTB", 0), (ev.REFERENCE_METHOD, ev.STATES)]


def test_a_failure_counts_as_finished(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    ev.append(_line("Cd2Se2-ring", ev.REFERENCE_METHOD, ev.STATES, status="scf_failed"), path)
    todo = ev.pending(_jobs("Cd2Se2-ring"), ev.load(path))
    assert ev.REFERENCE_METHOD not in {j.method for j in todo}


def test_half_written_last_line_is_skipped_and_the_next_append_stays_readable(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    ev.append(_line("Cd2Se2-ring", "tblite:GFN2-xTB", 0, gap_eV=2.0), path)
    whole = json.dumps(_line("Cd2Se2-ring", "tblite:GFN1-xTB", 0, gap_eV=2.1))
    with open(path, "a") as fh:  # what a kill -9 mid-write leaves: no closing brace, no newline
        fh.write(whole[: len(whole) // 2])
    rows = ev.load(path)
    assert [r["method"] for r in rows] == ["tblite:GFN2-xTB"]
    # the cut job is pending again; its rerun's line must not be glued onto the cut one
    assert "tblite:GFN1-xTB" in {j.method for j in ev.pending(_jobs("Cd2Se2-ring"), rows)}
    ev.append(_line("Cd2Se2-ring", "tblite:GFN1-xTB", 0, gap_eV=2.1), path)
    assert [r["method"] for r in ev.load(path)] == ["tblite:GFN2-xTB", "tblite:GFN1-xTB"]


def test_missing_file_loads_empty(tmp_path: Path) -> None:
    assert ev.load(tmp_path / "absent.jsonl") == []


def test_dark_structure_gets_a_rerun_with_more_states() -> None:
    dark = _line("Cd2Se2-ring", ev.TDA_PBE, ev.STATES, first_bright_eV=None)
    assert ev.needs_more_states(dark)
    assert not ev.needs_more_states(_line("Cd2Se2-ring", ev.TDA_PBE, ev.STATES, first_bright_eV=1.5))
    assert not ev.needs_more_states(_line("Cd2Se2-ring", ev.TDA_PBE, ev.STATES, status="scf_failed"))


def test_table_keeps_the_bright_five_state_run_over_the_check_rerun() -> None:
    rows = [
        _line("Cd2Se2-ring", ev.REFERENCE_METHOD, ev.STATES, first_bright_eV=2.0, cpu_s=10.0),
        _line("Cd2Se2-ring", ev.REFERENCE_METHOD, ev.MORE_STATES, first_bright_eV=2.0, cpu_s=20.0),
        _line("Cd2Te2-ring", ev.REFERENCE_METHOD, ev.STATES, first_bright_eV=None, cpu_s=10.0),
        _line("Cd2Te2-ring", ev.REFERENCE_METHOD, ev.MORE_STATES, first_bright_eV=3.0, cpu_s=20.0),
    ]
    t = ev.table_rows(rows)
    assert t["Cd2Se2-ring"][f"{ev.REFERENCE_METHOD}|cpu"] == 10.0
    assert t["Cd2Te2-ring"][f"{ev.REFERENCE_METHOD}|value"] == 3.0


def test_shift_and_linear_fits_exact() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert ev.fit_shift(x, x + 0.5) == (1.0, 0.5)
    a, b = ev.fit_linear(x, 2.0 * x - 1.0)
    assert a == pytest.approx(2.0) and b == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="two distinct"):
        ev.fit_linear(np.array([1.0, 1.0]), np.array([2.0, 3.0]))


def test_leave_one_group_out_known_answer() -> None:
    # y = x + shift, shifts 0, 0, 3 by group: holding out C the others fit shift 0 (error -3 on C);
    # holding out A (two points) B and C fit mean(0, 3) = 1.5 (errors +1.5 on A's points); holding out B
    # the three points of A and C fit mean(0, 0, 3) = 1 (a shift is fitted per point, not per group)
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = x + np.array([0.0, 0.0, 0.0, 3.0])
    groups = ["A", "A", "B", "C"]
    err = ev.leave_one_group_out(x, y, groups, ev.fit_shift)
    np.testing.assert_allclose(err, [1.5, 1.5, 1.0, -3.0])


def test_leave_one_group_out_linear_exact_and_unfittable() -> None:
    x = np.array([1.0, 2.0, 3.0])
    err = ev.leave_one_group_out(x, 3.0 * x + 2.0, ["A", "B", "C"], ev.fit_linear)
    np.testing.assert_allclose(err, 0.0, atol=1e-12)
    # two groups of one distinct x each: the one left cannot define a line
    assert np.isnan(ev.leave_one_group_out(np.array([1.0, 2.0]), np.array([1.0, 2.0]), ["A", "B"], ev.fit_linear)).all()


def test_nm_error_near_400_nm() -> None:
    assert ev.nm_error(0.1) == pytest.approx(0.1 * 400.0**2 / ev.HC_EV_NM)
    assert ev.nm_error(-0.1) == ev.nm_error(0.1)


def test_report_numbers_come_from_the_lines() -> None:
    rows = []
    # three formulas with TDA-PBE0 = TDA-PBE first bright + 0.4 exactly: its LOFO error is 0; the other
    # candidates are nonlinear in it (squares, cubes, uneven gaps), so no map of theirs is exact
    for i, (name, pbe) in enumerate([("Cd2Se2-ring", 1.5), ("ZnCdSe2-ring", 1.8), ("Cd3Se3-ring", 2.6)]):
        rows += [
            _line(
                name,
                ev.TDA_PBE,
                ev.STATES,
                first_bright_eV=pbe,
                first_bright_f=0.1,
                lowest_eV=pbe**2,
                ground_gap_eV=pbe**3,
            ),
            _line(name, ev.REFERENCE_METHOD, ev.STATES, first_bright_eV=pbe + 0.4, first_bright_f=0.1),
            _line(name, "tblite:GFN2-xTB", 0, gap_eV=2.0 + i),
            _line(name, "tblite:GFN1-xTB", 0, gap_eV=2.5 + 0.1 * i),
            _line(name, ev.RIS_PBE0, ev.STATES, first_bright_eV=pbe**0.5, first_bright_f=0.1),
            _line(name, ev.RIS_PBE, ev.STATES, first_bright_eV=1.0 + i * i, first_bright_f=0.1),
        ]
    text = ev.report(rows)
    assert "| TDA-PBE first bright | shift | E = +0.400 eV + E_x" in text
    assert "| TDA-ris-PBE0 first bright | shift |" in text
    assert "Verdict: TDA-PBE first bright" in text
    assert "shift MAE 0.000 eV" in text and "linear MAE 0.000 eV" in text


def test_the_gap_map_is_applied_to_the_larger_structures_with_its_leave_one_out_window() -> None:
    rows = []
    # TDA-PBE0 = PBE gap + 1.2 eV exactly on three formulas: shift +1.200, every LOFO error 0
    for name, gap in [("Cd2Se2-ring", 0.7), ("ZnCdSe2-ring", 0.9), ("Cd3Se3-ring", 1.6)]:
        rows += [
            _line(name, ev.TDA_PBE, ev.STATES, first_bright_eV=gap + 0.5, first_bright_f=0.1, ground_gap_eV=gap),
            _line(name, ev.REFERENCE_METHOD, ev.STATES, first_bright_eV=gap + 1.2, first_bright_f=0.1),
        ]
    larger = [{"name": "Cd13Se13-parent", "formula": "Cd13Se13", "natoms": 26, "gap": 1.0, "rank": 0}]
    text = ev.report(rows, larger=larger)
    # the map's own error is 0 here: the window is TDA-PBE0's 0.3 eV against experiment alone
    assert "PBE gap +1.200 eV" in text and "fit (0.000 eV)" in text and "+-0.300 eV" in text
    line = next(x for x in text.splitlines() if x.startswith("| Cd13Se13-parent"))
    # 2.2 eV is 564 nm, 2.5 and 1.9 eV 496 and 653 nm; the CdSe bands of bands.toml beside it, no other material's
    assert "| 26 | 1 | 1.000 | 2.200 | 564 (496-653) | CdSe: " in line and "415" in line and "299" not in line
    assert "above 8 atoms" not in ev.report(rows, larger=[])
    assert "No TDA-PBE0 above 8 atoms exists here yet" in text


def test_a_large_tda_pbe0_line_tests_the_gap_map_and_stays_out_of_its_fit() -> None:
    rows = []
    for name, gap in [("Cd2Se2-ring", 0.7), ("ZnCdSe2-ring", 0.9), ("Cd3Se3-ring", 1.6)]:
        rows += [
            _line(name, ev.TDA_PBE, ev.STATES, first_bright_eV=gap + 0.5, first_bright_f=0.1, ground_gap_eV=gap),
            _line(name, ev.REFERENCE_METHOD, ev.STATES, first_bright_eV=gap + 1.2, first_bright_f=0.1),
        ]
    # a 26-atom TDA-PBE0 far off the small clusters' law (gap 1.0 + 1.2 would be 2.2 eV): if it entered
    # the fit, the shift would move off +1.200
    big = _line("Cd13Se13-parent", ev.REFERENCE_METHOD, ev.LARGE_STATES, first_bright_eV=2.9, first_bright_f=0.05)
    big.update(natoms=26, formula="Cd13Se13", ground_gap_eV=1.0)
    larger = [{"name": "Cd13Se13-parent", "formula": "Cd13Se13", "natoms": 26, "gap": 1.0, "rank": 0}]
    text = ev.report([*rows, big], larger=larger)
    assert "PBE gap +1.200 eV" in text and "tests the map on 1 structure(s)" in text
    line = next(x for x in text.splitlines() if x.startswith("| Cd13Se13-parent"))
    # 2.9 eV is 428 nm; the estimate 2.2 eV is 0.7 eV below it
    assert line.endswith("| 2.900 (0.050), 428 | -0.700 | - |")
    assert ev.gap_map(ev.table_rows(ev.small_rows([*rows, big]))).shift_eV == pytest.approx(1.2)


def test_a_large_ris_line_is_shifted_by_the_small_clusters_ris_map() -> None:
    rows = []
    # TDA-PBE0 = TDA-ris-PBE first bright + 0.5 eV exactly on three formulas
    for name, gap in [("Cd2Se2-ring", 0.7), ("ZnCdSe2-ring", 0.9), ("Cd3Se3-ring", 1.6)]:
        rows += [
            _line(name, ev.TDA_PBE, ev.STATES, first_bright_eV=gap + 0.5, first_bright_f=0.1, ground_gap_eV=gap),
            _line(name, ev.REFERENCE_METHOD, ev.STATES, first_bright_eV=gap + 1.2, first_bright_f=0.1),
            _line(name, ev.RIS_PBE, ev.STATES, first_bright_eV=gap + 0.7, first_bright_f=0.1),
        ]
    big = _line("Cd13Se13-parent", ev.RIS_PBE, ev.LARGE_STATES, first_bright_eV=2.4, first_bright_f=0.05)
    big.update(natoms=26, formula="Cd13Se13")
    larger = [{"name": "Cd13Se13-parent", "formula": "Cd13Se13", "natoms": 26, "gap": 1.0, "rank": 0}]
    text = ev.report([*rows, big], larger=larger)
    assert "its first bright singlet +0.500 eV" in text and "1 structure(s) so far" in text
    line = next(x for x in text.splitlines() if x.startswith("| Cd13Se13-parent"))
    # 2.4 + 0.5 = 2.9 eV is 428 nm; +-0.3 eV (the map's own error is 0) gives 387-477 nm
    assert line.endswith("| 2.400 (0.050) +0.50: 428 (387-477) |")
    # a ris line is no TDA-PBE0 line: the gap map's test column stays empty
    assert "No TDA-PBE0 above 8 atoms exists here yet" in text


def test_the_written_gap_map_reads_back_as_the_same_map(tmp_path: Path) -> None:
    from airss_msc.analysis.bands import GapMap, GapMapPair, load_gap_map

    pairs = tuple(
        GapMapPair(name, formula, 4, gap, gap + 1.1)
        for name, formula, gap in [
            ('Cd2Se2-"ring"\\1', "Cd2Se2", 0.7386),
            ("Cd3Se3-ring", "Cd3Se3", 1.66),
            ("Cd2Te2-x", "Cd2Te2", 0.78),
        ]
    )
    m = GapMap(ev.GAP_MAP_METHOD, "TDA-PBE0 first bright", pairs, ev.GAP_MAP_SOURCE)
    back = load_gap_map(ev.write_gap_map(m, tmp_path / "gap_map.toml"))
    assert back == m
    # the same for a map of an excitation method's first bright singlet: its quantity survives
    ris = GapMap(ev.RIS_PBE, "TDA-PBE0 first bright", pairs, ev.GAP_MAP_SOURCE, quantity="first bright")
    back = load_gap_map(ev.write_gap_map(ris, tmp_path / "ris_map.toml"))
    assert back == ris and back.mapped == "TDA-ris-PBE/def2-SVP first bright singlet"


def test_a_large_ris_job_starts_from_the_reference_runs_converged_ground_state(tmp_path) -> None:
    job = ev.Job("Cd13Se13-x", "Cd13Se13", "acb1", ev.REFERENCE_METHOD, ev.LARGE_STATES, ())
    ris = dataclasses.replace(job, method=ev.RIS_PBE0)
    ref_stem = tmp_path / ev.checkpoint_stem(job).name
    ris_stem = tmp_path / ev.checkpoint_stem(ris).name
    assert ev.seed_from_sibling(ris, tmp_path) is None  # nothing saved yet: nothing copied
    Path(f"{ref_stem}.tda.npz").write_bytes(b"converged density")
    assert ev.seed_from_sibling(ris, tmp_path) == Path(f"{ref_stem}.tda.npz")
    assert Path(f"{ris_stem}.tda.npz").read_bytes() == b"converged density"
    # another structure's, another functional's or a different number of states is not a sibling; a job
    # with progress of its own keeps it
    assert ev.seed_from_sibling(dataclasses.replace(ris, name="Cd13Te13-x"), tmp_path) is None
    assert ev.seed_from_sibling(dataclasses.replace(ris, nstates=5), tmp_path) is None
    pure = dataclasses.replace(ris, method=ev.RIS_PBE)
    assert ev.seed_from_sibling(pure, tmp_path) is None  # a PBE0 density is no PBE ground state
    assert not Path(f"{tmp_path / ev.checkpoint_stem(pure).name}.tda.npz").exists()
    Path(f"{ris_stem}.tda.npz").write_bytes(b"own")
    assert ev.seed_from_sibling(ris, tmp_path) is None
    assert Path(f"{ris_stem}.tda.npz").read_bytes() == b"own"


def test_every_candidate_says_what_it_reads_and_a_map_of_it_keeps_that():
    """A candidate without a quantity would fail only when a map of it is written; a gap read off the
    TDA-PBE run is a map of the PBE ground state, and a first bright singlet one of the ris method."""
    assert all(q in (*ev.MAP_QUANTITIES, "lowest excitation") for _, _, q in ev.CANDIDATES.values())
    row = {"formula": "Cd2Se2", "natoms": 4, "rank": 0}
    t = {}
    for i, f in enumerate(("Cd2Se2", "Cd3Se3", "Cd2Te2")):
        t[f] = dict(row, formula=f) | {
            f"{ev.REFERENCE_METHOD}|value": 3.0 + i,
            f"{ev.TDA_PBE}|ground_gap": 2.0 + i,
            f"{ev.RIS_PBE}|value": 2.5 + i,
            f"{ev.TDA_PBE}|lowest": 2.4 + i,
        }
    gap = ev.gap_map(t, "PBE HOMO-LUMO gap")
    assert gap is not None and (gap.gap_method, gap.quantity) == (ev.GAP_MAP_METHOD, "gap")
    ris = ev.gap_map(t, "TDA-ris-PBE first bright")
    assert ris is not None and (ris.gap_method, ris.quantity) == (ev.RIS_PBE, "first bright")
    with pytest.raises(ValueError, match="no packaged map"):
        ev.gap_map(t, "TDA-PBE lowest excitation")


def test_the_threshold_lines_say_where_the_first_bright_state_moves_with_the_threshold():
    rows = [
        {
            "name": "Cd13Se13-x",
            "method": ev.RIS_PBE,
            "kind": "tda",
            "status": "done",
            "energies_eV": [1.96, 2.03, 2.11, 2.42],
            "strengths": [0.0085, 0.0074, 0.0103, 0.0204],
        },
        {"name": "failed", "method": ev.RIS_PBE, "kind": "tda", "status": "scf_failed", "energies_eV": []},
    ]
    (line,) = [x for x in ev.threshold_lines(rows) if x.startswith("- ")]
    assert line.startswith("- Cd13Se13-x, TDA-ris-PBE/def2-SVP: ")
    assert "f >= 0.005: 1.960 eV (state 1); f >= 0.01: 2.110 eV (state 3); f >= 0.02: 2.420 eV (state 4)" in line
    assert ev.threshold_lines(rows[1:]) == []
