"""AppTest sessions for page tests: one browser session of the whole app, run once, and a page
switch, each failing on an exception the page raised (so a test never reads a half-drawn page)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 120  # seconds per script run: a shared, loaded 2-core machine


def session(token: str | None = None, **query: str) -> AppTest:
    """One browser session (the teacher's when ``token`` is given) opened with ``query``."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for name, value in query.items():
        at.query_params[name] = value
    if token is not None:
        at.session_state["teacher_token"] = token
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def goto(at: AppTest, path: str) -> AppTest:
    """Switch ``at`` to the page at ``path`` and run it."""
    at.switch_page(path).run()
    assert not at.exception, (path, [e.message for e in at.exception])
    return at
