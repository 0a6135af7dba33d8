"""Which code a benchmark table describes: the one commit marker every script in benchmarks/ prints.

A table is only as good as the code it ran on, so the marker says when the measured code (the
package and the benchmark scripts, not the result files they append to) differs from HEAD.
"""

from __future__ import annotations

import importlib.metadata
import subprocess

from benchmarks.paths import REPO

MEASURED = ("airss_msc", "benchmarks/*.py")


def git_commit(paths: tuple[str, ...] = MEASURED) -> str:
    """The commit of the code this process runs: HEAD as it was when this module was imported (at the
    start of every benchmark), so that a run of hours that outlives later commits still names the code
    it loaded; see :func:`head_commit`."""
    return _AT_START if paths == MEASURED else head_commit(paths)


def head_commit(paths: tuple[str, ...] = MEASURED) -> str:
    """Short HEAD commit now, with ``+dirty`` when tracked files under ``paths`` differ from it; ``unknown``
    outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True, timeout=20
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *paths],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


_AT_START = head_commit()


def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``; None where it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
