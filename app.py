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
if _HERE not in sys.path:  # `app_pages` must be importable however the app is started
    sys.path.insert(0, _HERE)

from app_pages import checks, common, identity, link_params, paths, workers  # noqa: E402
from app_pages.banner import pinned_banner_ui  # noqa: E402
from samon_app.owner import DEFAULT_OWNER, clean_owner  # noqa: E402
from samon_app.page_paths import page_name  # noqa: E402

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
    if identity.teacher_token():  # the box says the name runs are launched under
        return identity.teacher_name_ui()
    identity.apply_pending_name()
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


# Each page's script and address come from app_pages/paths.py (why not pages/: see there).
def _page(script: str, title: str, icon: str, **kwargs) -> st.Page:
    return st.Page(script, title=title, icon=icon, url_path=paths.URL_PATHS[script], **kwargs)


pages = [
    _page(paths.HOME_PAGE, "Home", ":material/home:", default=True),
    _page(paths.LAUNCH_PAGE, "Launch", ":material/rocket_launch:"),
    _page(paths.LIVE_PAGE, "Live", ":material/monitoring:"),
    _page(paths.COMPARE_PAGE, "Compare", ":material/table_chart:"),
    _page(paths.PLAYGROUND_PAGE, "Playground", ":material/toys:"),
    _page(paths.CLAIMS_PAGE, "Claims", ":material/fact_check:"),
    # The class experiment's verdict, for the projector: read-only, no key, in everyone's menu.
    _page(paths.CLASS_PAGE, "Class verdict", ":material/groups:"),
    # Always registered, so that its address answers "only the teacher..." instead of falling
    # back to Home; listed in the menu only for the teacher.
    _page(paths.ROOM_PAGE, "Room", ":material/co_present:",
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
name = page_name(page.url_path)
link_params.check_query_params(name)
# Then who the user is (the link's owner key, read once per session, and the sidebar's lines),
# before the name box.
identity.identity_ui(name)
owner_ui()
workers.workers_ui()
st.sidebar.caption(
    "SAM-ON Lab follows Mueller, Vlaar, Rolnick & Hein, *Normalization Layers Are All That "
    "Sharpness-Aware Minimization Needs* (NeurIPS 2023), "
    "[arXiv 2306.04226](https://arxiv.org/abs/2306.04226)."
)

page.run()
