"""benchmarks/gpu_check.py (issue 23 item 2) on a machine without a GPU: every GPU part is skipped with
its reason and the script exits 0; with --allow-cpu its batched-relaxation part runs on the CPU."""

from __future__ import annotations

import pytest

from benchmarks import gpu_check


def _no_gpu() -> bool:
    return gpu_check.torch_gpu() is None and not gpu_check.pyscf_gpu()


@pytest.mark.skipif(not _no_gpu(), reason="this machine has a GPU: the check runs for real")
def test_without_a_gpu_every_part_is_skipped_and_it_exits_cleanly(tmp_path, capsys):
    out = tmp_path / "gpu_check.md"
    assert gpu_check.main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("no GPU:")
    text = out.read_text()
    assert text.startswith("# GPU check: no GPU")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "skipped" in line]
    assert len(rows) == 2 + 2 + 2  # two ML models, two PBE cases, two TDA cases
    assert all("no GPU" in r or "gpu4pyscf" in r for r in rows)


def test_pbe_cases_come_from_the_committed_cpu_energies():
    cases = {formula: (record, note) for formula, record, note in gpu_check.pbe_cases()}
    record, note = cases["Cd4Se4"]
    assert record is not None and record["formula"] == "Cd4Se4" and record["energy_eV"] < 0 and not note
    big, note = cases["Cd13Se13"]
    assert big is not None and big["natoms"] == 26
    assert note == "" if big["formula"] == "Cd13Se13" else "Cd13Te13 instead" in note
    assert len(gpu_check._structure(record["name"])) == 8
    atoms, name = gpu_check.tda_geometry("Cd3Se3")
    assert len(atoms) == 6 and name.startswith("Cd3Se3")


@pytest.mark.slow
def test_allow_cpu_runs_the_batched_relaxation_part(tmp_path):
    out = tmp_path / "gpu_check.md"
    assert gpu_check.main(["--out", str(out), "--allow-cpu", "--starts", "2", "--formula", "Cd3Se3"]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| batched relaxation")]
    assert len(rows) == 2
    assert all("2 Cd3Se3 on cpu" in r and "structures/s" in r for r in rows)
