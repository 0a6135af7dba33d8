"""Chemical formulas and composition families (pure functions, no I/O).

A composition is an ordered ``dict`` element -> count. Formulas are written in
the order chemists use for these clusters: cations (Zn, Cd, other metals) first,
then anions (Te, Se, S, ...), e.g. ``Cd6Te2Se4`` or ``Zn3Cd10Se13``. ``X`` is the
dummy element of Lennard-Jones clusters (``X38``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from ase.data import atomic_numbers

from airss_msc.errors import InputError

#: Formal charges used for charge balance (II-VI semiconductors).
FORMAL_CHARGE = {"Zn": +2, "Cd": +2, "Hg": +2, "Te": -2, "Se": -2, "S": -2, "O": -2}
#: The II-VI cations and chalcogen anions (from the formal charges: one definition).
CATIONS = frozenset(el for el, q in FORMAL_CHARGE.items() if q > 0)
ANIONS = frozenset(el for el, q in FORMAL_CHARGE.items() if q < 0)

#: Display order; elements not listed follow alphabetically.
_ORDER = ["Zn", "Cd", "Hg", "Te", "Se", "S", "O", "X"]

_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*)")


def parse_formula(formula: str) -> dict[str, int]:
    """Parse ``Cd7Te1Se3`` / ``Cd7TeSe3`` / ``X13`` into ``{"Cd": 7, "Te": 1, "Se": 3}``.

    Repeated elements are summed. Raises :class:`InputError` for anything that is
    not a plain formula of known elements with positive counts.
    """
    text = formula.strip() if isinstance(formula, str) else ""
    if not text:
        raise InputError(f"malformed formula {formula!r}: empty")
    pos = 0
    counts: dict[str, int] = {}
    for match in _TOKEN.finditer(text):
        if match.start() != pos:
            break
        element, number = match.group(1), match.group(2)
        if element not in atomic_numbers:
            raise InputError(f"unknown element {element!r} in formula {formula!r}")
        n = int(number) if number else 1
        if n <= 0:
            raise InputError(f"malformed formula {formula!r}: count of {element} must be positive")
        counts[element] = counts.get(element, 0) + n
        pos = match.end()
    if pos != len(text):
        raise InputError(
            f"malformed formula {formula!r}: expected element symbols with counts, "
            f"like Cd6Te2Se4 (problem at {text[pos:]!r})"
        )
    return counts


def _order_key(element: str) -> tuple[int, str]:
    return (_ORDER.index(element), "") if element in _ORDER else (len(_ORDER), element)


def format_formula(counts: dict[str, int]) -> str:
    """Canonical formula string, cations first (``Cd6Te2Se4``; a count of 1 is omitted)."""
    parts = []
    for element in sorted(counts, key=_order_key):
        n = counts[element]
        if n:
            parts.append(element + (str(n) if n != 1 else ""))
    return "".join(parts)


def canonical_formula(formula: str) -> str:
    """Normalise any accepted spelling (``Se3TeCd7``) to the canonical one (``Cd7TeSe3``)."""
    return format_formula(parse_formula(formula))


def symbols_of(counts: dict[str, int]) -> list[str]:
    """Chemical symbols, one per atom, in canonical element order."""
    return [el for el in sorted(counts, key=_order_key) for _ in range(counts[el])]


def net_formal_charge(counts: dict[str, int]) -> int | None:
    """Sum of formal ionic charges, or None if an element has no formal charge here."""
    try:
        return sum(FORMAL_CHARGE[el] * n for el, n in counts.items())
    except KeyError:
        return None


def is_charge_balanced(counts: dict[str, int]) -> bool:
    """True when cation and anion formal charges cancel (Cd2+ / Te2- / Se2-)."""
    return net_formal_charge(counts) == 0


def parse_range(text: str, name: str = "range") -> tuple[int, int]:
    """Parse ``9-16`` or ``12`` into an inclusive integer range."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", str(text))
    if not m:
        raise InputError(f"malformed {name} {text!r}: expected N or N-M, e.g. 9-16")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else lo
    if lo < 1 or hi < lo:
        raise InputError(f"malformed {name} {text!r}: need 1 <= N <= M")
    return lo, hi


def cdtese_family(
    atoms: tuple[int, int] = (9, 16), charge_balanced: bool = False, binaries: bool = False
) -> Iterator[str]:
    """All Cd_xTe_ySe_z with x+y+z in ``atoms`` (inclusive), smallest first.

    Ternaries only (x, y, z >= 1) unless ``binaries`` adds the CdTe/CdSe end members.
    Off-stoichiometric members are kept by default: the ESI-MS fragments Cd7TeSe3
    and Cd6Te2Se3 are Cd-rich.
    """
    lo, hi = atoms
    ymin = 0 if binaries else 1
    for n in range(lo, hi + 1):
        for x in range(1, n):
            for y in range(ymin, n - x + 1):
                z = n - x - y
                if z < ymin or y + z == 0:
                    continue
                counts = {"Cd": x, "Te": y, "Se": z}
                if charge_balanced and not is_charge_balanced(counts):
                    continue
                yield format_formula(counts)


def zncdse13_family() -> Iterator[str]:
    """Zn_xCd_(13-x)Se_13 for x = 0..13 (cation exchange of (ZnSe)13)."""
    for x in range(14):
        yield format_formula({"Zn": x, "Cd": 13 - x, "Se": 13})


FAMILIES = {"cdtese": cdtese_family, "zncdse13": zncdse13_family}


def expand_compositions(entries: Iterable[str]) -> list[str]:
    """Expand a config's ``compositions`` list: formulas, or family names such as
    ``cdtese:9-16``, ``cdtese:12:balanced`` and ``zncdse13``. Order is kept,
    duplicates dropped."""
    out: list[str] = []
    for entry in entries:
        text = str(entry).strip()
        head, _, rest = text.partition(":")
        if head.lower() in FAMILIES:
            opts = [o for o in rest.split(":") if o]
            if head.lower() == "zncdse13":
                if opts:
                    raise InputError(f"family {text!r}: zncdse13 takes no options")
                formulas = list(zncdse13_family())
            else:
                size = (9, 16)
                balanced = binaries = False
                for opt in opts:
                    if opt in ("balanced", "charge-balanced"):
                        balanced = True
                    elif opt == "binaries":
                        binaries = True
                    else:
                        size = parse_range(opt, "atom range")
                formulas = list(cdtese_family(size, balanced, binaries))
        else:
            formulas = [canonical_formula(text)]
        for f in formulas:
            if f not in out:
                out.append(f)
    if not out:
        raise InputError("no compositions given")
    return out
