"""Command lines generated from frozen config dataclasses, for every script of both packages.

A field is its flag (``--output_dir``) and, where a script reads one, its YAML
key; its ``help`` metadata is what ``--help`` prints. One spelling per concept
in every script:

- lists are comma-separated (``--task_def glue,nli``); space-separated values
  (``--task_def a.yml b.yml``, mt-dnn's form) are accepted too and split the same;
- booleans are ``true``/``false`` (also ``1/0``, ``yes/no``, ``on/off``; a bare
  ``--overwrite`` means true);
- a field with no default is required: ``flags: checkpoint is required (--checkpoint)``;
- older spellings (mt-dnn's ``--out_dir``, ``--root_dir``, ...) are hidden aliases
  declared on the field (``option(..., aliases=("--out_dir",))``), listed once in
  the epilog of ``--help``.

Flags stay text in argparse; :func:`build` converts and checks them, so a bad
value is a one-line :class:`ConfigError` like a bad YAML value, not argparse's
usage dump. Precedence: defaults < YAML values < flags.

This module is generic (it imports nothing of the project), so that ``data_utils``
scripts use it without importing ``mt_dnn``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

# The old spellings of the shared concepts, accepted wherever the concept is a flag.
OUTPUT_DIR_ALIASES = ("--out_dir", "--out")
BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True}
BOOL_WORDS |= {"0": False, "false": False, "no": False, "off": False}


class ConfigError(ValueError):
    """A bad option value or a missing required one; scripts print it as one line, exit 2."""


def option(help: str, default: Any = dataclasses.MISSING, *, aliases: Sequence[str] = ()) -> Any:
    """A dataclass field with its ``--help`` text and hidden alias flags; no default = required."""
    metadata = {"help": help, "aliases": tuple(aliases)}
    return dataclasses.field(default=default, metadata=metadata)


def parse_bool(text: str) -> bool:
    try:
        return BOOL_WORDS[str(text).lower()]
    except KeyError:
        raise ValueError(f"expected true/false, got {text!r}") from None


def split_list(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"a,b"`` or ``["a", "b"]`` or ``["a,b", "c"]`` -> ``("a", "b"[, "c"])``; empty parts dropped."""
    parts = [text] if isinstance(text, str) else list(text)
    return tuple(p.strip() for part in parts for p in str(part).split(",") if p.strip())


def field_type(cls: type, f: dataclasses.Field) -> Any:
    return typing.get_type_hints(cls)[f.name]


def _optional_inner(hint: Any) -> Any:
    """X for ``X | None``, else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(hint) if a is not type(None)][0]
    return None


def _is_list(hint: Any) -> bool:
    return typing.get_origin(_optional_inner(hint) or hint) is tuple


def _converter(hint: Any):
    """The parser of a flag's text for a field of type ``hint`` (raises ValueError)."""
    inner = _optional_inner(hint)
    if inner is not None:
        base = _converter(inner)
        return lambda text: None if str(text).lower() in ("", "none", "null") else base(text)
    if hint is bool:
        return parse_bool
    if typing.get_origin(hint) is tuple:
        return split_list
    return hint  # int, float, str: int("8.9") and float("fast") raise ValueError


def _expected(hint: Any) -> str:
    inner = _optional_inner(hint)
    if inner is not None:
        return f"{_expected(inner)} or null"
    if typing.get_origin(hint) is tuple:
        return "a list of names or one comma-separated string"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, str(hint))


