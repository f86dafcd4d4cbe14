"""Bounds on the free text a run records in its ``meta.json``: label, group and preset.

A run's meta.json is read with a size cap (``io.MAX_JSON_BYTES``), and its owner needs it to
cancel or delete the run: a 9 MB label would make the run's own file unreadable, and so the run
nobody's but the teacher's. So the text is bounded where it is recorded (``RunStore.create_run``,
``add_requester``) and checked earlier by ``submit`` (before any work, with the field's name):
plain text of one line, at most ``MAX_CHARS[field]`` characters. Owner names have their own,
stricter rule (owners.py); the room's pinned message its own bound (service/room.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from samon_core.runs.messages import clip

# Most characters per field: a label is shown in legends and tables, a group id and a preset
# name are ids (the app's are about 25 characters).
MAX_CHARS: dict[str, int] = {"label": 200, "group": 80, "preset": 80}
# Control characters (newline and tab included): these fields are one line of plain text.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_text(field: str, value: object) -> str:
    """``value`` if it is a bounded line of plain text for ``field`` (``MAX_CHARS``); else
    ``ValueError`` naming the field and the bound (the value itself is only quoted clipped)."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be text, not {type(value).__name__}")
    limit = MAX_CHARS[field]
    if len(value) > limit:
        raise ValueError(f"{field} is {len(value):,} characters long; at most {limit}")
    if _CONTROL_RE.search(value):
        raise ValueError(f"{field} {clip(value)} holds a control character (a {field} is one "
                         "line of plain text)")
    return value


def check_meta_text(meta: Mapping[str, Any]) -> None:
    """``check_text`` for every bounded field of ``meta`` that is set (None and "" are unset)."""
    for field in MAX_CHARS:
        value = meta.get(field)
        if value is not None and value != "":
            check_text(field, value)
