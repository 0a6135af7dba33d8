"""benchmarks/search_common.py: every stored run records the peer packages it ran on, and a
peer that is not installed is recorded as such rather than failing the run."""

from __future__ import annotations

import importlib.metadata

from benchmarks.search_common import package_versions


def test_package_versions_names_the_installed_and_the_absent():
    versions = package_versions(("ase", "surely-not-a-package-here"))
    assert versions == {"ase": importlib.metadata.version("ase"), "surely-not-a-package-here": None}
