"""Study configs: a search plus steps over its rows and a report, with modes, in one resumable job."""

import pytest

from airss_msc.errors import InputError
from airss_msc.results.store import ResultsDB
from airss_msc.search.study import load_study, merge, run_study, study_from_dict

LJ_STUDY = """
[search]
compositions = ["X7"]
candidates = 4
seed = 3
db = "lj.db"
[generate]
radius = 1.1  # sigma: LJ7 starts dense enough to relax as one cluster
[relax]
method = "lj"
fmax = 0.05
steps = 300
[study]
steps = ["again"]
report = "lj-report"
[study.again]
do = "refine"
method = "lj"
top = 1
relax = true
[mode.small.search]
candidates = 2
[mode.small.study.again]
fmax = 0.5
"""


def test_modes_merge_table_by_table_and_unknown_modes_are_refused(tmp_path):
    assert merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}
    path = tmp_path / "s.toml"
    path.write_text(LJ_STUDY)
    full, small = load_study(path), load_study(path, "small")
    assert full.search.candidates == 4 and small.search.candidates == 2
    assert full.steps[0].fmax == 0.05 and small.steps[0].fmax == 0.5 and small.steps[0].top == 1
    assert full.search.db == str(tmp_path / "lj.db") and full.report == str(tmp_path / "lj-report")
    assert small.modes == ("small",)
    with pytest.raises(InputError, match=r"unknown mode 'huge'.*small"):
        load_study(path, "huge")


@pytest.mark.parametrize(
    ("study", "match"),
    [
        ({"steps": ["x"]}, "no \\[study.x\\] table"),
        ({"steps": ["x"], "x": {"do": "dance"}}, "do = 'dance'"),
        ({"steps": ["x"], "x": {"do": "refine", "topp": 1}}, "unknown key 'topp'"),
        ({"steps": ["x"], "x": {"do": "spectrum", "method": "tblite:GFN2-xTB"}}, "cannot compute excitations"),
        ({"steps": ["x"], "x": {"do": "refine", "top": "3"}}, "wrong type"),
        ({"steps": ["x"], "x": {"do": "spectrum", "rows": "some"}}, "rows must be"),
        ({"reprot": "r"}, "unknown key 'reprot'"),
    ],
)
def test_bad_study_tables_are_one_line_input_errors(study, match):
    doc = {"search": {"compositions": ["Cd2Se2"], "candidates": 1}, "relax": {"method": "lj"}, "study": study}
    with pytest.raises(InputError, match=match):
        study_from_dict(doc)


