"""AppTest sessions for page tests and what a test reads off a page.

``session`` / ``goto``: one browser session of the whole app, run once, and a page switch, each
failing on an exception the page raised (so a test never reads a half-drawn page); ``app`` /
``page``: the same in two steps (``app`` sets the link's query, ``page`` runs and switches).
``texts``, ``rendered_text``, ``plotly_specs``, ``cancel_button``, ``link_key``: what a page shows.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

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


def app(**query: str | list[str]) -> AppTest:
    """The app opened with the link's ``query``, not run yet."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    return at


def visit(path: str, **query: str | list[str]) -> AppTest:
    """Open ``path`` through app.py as a link with ``query`` would (one run, straight to the
    page); no exception."""
    at = app(**query)
    at.switch_page(path).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def page(at: AppTest, path: str) -> AppTest:
    """Run the app once (so st.navigation registers the pages), then switch to ``path``."""
    at.run()
    assert not at.exception, at.exception
    at.switch_page(path).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


# ---------------------------------------------------------------------------------------------
# what a page shows
# ---------------------------------------------------------------------------------------------


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [i.value for i in at.info] + [t.value for t in at.title]
    parts += [h.value for h in at.header] + [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


def _nodes(node: Any) -> Iterator[Any]:
    yield node
    children = getattr(node, "children", None) or {}
    for child in children.values():
        yield from _nodes(child)


def rendered_text(at: AppTest) -> str:
    """Everything the tree holds: every element's proto (labels, bodies) and widget value."""
    parts = []
    for node in _nodes(at._tree):
        parts.append(str(getattr(node, "proto", "")))
        with contextlib.suppress(Exception):  # containers and some elements have no value
            parts.append(str(node.value))
    return "\n".join(parts)


def plotly_specs(at: AppTest) -> dict[str, dict]:
    """Figure JSON of every plotly chart of the page, by its key."""
    out = {}
    for el in at.get("plotly_chart"):
        key = el.proto.id.split("-")[-1] if el.proto.id else str(len(out))
        for name in ("live_acc_chart", "live_loss_chart", "live_sharp_chart", "live_gamma_anim",
                     "live_gamma_mean", "live_gamma_layers", "live_step_time", "live_ips",
                     "compare_chart"):
            if name in el.proto.id:
                key = name
        out[key] = json.loads(el.proto.spec)
    return out


def cancel_button(at: AppTest, rid: str):
    return next(b for b in at.button if b.key == f"cancel_{rid}")


def link_key(at: AppTest) -> str:
    """The key in the one-time box's link (the only place a key is ever shown)."""
    links = [c.value for c in at.code if "key=" in c.value]
    assert len(links) == 1, links
    return parse_qs(urlsplit(links[0]).query)["key"][0]
