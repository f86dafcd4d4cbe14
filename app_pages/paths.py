"""Every page of the app, defined once: its script (what ``st.switch_page`` and ``st.page_link``
take) and its address (``st.Page``'s ``url_path``, also the page's name for the link's checks,
``urlparams.page_params``). app.py's navigation registers each script under its address; the
pages link to the scripts.

The scripts live in app_pages/, deliberately NOT in pages/: with a pages/ folder next to app.py,
Streamlit runs in its old directory mode until some session has called st.navigation, so the
first deep link after a server start (e.g. /live?group=...) would skip app.py.
"""

from __future__ import annotations

HOME_PAGE = "app_pages/home.py"
LAUNCH_PAGE = "app_pages/launch.py"
LIVE_PAGE = "app_pages/live.py"
COMPARE_PAGE = "app_pages/compare.py"
PLAYGROUND_PAGE = "app_pages/playground.py"
CLAIMS_PAGE = "app_pages/claims.py"
CLASS_PAGE = "app_pages/class_view.py"
ROOM_PAGE = "app_pages/room.py"

# Each page's address. Home is the default page: Streamlit serves it at the root (its
# ``url_path`` reads "" while it runs), and "home" names it for the link's checks.
URL_PATHS: dict[str, str] = {
    HOME_PAGE: "home",
    LAUNCH_PAGE: "launch",
    LIVE_PAGE: "live",
    COMPARE_PAGE: "compare",
    PLAYGROUND_PAGE: "playground",
    CLAIMS_PAGE: "claims",
    CLASS_PAGE: "class",
    ROOM_PAGE: "room",
}


def page_name(url_path: str) -> str:
    """The name of the page running at ``url_path`` (``page.url_path``; "" is Home's)."""
    return url_path or URL_PATHS[HOME_PAGE]
