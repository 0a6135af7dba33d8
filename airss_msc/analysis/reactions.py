"""Reaction energies between stored clusters: substitution, addition and exchange pathways.

A reaction is written as chemists write it, ``Cd13Te13 + CdSe -> Cd13Te12Se + CdTe`` (integer
coefficients allowed: ``2 CdSe``), and must balance. Its energy is

    dE = sum(products) - sum(reactants)      (eV per reaction as written)

with every species taken at its lowest stored energy by ONE stated method (its lowest relaxed
bare cluster of that formula), so the number means something only as far as that method ranks
and spreads energies: the method's measured error is stated beside it, and where the reference
(DFT) energy is stored on every one of those species the reference dE is given too.

:func:`substitution_steps` writes the stepwise pathways the MSC-399 paper argues about (one anion
of a parent replaced per step, the exchanged unit a monomer such as CdSe or a small fragment such
as Cd2Se2), and the Cd-for-Zn exchange of Zn_xCd_(13-x)Se_13 the same way (``old = "Zn"``).
Pure functions over :class:`~airss_msc.results.record.Result` lists; energies in eV.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from airss_msc.calc.engines import is_reference, measured_error, parse_method
from airss_msc.composition import canonical_formula, format_formula, parse_formula
from airss_msc.errors import InputError
from airss_msc.results.record import Result

_TERM = re.compile(r"^\s*(\d+)?\s*([A-Za-z0-9]+)\s*$")


@dataclass(frozen=True)
class Reaction:
    """``reactants -> products``, each side ``(coefficient, canonical formula)`` pairs."""

    reactants: tuple[tuple[int, str], ...]
    products: tuple[tuple[int, str], ...]

    def __str__(self) -> str:
        def side(terms):
            return " + ".join(f"{n} {f}" if n != 1 else f for n, f in terms)

        return f"{side(self.reactants)} -> {side(self.products)}"

    @property
    def species(self) -> tuple[str, ...]:
        """Every formula once, reactants first."""
        return tuple(dict.fromkeys(f for _, f in self.reactants + self.products))


def _atoms(terms) -> Counter:
    total: Counter = Counter()
    for n, formula in terms:
        for el, k in parse_formula(formula).items():
            total[el] += n * k
    return total


def parse_reaction(text: str) -> Reaction:
    """``"Cd13Te13 + CdSe -> Cd13Te12Se + CdTe"`` as a :class:`Reaction`; unbalanced or malformed
    equations are an :class:`InputError` naming what is wrong."""
    sides = re.split(r"\s*(?:->|=>|→|=)\s*", text.strip())
    if len(sides) != 2 or not all(sides):
        raise InputError(f"reaction {text!r}: write it as 'A + B -> C + D'")
    parsed = []
    for side in sides:
        terms = []
        for term in side.split("+"):
            m = _TERM.match(term)
            if not m:
                raise InputError(f"reaction {text!r}: cannot read the term {term.strip()!r}")
            n = int(m.group(1) or 1)
            if n < 1:
                raise InputError(f"reaction {text!r}: coefficients must be >= 1")
            terms.append((n, canonical_formula(m.group(2))))
        parsed.append(tuple(terms))
    reaction = Reaction(*parsed)
    left, right = _atoms(reaction.reactants), _atoms(reaction.products)
    if left != right:
        diff = {el: right[el] - left[el] for el in set(left) | set(right) if right[el] != left[el]}
        raise InputError(
            f"reaction {text!r} does not balance (products minus reactants: "
            + ", ".join(f"{el} {d:+d}" for el, d in sorted(diff.items()))
            + ")"
        )
    return reaction


@dataclass(frozen=True)
class Species:
    """One formula at its lowest stored energy by the stated method."""

    formula: str
    row_id: int | None
    source: str
    energy_eV: float
    reference_eV: float | None = None  # the reference (DFT) energy of the same row, where stored


@dataclass(frozen=True)
class ReactionEnergy:
    """dE of a reaction (eV, products minus reactants) by ``method``; ``reference_delta_eV`` by
    ``reference`` on the same rows where every one has it."""

    reaction: Reaction
    method: str
    delta_eV: float
    species: tuple[Species, ...]
    error: str | None = None
    reference: str | None = None
    reference_delta_eV: float | None = None

    @property
    def downhill(self) -> bool:
        """dE < 0 by the stated method (say so only with its error beside it)."""
        return self.delta_eV < 0


def lowest_by_formula(results: list[Result], method: str) -> dict[str, Result]:
    """The lowest relaxed bare cluster of each formula by ``method``'s stored energy."""
    method = str(parse_method(method))
    best: dict[str, tuple[float, Result]] = {}
    for r in results:
        e = r.energy_by(method)
        if not r.ok or e is None or r.provenance.get("bare_parent") is not None:
            continue
        f = r.composition
        if f not in best or e < best[f][0]:
            best[f] = (e, r)
    return {f: r for f, (_, r) in best.items()}