def test_a_study_runs_its_stages_in_order_writes_the_report_and_resumes(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(LJ_STUDY)
    plan = load_study(path, "small")
    first = run_study(plan)
    assert [name for name, _ in first.stages] == ["search", "again"]
    assert first.stages[0][1].done == 2 and first.stages[1][1].done == 1
    assert first.report is not None and first.report.exists()
    rows = ResultsDB(plan.search.db).records()
    refined = [r for r in rows if "refined_from" in r.provenance]
    assert len(rows) == 3 and len(refined) == 1
    # the refinement started from the lowest search result
    searched = [r for r in rows if "refined_from" not in r.provenance]
    assert refined[0].provenance["refined_from"] == min(searched, key=lambda r: r.energy).id
    # rerun: nothing new, nothing lost
    again = run_study(plan)
    assert all(stage.done == 0 for _, stage in again.stages)
    assert len(ResultsDB(plan.search.db).records()) == 3


def test_the_msc399_recipe_parses_in_every_mode():
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[2] / "analysis" / "msc399" / "msc399.toml"
    for mode in (None, *load_study(recipe).modes):
        plan = load_study(recipe, mode)
        assert {"Cd7TeSe3", "Cd6Te2Se3"} <= set(plan.search.compositions)
        assert [s.do for s in plan.steps].count("spectrum") >= 1


def test_a_step_can_be_limited_to_some_compositions(tmp_path):
    doc = {
        "search": {"compositions": ["X7", "X8"], "candidates": 2, "seed": 3, "db": str(tmp_path / "two.db")},
        "generate": {"radius": 1.1},
        "relax": {"method": "lj", "fmax": 0.05, "steps": 300},
        "study": {
            "steps": ["again"],
            "report": str(tmp_path / "rep"),
            "again": {"do": "refine", "method": "lj", "top": 1, "relax": True, "compositions": ["X7"]},
        },
    }
    run_study(study_from_dict(doc))
    rows = ResultsDB(tmp_path / "two.db").records()
    refined = [r for r in rows if "refined_from" in r.provenance]
    assert len(refined) == 1 and refined[0].composition == "X7"
    with pytest.raises(InputError, match="unknown element"):
        study_from_dict({**doc, "study": {"steps": ["x"], "x": {"do": "refine", "compositions": ["Cd7Zz"]}}})


@pytest.fixture
def fragmenting_refine(monkeypatch):
    """``refine --relax`` whose relaxations end ``fragmented`` (as the NH3-capped Cd7TeSe3 did)."""
    import airss_msc.search.rows as rows

    real = rows.relax_structure

    def relax(atoms, settings):
        res = real(atoms, settings)
        res.status, res.message = "fragmented", "lost 1 atom"
        return res

    monkeypatch.setattr(rows, "relax_structure", relax)


def test_a_step_that_fails_is_reported_and_exits_1_also_on_a_rerun(tmp_path, run_cli, fragmenting_refine):
    path = tmp_path / "s.toml"
    path.write_text(LJ_STUDY)
    code, _out, err = run_cli("study", path, "--mode", "small", "--serial")
    (line,) = [x for x in err.splitlines() if x.startswith("FAILED")][-1:]
    assert code == 1, err
    assert "FAILED: again (refine): X7 row " in line and " -> row " in line and "fragmented (lost 1 atom)" in line
    assert (tmp_path / "lj-report" / "report.html").exists()  # the report is still written
    # the rerun does nothing new but still fails: the stored status counts
    code, _out, err = run_cli("study", path, "--mode", "small", "--serial")
    assert code == 1 and "fragmented (lost 1 atom) [stored by an earlier run]" in err
    # the step run alone says the same: the lowest row's stored failure, the second row's new one
    code, _out, err = run_cli("refine", tmp_path / "lj.db", "--method", "lj", "--relax", "--top", "2", "--serial")
    assert code == 1 and err.count("FAILED: refine: X7 row ") == 2, err


def test_a_step_that_succeeds_exits_0(tmp_path, run_cli):
    path = tmp_path / "s.toml"
    path.write_text(LJ_STUDY)
    code, _out, err = run_cli("study", path, "--mode", "small", "--serial")
    assert code == 0 and "FAILED" not in err, err


def test_the_search_and_ml_steps_run_on_one_thread_and_dft_steps_on_all(tmp_path, monkeypatch):
    import airss_msc.search.study as study_mod
    from airss_msc.calc.threads import current_threads
    from airss_msc.search.farm import FarmOutcome
    from airss_msc.search.rows import RowsOutcome

    doc = {
        "search": {"compositions": ["Cd2Se2"], "candidates": 1, "db": str(tmp_path / "t.db")},
        "relax": {"method": "chgnet", "single_points": ["sevennet:7net-0"]},
        "study": {"steps": ["spectrum", "cap"], "spectrum": {"do": "spectrum"}, "cap": {"do": "cap"}},
    }
    plan = study_from_dict(doc)
    seen = {}
    monkeypatch.setattr(
        study_mod, "run_search", lambda *a, **k: seen.setdefault("search", current_threads()) and FarmOutcome(0, 0)
    )
    monkeypatch.setattr(
        study_mod.StudyStep, "run", lambda self, *a: seen.setdefault(self.name, current_threads()) and RowsOutcome(0, 0)
    )
    monkeypatch.setattr(study_mod, "write_report", lambda *a, **k: tmp_path / "r.html")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    lines = []
    run_study(plan, log=lines.append)
    assert seen == {"search": 1, "spectrum": 2, "cap": 1}
    assert current_threads() == 2  # restored after each stage
    assert any(line.startswith("search: 1 thread (not 2): chgnet:0.3.0, sevennet:7net-0") for line in lines)
    # work handed to other processes (an MPI pool) runs on their threads: nothing changes here
    from concurrent.futures import ThreadPoolExecutor

    seen.clear()
    with ThreadPoolExecutor(1) as pool:
        run_study(plan, executor=pool, log=lines.append)
    assert seen == {"search": 2, "spectrum": 2, "cap": 2}


@pytest.mark.parametrize("name", ["cdtese13", "zncdse13"])
def test_the_series_studies_load_in_both_modes_with_frame_starts(name, monkeypatch, tmp_path):
    """analysis/cdtese13 and analysis/zncdse13 (issue 20): homotops of the parent frames beside random starts;
    the templates are found from any working directory (they are relative to the config)."""
    from pathlib import Path

    from airss_msc.calc.engines import VALIDATED_RANKING
    from airss_msc.composition import parse_formula
    from airss_msc.search.rows import refinement_counts
    from airss_msc.search.study import load_study

    units = {"CdSe", "CdTe", "ZnSe", "Cd2Se2", "Cd2TeSe", "Cd2Te2", "ZnCdSe2"}
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)  # not the repository root
    for mode in ("reduced", "full"):
        study = load_study(root / "analysis" / name / f"{name}.toml", mode)
        series = [f for f in study.search.compositions if sum(parse_formula(f).values()) == 26]
        assert len(series) == 14 and len(set(series)) == 14  # the whole series, x or y = 0..13
        assert set(study.search.compositions) - set(series) <= units  # beside it only the exchanged units
        fresh = [m for m, _ in study.search.strategy.mix() if m.parents == 0]
        frame = next(m for m in fresh if m.name == "frame")
        assert all(Path(t).is_file() for t in frame.templates)
        parents = {Path(t).stem for t in frame.templates}
        # cdtese13 also starts from the PBE-lowest (CdSe)13 and (CdTe)13 frames (the (ZnSe)13 parent's)
        cdtese = {"Cd13Se13", "Cd13Te13", "Cd13Se13_znse_frame", "Cd13Te13_znse_frame"}
        # and zncdse13 from the PBE-lowest (ZnSe)13 (the (CdSe)13 parent's frame as ZnSe)
        zncdse = {"Zn13Se13", "Cd13Se13", "Zn13Se13_cdse_frame"}
        assert parents == (cdtese if name == "cdtese13" else zncdse)
        assert frame.applies(["Cd"] * 13 + ["Se"] * 6 + ["Te"] * 7)  # 13 cation and 13 anion sites
        spectra = [s for s in study.steps if s.do == "spectrum"]
        if mode == "reduced":  # a laptop: no DFT step (a 26-atom PBE point alone is about an hour of a core)
            assert not study.steps
        else:  # the band trend: TDA-PBE0 of the end members' and intermediate compositions' lowest bare rows
            (ris,) = [s for s in spectra if s.method == "pyscf:TDA-ris-PBE/def2-SVP"]
            spectrum = next(s for s in spectra if s is not ris)
            (refine,) = [s for s in study.steps if s.do == "refine"]
            # and a TDA-ris-PBE spectrum of every composition's lowest, the estimate of the rest: run before the
            # refinement on as many as it refines at 26 atoms (by the ranking energy), so that its PBE ground
            # states are the refinement's points (one SCF each, not two) and PBE's lowest has a spectrum
            assert ris.compositions == () and ris.rows == "bare" and ris.energy == refine.energy
            assert study.steps.index(ris) < study.steps.index(refine)
            ranked_by = refine.energy or study.search.rank_energy  # what both steps choose their rows by
            assert ranked_by == VALIDATED_RANKING
            assert ris.top >= refinement_counts(refine.method, ranked_by, refine.top, {26})[26]
            assert spectrum.method == "pyscf:TDA-PBE0/def2-SVP" and spectrum.rows == "bare" and spectrum.top == 1
            assert {series[0], series[-1]} < set(spectrum.compositions) <= set(series)
            assert len(spectrum.compositions) >= 5
            # PBE on every composition's lowest: DFT mixing energies and a gap-map band estimate for each
            assert refine.method == "pyscf:PBE/def2-SVP" and refine.top == 1 and refine.compositions == ()
            assert refine.depth  # to the measured depth: PBE sees the structure it would put first
            assert spectrum.energy == refine.method  # the spectrum of PBE's lowest, which the report ranks first


