"""Launching a comparison from a page (Home's quick demo, Launch, Live's "train my own"): why
this session may launch nothing, said before the click, and one group queued through the job
service, after which the Live page opens on it.
"""

from __future__ import annotations

import streamlit as st

from app_pages import identity, paths, reads, stores, workers
from samon_app.identity_view import launch_refusal
from samon_app.markup import md_escape
from samon_core import service
from samon_core.runs.database import DatabaseUnavailable


def launch_block() -> str | None:
    """Why this session can launch nothing (an invalid name; a taken or reserved name without
    its key), for the help of every launch button, which is then disabled: said before the
    click, not refused after it. None when it may launch (a guest or a new name is registered
    at the launch: ``identity.launch_owner``)."""
    problem = identity.owner_error()
    if problem:  # it says why and that nothing can be launched until the name is corrected
        return f"{problem} Correct it in the sidebar."
    refusal = launch_refusal(identity.current_standing(), identity.typed_name())
    return refusal.removeprefix("Not launched: ") if refusal else None


def launch_group(configs: dict, *, preset: str | None, seeds: int = 1) -> str | None:
    """Enqueue ``configs`` (label -> RunConfig) as one comparison group and open the Live page
    on it. Shows the reason and returns None when the queue refuses (limits, no queue, a store
    that cannot be written; a name that may not launch: ``identity.launch_owner``, which
    registers a new name first)."""
    me = identity.launch_owner()
    if me is None:
        return None
    try:
        group, _ids = service.submit_group(
            configs, owner=me, preset=preset, seeds=seeds, store=stores.store(),
            owner_key=identity.owner_key(), teacher_token=identity.teacher_token()
        )
    except (ValueError, DatabaseUnavailable, service.StoreUnavailable) as exc:
        # LimitExceeded and NotRunnable are ValueErrors; the two outages carry one-line messages
        identity.launch_failed()  # a name registered for this launch is given back
        st.error(f"Not launched: {md_escape(exc, 500)}", icon=":material/error:")
        return None
    identity.launch_succeeded()
    reads.clear_caches()
    workers.ensure_workers()
    # The Live page opens on the new group (?group=). switch_page gets a mapping: its default
    # (None) would try to clear the widget-bound ?owner= and fail.
    st.session_state["live_group"] = group
    st.switch_page(paths.LIVE_PAGE, query_params={"group": group})
    return group  # not reached in a running app (switch_page stops the script)
