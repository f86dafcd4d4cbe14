"""A pydantic model's field declarations read back for forms, command lines and error messages.

``RunConfig`` declares each field once: type, default, constraints (``ge``/``gt``/``le``/``lt``,
``pattern``, ``Literal`` choices) and a one-line help (``description``), plus in
``json_schema_extra`` whether it only matters for SAM (``sam``), a readable text for its pattern
(``pattern_text``) and bounds of tuple items (``item_ge``/``item_le``). This module turns those
declarations into

* ``FieldSpec`` records (``field_specs``) from which the config module builds ``FIELD_HELP``,
  ``CHOICES`` and ``field_info`` for the UI and the CLI;
* the text of "what is allowed" (``requirement``) and the lab's one formatter of a pydantic
  ``ValidationError`` (``error_messages``), used by ``RunConfig`` and the server's ``Settings``:
  ``RunConfig.epochs must be an integer in [1, 400]; got 0``, ``setting max_queue (from
  $SAMON_MAX_QUEUE) must be an integer >= 0; got -1``. The app keys its form errors by the
  ``RunConfig.<field>`` at the start of a message;
* typed values parsed from ``key=value`` text (``parse_text``), never with eval: only plain
  ASCII decimal numbers (no ``1_0``, no ``nan``/``inf``, no other whitespace than spaces around
  the value), so what a user typed is what the run gets;
* ``quote``: any value, however long, deep or large, as a short text for a message.

Generic over the model (it never imports ``RunConfig`` or ``Settings``), so the config module
can use it while being defined.
"""

from __future__ import annotations

import difflib
import enum
import re
import reprlib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from samon_core.runs.messages import VALUE_LIMIT, clip, clip_message
from samon_core.runs.strictjson import OversizedNumber

_BOUND_KEYS = ("ge", "gt", "le", "lt")


# ---------------------------------------------------------------------------------------------
# quoting values in messages
# ---------------------------------------------------------------------------------------------

# reprlib bounds the depth and the items shown, so a list nested 100,000 deep or holding a
# million items is quoted without a RecursionError or a screenful of text.
_SAFE_REPR = reprlib.Repr()
_SAFE_REPR.maxlevel, _SAFE_REPR.maxlist, _SAFE_REPR.maxtuple, _SAFE_REPR.maxdict = 3, 6, 6, 4
_SAFE_REPR.maxstring, _SAFE_REPR.maxlong, _SAFE_REPR.maxother = 40, 40, 40
# Python refuses str() of an int of more than 4,300 digits; far above any setting anyway.
_INT_BITS_SHOWN = 256


