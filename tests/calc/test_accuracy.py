"""The measured errors every report quotes come from the committed validation runs, not from text
typed beside the engines (which went stale three times as PBE points landed)."""

import pytest

from airss_msc.calc.engines import VALIDATED_RANKING, measured_error
from airss_msc.calc.engines import accuracy as A
from airss_msc.calc.engines.accuracy import accuracy, packaged_accuracies, parse_accuracies
from airss_msc.errors import InputError


def test_the_packaged_errors_are_what_the_committed_runs_give():
    """A PBE point (or engine single point) committed without rewriting data/measured_errors.toml would
    leave every report quoting numbers the benchmark no longer measures. By design this fails as soon
    as a finished reference point lands in benchmarks/reference/ until `--write-errors` is rerun."""
    from benchmarks import energy_validation as ev

    images = ev.load_set()
    pbe, _ = ev.pbe_energies(images)
    sps = ev.sp_cache()
    assert images and pbe and sps, "the committed reference set is missing"
    methods = ev.measured_methods(sps)
    records = ev.accuracy_records(ev.measure(images, methods, pbe, sps), methods)
    assert records
    assert packaged_accuracies() == ev.accuracies(records), (
        "rerun python -m benchmarks.energy_validation --no-compute --no-report --write-errors"
    )


def test_the_written_file_reads_back_as_the_records(tmp_path):
    from benchmarks import energy_validation as ev

    records = [
        {
            "method": "tblite:GFN2-xTB",
            "label": 'GFN2 "x"',
            "same_model": ["xtb:GFN2-xTB"],
            "anion_sign_same": 3,
            "anion_sign_pairs": 4,
            "size_class": [
                {
                    "label": "9-16 atoms",
                    "min_atoms": 9,
                    "max_atoms": 16,
                    "formulas": 2,
                    "spearman_median": 0.5,
                    "lowest_first": 1,
                    "mae_meV_per_atom": 12.3,
                }
            ],
        }
    ]
    path = tmp_path / "errors.toml"
    ev.write_errors(records, path)
    back = parse_accuracies(A.tomllib.loads(path.read_text()))
    assert set(back) == {"tblite:GFN2-xTB", "xtb:GFN2-xTB"}
    rec, twin = back["tblite:GFN2-xTB"], back["xtb:GFN2-xTB"]
    assert rec.label == 'GFN2 "x"' and rec.anion_sign == (3, 4) and twin.measured_as == "tblite:GFN2-xTB"
    assert rec.at(12).spearman_median == 0.5 and rec.at(12).mae_meV_per_atom == 12.3
    assert rec.at(26) is None and rec.at(8) is None  # no class measured there: no number borrowed
    assert "9-16 atoms (2 formulas) 0.50, 1/2, 12.3 meV/atom" in rec.describe()
    assert "3/4 pairs" in rec.describe() and "measured as tblite:GFN2-xTB" in twin.describe()


@pytest.mark.parametrize(
    "change",
    [
        {"spearman_median": "high"},
        {"formulas": 2.5},
        {"mae_meV_per_atom": float("nan")},
        {"lowest_first": True},
    ],
)
def test_a_bad_number_is_a_one_line_error_naming_the_file(change):
    entry = {
        "label": "4-8 atoms",
        "min_atoms": 4,
        "max_atoms": 8,
        "formulas": 3,
        "spearman_median": 0.9,
        "lowest_first": 2,
        "mae_meV_per_atom": 50.0,
    } | change
    doc = {
        "reference_label": "PBE",
        "geometries": "CHGNet",
        "method": [{"method": "m", "label": "M", "size_class": [entry]}],
    }
    with pytest.raises(InputError, match=r"^errors\.toml: method 1: '"):
        parse_accuracies(doc, "errors.toml")


def test_the_ranking_energy_states_every_size_class_and_the_reference_none():
    record = accuracy(VALIDATED_RANKING)
    assert record is not None and {c.label for c in record.classes} >= {"4-8 atoms", "9-16 atoms", "26-27 atoms"}
    assert measured_error(VALIDATED_RANKING) == record.describe()
    assert measured_error("pyscf:PBE/def2-SVP") is None and measured_error("lj") is None


def test_an_error_for_a_size_quotes_that_size_class_only():
    at26 = measured_error(VALIDATED_RANKING, 26)
    assert "at 26-27 atoms" in at26 and "4-8 atoms" not in at26
    # a dimer has no measured class: the whole record, nothing borrowed from another size as its own
    assert measured_error(VALIDATED_RANKING, 2) == measured_error(VALIDATED_RANKING)


def test_the_readme_table_is_the_packaged_errors():
    """The README's 'Which energy model' table is written from the same file (its numbers went stale
    by hand before: GFN1's anion-anion sign stayed 3/8 as the pairs grew)."""
    from pathlib import Path

    from benchmarks import energy_validation as ev

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start, end = readme.index(ev.README_START), readme.index(ev.README_END) + len(ev.README_END)
    assert readme[start:end] == "\n".join(ev.errors_table_lines(packaged_accuracies())), (
        "rerun python -m benchmarks.energy_validation --no-compute --no-report --write-errors"
    )