def _energy(row: Result, method: str) -> float:
    value = row.energy_by(method)
    if value is None:  # callers pick rows that carry it
        raise InputError(f"row {row.id} has no {method} energy")
    return float(value)


def _reference_method(rows: list[Result]) -> str | None:
    """A reference (DFT) energy stored on every row (the first such, by name), or None."""
    common = set.intersection(*(set(r.energies) for r in rows)) if rows else set()
    return next((m for m in sorted(common) if is_reference(m)), None)


def reaction_energy(reaction: Reaction | str, results: list[Result], method: str) -> ReactionEnergy:
    """dE of ``reaction`` with every species at its lowest stored ``method`` energy (see the module
    docstring). A species with no relaxed row carrying that energy is an :class:`InputError`."""
    reaction = parse_reaction(reaction) if isinstance(reaction, str) else reaction
    method = str(parse_method(method))
    lowest = lowest_by_formula(results, method)
    missing = [f for f in reaction.species if f not in lowest]
    if missing:
        raise InputError(
            f"no relaxed {', '.join(missing)} with a {method} energy is stored: relax "
            f"{'it' if len(missing) == 1 else 'them'} first (airss-msc generate/relax or search), "
            f"or score the stored rows (airss-msc rescore --method {method})"
        )
    rows = [lowest[f] for f in reaction.species]
    reference = None if is_reference(method) else _reference_method(rows)
    species = tuple(
        Species(f, r.id, r.source, _energy(r, method), None if reference is None else _energy(r, reference))
        for f, r in zip(reaction.species, rows, strict=True)
    )
    energy = {s.formula: s for s in species}

    def delta(value) -> float:
        return sum(n * value(energy[f]) for n, f in reaction.products) - sum(
            n * value(energy[f]) for n, f in reaction.reactants
        )

    return ReactionEnergy(
        reaction,
        method,
        delta(lambda s: s.energy_eV),
        species,
        measured_error(method),
        reference,
        None if reference is None else delta(lambda s: s.reference_eV),
    )


def substitution_steps(parent: str, old: str, new: str, unit: str, steps: int | None = None) -> list[Reaction]:
    """The stepwise pathway that replaces ``old`` by ``new`` in ``parent`` one atom per step, the
    exchanged unit ``unit`` (holding ``new``; it leaves with one ``new`` turned into ``old``):
    ``Cd13Te13 + CdSe -> Cd13Te12Se + CdTe``, then ``Cd13Te12Se + CdSe -> Cd13Te11Se2 + CdTe``, ...
    ``steps`` defaults to every ``old`` of the parent."""
    counts, unit_counts = parse_formula(parent), parse_formula(unit)
    if counts.get(old, 0) < 1:
        raise InputError(f"{parent} has no {old} to replace")
    if unit_counts.get(new, 0) < 1:
        raise InputError(f"the exchanged unit {unit} holds no {new}")
    spent = dict(unit_counts)
    spent[new] -= 1
    spent[old] = spent.get(old, 0) + 1
    n = counts[old] if steps is None else steps
    if not 1 <= n <= counts[old]:
        raise InputError(f"steps must be 1-{counts[old]} for {parent}, got {n}")
    out, current = [], dict(counts)
    for _ in range(n):
        following = dict(current)
        following[old] -= 1
        following[new] = following.get(new, 0) + 1
        out.append(
            Reaction(
                ((1, format_formula(current)), (1, format_formula(unit_counts))),
                ((1, format_formula(following)), (1, format_formula(spent))),
            )
        )
        current = following
    return out


