"""Parsing JSON text that a user or a file supplied, refusing what ``json.loads`` lets through.

``json.loads`` alone has three traps for a settings file:

* a key given twice silently keeps the last value (``{"epochs": 1, "epochs": 400}`` trains 400);
* text nested a few thousand levels deep raises ``RecursionError`` (not a ``ValueError``), and
  one nested a little less deep parses into a structure whose ``repr`` then overflows the stack;
* a number of more than 4,300 digits raises an unrelated "Exceeds the limit" error.

``loads_strict`` refuses the first two with one ``ValueError`` naming the key or the depth, and
turns an oversized integer into an ``OversizedNumber`` that the model's validation rejects with
the field's name (an ``int`` field refuses it, and ``quote`` shows it as "<a number of N
digits>"). The depth is measured before parsing, iteratively, so no input can reach the parser's
recursion. No third-party imports.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from samon_core.runs.messages import clip

# A settings object is flat (a list of block numbers is the deepest value); anything deeper than
# this is not a settings file.
MAX_DEPTH = 32
# Digits of an integer literal kept as an int; longer ones become an ``OversizedNumber``.
MAX_INT_DIGITS = 400

# A JSON string literal (escapes included), written as an unrolled loop so that a long string
# does not make the regex engine backtrack; used to blank out brackets inside strings.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


class OversizedNumber:
    """An integer literal too long to be any setting: not converted (Python refuses beyond 4,300
    digits), not a number or a string to any validator, shown as ``<a number of N digits>``."""

    __slots__ = ("digits",)

    def __init__(self, text: str):
        self.digits = len(text.lstrip("-"))

    def __repr__(self) -> str:
        return f"<a number of {self.digits} digits>"


def json_depth(text: str) -> int:
    """The deepest nesting of ``[`` / ``{`` in JSON ``text`` (brackets inside strings ignored),
    computed without recursion."""
    bare = _STRING.sub('""', text)
    steps = (1 if ch in "[{" else -1 for ch in _BRACKETS.findall(bare))
    return max(accumulate(steps, initial=0))


def _unique_keys(owner: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                raise ValueError(
                    f"{owner} JSON has the key {clip(key)} twice; give each setting once"
                )
            obj[key] = value
        return obj

    return hook


def _parse_int(text: str) -> int | OversizedNumber:
    return OversizedNumber(text) if len(text) > MAX_INT_DIGITS else int(text)


def loads_strict(text: str | bytes, owner: str = "config", max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads(text)`` refusing duplicate keys and nesting deeper than ``max_depth``; every
    refusal is a ``ValueError`` whose message starts with ``owner``."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{owner} JSON is not UTF-8 text") from None
    if not isinstance(text, str):
        raise ValueError(f"{owner} JSON must be text; got {type(text).__name__}")
    if json_depth(text) > max_depth:
        raise ValueError(f"{owner} JSON is nested too deep (more than {max_depth} levels)")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys(owner), parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{owner} JSON is malformed: {exc}") from None
    except RecursionError:  # unreachable after the depth check; kept as the last line of defence
        raise ValueError(f"{owner} JSON is nested too deep") from None
