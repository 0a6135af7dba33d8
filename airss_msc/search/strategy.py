"""Search strategies: which move makes the next start, and from which parents.

A strategy is a weighted mix of moves (:mod:`airss_msc.generation.moves`) over a
population (:class:`~airss_msc.search.pool.Pool`). The first ``random_starts``
candidates of each composition are fresh starts (drawn by weight from the
mix's fresh-start moves, ``random`` and ``symmetric``, or plain random starts
if it has none); after that each candidate draws a move by weight and its
parents from the ``pool`` lowest unique minima (``basin`` instead walks from
one current minimum with Metropolis acceptance at ``temperature``). Moves that
cannot act on a composition (a swap without a mixed sublattice) are left out
for it. ``random_starts = 0`` continues from minima already in the database
(seeded searches; with none stored yet, the first candidates are random starts).
Named presets keep old configs working:

- ``random``: every candidate a fresh random structure (AIRSS).
- ``shake``: relax-and-shake from the pool (AIRSS ``-num/-amp``).
- ``basin``: basin hopping: shakes of the current minimum, Metropolis acceptance.
- ``swap``: homotop swaps on the mixed sublattice (alloys).
- ``ga``: cut-and-splice of two pool members, with shakes and swaps as mutations.
- ``mix``: cut-and-splice, twists, shakes, surface relocations and homotop deals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from airss_msc.composition import parse_formula, symbols_of
from airss_msc.errors import InputError
from airss_msc.generation.moves import MOVES, Move, Parent, make_move
from airss_msc.search.pool import Pool
from airss_msc.settings import documented, setting

#: Preset name -> move weights (an empty mix: random starts only).
PRESETS: dict[str, dict[str, float]] = {
    "random": {},
    "shake": {"shake": 1.0},
    "basin": {"shake": 1.0},
    "swap": {"swap": 0.8, "shake": 0.2},
    "ga": {"cut_splice": 0.6, "shake": 0.2, "swap": 0.2},
    # every move of the pool: Deaven-Ho mating, twists and surface relocations keep
    # good cores, shakes and homotop deals explore near them (swap/permute only where
    # a sublattice is mixed)
    "mix": {"cut_splice": 0.4, "twist": 0.2, "shake": 0.2, "relocate": 0.1, "permute": 0.1},
}


def _read_moves(value, section: str) -> tuple[tuple[str, float], ...]:
    """``moves = { cut_splice = 0.5, shake = 0.5 }`` -> (move, weight) pairs."""
    if not isinstance(value, dict) or not all(
        isinstance(w, (int, float)) and not isinstance(w, bool) for w in value.values()
    ):
        raise TypeError(value)
    return tuple((str(name), float(weight)) for name, weight in value.items())


@documented
@dataclass(frozen=True)
class StrategySettings:
    """How starts are chosen (the ``[strategy]`` table). Lengths in Angstrom (sigma for LJ);
    temperature in energy units. Each move's own settings come from its ``[strategy.MOVE]`` table."""

    name: str = setting("random", help="preset: " + " | ".join(PRESETS))
    random_starts: int = setting(10, help="fresh starts per composition before moves begin")
    pool: int = setting(5, help="parents drawn from this many lowest distinct minima")
    temperature: float = setting(0.1, help="Metropolis temperature of basin hopping", unit="eV (epsilon for LJ)")
    moves: tuple[tuple[str, float], ...] = setting(
        (),
        parse=_read_moves,
        expects="a table of move = weight",
        shown="the preset's mix",
        help="a weighted mix of moves, e.g. { cut_splice = 0.5, twist = 0.3, shake = 0.2 }",
    )
    move_settings: tuple[tuple[str, tuple], ...] = setting(
        (),
        toml=False,
        help="(move, ((key, value), ...)) pairs: each move's own settings, from its [strategy.MOVE] table",
    )
    amplitude: float | None = setting(
        None, help="shake amplitude (short for [strategy.shake] amplitude)", unit="Angstrom", shown="the move's own"
    )
    swaps: int | None = setting(
        None, help="swaps per swap move (short for [strategy.swap] swaps)", shown="the move's own"
    )

    def validate(self) -> StrategySettings:
        if self.name not in PRESETS:
            raise InputError(f"unknown strategy {self.name!r}: choose {', '.join(PRESETS)}")
        if self.random_starts < 0 or self.pool < 1:
            raise InputError("random_starts must be >= 0 and pool >= 1")
        if self.temperature < 0:
            raise InputError(f"temperature must be >= 0, got {self.temperature!r}")
        if any(w < 0 for _, w in self.moves) or (self.moves and not sum(w for _, w in self.moves) > 0):
            raise InputError("move weights must be >= 0 with a positive sum")
        self.mix()  # builds every move: unknown names and settings fail here
        return self

    @property
    def walks(self) -> bool:
        """Basin hopping: moves start from one current minimum, accepted by Metropolis."""
        return self.name == "basin"

    @property
    def uses_parents(self) -> bool:
        return bool(self.weights())

    def weights(self) -> dict[str, float]:
        return dict(self.moves) if self.moves else dict(PRESETS[self.name])

    def _settings_of(self, name: str) -> dict:
        own = dict(dict(self.move_settings).get(name, ()))
        if self.amplitude is not None and "amplitude" in MOVES.get(name, Move).settings_keys() and name == "shake":
            own.setdefault("amplitude", float(self.amplitude))
        if self.swaps is not None and name == "swap":
            own.setdefault("swaps", int(self.swaps))
        return own

    def mix(self) -> list[tuple[Move, float]]:
        return [(make_move(name, **self._settings_of(name)), float(w)) for name, w in self.weights().items() if w > 0]

    def choose(self, formula: str, index: int, pool: Pool, rng: np.random.Generator) -> tuple[Move, list[Parent]]:
        """The move and parents of candidate ``index`` (a fresh start when no move applies)."""
        elements = _elements(formula)
        mix = [(m, w) for m, w in self.mix() if m.applies(elements)]
        fresh = [(m, w) for m, w in mix if m.parents == 0] or [(make_move("random"), 1.0)]
        if index < self.random_starts:
            return _draw(fresh, rng), []
        if self.walks:
            walker = pool.walker(formula)
            moves = [(m, w) for m, w in mix if m.parents <= (1 if walker is not None else 0)]
            move = _draw(moves or fresh, rng)
            return move, [walker] if move.parents and walker is not None else []
        available = len(pool.lowest(formula))
        usable = [(m, w) for m, w in mix if m.parents <= available]
        move = _draw(usable or fresh, rng)
        return move, pool.choose(formula, move.parents, rng) or []


def _elements(formula: str) -> tuple[str, ...]:
    return tuple(symbols_of(parse_formula(formula)))


def _draw(mix: list[tuple[Move, float]], rng: np.random.Generator) -> Move:
    weights = np.array([w for _, w in mix], dtype=float)
    return mix[int(rng.choice(len(mix), p=weights / weights.sum()))][0]
