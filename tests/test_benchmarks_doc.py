"""BENCHMARKS.md is what its assembler makes of the committed prose and tables.

``benchmarks/out/`` is not committed, so in a fresh clone every table comes back from the page
itself; a page edited by hand, or prose changed without reassembling, no longer round-trips.
"""

from pathlib import Path

import benchmarks.assemble_benchmarks

ROOT = Path(__file__).resolve().parents[1]


def load_assembler():
    return benchmarks.assemble_benchmarks


def test_a_fresh_checkout_reassembles_benchmarks_md_unchanged(tmp_path, monkeypatch):
    assembler = load_assembler()
    monkeypatch.setattr(assembler, "OUT", tmp_path)  # nothing written by a script yet
    page = (ROOT / "BENCHMARKS.md").read_text()
    prose = assembler.narrative(ROOT / "benchmarks" / "narrative.md")
    previous = assembler.previous_tables(page, prose)
    assert assembler.assemble(prose, previous) == page
    assert "(not run:" not in page  # every section's table was found


def test_a_rerun_benchmark_replaces_only_its_own_table(tmp_path, monkeypatch):
    assembler = load_assembler()
    monkeypatch.setattr(assembler, "OUT", tmp_path)
    (tmp_path / "quick.md").write_text("# Quick\n\nnew table\n")
    page = (ROOT / "BENCHMARKS.md").read_text()
    prose = assembler.narrative(ROOT / "benchmarks" / "narrative.md")
    previous = assembler.previous_tables(page, prose)
    new = assembler.assemble(prose, previous)
    assert "### Quick\n\nnew table" in new
    assert assembler.previous_tables(new, prose).keys() == previous.keys()
    assert {k: v for k, v in assembler.previous_tables(new, prose).items() if k != "quick.md"} == {
        k: v for k, v in previous.items() if k != "quick.md"
    }


def test_a_section_whose_prose_changed_does_not_swallow_the_next_sections(tmp_path, monkeypatch):
    assembler = load_assembler()
    monkeypatch.setattr(assembler, "OUT", tmp_path)
    page = (ROOT / "BENCHMARKS.md").read_text()
    prose = assembler.narrative(ROOT / "benchmarks" / "narrative.md")
    # the energy section's prose edited since the page was written: the capping table before it
    # must still end at the page's next section heading, not at the next prose that still matches
    edited = dict(prose, energy=prose["energy"].replace("## Energy models", "## Energy models (edited)", 1))
    previous = assembler.previous_tables(page, edited)
    assert "Energy models" not in previous["capping.md"]
    new = assembler.assemble(edited, previous)
    assert new.count("Energy models") == 1  # the edited heading, once; no stale copy inside capping
