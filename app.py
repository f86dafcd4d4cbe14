"""SAM-ON Lab: the Streamlit entry point (``streamlit run app.py``).

Defines the pages (``st.navigation``; the teacher's Room page is listed only for the teacher),
the teacher's pinned message above every page, the sidebar with the user's name (kept in the URL
as ``?owner=...``) and the state of the workers, and makes sure local workers run (once per
server, re-checked every minute; ``SAMON_START_WORKERS=0`` disables it). Pages only call
``samon_core`` and never import torch: training happens in the worker processes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # `app_pages.common` must be importable however the app is started
    sys.path.insert(0, _HERE)

from app_pages import checks, common  # noqa: E402
from app_pages.banner import pinned_banner_ui  # noqa: E402
from samon_app.owner import DEFAULT_OWNER, clean_owner  # noqa: E402

st.set_page_config(
    page_title="SAM-ON Lab",
    # An emoji: the browser draws it from an inline SVG. A ":material/...:" favicon would be
    # fetched from fonts.gstatic.com, which an offline workshop network cannot reach.
    page_icon="🎛️",
    layout="wide",
    initial_sidebar_state="expanded",
)


def owner_ui() -> str:
    """The user's name (sidebar, bound to the URL so that a link keeps it). Returns the cleaned
    name; an invalid one is explained and 'guest' is used."""
    if common.teacher_token():  # the box says the name runs are launched under
        return common.teacher_name_ui()
    common.apply_pending_name()
    text = st.sidebar.text_input(
        "Your name",
        value=DEFAULT_OWNER,
        key="owner",
        bind="query-params",
        max_chars=40,
        help="Runs you launch are stored under this name; you can cancel and delete only your "
        "own runs. It stays in the page's URL (your key never does).",
    )
    name, error = clean_owner(text)
    if error:
        st.sidebar.error(error, icon=":material/person_alert:")
    return name


# The page scripts live in app_pages/, deliberately NOT in pages/: with a pages/ folder next to
# app.py, Streamlit runs in its old directory mode until some session has called st.navigation,
# so the first deep link after a server start (e.g. /live?group=...) would skip this file.
pages = [
    st.Page(common.HOME_PAGE, title="Home", icon=":material/home:", default=True),
    st.Page(common.LAUNCH_PAGE, title="Launch", icon=":material/rocket_launch:",
            url_path="launch"),
    st.Page(common.LIVE_PAGE, title="Live", icon=":material/monitoring:", url_path="live"),
    st.Page(common.COMPARE_PAGE, title="Compare", icon=":material/table_chart:",
            url_path="compare"),
    st.Page(common.PLAYGROUND_PAGE, title="Playground", icon=":material/toys:",
            url_path="playground"),
    st.Page(common.CLAIMS_PAGE, title="Claims", icon=":material/fact_check:",
            url_path="claims"),
    # The class experiment's verdict, for the projector: read-only, no key, in everyone's menu.
    st.Page(common.CLASS_PAGE, title="Class verdict", icon=":material/groups:",
            url_path="class"),
    # Always registered, so that its address answers "only the teacher..." instead of falling
    # back to Home; listed in the menu only for the teacher.
    st.Page(common.ROOM_PAGE, title="Room", icon=":material/co_present:", url_path="room",
            visibility="visible" if checks.is_teacher() else "hidden"),
]
page = st.navigation(pages, position="sidebar")

common.warm_up()
# The pages (the sidebar's name and the link's key too) read the run database: when it does not
# answer, one line says so (its URL without password) instead of each page failing on its first
# read.
if not checks.database_ui():
    st.stop()
pinned_banner_ui()
# Before any widget (the sidebar's name included) reads the link: invalid values are dropped
# and listed in one warning at the top of the page.
common.check_query_params(page.url_path or "home")
owner_ui()
common.workers_ui()
st.sidebar.caption(
    "SAM-ON Lab follows Mueller, Vlaar, Rolnick & Hein, *Normalization Layers Are All That "
    "Sharpness-Aware Minimization Needs* (NeurIPS 2023), "
    "[arXiv 2306.04226](https://arxiv.org/abs/2306.04226)."
)

page.run()
