"""Command-line flags derived from a job's frozen Spec: one flag per dataclass field, parsed by the field's type.

A top-level field ``sigma_w2`` becomes ``--sigma-w2``; a field of a nested section (a field whose type is itself a
dataclass, e.g. ``GridSpec.train``) becomes ``--train.max-epochs``, the same path a config file spells
``[train] max_epochs``. Values are parsed by the field's annotation:

- ``int``, ``float``, ``str``; ``Literal[...]`` as choices; ``X | None`` also takes ``none``;
- ``bool`` as ``--flag`` / ``--no-flag``;
- ``tuple[T, ...]`` as ``a,b,c`` or, for numbers, an inclusive range ``start:stop:step``;
- ``tuple[T, T]`` as ``low,high``; ``str | tuple[int, ...]`` as a name or a list of integers.

Fields of other types (a tuple of experiments, a dict) get no flag; a config file sets them. A flag left out
sets nothing, so the layering preset → config file → flags is a merge of three dicts of the same shape.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from infoflow_ray.config import _require

SKIP = ("name",)
"""Fields that never get a flag: the Spec's name is the preset's."""


@dataclass(frozen=True)
class Alias:
    """A flag kept for users (README, docs) that sets ``path`` (``'train.max_epochs'``, or a top-level name).

    ``parse``: the value's parser (default: the field's; a bool field gives ``--flag`` / ``--no-flag``); ``to``:
    turns the parsed value into the setting (e.g. ``--only cascade`` → kinds ``('cascade',)``); ``nargs``,
    ``const``, ``choices``: as argparse's (``--info-plane`` takes an optional estimator)."""

    flags: tuple[str, ...]
    path: str
    help: str = ""
    parse: Callable[[str], Any] | None = None
    to: Callable[[Any], Any] | None = None
    nargs: str | None = None
    const: Any = None
    choices: tuple | None = None


def value_range(start: float, stop: float, step: float) -> tuple[float, ...]:
    """start, start+step, …, stop (inclusive), rounded to 10 decimals so 0.1-steps give clean values."""
    _require(step > 0 and stop >= start, "range", f"{start}:{stop}:{step}", "start:stop:step with step > 0")
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    return tuple(round(start + i * step, 10) for i in range(n))


def numbers(kind: type) -> Callable[[str], tuple]:
    """Parse '0.5,1,1.76' or 'start:stop:step' (inclusive) into a tuple of ``kind``."""

    def parse(text: str) -> tuple:
        try:
            if ":" in text:
                start, stop, step = (float(v) for v in text.split(":"))
                return tuple(kind(v) for v in value_range(start, stop, step))
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except Exception:
            raise argparse.ArgumentTypeError(
                f"'{text}' is not a list like 1,2,3 or a range start:stop:step of {kind.__name__}s"
            ) from None

    return parse


