"""benchmarks/ is a package: its scripts run as ``python -m benchmarks.<name>`` from the repository
root, import each other as ``benchmarks.<name>`` (never through ``sys.path`` edits), find files
through benchmarks/paths.py, and benchmarks/reference/ holds data only, its caches not committed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import benchmarks
from benchmarks import paths

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SOURCES = sorted(BENCH.rglob("*.py"))
#: the scripts (modules with a ``__main__`` block)
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


def _trees() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(), filename=str(p)) for p in SOURCES}


def test_benchmarks_is_the_package_imported_here():
    assert Path(benchmarks.__file__).resolve() == BENCH / "__init__.py"
    assert paths.BENCHMARKS == BENCH and paths.REPO == ROOT
    assert len(SCRIPTS) >= 10


def test_no_benchmark_edits_sys_path():
    found = []
    for path, tree in _trees().items():
        for node in ast.walk(tree):
            edits = (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
            )
            edits |= (
                isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "path" for a in node.names)
            )
            edits |= isinstance(node, ast.Attribute) and node.attr == "addsitedir"
            if edits:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_benchmarks_import_each_other_through_the_package():
    siblings = {p.stem for p in SOURCES} - {"__init__"}
    wrong, missing = [], []
    for path, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} relative import")
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top, _, rest = name.partition(".")
                if top in siblings:
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} import {name}")
                if top == "benchmarks" and rest:
                    target = BENCH.joinpath(*rest.split("."))
                    if not (target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()):
                        missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert wrong == [] and missing == []


def test_paths_are_defined_in_benchmarks_paths_only():
    """Only paths.py locates files from its own place; every other module asks it."""
    users = [
        str(p.relative_to(ROOT))
        for p, tree in _trees().items()
        if any(isinstance(n, ast.Name) and n.id == "__file__" for n in ast.walk(tree))
    ]
    assert users == ["benchmarks/paths.py"]


def test_the_reference_folder_holds_data_and_its_caches_are_ignored():
    assert list(paths.REFERENCE.rglob("*.py")) == []
    for path in (paths.STRUCTURES, paths.PBE, paths.SETS, paths.METHOD_VALIDATION_STARTS, paths.ENGINE_SINGLE_POINTS):
        assert path.exists() and paths.REFERENCE in path.parents, path
    tracked = subprocess.run(
        ["git", "ls-files", "--", str(paths.WORK.relative_to(ROOT))], cwd=ROOT, capture_output=True, text=True
    )
    if tracked.returncode == 0:  # outside a git checkout there is nothing to check
        assert tracked.stdout.strip() == "", "caches under benchmarks/reference/work are committed"
        for cache in (paths.RELAX_CACHE, paths.CLAIMS / "job.lock"):
            ignored = subprocess.run(["git", "check-ignore", "-q", str(cache.relative_to(ROOT))], cwd=ROOT)
            assert ignored.returncode == 0, f"{cache} is not ignored"


def test_every_script_runs_as_a_module_from_the_repository_root():
    """``python -m benchmarks.<name> --help`` for every script, in one interpreter (runpy runs a module
    the way -m does): each parses its options without writing anything."""
    code = (
        "import runpy, sys\n"
        f"for name in {SCRIPTS!r}:\n"
        "    sys.argv = [name, '--help']\n"
        "    try:\n"
        "        runpy.run_module('benchmarks.' + name, run_name='__main__', alter_sys=True)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), (name, exc.code)\n"
        "    else:\n"
        "        raise AssertionError(name + ' --help did not exit')\n"
        "    print('ok', name)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line.split()[1] for line in done.stdout.splitlines() if line.startswith("ok ")] == SCRIPTS


def test_the_caches_are_recreated_where_they_are_missing(tmp_path, monkeypatch):
    """A fresh clone has no benchmarks/reference/work: the relaxation cache starts empty and is
    created by its first line, a job's lock file creates its folder."""
    import benchmarks.build_reference as br
    import benchmarks.compute_reference as cr

    work = tmp_path / "work"
    monkeypatch.setattr(br, "CACHE", work / "relax_cache.jsonl")
    monkeypatch.setattr(br, "_CACHE", None)
    monkeypatch.setattr(cr, "CLAIMS", work / "claims")
    assert br._load_cache() == {}
    br.append_jsonl(br.CACHE, {"key": "Cd2Se2|proto|ring|chgnet:0.3.0|0.02"})
    monkeypatch.setattr(br, "_CACHE", None)
    assert list(br._load_cache()) == ["Cd2Se2|proto|ring|chgnet:0.3.0|0.02"]
    with cr.Claim("Cd2Se2-ring") as mine:
        assert mine and (work / "claims" / "Cd2Se2-ring.lock").is_file()
