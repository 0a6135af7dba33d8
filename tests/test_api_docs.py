"""The API reference: pdoc builds it from the docstrings with every warning an error, and
what the issue asked for is documented (exported names, subpackages, the Result record)."""

import dataclasses
import html
import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import airss_msc
from airss_msc.results.record import STATUSES, Result

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("analysis", "calc", "generation", "results", "search")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("api")
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "docs" / "build_api.py"), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, f"pdoc failed (warnings are errors):\n{proc.stderr[-4000:]}"
    assert "Warning" not in proc.stderr, proc.stderr
    return out


def _section(page: str, name: str) -> str:
    """The HTML of the <section id=name> of one documented member."""
    m = re.search(rf'<section id="{re.escape(name)}">(.*?)</section>', page, re.S)
    assert m, f"{name} is not in the reference"
    return m.group(1)


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_the_reference_builds_for_every_public_module(reference):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from build_api import MODULES
    finally:
        sys.path.remove(str(ROOT / "docs"))
    for module in MODULES:
        assert (reference / (module.replace(".", "/") + ".html")).is_file(), module
    for sub in SUBPACKAGES:
        for info in pkgutil.iter_modules([str(ROOT / "airss_msc" / sub)]):
            if not info.name.startswith("_"):
                assert (reference / "airss_msc" / sub / f"{info.name}.html").is_file(), info.name


def test_every_exported_name_is_documented_on_the_package_page(reference):
    page = (reference / "airss_msc.html").read_text()
    for name in airss_msc.__all__:
        section = _section(page, name)
        assert 'class="docstring"' in section, f"{name} has no docstring in the reference"
        value = getattr(airss_msc, name)
        if name != "__version__":
            first = value.__doc__.strip().splitlines()[0]
            words = re.findall(r"[A-Za-z]{4,}", first)[:3]  # rendered text differs in markup, not words
            assert all(w in _text(section) for w in words), (name, words)
        if name != "__version__":
            assert name in airss_msc.__doc__, f"the package docstring does not list {name}"


def test_subpackage_docstrings_describe_their_modules():
    for sub in SUBPACKAGES:
        package = importlib.import_module(f"airss_msc.{sub}")
        doc = package.__doc__ or ""
        assert len(doc.split()) >= 40, f"airss_msc.{sub} has a one-line docstring"
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                assert f"airss_msc.{sub}.{info.name}" in doc, (
                    f"airss_msc/{sub}/__init__.py does not say what its module {info.name} holds"
                )


def test_the_result_record_documents_every_field_status_and_unit(reference):
    doc = Result.__doc__
    for f in dataclasses.fields(Result):
        assert f"``{f.name}``" in doc, f"Result.{f.name} is not documented"
    for status in STATUSES:
        assert f"``{status}``" in doc, f"status {status} is not documented"
    assert "eV" in doc and "Angstrom" in doc
    # rendered, the field list links each field to its member entry
    page = (reference / "airss_msc" / "results" / "record.html").read_text()
    rendered = re.search(r'<section id="Result">.*?<div class="docstring">(.*?)</div>', page, re.S).group(1)
    for f in dataclasses.fields(Result):
        assert f'href="#Result.{f.name}"' in rendered, f"Result.{f.name} does not render as a link"


def test_result_atoms_is_a_property_giving_a_fresh_structure():
    import numpy as np
    from ase import Atoms

    res = Result(
        ("Cd", "Se"), np.array([[0.0, 0, 0], [2.6, 0, 0]]), status="relaxed", provenance={"formula": "CdSe", "seed": 4}
    )
    assert isinstance(Result.atoms, property)
    atoms = res.atoms
    assert isinstance(atoms, Atoms) and atoms.get_chemical_symbols() == ["Cd", "Se"]
    assert atoms.info["seed"] == 4 and atoms.calc is None
    atoms.positions[1, 0] = 9.0
    assert res.positions[1, 0] == 2.6 and res.atoms is not atoms  # a copy each time
