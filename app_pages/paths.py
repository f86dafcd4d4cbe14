"""Every page of the app, defined once: its script (what ``st.switch_page`` and ``st.page_link``
take) paired with its address (``st.Page``'s ``url_path``, also the page's name for the link's
checks), whose one home is ``samon_app/page_paths.py``. app.py's navigation registers each script
under its address; the pages link to the scripts.

The scripts live in app_pages/, deliberately NOT in pages/: with a pages/ folder next to app.py,
Streamlit runs in its old directory mode until some session has called st.navigation, so the
first deep link after a server start (e.g. /live?group=...) would skip app.py.
"""

from __future__ import annotations

from samon_app import page_paths

HOME_PAGE = "app_pages/home.py"
LAUNCH_PAGE = "app_pages/launch.py"
LIVE_PAGE = "app_pages/live.py"
COMPARE_PAGE = "app_pages/compare.py"
PLAYGROUND_PAGE = "app_pages/playground.py"
CLAIMS_PAGE = "app_pages/claims.py"
CLASS_PAGE = "app_pages/class_view.py"
ROOM_PAGE = "app_pages/room.py"

# Each page's script -> its address (``page_paths.page_name`` names the default page, Home).
URL_PATHS: dict[str, str] = {
    HOME_PAGE: page_paths.HOME,
    LAUNCH_PAGE: page_paths.LAUNCH,
    LIVE_PAGE: page_paths.LIVE,
    COMPARE_PAGE: page_paths.COMPARE,
    PLAYGROUND_PAGE: page_paths.PLAYGROUND,
    CLAIMS_PAGE: page_paths.CLAIMS,
    CLASS_PAGE: page_paths.CLASS,
    ROOM_PAGE: page_paths.ROOM,
}
