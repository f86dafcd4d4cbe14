"""Strings from users, links and run files shown as text in Streamlit Markdown, never as markup;
and the coloured dot of a method, drawn without HTML."""

from __future__ import annotations

import re
from typing import Any

_CSS_HEX = re.compile(r"#[0-9A-Fa-f]{3,8}")
# Characters that start Markdown constructs (emphasis, code, links and images, Streamlit's
# :directive[...], $LaTeX$, tables, headings); ``<`` and ``>`` become entities below. A leading
# ``-`` or ``+`` (a list item) is escaped too.
_MD_SPECIAL = set("\\`*_{}[]#|~$^")
_HTML_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def color_dot(color: str) -> str:
    """A coloured dot in Streamlit Markdown (no HTML needed); grey for anything but a hex
    colour, so that a colour can never inject markup."""
    css = color if _CSS_HEX.fullmatch(str(color)) else "#888888"
    return f':color[●]{{foreground="{css}"}}'


def md_escape(text: Any, limit: int = 200) -> str:
    """``text`` (from a run's files, the URL, the user) as literal text in Markdown: HTML
    characters become entities and Markdown's punctuation is backslash-escaped, so neither a
    ``<script>`` nor a ``[link](...)`` nor ``:red[...]`` is interpreted; one line, at most
    about ``limit`` characters."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    out = "".join(_HTML_ENTITIES.get(c) or (f"\\{c}" if c in _MD_SPECIAL else c) for c in text)
    return "\\" + out if out[:1] in ("-", "+") else out
