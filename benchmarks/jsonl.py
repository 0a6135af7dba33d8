"""The benchmarks' resumable stores: one JSON object a line, appended as each result finishes.

A kill (even -9) can cut the last line short. Reading skips such a line (its result is simply
computed again), and the next append first closes it with a newline, so the new line stays whole.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    """Every complete line of ``path`` (none if it does not exist); a cut line is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # blank, or a line cut by a kill
            continue
    return out


def append_jsonl(path: Path, row: dict) -> None:
    """Append one JSON line in one write, under an exclusive lock (safe for two processes), and
    fsync it; a cut last line is first closed by a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(row) + "\n"
    with open(path, "ab") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            if fh.tell() > 0:
                with open(path, "rb") as rd:
                    rd.seek(-1, os.SEEK_END)
                    if rd.read(1) != b"\n":
                        text = "\n" + text
            fh.write(text.encode())
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
