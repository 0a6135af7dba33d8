"""The README's pipeline, run as written (fewer starts; the DFT lines left out, they take minutes).

Issue 21 found the README's own pipeline ranking by CHGNet. This test reads the commands from
the README's "The pipeline" block itself, so an edit there that stops ranking by the validated
energy (or a command that no longer parses) fails here.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
from pathlib import Path

import pytest

from airss_msc.analysis.rank import load_results

README = Path(__file__).resolve().parents[1] / "README.md"

#: Lines run here; refine and spectrum (PBE, TDA-PBE0 at 12 atoms) take minutes each.
RUN = ("generate", "relax", "rank", "cap", "report")
STARTS = "3"  # the README generates 20; three are enough to rank and cap


def pipeline_commands() -> list[list[str]]:
    section = README.read_text().split("## The pipeline", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["airss-msc"] and len(words) > 1:
            commands.append(words[1:])
    return commands


def test_the_readme_pipeline_block_has_the_recommended_protocol():
    commands = pipeline_commands()
    relax = next(c for c in commands if c[0] == "relax")
    scores = [relax[i + 1] for i, w in enumerate(relax) if w == "--score"]
    assert "sevennet" in scores, relax  # the ranking energy is computed where the README relaxes
    assert "--method" not in relax  # relaxed by the default geometry engine


@pytest.mark.slow
def test_the_readme_pipeline_runs_as_written_and_ranks_by_sevennet(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran = []
    for words in pipeline_commands():
        if words[0] not in RUN or (words[0] == "rank" and "--energy" in words):
            continue
        if words[0] == "generate":
            words = [STARTS if i and words[i - 1] == "-n" else w for i, w in enumerate(words)]
        code, out, err = run_cli(*words)
        assert code == 0, (words, err)
        ran.append((words[0], out, err))
    assert [name for name, *_ in ran] == list(RUN)

    rank_out = next(out for name, out, _ in ran if name == "rank")
    assert "ranked by sevennet" in rank_out.splitlines()[0], rank_out
    # the order printed is the order of the stored SevenNet-0 single points
    code, out, _ = run_cli("rank", "results.db", "--format", "csv")
    assert code == 0
    printed = [int(r["id"]) for r in csv.DictReader(io.StringIO(out)) if r["formula"] == "Cd6Te2Se4"]
    relaxed = [r for r in load_results(["results.db"]) if r.ok and r.composition == "Cd6Te2Se4"]
    method = next(m for m in relaxed[0].energies if m.startswith("sevennet"))
    by_sevennet = sorted(relaxed, key=lambda r: r.energy_by(method))
    assert printed[0] == by_sevennet[0].id
    assert printed == [r.id for r in by_sevennet if r.id in printed]
    assert Path("report/report.html").is_file()
