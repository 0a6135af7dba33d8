"""One schema per settings object: each field declared once, with its default, meaning and unit.

A settings dataclass declares every field with :func:`setting`. From that one declaration
come

- the TOML key table of its config section (:func:`read_table`): unknown keys are refused
  with the known ones listed, types are checked against the field's annotation (resolved
  with :func:`typing.get_type_hints`), integers are taken where numbers are, arrays
  become tuples;
- the command-line options' defaults and help (:func:`cli_option`), from the class or
  from a default object when a command legitimately starts elsewhere (a refinement's
  relaxation, :data:`airss_msc.calc.relax.REFINE_RELAX`);
- the documentation of defaults (:func:`toml_section`, :func:`markdown_section`,
  ``airss-msc config --defaults``) and the field list in the class docstring
  (:func:`documented`).

Plain dataclasses and the standard library only: the settings stay frozen dataclasses
the library passes around, with no second model system beside them.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any

from airss_msc.errors import InputError

_KEY = "airss_msc.setting"


def setting(
    default: Any = MISSING,
    *,
    help: str,
    unit: str = "",
    factory: Callable[[], Any] | Any = MISSING,
    toml: bool | str = True,
    parse: Callable[[Any, str], Any] | None = None,
    expects: str = "",
    shown: str = "",
) -> Any:
    """A dataclass field with its schema.

    help: what it means (one phrase). unit: its unit, if any ("Angstrom", "eV/Angstrom", "s").
    toml: True (the TOML key is the field name), a key name, or False (set some other way:
    the docstring says how). parse: ``parse(value, section) -> field value`` for TOML values
    the annotation cannot describe; it raises ``TypeError`` for a value of the wrong type
    (reported as such) and :class:`InputError` for a bad one. expects: the accepted types in
    words, for that message. shown: the default in words where it is worked out elsewhere
    (``"from composition and density"``).
    """
    meta = {_KEY: {"help": help, "unit": unit, "toml": toml, "parse": parse, "expects": expects, "shown": shown}}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Spec:
    """One field's schema: its TOML key (None: not a TOML key), resolved type, default and help."""

    name: str
    key: str | None
    hint: Any
    default: Any  # dataclasses.MISSING: required
    help: str
    unit: str
    parse: Callable[[Any, str], Any] | None
    expects: str
    shown: str

    @property
    def required(self) -> bool:
        return self.default is MISSING

    def described(self) -> str:
        """The help with its unit: ``force convergence, eV/Angstrom``."""
        return f"{self.help}, {self.unit}" if self.unit else self.help

    def default_text(self, value: Any = MISSING) -> str:
        """``value`` (default: the field's default) as documentation shows it."""
        value = self.default if value is MISSING else value
        if self.shown and value == self.default:
            return self.shown
        if value is MISSING:
            return "required"
        if value is None:
            return "none"
        return toml_value(value)

    def read(self, value: Any, section: str) -> Any:
        """A TOML value of this key, converted to the field's type; bad input is an InputError."""
        try:
            return self.parse(value, section) if self.parse else _convert(value, self.hint)
        except InputError:  # a ValueError too, with its own message
            raise
        except (TypeError, ValueError):
            raise InputError(
                f"[{section}] {self.key} = {value!r} has the wrong type: expected "
                f"{self.expects or _describe(self.hint)}"
            ) from None


@cache
def _declared(cls: type, f: Field) -> tuple[dict, Any]:
    """A field's schema metadata and its default (``MISSING``: required); a field declared
    without :func:`setting` is a programming error (its default and help would be undocumented)."""
    meta = f.metadata.get(_KEY)
    if meta is None:
        raise TypeError(f"{cls.__name__}.{f.name} is not declared with airss_msc.settings.setting()")
    default = (
        f.default
        if f.default is not MISSING
        else (f.default_factory() if f.default_factory is not MISSING else MISSING)
    )
    return meta, default


def specs(cls: type) -> tuple[Spec, ...]:
    """The schema of dataclass ``cls``: every field, in order. A field declared without
    :func:`setting` is a programming error (its default and help would be undocumented)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        meta, default = _declared(cls, f)
        key = f.name if meta["toml"] is True else (meta["toml"] or None)
        out.append(
            Spec(
                f.name,
                key,
                hints[f.name],
                default,
                meta["help"],
                meta["unit"],
                meta["parse"],
                meta["expects"],
                meta["shown"],
            )
        )
    return tuple(out)


def spec(cls: type, name: str) -> Spec:
    for s in specs(cls):
        if s.name == name:
            return s
    raise KeyError(f"{cls.__name__} has no setting {name!r}")


def default_of(source: Any, name: str) -> Any:
    """The default of setting ``name``: the field's own, or its value on a default object."""
    if is_dataclass(source) and not isinstance(source, type):
        return getattr(source, name)
    return spec(source, name).default


def toml_keys(cls: type, exclude: tuple[str, ...] = ()) -> list[str]:
    return [s.key for s in specs(cls) if s.key and s.name not in exclude]