@dataclass(frozen=True)
class Pathway:
    """A named list of reactions of a series (one table block of the report)."""

    name: str
    reactions: tuple[Reaction, ...]
    #: True for stepwise substitution/exchange (each step's product is the next step's reactant)
    stepwise: bool = True


def _formula_units(counts: dict[str, int], fixed: set[str]) -> int:
    return sum(n for el, n in counts.items() if el in fixed)


def series_pathways(formulas: list[str], pair: tuple[str, str]) -> list[Pathway]:
    """The pathways the series papers argue about, over the stored ``formulas`` of a pseudo-binary
    series mixing ``pair`` = (A, B) on one sublattice (Te/Se: the anions of Cd13Te_ySe_(13-y);
    Zn/Cd: the cations of Zn_xCd_(13-x)Se_13):

    - stepwise substitution from each end member of the largest series (all-B parent, A for B
      per step, and all-A parent, B for A), once for every exchanged unit stored: a monomer (one
      formula unit, e.g. CdSe) or a small fragment (two or three, e.g. Cd2Se2) holding the incoming
      element, its spent form (e.g. CdTe, Cd2TeSe) stored too;
    - the two binary end members redistributing the mixing element between them,
      ``P_A + P_B -> M_k + M_(m-k)`` (m sites; fixed size, so no addition product is needed).

    A pathway whose species are not all stored is left out (the caller says which units exist)."""
    a, b = pair
    stored = {canonical_formula(f) for f in formulas}
    parsed = {f: parse_formula(f) for f in stored}
    mixing = {a, b}

    def fixed(counts: dict[str, int]) -> tuple[tuple[str, int], ...]:
        return tuple(sorted((el, n) for el, n in counts.items() if el not in mixing))

    series: dict[tuple, list[str]] = {}
    for f, c in parsed.items():
        if c.get(a, 0) + c.get(b, 0) > 0:
            series.setdefault((fixed(c), c.get(a, 0) + c.get(b, 0)), []).append(f)
    if not series:
        return []
    (frame, m), members = max(series.items(), key=lambda kv: (len(kv[1]), kv[0][1]))
    rest = dict(frame)
    end = {el: format_formula({**rest, el: m}) for el in (a, b)}
    out: list[Pathway] = []
    others = {el for el, _ in frame}
    for old, new in ((b, a), (a, b)):
        parent = end[old]
        if parent not in stored:
            continue
        units = sorted(
            (f for f, c in parsed.items() if f not in members and c.get(new, 0) >= 1 and c.get(old, 0) == 0),
            key=lambda f: (sum(parsed[f].values()), f),
        )
        for unit in units:
            if not set(parsed[unit]) <= others | {new} or _formula_units(parsed[unit], mixing) > 3:
                continue
            steps = substitution_steps(parent, old, new, unit)
            if all(sp in stored for r in steps for sp in r.species):
                kind = "monomer" if _formula_units(parsed[unit], mixing) == 1 else "fragment"
                out.append(Pathway(f"{parent}: {new} for {old} by the {kind} {unit}", tuple(steps)))
    if end[a] in stored and end[b] in stored:
        pairs = [
            Reaction(
                ((1, end[a]), (1, end[b])),
                ((1, format_formula({**rest, a: k, b: m - k})), (1, format_formula({**rest, a: m - k, b: k}))),
            )
            for k in range(1, m // 2 + 1)
        ]
        kept = tuple(r for r in pairs if all(sp in stored for sp in r.species))
        if kept:
            out.append(Pathway(f"{end[a]} + {end[b]}: the two end members exchanging {a}/{b}", kept, False))
    return out


__all__ = [
    "Pathway",
    "Reaction",
    "ReactionEnergy",
    "Species",
    "lowest_by_formula",
    "parse_reaction",
    "reaction_energy",
    "series_pathways",
    "substitution_steps",
]
