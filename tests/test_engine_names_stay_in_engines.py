"""Engine knowledge lives in ``airss_msc/calc/engines`` only (issue 22): no code elsewhere names an
engine, one of its models' aliases or its library, so adding an engine is one module plus one line.

Docstrings, comments and prose (help texts, messages, report sentences: strings with spaces) are
documentation and may name engines; a name-like string constant in code (a method name, a tuple of
preferences, an ``if engine == "xtb"``, the ``"xtb:"`` of an f-string) and an import of an engine's
library may not. Defaults come from ``default_method(Role...)``, preferences and labels from the engines.
"""

import ast
import itertools
import re
from pathlib import Path

from airss_msc.calc.engines import ENGINES

PACKAGE = Path(__file__).resolve().parents[1] / "airss_msc"
ENGINES_DIR = PACKAGE / "calc" / "engines"

#: Files other engineers own that still name engines in code (issue 22: each owner switches to
#: the registry's API; remove a file here once it is clean, and the test keeps it clean).
NOT_YET_CLEAN: frozenset[str] = frozenset()


def _engine_words() -> set[str]:
    words = set()
    for engine in ENGINES.values():
        words.add(engine.name.lower())
        if engine.requires:  # lj's distribution is ase itself
            words.add(engine.distribution.lower())
            words |= {alias for alias in engine.aliases if re.fullmatch(r"[a-z][a-z0-9]+", alias)}
    return words


def _libraries() -> set[str]:
    return {module.split(".")[0] for engine in ENGINES.values() for module in engine.requires} - {"torch"} | {
        engine.distribution for engine in ENGINES.values() if engine.requires
    }


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                ids.add(id(first.value))
        # attribute docstrings: a bare string right after an assignment (``X = 1`` then ``"""..."""``)
        for body in (getattr(node, "body", None), getattr(node, "orelse", None)):
            if isinstance(body, list):
                for before, after in itertools.pairwise(body):
                    if (
                        isinstance(before, (ast.Assign, ast.AnnAssign))
                        and isinstance(after, ast.Expr)
                        and isinstance(after.value, ast.Constant)
                        and isinstance(after.value.value, str)
                    ):
                        ids.add(id(after.value))
    return ids


def leaks(source: str, words: set[str], libraries: set[str]) -> list[tuple[int, str]]:
    """(line, text) of each name-like string constant naming an engine, and each import of an engine
    library, in line order."""
    pattern = re.compile(r"(?<![a-z0-9])(" + "|".join(sorted(map(re.escape, words))) + r")(?![a-z0-9])", re.I)
    tree = ast.parse(source)
    skip = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if " " not in node.value.strip() and pattern.search(node.value):
                out.append((node.lineno, node.value))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, f"import {a.name}") for a in node.names if a.name.split(".")[0] in libraries]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in libraries:
            out.append((node.lineno, f"from {node.module} import ..."))
    return sorted(out)


def test_the_checker_sees_code_and_ignores_documentation():
    words, libraries = _engine_words(), _libraries()
    source = (
        '"""Relax with CHGNet, refine with PySCF."""\n'
        "# GFN2-xTB collapses them\n"
        'X = 1\n"""Docs for X: tblite:GFN2-xTB."""\n'
        'def f(m):\n    """xtb is fast."""\n    return m.engine == "xtb"\n'
        'PREFERRED = ("pyscf:PBE0/def2-SVP",)\n'
        'label = f"xtb:{m}"\n'
        "from pyscf.lib import logger\n"
        'ok = "the ljung box"\n'
        'raise ValueError("GFN2-xTB relaxations of bare clusters collapse")\n'
    )
    assert [line for line, _ in leaks(source, words, libraries)] == [7, 8, 9, 10]


def test_no_code_outside_the_engines_names_an_engine():
    words, libraries = _engine_words(), _libraries()
    found, clean_now = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ENGINES_DIR in path.parents:
            continue
        rel = path.relative_to(PACKAGE.parent).as_posix()
        hits = leaks(path.read_text(), words, libraries)
        if rel in NOT_YET_CLEAN:
            if not hits:
                clean_now.append(rel)
            continue
        found += [f"{rel}:{line}: {text!r}" for line, text in hits]
    assert not found, "engine knowledge outside calc/engines (use the registry):\n" + "\n".join(found)
    assert not clean_now, f"clean now, remove from NOT_YET_CLEAN: {clean_now}"