def read_table(
    cls: type, table: Any, section: str, *, exclude: tuple[str, ...] = (), also: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The settings a TOML table of ``[section]`` gives, by field name, converted and type-checked.

    exclude: fields that are not keys here (a relax stage sets no stages). also: other keys the
    caller takes out of the table first (sub-tables), named in the unknown-key message.
    """
    if not isinstance(table, dict):
        raise InputError(f"[{section}] must be a table")
    by_key = {s.key: s for s in specs(cls) if s.key and s.name not in exclude}
    out = {}
    for key, value in table.items():
        found = by_key.get(key)
        if found is None:
            known = ", ".join(sorted([*by_key, *also]))
            raise InputError(f"unknown key {key!r} in [{section}]; known keys: {known}")
        out[found.name] = found.read(value, section)
    return out


def cli_option(source: Any, name: str, *flags: str, help: str | None = None, **kwargs: Any) -> Any:
    """A ``typer.Option`` for setting ``name`` of ``source`` (a settings class or a default
    object): its default and help come from the schema (``help`` replaces the phrase, the unit
    is still added)."""
    import typer  # only the command line needs it

    cls = source if isinstance(source, type) else type(source)
    s = spec(cls, name)
    text = help or s.help
    text = text[:1].upper() + text[1:]
    if s.unit:
        text += f", {s.unit}"
    default = default_of(source, name)
    text = text.rstrip(".") + "."
    if default is None and s.shown:  # typer shows no default for None: say what it is
        text += f" Default: {s.shown}."
    return typer.Option(default, *flags, help=text, **kwargs)


def toml_value(value: Any) -> str:
    """``value`` written as TOML (tuples as arrays, dicts as inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for everything a setting holds
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"no TOML form for {value!r}")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def toml_section(cls: type, section: str, source: Any = None, exclude: tuple[str, ...] = ()) -> str:
    """``[section]`` with every key of ``cls`` at its default (or its value on ``source``),
    commented with its meaning; keys without a value (None) are commented out."""
    lines = [f"[{section}]"]
    for s in specs(cls):
        if not s.key or s.name in exclude:
            continue
        value = s.default if source is None else getattr(source, s.name)
        # a default worked out elsewhere (shown in words) is no value to write down
        if value is MISSING or value is None or _tables(value) or (s.shown and source is None):
            note = s.described() + (f"; default: {s.shown}" if s.shown and value == s.default else "")
            lines.append(f"# {s.key} = ...  # {note}")
        else:
            lines.append(f"{s.key} = {toml_value(value)}  # {s.described()}")
    return "\n".join(lines) + "\n"


def _tables(value: Any) -> bool:
    """A tuple of tables (``[[relax.stage]]``) or pairs: written as tables, not as a key."""
    return isinstance(value, tuple) and bool(value) and isinstance(value[0], (dict, tuple))


def markdown_section(cls: type, section: str, source: Any = None, exclude: tuple[str, ...] = ()) -> str:
    """A Markdown table of ``[section]``'s keys: key, default, unit, meaning."""
    lines = [f"`[{section}]`", "", "| key | default | unit | meaning |", "|---|---|---|---|"]
    for s in specs(cls):
        if not s.key or s.name in exclude:
            continue
        value = s.default if source is None else getattr(source, s.name)
        text = s.default_text(value).replace("|", "\\|")
        default = text if (s.shown and value == s.default) or text in ("none", "required") else f"`{text}`"
        lines.append(f"| `{s.key}` | {default} | {s.unit} | {s.help.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"


def documented(cls: type) -> type:
    """Append the schema's field list (meaning, unit, default) to ``cls``'s docstring."""
    entries = []
    for f in fields(cls):
        meta, default = _declared(cls, f)
        if meta["shown"] or default is MISSING or default is None:
            shown = meta["shown"] or ("required" if default is MISSING else "none")
        elif is_dataclass(default):
            shown = f"a default {type(default).__name__}"
        else:
            shown = f"``{toml_value(default)}``"
        unit = f", {meta['unit']}" if meta["unit"] else ""
        key = "" if meta["toml"] is True else (f"; TOML ``{meta['toml']}``" if meta["toml"] else "; not a TOML key")
        entries.append(f"- ``{f.name}`` ({shown}{unit}{key}): {meta['help']}")
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\nSettings (default, unit): meaning\n\n" + "\n".join(entries) + "\n"
    return cls


# ------------------------------------------------------------------ TOML values by annotation

_NONE = type(None)


def _convert(value: Any, hint: Any) -> Any:
    """``value`` (as TOML gives it) as type ``hint``; ``TypeError`` if it is not one."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for alternative in typing.get_args(hint):
            if alternative is _NONE:
                continue
            try:
                return _convert(value, alternative)
            except TypeError:
                pass
        raise TypeError(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(hint)
    if isinstance(value, bool):  # True is an int to Python, not a number to a config
        raise TypeError(hint)
    if hint is float and isinstance(value, (int, float)):
        return float(value)
    if hint is int and isinstance(value, int):
        return value
    if hint is str and isinstance(value, str):
        return value
    if (hint is dict or origin is dict) and isinstance(value, dict):
        return dict(value)
    if hint is tuple or origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(hint)
        args = typing.get_args(hint)
        if not args:
            return tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        if len(value) != len(args):
            raise TypeError(hint)
        return tuple(_convert(v, a) for v, a in zip(value, args, strict=True))
    if hint in (bool, float, int, str, dict, tuple) or origin in (dict, tuple):
        raise TypeError(hint)
    raise NotImplementedError(f"no TOML reading for {hint!r}: give the setting a parse function")


_WORDS = {bool: "true or false", float: "a number", int: "an integer", str: "a string", dict: "a table"}


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint) if a is not _NONE)
    if hint in _WORDS:
        return _WORDS[hint]
    if origin is dict:
        return "a table"
    if hint is tuple or origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        if args:
            kinds = {_plural(a) for a in args}
            return f"a list of {len(args)} {kinds.pop()}" if len(kinds) == 1 else f"a list of {len(args)} values"
        return "a list"
    return str(hint)


def _plural(hint: Any) -> str:
    return {float: "numbers", int: "integers", str: "strings", bool: "booleans"}.get(hint, "values")


__all__ = [
    "Spec",
    "cli_option",
    "default_of",
    "documented",
    "markdown_section",
    "read_table",
    "setting",
    "spec",
    "specs",
    "toml_keys",
    "toml_section",
    "toml_value",
]
