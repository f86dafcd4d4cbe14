"""Streamlit helpers shared by the pages: the run store, cached (shared) reads, the owner name,
the job API and small display helpers. Only ``samon_core`` modules without torch are imported.

Caching (so that 20 open browsers do not multiply the disk reads):

* the run list and the small per-run JSON files: ``st.cache_resource(ttl=1 s)``, shared by all
  sessions (one directory scan per second however many pages poll), read-only for the pages;
* the metrics: one ``reader.RunReader`` per store root (``st.cache_resource``) that reads only the
  appended bytes, at most every 0.4 s per run, and rebuilds frames only when records arrived.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import streamlit as st

from samon_app.estimates import calibration
from samon_app.owner import clean_owner
from samon_app.reader import RunData, RunInfo, RunReader, chart_signature, run_infos
from samon_app.tables import group_members, group_table
from samon_core import service
from samon_core.runs.store import RunStore

HOME_PAGE = "app_pages/home.py"
LAUNCH_PAGE = "app_pages/launch.py"
LIVE_PAGE = "app_pages/live.py"
COMPARE_PAGE = "app_pages/compare.py"

LIST_TTL_S = 1.0
POLL_S = 1.0  # how often the Live page looks for new records while runs are active


@st.cache_resource(show_spinner=False)
def warm_up() -> bool:
    """Import pandas and plotly in the background once per server, so that the first visit to
    Live or Compare does not wait for them (about a second on a slow machine)."""

    def work() -> None:
        with contextlib.suppress(Exception):
            import pandas  # noqa: F401
            import plotly.graph_objects  # noqa: F401

    threading.Thread(target=work, name="samon-warm-up", daemon=True).start()
    return True


def store() -> RunStore:
    """The run store (``$SAMON_RUNS_DIR`` or ./runs; read every call, so tests can change it)."""
    return RunStore()


def root() -> str:
    return str(store().root)


# ---------------------------------------------------------------------------------------------
# cached reads, shared by all sessions
# ---------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _reader(root_dir: str) -> RunReader:
    return RunReader(RunStore(root_dir))


def reader() -> RunReader:
    return _reader(root())


# cache_resource, not cache_data: every session gets the same objects without unpickling a copy
# on each of the many calls per rerun. Callers must not modify them.
@st.cache_resource(ttl=LIST_TTL_S, show_spinner=False, max_entries=16)
def _snapshot(root_dir: str) -> tuple[Any, dict[str, dict[str, str]]]:
    s = RunStore(root_dir)
    with contextlib.suppress(Exception):  # crash recovery (throttled inside); never fatal here
        service.recover(s)
    df = s.list_runs()
    metas = {}
    for run_id in df["run_id"]:
        with contextlib.suppress(FileNotFoundError, ValueError):
            metas[run_id] = s.read_meta(run_id)
    return df, group_members(metas)


def list_runs():
    """``RunStore.list_runs()`` (at most ``LIST_TTL_S`` old; shared: do not modify it)."""
    return _snapshot(root())[0]


def members() -> dict[str, dict[str, str]]:
    """Comparison group -> {run_id: requesting owner} (``tables.group_members``)."""
    return _snapshot(root())[1]


@st.cache_resource(ttl=LIST_TTL_S, show_spinner=False, max_entries=16)
def _groups(root_dir: str) -> Any:
    df, members_ = _snapshot(root_dir)
    return group_table(df, members_)


def groups() -> Any:
    """``tables.group_table`` of the store: one row per comparison group (shared, read-only)."""
    return _groups(root())


@st.cache_resource(ttl=LIST_TTL_S, show_spinner=False, max_entries=4)
def _queue_positions(root_dir: str) -> dict[str, int]:
    try:
        return dict(service.queue_positions(RunStore(root_dir)))
    except Exception:  # noqa: BLE001 - positions are a nicety
        return {}


def queue_positions() -> dict[str, int]:
    """1-based queue position of every queued run (shared, at most 1 s old)."""
    return _queue_positions(root())


@st.cache_resource(ttl=LIST_TTL_S, show_spinner=False, max_entries=256)
def _run_rows(root_dir: str, run_ids: tuple[str, ...]) -> list[dict[str, Any]]:
    s = RunStore(root_dir)
    rows = []
    for run_id in run_ids:
        try:
            rows.append({
                "run_id": run_id,
                "config": s.read_config(run_id).to_dict(),
                "meta": s.read_meta(run_id),
                "status": s.read_status(run_id),
                "summary": s.read_summary(run_id),
            })
        except (FileNotFoundError, ValueError):
            continue  # deleted meanwhile, or not readable
    return rows


def infos(run_ids: list[str] | tuple[str, ...]) -> list[RunInfo]:
    """``RunInfo`` of the runs (config, meta, status, summary), sorted by method, labels unique."""
    return run_infos(_run_rows(root(), tuple(sorted(run_ids))))


def run_data(run_ids: list[str] | tuple[str, ...]) -> dict[str, RunData]:
    r = reader()
    out = {}
    for run_id in run_ids:
        try:
            out[run_id] = r.get(run_id)
        except (FileNotFoundError, ValueError):
            continue
    return out


@st.cache_resource(ttl=30.0, show_spinner=False, max_entries=4)
def _calibration(root_dir: str) -> dict[str, tuple[float, int]]:
    df, _ = _snapshot(root_dir)
    finished = df.loc[df["state"] == "finished", "run_id"].head(60).tolist()
    return calibration(_run_rows(root_dir, tuple(sorted(finished))))


def estimate_factors() -> dict[str, tuple[float, int]]:
    """Measured / estimated time of the finished runs here, per device kind (for estimates)."""
    return _calibration(root())


def clear_caches() -> None:
    """After a change made by this session (launch, cancel, delete): read afresh."""
    _snapshot.clear()
    _run_rows.clear()
    _queue_positions.clear()


# ---------------------------------------------------------------------------------------------
# the job API (samon_core.service) and the workers
# ---------------------------------------------------------------------------------------------


@st.cache_resource(ttl=60, show_spinner=False)
def _ensure_workers(root_dir: str) -> dict[str, Any]:
    try:
        return dict(service.ensure_workers(store=RunStore(root_dir)) or {})
    except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps working
        return {"error": f"{type(exc).__name__}: {exc}"}


def ensure_workers() -> dict[str, Any]:
    """Start local workers if none is alive (checked at most once a minute per server)."""
    return _ensure_workers(root())


@st.cache_data(ttl=5.0, show_spinner=False)
def _workers_status(root_dir: str) -> list[dict[str, Any]]:
    try:
        return [dict(w) for w in service.workers_status(store=RunStore(root_dir))]
    except Exception:  # noqa: BLE001 - no queue: no workers to show
        return []


def workers_status() -> list[dict[str, Any]]:
    return _workers_status(root())


def worker_devices(workers: list[dict[str, Any]]) -> list[str]:
    out = []
    for w in workers:
        dev = w.get("device") or w.get("devices") or w.get("kind")
        if isinstance(dev, (list, tuple)):
            out.extend(str(d) for d in dev)
        elif dev:
            out.append(str(dev))
    return out


# ---------------------------------------------------------------------------------------------
# owner
# ---------------------------------------------------------------------------------------------


def owner() -> str:
    """The user's name, as typed in the sidebar (``guest`` by default)."""
    name, _ = clean_owner(st.session_state.get("owner"))
    return name


