"""Search progress for people: a live bar on a terminal, periodic lines in batch logs."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Counts finished candidates and reports rate and estimated time left.

    On a terminal the last line is a bar redrawn in place; otherwise (batch
    logs) a one-line status is written every ``every`` seconds. Result lines go
    through :meth:`line` so they never garble the bar.
    """

    def __init__(
        self, total: int, stream: TextIO | None = None, every: float = 60.0, clock: Callable[[], float] = time.monotonic
    ):
        self.total = total
        self.done = 0
        self.failed = 0
        self.stream = stream or sys.stderr
        self.every = every
        self.clock = clock
        self.start = clock()
        self._last_status = self.start
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())

    def status(self) -> str:
        elapsed = self.clock() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = _duration(left / rate) if rate > 0 else "?"
        return f"{self.done}/{self.total} done, {self.failed} not relaxed, {60 * rate:.2f}/min, about {eta} left"

    def _bar(self) -> str:
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        return f"[{'#' * filled}{'-' * (width - filled)}] {self.status()}"

    def line(self, text: str) -> None:
        """Print a result line (above the bar on a terminal)."""
        if self.live:
            self.stream.write("\r\033[K" + text + "\n" + self._bar())
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def advance(self, relaxed: bool) -> None:
        self.done += 1
        self.failed += not relaxed
        now = self.clock()
        if self.live:
            self.stream.write("\r\033[K" + self._bar())
            self.stream.flush()
        elif now - self._last_status >= self.every:
            self._last_status = now
            self.stream.write(f"status: {self.status()}\n")
            self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
