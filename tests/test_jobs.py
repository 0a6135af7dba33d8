"""Job templates and example configs stay valid."""

import subprocess
from pathlib import Path

import pytest

from airss_msc.search.config import load_config

JOBS = Path(__file__).resolve().parent.parent / "jobs"


@pytest.mark.parametrize("script", sorted(JOBS.glob("*.sh")), ids=lambda p: p.name)
def test_job_template_parses(script):
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "airss-msc search" in text or "airss-msc study" in text
    if "srun" in text:
        assert "--mpi=pmi2" in text  # plain srun would duplicate the work


@pytest.mark.parametrize("config", sorted(JOBS.glob("*.toml")), ids=lambda p: p.name)
def test_example_config_loads(config):
    cfg = load_config(config)
    assert cfg.compositions and cfg.candidates > 0 and cfg.walltime


def test_zncdse13_example_covers_the_series():
    cfg = load_config(JOBS / "zncdse13_search.toml")
    assert len(cfg.compositions) == 14 and "Zn13Se13" in cfg.compositions
