"""Progress lines from inside long calculations (DFT SCF cycles, TDA Davidson iterations).

A science function returns its result and nothing else; how far it has got goes
to whoever asked, through a log callable installed for the duration of a job::

    with reporting(print):
        excite(atoms, "pyscf:TDA-PBE/def2-SVP", 4)

Engines call :func:`report` (a no-op when nothing is installed) and :func:`active`, and
wrap their SCF callbacks in :func:`scf_callback`; how an engine's own log becomes progress
lines (PySCF's Davidson iterations) is the engine module's business. Lines about
iterations come at most every ``every`` seconds, so a refinement with hundreds
of SCFs does not flood the log; start and end lines always come.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar

#: Seconds between two iteration lines (SCF cycles, Davidson iterations).
DEFAULT_EVERY = 15.0


class Reporter:
    """A log callable with a prefix and a rate limit for iteration lines."""

    def __init__(
        self,
        log: Callable[[str], None],
        prefix: str = "",
        every: float = DEFAULT_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.log = log
        self.prefix = prefix
        self.every = every
        self.clock = clock
        self._last = -float("inf")

    def say(self, text: str, always: bool = True) -> None:
        if always:  # a new phase (an SCF, the Davidson): its first iteration line comes at once
            self._last = -float("inf")
        else:
            now = self.clock()
            if now - self._last < self.every:
                return
            self._last = now
        self.log(f"{self.prefix}{text}")


_current: ContextVar[Reporter | None] = ContextVar("airss_msc_progress", default=None)


@contextlib.contextmanager
def reporting(log: Callable[[str], None] | None, prefix: str = "", every: float | None = None) -> Iterator[None]:
    """Send :func:`report` lines to ``log`` inside the block (None: keep whatever is installed);
    iteration lines at most every ``every`` s (None: :data:`DEFAULT_EVERY`)."""
    if log is None:
        yield
        return
    token = _current.set(Reporter(log, prefix, DEFAULT_EVERY if every is None else every))
    try:
        yield
    finally:
        _current.reset(token)


def active() -> bool:
    return _current.get() is not None


def report(text: str, always: bool = True) -> None:
    """One progress line (``always=False``: an iteration line, rate-limited)."""
    reporter = _current.get()
    if reporter is not None:
        reporter.say(text, always)


def scf_callback(inner: Callable[[dict], None] | None, label: str) -> Callable[[dict], None] | None:
    """``inner`` (a PySCF SCF callback, e.g. the divergence guard) that also reports each cycle:
    cycle, total energy (Hartree), orbital gradient and seconds per cycle. ``inner`` itself
    when nothing is reporting."""
    if not active():
        return inner
    last = [time.monotonic()]

    def callback(envs: dict) -> None:
        now = time.monotonic()
        energy, gradient = envs.get("e_tot"), envs.get("norm_gorb")
        cycle = envs.get("cycle", envs.get("imacro", "?"))  # the second-order solver counts macro steps
        report(
            f"SCF ({label}) cycle {cycle}: "
            + (f"E={float(energy):.8f} Ha" if energy is not None else "E=?")
            + (f"  |g|={float(gradient):.1e}" if gradient is not None else "")
            + f"  {now - last[0]:.1f} s/cycle",
            always=False,
        )
        last[0] = now
        if inner is not None:
            inner(envs)  # the guard may raise: the line about the cycle came first

    return callback