def quote(value: Any, limit: int = VALUE_LIMIT) -> str:
    """``value`` as a short text for a message: ``clip`` (repr cut to about ``limit`` characters
    with "…") for strings and numbers; huge integers and containers, which ``repr`` cannot always
    print (too many digits, too deep), are shown in outline."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > _INT_BITS_SHOWN:
            return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
        return clip(value, limit)
    if isinstance(value, (str, bytes, float, bool, type(None))):
        return clip(value, limit)
    try:
        text = _SAFE_REPR.repr(value)
    except Exception:  # a repr that fails (a huge int inside a list, a broken object)
        text = f"<a {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, eq=False)
class FieldSpec:
    """One field as the UI, the CLI and the error messages see it."""

    name: str
    base: type  # int, float, bool, str or tuple (of ints); object for anything else
    optional: bool  # None is allowed
    default: Any
    help: str
    choices: tuple[str, ...] | None  # from a Literal type or an Enum
    bounds: Mapping[str, float]  # any of ge, gt, le, lt
    extra: Mapping[str, Any]  # json_schema_extra: sam, pattern_text, item_ge, item_le
    kind: str = "a valid value"  # what a value is, for messages: 'an integer', 'a list of names'

    @property
    def sam(self) -> bool:
        return bool(self.extra.get("sam"))


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without ``None``, whether ``None`` is allowed); a union of several other
    types (``int | Literal["auto"]``) is ``object``: its own validator says what is allowed."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        return (args[0] if len(args) == 1 else object), optional
    return annotation, False


_KIND = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
         SecretStr: "a string", object: "a valid value"}


def field_specs(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    """The ``FieldSpec`` of every field of ``model``, in declaration order."""
    specs = []
    for name, info in model.model_fields.items():
        tp, optional = _base_type(info.annotation)
        choices = None
        if typing.get_origin(tp) is Literal:
            choices = tuple(typing.get_args(tp))
            base: type = type(choices[0])
        elif isinstance(tp, type) and issubclass(tp, enum.Enum):
            choices, base = tuple(str(m.value) for m in tp), str
        else:
            base = typing.get_origin(tp) or tp
        if base is tuple:
            item = (typing.get_args(tp) or (int,))[0]
            kind = "a list of integers" if item is int else "a list of names"
        elif choices:
            kind = f"one of {', '.join(choices)}"
        elif base in _KIND:
            kind = _KIND[base]
        else:
            raise TypeError(f"unsupported {model.__name__} field type for {name}: {tp}")
        bounds = {
            key: getattr(m, key) for m in info.metadata for key in _BOUND_KEYS if hasattr(m, key)
        }
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        specs.append(
            FieldSpec(name, base, optional, info.default, info.description or "", choices,
                      bounds, dict(extra), kind)
        )
    return tuple(specs)


# ---------------------------------------------------------------------------------------------
# "what is allowed" texts
# ---------------------------------------------------------------------------------------------

def type_text(spec: FieldSpec) -> str:
    """'an integer', 'a number or None', ..."""
    return f"{spec.kind} or None" if spec.optional else spec.kind


def range_text(bounds: Mapping[str, float]) -> str:
    """'in [1, 400]', 'in (0.0, 10.0]', '>= 0', '< 1.0' or '' from ge/gt/le/lt."""
    lo = ("[", bounds["ge"]) if "ge" in bounds else ("(", bounds["gt"]) if "gt" in bounds else None
    hi = ("]", bounds["le"]) if "le" in bounds else (")", bounds["lt"]) if "lt" in bounds else None
    if lo and hi:
        return f"in {lo[0]}{lo[1]}, {hi[1]}{hi[0]}"
    if lo:
        return f"{'>=' if lo[0] == '[' else '>'} {lo[1]}"
    if hi:
        return f"{'<=' if hi[0] == ']' else '<'} {hi[1]}"
    return ""


def requirement(spec: FieldSpec, error_type: str, value: Any = None) -> str:
    """What a valid value of ``spec`` is, phrased for the pydantic error ``error_type`` about
    ``value`` (an integer refused for its size, not its type, is told the field's range)."""
    whole = isinstance(value, (int, OversizedNumber)) and not isinstance(value, bool)
    if whole and spec.bounds and spec.base in (int, float):
        return f"{spec.kind} {range_text(spec.bounds)}"
    if error_type == "finite_number":
        return "a finite number"
    if error_type == "literal_error" and spec.choices:
        return f"one of {', '.join(spec.choices)}"
    if error_type == "string_pattern_mismatch":
        return spec.extra.get("pattern_text", "a string of the allowed form")
    if error_type in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{spec.kind} {range_text(spec.bounds)}"
    return type_text(spec)


# Names shown bare in messages; anything else (long, spaces, control characters) is quoted.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")
# Unknown names listed in one message; a file with 10,000 stray keys gets a count for the rest.
_NAMES_SHOWN = 5


def name_text(name: Any) -> str:
    """A field name as typed, for a message: bare if plain, else quoted and cut."""
    return name if isinstance(name, str) and _PLAIN_NAME.fullmatch(name) else quote(name, 40)


def suggest(names: Iterable[str], known: Iterable[str]) -> str:
    """' (did you mean: epoch -> epochs?)' for names close to a known one, else ''."""
    known = list(known)
    hints = []
    for name in list(names)[:_NAMES_SHOWN]:
        # a name far longer than any field matches none; difflib on it would only cost time
        close = difflib.get_close_matches(name, known, n=1) if len(name) <= 64 else []
        if close:
            hints.append(f"{name_text(name)} -> {close[0]}?")
    return f" (did you mean: {', '.join(hints)})" if hints else ""


def unknown_fields_message(heading: str, names: Iterable[str], known: Iterable[str]) -> str:
    """'<heading>: epoch, lrr (did you mean: epoch -> epochs?, lrr -> lr?)', at most five names."""
    names = sorted(str(n) for n in names)
    shown = ", ".join(name_text(n) for n in names[:_NAMES_SHOWN])
    if len(names) > _NAMES_SHOWN:
        shown += f" and {len(names) - _NAMES_SHOWN} more"
    return f"{heading}: {shown}{suggest(names, known)}"


class FieldError(ValueError):
    """A validator's complete message about ``field`` (a rule between fields names the field to
    change), so that callers can put the message next to that field. A plain ``ValueError`` of
    a validator says only what is allowed (``must be one of any, cpu-only, gpu-only``); the
    formatter adds whose value it was and what was given."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class ConfigError(ValueError):
    """Invalid settings: one message per bad field, ``str()`` = the messages, one per line.
    ``errors`` pairs each message with its field (``""`` when no single field is to blame, e.g.
    unknown keys), so a form can show each message next to its widget."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("\n".join(message for _, message in errors))
        self.errors = tuple(errors)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(field for field, _ in self.errors if field)


def error_messages(
    errors: Iterable[Mapping[str, Any]],  # ValidationError.errors()
    specs: Mapping[str, FieldSpec],
    *,
    subject: Callable[[str], str],
    unknown: Callable[[str], str],
    shown: Callable[[str, Any], str] = lambda _name, value: quote(value),
) -> list[tuple[str, str]]:
    """The lab's one rendering of a pydantic ``ValidationError`` (its ``errors()``): (field,
    message) per bad field, its first error, in error order: '<subject> must be <what is
    allowed>; got <value>'. ``subject(field)`` names the field ('RunConfig.epochs', 'setting
    max_queue (from $SAMON_MAX_QUEUE)'); unknown names share one message per ``unknown(name)``
    heading ('unknown RunConfig field(s)'), with the closest known names suggested; ``shown``
    quotes a value (a secret as '(hidden)'). A ``FieldError`` raised by a validator is passed
    through as it is; another ``ValueError`` of a validator says what is allowed."""
    messages: list[tuple[str, str]] = []
    seen: set[str] = set()
    strays: dict[str, list[str]] = {}
    for err in errors:
        loc = err.get("loc") or ()
        name = str(loc[0]) if loc else ""
        if err["type"] == "extra_forbidden":
            strays.setdefault(unknown(name), []).append(name)
            continue
        if name in seen:
            continue
        seen.add(name)
        cause = (err.get("ctx") or {}).get("error") if err["type"] == "value_error" else None
        got = shown(name, err.get("input"))
        if isinstance(cause, FieldError):
            messages.append((cause.field, clip_message(str(cause), 300)))
        elif cause is not None:
            messages.append((name, clip_message(f"{subject(name)} {cause}; got {got}", 300)))
        elif name in specs:
            what = requirement(specs[name], err["type"], err.get("input"))
            messages.append((name, f"{subject(name)} must be {what}; got {got}"))
        else:
            messages.append((name, clip_message(f"{subject(name)}: {err['msg']}", 300)))
    for heading, names in strays.items():
        messages.append(("", unknown_fields_message(heading, names, specs)))
    return messages


# ---------------------------------------------------------------------------------------------
# parsing "key=value" text
# ---------------------------------------------------------------------------------------------

# Plain ASCII decimal numbers only: int() and float() also take '1_0' (= 10), '٣' (Arabic-Indic
# 3), 'nan', 'inf' and surrounding tabs or newlines, none of which a setting means.
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,400}")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null", ""}
_PLAIN_HINT = {int: " (plain decimal digits, e.g. 10)", float: " (plain decimal, e.g. 0.1 or 1e-3)",
               tuple: " (e.g. 1,2)"}


