"""The link's query parameters, checked once for every page when it is entered, before any widget
reads them: invalid values are dropped from the address and from the values Streamlit seeds
widgets from, and one warning lists them (``samon_app.urlparams`` says what is valid).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import streamlit as st

from app_pages import reads
from samon_app import urlparams
from samon_core.runs.presets import list_presets


def _param_options(name: str) -> Any:
    """What only the store knows, for ``urlparams.page_params``."""
    if name == "presets":
        return list_presets()
    if name == "groups":
        return set(reads.members())
    df = reads.list_runs()  # 'filter_values': as Compare's filters show them
    return {col: set(df[col].fillna("(none)").astype(str)) if len(df) else set()
            for col in urlparams.COMPARE_FILTERS}


def _drop_params(names: Iterable[str]) -> None:
    """Remove ``names`` from the URL and from the values Streamlit seeds widgets from (its
    public API refuses to delete a parameter bound to a widget, and the seeding reads the
    link as it arrived, so both are cleared here, before the widgets are created)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None:
        return
    with ctx.session_state.query_params() as qp:
        initial = getattr(qp, "_initial_query_params", None)
        for name in names:
            qp.remove_param(name)
            if isinstance(initial, dict):
                initial.pop(name, None)


def _arrived(page: str) -> bool:
    """True on the first run of ``page`` since another page ran (or on a back/forward step):
    the moment Streamlit seeds the page's widgets from the URL. Later reruns carry what the
    widgets wrote into the URL themselves, which the form checks under each field."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    history = bool(getattr(ctx, "is_history_navigation", False))
    arrived = history or st.session_state.get("_url_page") != page
    st.session_state["_url_page"] = page
    return arrived


def check_query_params(page: str) -> list[urlparams.Ignored]:
    """Check the link's parameters for ``page`` ('home', 'launch', 'live', 'compare', ...) when
    the page is entered, drop the invalid ones before any widget sees them, and show one
    warning that lists them with the reasons (kept while the user stays on the page)."""
    if _arrived(page):
        given = {name: st.query_params.get_all(name) for name in st.query_params}
        ignored = urlparams.check_params(given, urlparams.page_params(page, _param_options))
        _drop_params(i.name for i in ignored if i.drop)
        st.session_state["_url_ignored"] = ignored
    ignored = st.session_state.get("_url_ignored") or []
    if ignored:
        st.warning(urlparams.warning_text(ignored), icon=":material/link_off:")
    return ignored

