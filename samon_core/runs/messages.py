"""Quoting user input in messages, cut to a readable length.

Every message that echoes something a user typed or a file held (a run id, a path, a value, a
whole error text) goes through ``clip`` or ``clip_message``: a 100,000-character line pasted into
a form must give a one-line error, not a screenful. No torch, no third-party imports.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

VALUE_LIMIT = 80  # characters of a quoted value
MESSAGE_LIMIT = 600  # characters of a whole message line


def clip(value: Any, limit: int = VALUE_LIMIT) -> str:
    """``repr(value)``, cut in the middle to about ``limit`` characters, keeping both ends (a
    path keeps its file name): ``'xxx…xxx' (100000 characters)``."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, (str, bytes)) else ""
    half = max(limit // 2, 4)
    return text[:half] + "…" + text[-half:] + size


def clip_message(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` with each line cut to ``limit`` characters (and at most 20 lines), for errors
    built by code that quotes input without ``clip``."""
    lines = str(message).splitlines() or [""]
    out = [ln if len(ln) <= limit else ln[: limit - 1] + f"… ({len(ln)} characters)"
           for ln in lines[:20]]
    if len(lines) > 20:
        out.append(f"… ({len(lines) - 20} more lines)")
    return "\n".join(out)


class ClippingArgumentParser(argparse.ArgumentParser):
    """argparse's parser, with its usage errors (which quote the bad argument) clipped too."""

    def error(self, message: str) -> NoReturn:
        super().error(clip_message(message, 300))