# ---------------------------------------------------------------------------------------------
# display helpers
# ---------------------------------------------------------------------------------------------


def look_for(text: str) -> None:
    """The one or two sentences under a chart that say what to look for."""
    st.caption(f"**What to look for:** {text}")


def color_dot(color: str) -> str:
    return f'<span style="color:{color};font-size:1.1em">●</span>'


@st.cache_resource(max_entries=512, ttl=900, show_spinner=False)
def _cached_figure(name: str, signature: tuple, options: tuple, _build: Callable[[], Any]) -> Any:
    return _build()


def figure(name: str, build: Callable[[], Any], infos: list[RunInfo], data: dict[str, RunData],
           kinds: tuple[str, ...], options: tuple = ()) -> Any:
    """``build()``, cached for all sessions under the runs' chart signature (ids, labels,
    colours, number of records of ``kinds``) and ``options``: 20 browsers polling the same runs
    build each figure once per new record, not 20 times a second. The figure is shared: never
    change it."""
    return _cached_figure(name, chart_signature(infos, data, kinds), options, build)


# No plotly mode bar: it covers the legends of small charts; drag to zoom and double-click to
# reset still work, and Streamlit's own toolbar offers full screen.
PLOTLY_CONFIG = {"displayModeBar": False, "displaylogo": False}


def plot(fig: Any, key: str) -> None:
    st.plotly_chart(fig, key=key, config=PLOTLY_CONFIG, width="stretch")


# ---------------------------------------------------------------------------------------------
# launching (shared by Home's quick-demo button and the Launch page)
# ---------------------------------------------------------------------------------------------


def launch_group(configs: dict, *, preset: str | None, seeds: int = 1) -> str | None:
    """Enqueue ``configs`` (label -> RunConfig) as one comparison group and open the Live page
    on it. Shows the reason and returns None when the queue refuses (limits, no queue)."""
    who = owner()
    try:
        group, _ids = service.submit_group(
            configs, owner=who, preset=preset, seeds=seeds, store=store()
        )
    except ValueError as exc:  # service.LimitExceeded is a ValueError
        st.error(f"Not launched: {exc}")
        return None
    clear_caches()
    ensure_workers()
    # The Live page opens on the new group (?group=). switch_page gets a mapping: its default
    # (None) would try to clear the widget-bound ?owner= and fail.
    st.session_state["live_group"] = group
    st.switch_page(LIVE_PAGE, query_params={"group": group})
    return group  # not reached in a running app (switch_page stops the script)
