"""The README's config example is a config the loader takes, ranking and steering by what it computes."""

import re
import sys
from pathlib import Path

from airss_msc.search.config import config_from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_config_block_loads_and_ranks_by_a_computed_energy():
    text = README.read_text()
    section = text.split("## Config", 1)[1]
    block = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    config = config_from_dict(tomllib.loads(block), source="README.md")
    assert config.rank_energy == "sevennet:7net-0"
    assert config.rank_energy in config.relax.single_points
    assert config.strategy.name == "mix"