def test_a_refinement_shallower_than_the_measured_depth_is_noted():
    from airss_msc.search.rows import refinement_depth_notes

    at11 = accuracy(VALIDATED_RANKING).at(11)
    depth = at11.depth()
    assert depth is not None and at11.lowest_within_top[depth - 1] == at11.formulas
    assert all(n < at11.formulas for n in at11.lowest_within_top[: depth - 1])
    pbe = "pyscf:PBE/def2-SVP"
    if depth > 1:
        (note,) = refinement_depth_notes(pbe, VALIDATED_RANKING, depth - 1, {11, 12})  # one note per size class
        assert f"refine at least {depth}" in note and "9-16 atoms" in note
    assert refinement_depth_notes(pbe, VALIDATED_RANKING, depth, {11}) == []
    # only a refinement with the reference is judged, and only by a measured ranking energy
    assert refinement_depth_notes("tblite:GFN2-xTB", VALIDATED_RANKING, 1, {11}) == []
    assert refinement_depth_notes(pbe, None, 1, {11}) == []


def test_a_ranking_energy_that_never_held_the_reference_lowest_is_noted_at_any_top():
    from airss_msc.search.rows import refinement_depth_notes

    shallow = [
        (m, c)
        for m, r in packaged_accuracies().items()
        for c in r.classes
        if r.measured_as is None and c.depth() is None and c.lowest_within_top
    ]
    assert shallow, "no engine misses the reference's lowest within 5 any more: pick another case"
    method, size_class = shallow[0]
    notes = refinement_depth_notes("pyscf:PBE/def2-SVP", method, 1, {size_class.min_atoms})
    assert len(notes) == 1 and "not always among even" in notes[0]


def _distinct_rows(formula_symbols, n, rank_energy, seed):
    """``n`` relaxed rows of one composition, distinct structures, ``rank_energy`` 0.1 eV apart."""
    import numpy as np

    from airss_msc.results.record import Result

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        res = Result(
            symbols=tuple(formula_symbols),
            positions=rng.normal(size=(len(formula_symbols), 3)) * 4.0,
            status="relaxed",
            method="chgnet:0.3.0",
            energy=-1.0 * k,
            id=seed * 100 + k,
        )
        res.energies[rank_energy] = 0.1 * k  # the ranking order is the row order
        out.append(res)
    return out


def test_a_reference_refinement_takes_the_measured_depth_at_each_size():
    """The default refinement is deep enough that the validation's PBE lowest would have been among
    the rows refined at that size: shallower, PBE never sees the structure it would put first."""
    from airss_msc.search.rows import _refined_selection, refinement_counts

    measured = accuracy(VALIDATED_RANKING)
    pbe = "pyscf:PBE/def2-SVP"
    big, small = measured.at(26), measured.at(11)
    assert big is not None and small is not None and small.depth()
    assert big.depth() and big.depth() > 1  # else the test below cannot tell a raised count from top
    counts = refinement_counts(pbe, VALIDATED_RANKING, 1, {26, 11, 500})
    assert counts == {26: big.depth(), 11: small.depth(), 500: 1}  # no class measured at 500 atoms: top
    assert refinement_counts(pbe, VALIDATED_RANKING, 9, {26}) == {26: 9}  # top is the floor
    assert refinement_counts("tblite:GFN2-xTB", VALIDATED_RANKING, 1, {26}) == {26: 1}  # not a reference
    assert refinement_counts(pbe, None, 1, {26}) == {26: 1}  # no ranking energy measured

    rows = _distinct_rows(["Cd"] * 13 + ["Se"] * 13, 6, VALIDATED_RANKING, 1)
    lines: list[str] = []
    chosen = _refined_selection(rows, pbe, VALIDATED_RANKING, 1, True, lines.append)
    assert [r.id for r in chosen] == [r.id for r in rows[: big.depth()]]  # the depth lowest by the ranking energy
    assert len(lines) == 1 and f"the {big.depth()} lowest" in lines[0] and "26-27 atoms" in lines[0]
    lines.clear()
    chosen = _refined_selection(rows, pbe, VALIDATED_RANKING, 1, False, lines.append)  # --no-depth
    assert [r.id for r in chosen] == [rows[0].id]
    assert len(lines) == 1 and f"refine at least {big.depth()}" in lines[0]  # and a note that it may miss
    lines.clear()
    chosen = _refined_selection(rows, pbe, None, 1, True, lines.append)  # each row's own method: not measured
    assert len(chosen) == 1 and len(lines) == 1 and "no refine depth measured" in lines[0]


def test_the_held_out_depth_is_measured_on_the_other_formulas_only():
    """A formula's own miss must not set the depth it is tested against, or the check could never fail."""
    from benchmarks.energy_validation import held_out_depth

    per_formula = {
        "A": {"lowest_rank": 1, "n": 5},
        "B": {"lowest_rank": 3, "n": 4},  # deeper than the others ever were: missed when held out
        "C": {"lowest_rank": 2, "n": 2},  # 2 isomers against depth 3: cannot miss
        "D": None,  # too few PBE points: not in the class
    }
    rows = {f: (depth, place, n) for f, depth, place, n in held_out_depth(per_formula)}
    assert rows == {"A": (3, 1, 5), "B": (2, 3, 4), "C": (3, 2, 2)}
