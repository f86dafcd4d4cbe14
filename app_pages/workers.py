"""The local workers as the pages see them: started if none is alive (once a minute per
server), read (every 5 s), named in the sidebar, and what a request takes on them (the estimate
every page shows for a launch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from app_pages import reads, stores
from samon_app.estimates import device_kind, estimate_group
from samon_app.markup import md_escape
from samon_app.progress import workers_line
from samon_core import service
from samon_core.runs.states import ACTIVE_STATES, RunState

WORKERS_POLL_S = 5.0  # how often the sidebar's worker line is read again while runs are active


@st.cache_resource(ttl=60, show_spinner=False)
def _ensure_workers(root_dir: str) -> dict[str, Any]:
    try:
        return dict(service.ensure_workers(store=stores.store_at(root_dir)) or {})
    except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps working
        return {"error": f"{type(exc).__name__}: {exc}"}


def ensure_workers() -> dict[str, Any]:
    """Start local workers if none is alive (checked at most once a minute per server)."""
    return _ensure_workers(stores.root())


@st.cache_data(ttl=5.0, show_spinner=False)
def _workers_status(root_dir: str) -> list[dict[str, Any]]:
    try:
        return [dict(w) for w in service.workers_status(store=stores.store_at(root_dir))]
    except Exception:  # noqa: BLE001 - no queue: no workers to show
        return []


def workers_status() -> list[dict[str, Any]]:
    return _workers_status(stores.root())


def _workers_panel() -> None:
    """The sidebar's line about the workers (``progress.workers_line``), or why there is none."""
    info = ensure_workers()
    if info.get("error"):
        st.warning(f"Workers: {md_escape(info['error'], 300)}")
        return
    alive = [w for w in workers_status() if w.get("alive", True)]
    df = reads.list_runs()
    training = int((df["state"] == RunState.RUNNING).sum()) if len(df) else 0
    if alive:
        st.caption(":material/memory: " + workers_line(alive, worker_devices(alive), training))
    elif info.get("enabled") and (info.get("started") or info.get("pids")):
        # The app's own pool was started: its worker writes its first heartbeat in a few seconds.
        st.caption(":material/hourglass_top: starting a local worker…")
    else:
        st.caption(":material/memory: no worker alive: queued runs wait until one starts "
                   "(`python -m samon_core worker`).")


def workers_ui() -> None:
    """The workers' line in the sidebar. While runs are queued or training it is a fragment
    read again every ``WORKERS_POLL_S`` (the Live page reruns only its own panel while a first
    epoch trains, which left "0 busy" in the sidebar from the moment of the launch)."""
    df = reads.list_runs()
    active = bool(len(df)) and bool(df["state"].isin(ACTIVE_STATES).any())
    with st.sidebar:
        st.fragment(run_every=WORKERS_POLL_S if active else None)(_workers_panel)()


def worker_devices(workers: list[dict[str, Any]]) -> list[str]:
    out = []
    for w in workers:
        dev = w.get("device") or w.get("devices") or w.get("kind")
        if isinstance(dev, (list, tuple)):
            out.extend(str(d) for d in dev)
        elif dev:
            out.append(str(dev))
    return out


def preset_estimate(configs: Mapping[str, Any], seeds: int = 1) -> dict[str, Any]:
    """The estimate of a request's runs on this machine's workers: the one Home, Launch, Claims
    and Live's "train my own" show (``estimates.estimate_text``), so one request reads the
    same everywhere."""
    workers = workers_status()
    n_workers = max(1, len([w for w in workers if w.get("alive", True)]))
    kind = device_kind("auto", worker_devices(workers))
    return estimate_group(configs, seeds, kind, n_workers, reads.estimate_factors())