def pair(kind: type) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        try:
            low, high = (kind(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a range like 0.25,4 (low,high)") from None
        return low, high

    return parse


def names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _scalar(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"'{text}' is not {'an' if kind is int else 'a'} {kind.__name__}"
            ) from None

    return parse


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda text: None if text.lower() in ("none", "null") else parse(text)


def _name_or_ints(text: str) -> str | tuple[int, ...]:
    return numbers(int)(text) if text[:1].isdigit() else text


def parser_for(annotation: Any) -> tuple[Callable[[str], Any] | None, dict]:
    """(parse, extra argparse keywords) for a field of type ``annotation``; (None, {}) when it has no flag."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is bool:
        return None, {"action": argparse.BooleanOptionalAction}
    if annotation in (int, float, str):
        return _scalar(annotation), {"metavar": {int: "N", float: "X", str: "NAME"}[annotation]}
    if origin is Literal:
        return str, {"choices": args}
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            parse, extra = parser_for(rest[0])
            return (_optional(parse) if parse else None), extra
        if set(map(typing.get_origin, rest)) | set(rest) >= {str, tuple}:
            return _name_or_ints, {"metavar": "NAME|INTS"}
        return None, {}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            kind = args[0]
            if kind in (int, float):
                return numbers(kind), {"metavar": "A,B,..|START:STOP:STEP"}
            if kind is str:
                return names, {"metavar": "A,B,.."}
            return None, {}
        if len(args) == 2 and args[0] is args[1] and args[0] in (int, float):
            return pair(args[0]), {"metavar": "LOW,HIGH"}
    return None, {}


def sections(spec: type) -> dict[str, type]:
    """The nested sections of ``spec``: field name → its dataclass."""
    hints = typing.get_type_hints(spec)
    return {f.name: hints[f.name] for f in dataclasses.fields(spec) if dataclasses.is_dataclass(hints[f.name])}


def fields(spec: type) -> list[tuple[str, Any]]:
    """Every flaggable (path, annotation) of ``spec``: top-level fields, then each section's as 'section.field'."""
    hints = typing.get_type_hints(spec)
    nested = sections(spec)
    out = []
    for f in dataclasses.fields(spec):
        if f.name in SKIP or f.name in nested:
            continue
        out.append((f.name, hints[f.name]))
    for name, cls in nested.items():
        sub = typing.get_type_hints(cls)
        out += [(f"{name}.{f.name}", sub[f.name]) for f in dataclasses.fields(cls)]
    return out


def flag_name(path: str) -> str:
    return "--" + path.replace("_", "-")


def add_spec_flags(p: argparse.ArgumentParser, spec: type, aliases: tuple[Alias, ...] = ()) -> dict[str, Alias]:
    """Add a flag for every field of ``spec`` and the ``aliases``; returns dest → Alias for the aliases."""
    taken = {o for a in p._actions for o in a.option_strings}
    group = p.add_argument_group("settings (from the Spec; a config file spells --train.max-epochs [train] max_epochs)")
    for path, annotation in fields(spec):
        parse, extra = parser_for(annotation)
        if parse is None and "action" not in extra:
            continue
        flag = flag_name(path)
        if flag in taken:
            raise ValueError(f"flag {flag} of {spec.__name__}.{path} is taken by a common flag or an alias")
        taken.add(flag)
        if parse is not None:
            extra = {"type": parse, **extra}
        group.add_argument(flag, dest=path, default=None, help=f"{path}", **extra)
    by_dest = {}
    known = dict(fields(spec))
    for i, alias in enumerate(aliases):
        clash = [f for f in alias.flags if f in taken]
        if clash:
            raise ValueError(f"alias {clash[0]} of {spec.__name__} is also a derived or common flag")
        taken.update(alias.flags)
        dest = f"alias{i}"
        kwargs: dict[str, Any] = {"dest": dest, "default": None, "help": alias.help or f"sets {alias.path}"}
        field_parse, field_extra = parser_for(known.get(alias.path, str))
        parse = alias.parse or field_parse
        if parse is None:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            choices = alias.choices or field_extra.get("choices")
            kwargs.update(type=parse, nargs=alias.nargs, const=alias.const, choices=choices)
            if not choices:
                kwargs["metavar"] = field_extra.get("metavar", "VALUE")
        p.add_argument(*alias.flags, **kwargs)
        by_dest[dest] = alias
    return by_dest


def values_from(args: argparse.Namespace, spec: type, aliases: dict[str, Alias]) -> dict[str, Any]:
    """The settings the flags set, shaped like a preset: {'sigma_w2': …, 'train': {'max_epochs': …}}."""
    given = vars(args)
    out: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        if "." in path:
            section, key = path.split(".", 1)
            out.setdefault(section, {})[key] = value
        else:
            out[path] = value

    for dest, alias in aliases.items():
        if given.get(dest) is not None:
            value = given[dest]
            put(alias.path, alias.to(value) if alias.to else value)
    for path, _ in fields(spec):
        if given.get(path) is not None:
            put(path, given[path])
    return out