def _describe(value: Any) -> str:
    """A YAML value with its YAML type, on one line: ``the float 8.9``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    kinds = {int: "integer", float: "float", str: "string", list: "list", dict: "mapping"}
    kind = next((name for t, name in kinds.items() if isinstance(value, t)), type(value).__name__)
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"the {kind} {shown}"


def _from_yaml(hint: Any, value: Any) -> Any:
    """``value`` as a field of type ``hint``, or ValueError: YAML types are never coerced
    (``8.9`` is no integer, ``true`` no number, ``'1e-4'`` no float); only an integer
    may stand for a float."""
    inner = _optional_inner(hint)
    if inner is not None:
        return None if value is None else _from_yaml(inner, value)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    if typing.get_origin(hint) is tuple:
        if isinstance(value, str):
            return split_list(value)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
    raise ValueError(_describe(value))


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) if value else "none"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def _default(f: dataclasses.Field) -> Any:
    if f.default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    """One flag per field of ``cls`` in a group named ``title``, plus its hidden aliases.

    Lists take ``a,b`` or ``a b``; booleans take a word (a bare flag means true).
    Every value stays text until :func:`build`."""
    group = parser.add_argument_group(title)
    parser.formatter_class = _list_formatter(parser.formatter_class)
    aliases_seen = []
    for f in dataclasses.fields(cls):
        hint = field_type(cls, f)
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        if hint is bool:
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        elif _is_list(hint):
            kwargs.update(nargs="+", metavar=f"{f.name.upper()}[,...]")
        else:
            kwargs.update(metavar=f.name.upper())
        # default=SUPPRESS: only flags actually given override YAML values and defaults.
        text = f.metadata.get("help", "")
        default = _default(f)
        text += " (required)" if default is dataclasses.MISSING else f" (default: {_show(default)})"
        group.add_argument(f"--{f.name}", help=text, **kwargs)
        aliases = f.metadata.get("aliases", ())
        if aliases:
            group.add_argument(*aliases, help=argparse.SUPPRESS, **kwargs)
            aliases_seen.append(f"{', '.join(aliases)} for --{f.name}")
    if aliases_seen:
        note = "Older spellings also accepted: " + "; ".join(aliases_seen) + "."
        parser.epilog = f"{parser.epilog}\n{note}" if parser.epilog else note


def _list_formatter(base: Any) -> Any:
    """``base`` (a HelpFormatter class) showing a list flag as ``--tasks TASKS[,...]``, not
    argparse's ``TASKS [TASKS ...]``: comma-separated is the spelling we document."""
    if getattr(base, "shows_comma_lists", False):
        return base

    class CommaListFormatter(base):
        shows_comma_lists = True

        def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
            if action.nargs == "+" and isinstance(action.metavar, str):
                return action.metavar
            return super()._format_args(action, default_metavar)

    return CommaListFormatter


def _coerce(cls: type, key: str, value: Any, source: str, text: bool = False) -> Any:
    """``value`` of field ``key`` as its type; ``text``: parse a flag's text, else a YAML
    value is checked as it is. A mismatch names the source, the key, the value and the type."""
    hint = field_type(cls, {f.name: f for f in dataclasses.fields(cls)}[key])
    try:
        if text:
            if isinstance(value, list) and not _is_list(hint):
                raise ValueError(value)
            return _converter(hint)(value)
        return _from_yaml(hint, value)
    except ValueError as exc:
        got = repr(value) if text else str(exc)
        raise ConfigError(f"{source}: {key} must be {_expected(hint)}, got {got}") from None


def build(
    classes: Sequence[type],
    yaml_values: Mapping[str, Any],
    flags: Mapping[str, Any],
    source: str = "config",
) -> list[Any]:
    """Instantiate each dataclass from YAML values overridden by flags.

    Every value is checked before anything runs: its type (flags are text, or lists of
    text, and parsed; YAML values must already have the field's type) and then its
    range, by the dataclass. An error names where the value came from: ``flags`` or
    ``source``. A field without a default that neither gives is required.
    """
    valid = {f.name: cls for cls in classes for f in dataclasses.fields(cls)}
    unknown = sorted((key for key in yaml_values if key not in valid), key=str)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown}; valid keys are: {', '.join(sorted(valid))}"
        )
    out = []
    for cls in classes:
        kwargs = {}
        for f in dataclasses.fields(cls):
            # A YAML value is checked even when a flag overrides it: the file is still wrong.
            if f.name in yaml_values:
                kwargs[f.name] = _coerce(cls, f.name, yaml_values[f.name], source)
            if f.name in flags:
                value = flags[f.name]
                text = isinstance(value, (str, list))
                kwargs[f.name] = _coerce(cls, f.name, value, "flags", text)
            if f.name not in kwargs and _default(f) is dataclasses.MISSING:
                raise ConfigError(f"flags: {f.name} is required (--{f.name})")
        try:
            out.append(cls(**kwargs))
        except (TypeError, ValueError) as exc:
            # The dataclasses' messages start with the field's name: credit its source.
            message = " ".join(str(exc).split())
            key = message.split(" ", 1)[0].rstrip(":")
            raise ConfigError(f"{'flags' if key in flags else source}: {message}") from None
    return out


def parse_dataclass_args(
    parser: argparse.ArgumentParser, cls: type, argv: Sequence[str] | None
) -> Any:
    """``cls`` from the command line ``argv`` of ``parser`` (built with add_dataclass_args)."""
    flags = vars(parser.parse_args(argv))
    (cfg,) = build([cls], {}, flags, source="flags")
    return cfg