def test_frame_templates_are_relative_to_the_config_not_the_working_directory(tmp_path, monkeypatch):
    """A [strategy.frame] template path is read from the config's folder; an absolute one is kept as given."""
    import shutil
    from pathlib import Path

    from airss_msc.search.study import load_study

    parent = Path(__file__).resolve().parents[2] / "structures" / "Cd13Se13.xyz"
    config = tmp_path / "study" / "s.toml"
    (tmp_path / "frames").mkdir()
    config.parent.mkdir()
    shutil.copy(parent, tmp_path / "frames" / "Cd13Se13.xyz")
    absolute = tmp_path / "frames" / "copy.xyz"
    shutil.copy(parent, absolute)
    config.write_text(
        '[search]\ncompositions = ["Cd13Se13"]\ncandidates = 2\n[relax]\nmethod = "lj"\n'
        '[strategy]\nname = "mix"\nmoves = { frame = 1.0 }\n'
        f'[strategy.frame]\ntemplates = ["../frames/Cd13Se13.xyz", "{absolute}"]\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    study = load_study(config)
    frame = next(m for m, _ in study.search.strategy.mix() if m.name == "frame")
    assert frame.templates == (str(tmp_path / "frames" / "Cd13Se13.xyz"), str(absolute))
    assert all(Path(t).is_file() for t in frame.templates)
    assert frame.applies(["Cd"] * 13 + ["Se"] * 13)


@pytest.mark.parametrize("flag", [None, "--depth", "--no-depth"])
def test_the_depth_setting_reaches_the_refinement(tmp_path, run_cli, monkeypatch, flag):
    """``refine --no-depth`` and ``[study.x] depth = false`` keep ``top``; the default raises it."""
    import airss_msc.cli as cli
    import airss_msc.search.study as study_mod
    from airss_msc.search.rows import RowsOutcome
    from airss_msc.search.study import StudyStep

    seen = []

    def fake(db, method, **kw):
        seen.append(kw["measured_depth"])
        return RowsOutcome(planned=0, skipped=0)

    monkeypatch.setattr(cli, "run_rows", fake)
    monkeypatch.setattr(study_mod, "run_rows", fake)
    code, _out, err = run_cli("refine", tmp_path / "x.db", *([flag] if flag else []), "--serial")
    assert code == 0, err
    assert seen == [flag != "--no-depth"]
    seen.clear()
    for depth in (True, False):
        StudyStep(name="r", do="refine", method="pyscf:PBE/def2-SVP", depth=depth).run(
            str(tmp_path / "x.db"), None, 1, None, None
        )
        StudyStep(name="s", do="spectrum", method="pyscf:TDA-PBE0/def2-SVP", depth=depth).run(
            str(tmp_path / "x.db"), None, 1, None, None
        )
    assert seen == [True, False, False, False]  # a spectrum has no depth: it computes what it is given
