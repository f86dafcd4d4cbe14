"""Every page's address, defined once: ``st.Page``'s ``url_path``, which is also the page's name
for the link's checks (``urlparams.page_params``). ``app_pages/paths.py`` pairs each address
with its script; the view models (which cannot import ``app_pages``) read the addresses here.
"""

from __future__ import annotations

HOME = "home"
LAUNCH = "launch"
LIVE = "live"
COMPARE = "compare"
PLAYGROUND = "playground"
CLAIMS = "claims"
CLASS = "class"
ROOM = "room"


def page_name(url_path: str) -> str:
    """The name of the page running at ``url_path`` (``page.url_path``): Home is the default
    page, which Streamlit serves at the root (its ``url_path`` reads "" while it runs)."""
    return url_path or HOME