def _parse_int(text: str) -> int:
    if not _INT_TEXT.fullmatch(text):
        raise ValueError("not a plain decimal integer")
    return int(text, 10)


def _parse(base: type, text: str) -> Any:
    if base is str:
        return text
    if base is bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("not a boolean")
    if base is int:
        return _parse_int(text)
    if base is float:
        if not _FLOAT_TEXT.fullmatch(text):
            raise ValueError("not a plain decimal number")
        return float(text)  # '1e999' gives inf, which the model refuses as not finite
    # tuple of ints: '1,2', '[1, 2]' or '(1,2)'; empty = ()
    inner = text
    if inner[:1] in "([" and inner[-1:] in ")]":
        inner = inner[1:-1]
    items = [s.strip(" ") for s in inner.split(",")]
    if items == [""]:
        return ()
    return tuple(_parse_int(s) for s in items)


def parse_text(owner: str, spec: FieldSpec, text: str) -> Any:
    """Parse ``text`` as a value of ``spec``: int, float, bool ('true'/'false', also 1/0/yes/no/
    on/off), str, optional ('none'/'null'/empty -> None), tuple of ints ('1,2,3', brackets
    optional, empty -> ()); numbers in plain ASCII decimal only. Spaces around the value are
    dropped, other whitespace is kept (and refused where it makes no sense). Raises
    ``ValueError`` naming the field; the value itself is checked by the model."""
    if not isinstance(text, str):
        raise ValueError(f"{owner}.{spec.name}: expected text, got {type(text).__name__}")
    stripped = text.strip(" ")
    if spec.optional and stripped.lower() in _NONE:
        return None
    try:
        return _parse(spec.base, stripped)
    except ValueError:
        raise ValueError(
            f"{owner}.{spec.name}: cannot parse {quote(text)} as {type_text(spec)}"
            f"{_PLAIN_HINT.get(spec.base, '')}"
        ) from None
