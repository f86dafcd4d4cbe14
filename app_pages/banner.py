"""The teacher's pinned message, shown at the top of every page for everyone.

app.py calls ``pinned_banner_ui`` before it runs the page, so no page has to remember it. The
message is plain text (samon_app.room_view.banner_text escapes it): a student reading it sees
exactly what the teacher typed, never markup.
"""

from __future__ import annotations

import streamlit as st

from app_pages import checks
from samon_app.room_view import banner_text


def pinned_banner_ui() -> str | None:
    """The banner, when the teacher has pinned a message; returns its Markdown (or None)."""
    text = banner_text(checks.room())
    if text:
        st.info(text, icon=":material/push_pin:")
    return text
