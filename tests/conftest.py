"""Shared test setup: one OpenMP thread (xTB on tiny clusters), small helpers."""

import os

# Before any engine library is loaded: oversubscribed OpenMP threads are very slow.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402

from airss_msc.cli import main  # noqa: E402


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
