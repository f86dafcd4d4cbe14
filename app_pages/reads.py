"""The pages' reads of the run store, cached and shared by all sessions, so that 20 open
browsers do not multiply the disk and database reads:

* the run list, the comparison groups, the queue positions and the small per-run files:
  ``st.cache_resource(ttl=LIST_TTL_S)``, shared by all sessions (one listing per second however
  many pages poll), read-only for the pages;
* the metrics: one ``reader.RunReader`` per store root (``st.cache_resource``) that reads only the
  appended bytes, at most every 0.4 s per run, and rebuilds frames only when records arrived;
* the measured times of the finished runs (for estimates): every 30 s.

``clear_caches`` makes the next read fresh after a change this session made.
"""

from __future__ import annotations

import contextlib
from typing import Any

import streamlit as st

from app_pages import stores
from samon_app.estimates import Calibration, calibration
from samon_app.reader import RunData, RunInfo, RunReader, run_infos
from samon_app.tables import group_members, group_table
from samon_core import service
from samon_core.runs.states import RunState

LIST_TTL_S = 1.0


@st.cache_resource(show_spinner=False)
def _reader(root_dir: str) -> RunReader:
    return RunReader(stores.store_at(root_dir))


def reader() -> RunReader:
    return _reader(stores.root())


# cache_resource, not cache_data: every session gets the same objects without unpickling a copy
# on each of the many calls per rerun. Callers must not modify them.
@st.cache_resource(ttl=LIST_TTL_S, show_spinner=False, max_entries=16)
def _snapshot(root_dir: str) -> tuple[Any, dict[str, dict[str, str]]]:
    s = stores.store_at(root_dir)
    with contextlib.suppress(Exception):  # crash recovery (throttled inside); never fatal here
        service.recover(s)
    df = s.list_runs()
    asked = s.requesters_by_run()  # one read for every run, not one per run
    metas = {row.run_id: {"group": row.group if isinstance(row.group, str) else None,
                          "owner": row.owner if isinstance(row.owner, str) else None,
                          "requesters": asked.get(row.run_id, [])}
             for row in df.itertuples(index=False)}
    return df, group_members(metas)


def list_runs():
    """``RunStore.list_runs()`` (at most ``LIST_TTL_S`` old; shared: do not modify it)."""
    return _snapshot(stores.root())[0]


def members() -> dict[str, dict[str, str]]:
    """Comparison group -> {run_id: requesting owner} (``tables.group_members``)."""
    return _snapshot(stores.root())[1]


@st.cache_resource(ttl=LIST_TTL_S, show_spinner=False, max_entries=16)
def _groups(root_dir: str) -> Any:
    df, members_ = _snapshot(root_dir)
    return group_table(df, members_)


def groups() -> Any:
    """``tables.group_table`` of the store: one row per comparison group (shared, read-only)."""
    return _groups(stores.root())


@st.cache_resource(ttl=LIST_TTL_S, show_spinner=False, max_entries=4)
def _queue_positions(root_dir: str) -> dict[str, int]:
    try:
        return dict(service.queue_positions(stores.store_at(root_dir)))
    except Exception:  # noqa: BLE001 - positions are a nicety
        return {}


def queue_positions() -> dict[str, int]:
    """1-based queue position of every queued run (shared, at most 1 s old)."""
    return _queue_positions(stores.root())


@st.cache_resource(ttl=LIST_TTL_S, show_spinner=False, max_entries=256)
def _run_rows(root_dir: str, run_ids: tuple[str, ...]) -> list[dict[str, Any]]:
    s = stores.store_at(root_dir)
    rows = []
    for run_id in run_ids:
        try:
            row = {
                "run_id": run_id,
                "config": s.read_config(run_id).to_dict(),
                "meta": s.read_meta(run_id),
                "status": s.read_status(run_id),
            }
        except (FileNotFoundError, ValueError):
            continue  # deleted meanwhile, or damaged: shown by damaged_runs_ui instead
        try:  # a damaged summary hides only the summary, not the run
            row["summary"] = s.read_summary(run_id)
        except (FileNotFoundError, ValueError):
            row["summary"] = None
        rows.append(row)
    return rows


def infos(run_ids: list[str] | tuple[str, ...]) -> list[RunInfo]:
    """``RunInfo`` of the runs (config, meta, status, summary), sorted by method, labels unique."""
    return run_infos(_run_rows(stores.root(), tuple(sorted(run_ids))))


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
def _calibration(root_dir: str) -> dict[str, Calibration]:
    df, _ = _snapshot(root_dir)
    finished = df.loc[df["state"] == RunState.FINISHED, "run_id"].head(60).tolist()
    return calibration(_run_rows(root_dir, tuple(sorted(finished))))


def estimate_factors() -> dict[str, Calibration]:
    """Measured / estimated time of the finished runs here, per device kind (for estimates)."""
    return _calibration(stores.root())


def clear_caches() -> None:
    """After a change made by this session (launch, cancel, delete): read afresh."""
    _snapshot.clear()
    _groups.clear()  # else a group launched a moment ago is missing from Live for up to 1 s
    _run_rows.clear()
    _queue_positions.clear()

