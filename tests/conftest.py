"""Shared test setup: one OpenMP thread (xTB on tiny clusters), small helpers."""

import os

# Before any engine library is loaded: oversubscribed OpenMP threads are very slow.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest

from airss_msc.calc.engines import ENGINES
from airss_msc.cli import main


@pytest.fixture
def run_cli(capsys):
    """Run ``airss-msc ARGS`` in process; returns (exit code, stdout, stderr)."""

    def run(*args: str):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


# --------------------------------------------------------------------------- slow tests
# `pytest -m "not slow"` is the quick loop (make test-fast). Tests that run a real engine
# (xTB, an ML potential, DFT) or mpiexec carry @pytest.mark.slow; besides, any test whose
# module or function name has one of these words (split at "_") is marked here, so new
# engine test modules (test_chgnet.py, test_pyscf_refine.py, test_ml_engines.py, ...) are
# slow without further ado. The engine words come from the registry (every engine that needs a
# library: its name, its distribution and its model aliases), so a new engine's tests are slow too;
# Lennard-Jones needs none and stays in the quick loop.
GENERIC_SLOW_WORDS = frozenset({"ml", "mace", "torch", "dft", "tddft", "mpi", "mpiexec"})


def _engine_words() -> frozenset[str]:
    words: set[str] = set()
    for engine in ENGINES.values():
        if engine.requires:
            words |= {engine.name, engine.distribution, *engine.aliases}
    return frozenset(words)


SLOW_WORDS = GENERIC_SLOW_WORDS | _engine_words()

#: A test not marked slow that takes longer than this (s) is listed at the end of the run.
FAST_LIMIT = 10.0


def _named_slow(item) -> bool:
    words = set(item.path.stem.lower().split("_")) | set(getattr(item, "originalname", item.name).lower().split("_"))
    return bool(words & SLOW_WORDS)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") is None and _named_slow(item):
            item.add_marker(pytest.mark.slow)


_unmarked_slow: list[tuple[str, float]] = []


def pytest_runtest_logreport(report):
    if report.when == "call" and report.duration > FAST_LIMIT and "slow" not in report.keywords:
        _unmarked_slow.append((report.nodeid, report.duration))


def pytest_terminal_summary(terminalreporter):
    if _unmarked_slow:
        terminalreporter.section("tests over the quick-loop budget, not marked slow")
        for nodeid, seconds in _unmarked_slow:
            terminalreporter.write_line(f"{seconds:6.1f} s  {nodeid}  (mark it @pytest.mark.slow if it must be slow)")
