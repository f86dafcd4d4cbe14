"""Streamlit helpers shared by the pages: the run store, cached (shared) reads, who the user is
(``app_pages.identity``, used as ``common.*``), the job API and small display helpers. Only
``samon_core`` modules without torch are imported.

Caching (so that 20 open browsers do not multiply the disk reads):

* the run list and the small per-run JSON files: ``st.cache_resource(ttl=1 s)``, shared by all
  sessions (one directory scan per second however many pages poll), read-only for the pages;
* the metrics: one ``reader.RunReader`` per store root (``st.cache_resource``) that reads only the
  appended bytes, at most every 0.4 s per run, and rebuilds frames only when records arrived.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import streamlit as st

from app_pages import identity
from app_pages.identity import (  # noqa: F401 - the pages use them as common.*
    action_help,
    apply_pending_name,
    can_act,
    launch_failed,
    launch_owner,
    launch_succeeded,
    owner,
    owner_error,
    owner_key,
    read_only,
    share_ui,
    teacher_name_ui,
    teacher_token,
)
from app_pages.stores import database_url, store, store_at  # noqa: F401 - as common.*
from samon_app import urlparams
from samon_app.charts import plotly_config
from samon_app.estimates import Calibration, calibration, device_kind, estimate_group
from samon_app.identity_view import launch_refusal
from samon_app.markup import color_dot, md_escape  # noqa: F401 - the pages use them as common.*
from samon_app.progress import workers_line
from samon_app.reader import RunData, RunInfo, RunReader, chart_signature, run_infos
from samon_app.tables import group_members, group_table
from samon_core import service
from samon_core.runs.database import DatabaseUnavailable
from samon_core.runs.messages import clip_message
from samon_core.runs.presets import list_presets

# Every page's script: app.py's navigation and the pages' links take them from here.
HOME_PAGE = "app_pages/home.py"
LAUNCH_PAGE = "app_pages/launch.py"
LIVE_PAGE = "app_pages/live.py"
COMPARE_PAGE = "app_pages/compare.py"
PLAYGROUND_PAGE = "app_pages/playground.py"
CLAIMS_PAGE = "app_pages/claims.py"
CLASS_PAGE = "app_pages/class_view.py"
ROOM_PAGE = "app_pages/room.py"

LIST_TTL_S = 1.0
POLL_S = 1.0  # how often the Live page looks for new records while runs are active


@st.cache_resource(show_spinner=False)
def warm_up() -> bool:
    """Import plotly in the background once per server, so that the first chart does not wait
    for it. Not pandas: plotly takes pandas from ``sys.modules`` without waiting for an import in
    progress, so a page building a figure while this thread was half-way through pandas crashed
    ("partially initialized module 'pandas'"); the pages that need pandas import it themselves."""

    def work() -> None:
        with contextlib.suppress(Exception):
            import plotly.graph_objects  # noqa: F401

    threading.Thread(target=work, name="samon-warm-up", daemon=True).start()
    return True


def root() -> str:
    return str(store().root)


# ---------------------------------------------------------------------------------------------
# cached reads, shared by all sessions
# ---------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _reader(root_dir: str) -> RunReader:
    return RunReader(store_at(root_dir))


def reader() -> RunReader:
    return _reader(root())


# cache_resource, not cache_data: every session gets the same objects without unpickling a copy
# on each of the many calls per rerun. Callers must not modify them.
@st.cache_resource(ttl=LIST_TTL_S, show_spinner=False, max_entries=16)
def _snapshot(root_dir: str) -> tuple[Any, dict[str, dict[str, str]]]:
    s = store_at(root_dir)
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
        return dict(service.queue_positions(store_at(root_dir)))
    except Exception:  # noqa: BLE001 - positions are a nicety
        return {}


def queue_positions() -> dict[str, int]:
    """1-based queue position of every queued run (shared, at most 1 s old)."""
    return _queue_positions(root())


@st.cache_resource(ttl=LIST_TTL_S, show_spinner=False, max_entries=256)
def _run_rows(root_dir: str, run_ids: tuple[str, ...]) -> list[dict[str, Any]]:
    s = store_at(root_dir)
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
def _calibration(root_dir: str) -> dict[str, Calibration]:
    df, _ = _snapshot(root_dir)
    finished = df.loc[df["state"] == "finished", "run_id"].head(60).tolist()
    return calibration(_run_rows(root_dir, tuple(sorted(finished))))


def preset_estimate(configs: Mapping[str, Any], seeds: int = 1) -> dict[str, Any]:
    """The estimate of a request's runs on this machine's workers: the one Home, Launch, Claims
    and Live's "train my own" show (``estimates.estimate_text``), so one request reads the
    same everywhere."""
    workers = workers_status()
    n_workers = max(1, len([w for w in workers if w.get("alive", True)]))
    kind = device_kind("auto", worker_devices(workers))
    return estimate_group(configs, seeds, kind, n_workers, estimate_factors())


def estimate_factors() -> dict[str, Calibration]:
    """Measured / estimated time of the finished runs here, per device kind (for estimates)."""
    return _calibration(root())


def clear_caches() -> None:
    """After a change made by this session (launch, cancel, delete): read afresh."""
    _snapshot.clear()
    _groups.clear()  # else a group launched a moment ago is missing from Live for up to 1 s
    _run_rows.clear()
    _queue_positions.clear()


# ---------------------------------------------------------------------------------------------
# the job API (samon_core.service) and the workers
# ---------------------------------------------------------------------------------------------


@st.cache_resource(ttl=60, show_spinner=False)
def _ensure_workers(root_dir: str) -> dict[str, Any]:
    try:
        return dict(service.ensure_workers(store=store_at(root_dir)) or {})
    except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps working
        return {"error": f"{type(exc).__name__}: {exc}"}


def ensure_workers() -> dict[str, Any]:
    """Start local workers if none is alive (checked at most once a minute per server)."""
    return _ensure_workers(root())


@st.cache_data(ttl=5.0, show_spinner=False)
def _workers_status(root_dir: str) -> list[dict[str, Any]]:
    try:
        return [dict(w) for w in service.workers_status(store=store_at(root_dir))]
    except Exception:  # noqa: BLE001 - no queue: no workers to show
        return []


def workers_status() -> list[dict[str, Any]]:
    return _workers_status(root())


WORKERS_POLL_S = 5.0  # how often the sidebar's worker line is read again while runs are active


def _workers_panel() -> None:
    """The sidebar's line about the workers (``progress.workers_line``), or why there is none."""
    info = ensure_workers()
    if info.get("error"):
        st.warning(f"Workers: {md_escape(info['error'], 300)}")
        return
    alive = [w for w in workers_status() if w.get("alive", True)]
    df = list_runs()
    training = int((df["state"] == "running").sum()) if len(df) else 0
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
    df = list_runs()
    active = bool(len(df)) and bool(df["state"].isin(["queued", "running"]).any())
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


# ---------------------------------------------------------------------------------------------
# display helpers
# ---------------------------------------------------------------------------------------------


def look_for(text: str) -> None:
    """The one or two sentences under a chart that say what to look for."""
    st.caption(f"**What to look for:** {text}")


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


def plot(fig: Any, key: str) -> None:
    """A chart with plotly's toolbar (zoom, PNG download named after the chart): every page."""
    st.plotly_chart(fig, key=key, config=plotly_config(f"samon-{key}"), width="stretch")


# ---------------------------------------------------------------------------------------------
# the link's query parameters: checked once, for every page, before any widget reads them
# ---------------------------------------------------------------------------------------------


def _param_options(name: str) -> Any:
    """What only the store knows, for ``urlparams.page_params``."""
    if name == "presets":
        return list_presets()
    if name == "groups":
        return set(members())
    df = list_runs()  # 'filter_values': as Compare's filters show them
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
    warning that lists them with the reasons (kept while the user stays on the page). Then who
    the user is (``identity.identity_ui``: the link's owner key, read once per session, and the
    sidebar's lines), here because app.py calls this on every page before the name box."""
    if _arrived(page):
        given = {name: st.query_params.get_all(name) for name in st.query_params}
        ignored = urlparams.check_params(given, urlparams.page_params(page, _param_options))
        _drop_params(i.name for i in ignored if i.drop)
        st.session_state["_url_ignored"] = ignored
    ignored = st.session_state.get("_url_ignored") or []
    if ignored:
        st.warning(urlparams.warning_text(ignored), icon=":material/link_off:")
    identity.identity_ui(page)
    return ignored


# ---------------------------------------------------------------------------------------------
# what went wrong: failed, diverged and warned runs, damaged run folders
# ---------------------------------------------------------------------------------------------


@st.cache_resource(max_entries=4096, show_spinner=False)
def _note(root_dir: str, run_id: str, state: str, updated: Any) -> str | None:
    """The reason a run did not finish, or the warning of one that did (cached per status
    change: ``updated`` changes with every write of the run's database row)."""
    s = store_at(root_dir)
    try:
        status = s.read_status(run_id)
        summary = s.read_summary(run_id) if state == "finished" else None
    except (FileNotFoundError, ValueError) as exc:
        return str(exc)
    if summary and summary.get("warning"):
        return str(summary["warning"])
    if state in ("failed", "diverged", "interrupted", "cancelled") or status.get("damaged"):
        # one line for everyone (the traceback is its owner's, on Live)
        return clip_message(" ".join(str(status.get("message") or state).split()), 300)
    return None


@st.cache_resource(max_entries=8192, show_spinner=False)
def _config_problem(root_dir: str, run_id: str) -> str | None:
    """Why a run's config.json cannot be read (e.g. written by another version), or None. A
    config never changes once written, so the answer is cached for good."""
    try:
        store_at(root_dir).read_config(run_id)
    except FileNotFoundError:
        return None  # deleted meanwhile (or named by the listing's own problem)
    except ValueError as exc:
        return f"config.json: {exc}"
    return None


def run_problem(row: Any) -> str | None:
    """What is damaged in the run folder of a listing row: the listing's ``problem``, or a
    config.json the app cannot read (the listing shows such a run without a problem)."""
    if isinstance(row.problem, str) and row.problem:
        return row.problem
    return _config_problem(root(), str(row.run_id))


def run_notes(df: Any) -> list[str]:
    """One note per row of a run listing: what is damaged (``problem``), why the run failed,
    diverged or stopped, or the warning of a finished run; '' when there is nothing to say."""
    out = []
    for row in df[["run_id", "state", "updated", "problem"]].itertuples(index=False):
        problem = run_problem(row)
        if problem:
            out.append(f"damaged: {problem}")
        elif row.state in ("queued", "running"):
            out.append("")
        else:
            updated = row.updated if row.updated == row.updated else None  # NaN -> None
            out.append(_note(root(), str(row.run_id), str(row.state), updated) or "")
    return out


def record_problems_ui(infos: Iterable[RunInfo], data: Mapping[str, RunData]) -> int:
    """One warning per run whose metric records are damaged: what was left out and why (the
    rest of the run is shown; ``fieldcheck`` decides). Returns how many runs were named."""
    named = 0
    for info in infos:
        d = data.get(info.run_id)
        if d is None or not d.problems:
            continue
        named += 1
        st.warning(f"**{md_escape(info.label, 80)}** (run {md_escape(info.run_id, 80)}): "
                   f"damaged records left out: {md_escape('; '.join(d.problems), 600)}",
                   icon=":material/broken_image:")
    return named


def _delete_damaged(run_id: str) -> None:
    try:
        answer = service.delete_run(run_id, owner_key=owner_key(),
                                    teacher_token=teacher_token(), store=store())
    except (ValueError, FileNotFoundError, DatabaseUnavailable,
            service.StoreUnavailable) as exc:  # NotAllowed is a ValueError
        st.error(f"Not deleted: {md_escape(exc, 500)}", icon=":material/error:")
        return
    with contextlib.suppress(Exception):
        reader().forget(run_id)
    clear_caches()
    st.toast(f"Run {run_id}: {answer}.")
    st.rerun()


def damaged_runs_ui(run_ids: Iterable[str] | None = None, *, key: str = "damaged") -> int:
    """Every damaged run (of ``run_ids``, or of the store) with what is damaged, and a Delete
    button for its owner (with their key) or the teacher; only the teacher may delete a run
    whose meta.json is damaged (its owner is unknown). A damaged run is never hidden. Returns
    how many were shown."""
    df = list_runs()
    if not len(df):
        return 0
    if run_ids is not None:
        df = df[df["run_id"].isin(list(run_ids))]
    bad = [(row, problem) for row in df.itertuples(index=False) if (problem := run_problem(row))]
    for row, problem in bad:
        c1, c2 = st.columns([6, 1.4], vertical_alignment="center")
        with c1:
            st.error(f"**Run {md_escape(row.run_id, 80)} is damaged:** {md_escape(problem, 600)}",
                     icon=":material/broken_image:")
        with c2:
            mine = can_act([row.owner] if isinstance(row.owner, str) else None)
            if st.button("Delete", key=f"{key}_delete_{row.run_id}", icon=":material/delete:",
                         disabled=not mine, help=None if mine else action_help("delete")):
                _delete_damaged(str(row.run_id))
    return len(bad)


# ---------------------------------------------------------------------------------------------
# launching (shared by Home's quick-demo button and the Launch page)
# ---------------------------------------------------------------------------------------------


def launch_block() -> str | None:
    """Why this session can launch nothing (an invalid name; a taken or reserved name without
    its key), for the help of every launch button, which is then disabled: said before the
    click, not refused after it. None when it may launch (a guest or a new name is registered
    at the launch: ``identity.launch_owner``)."""
    problem = owner_error()
    if problem:  # it says why and that nothing can be launched until the name is corrected
        return f"{problem} Correct it in the sidebar."
    refusal = launch_refusal(identity.current_standing(), identity.typed_name())
    return refusal.removeprefix("Not launched: ") if refusal else None


def launch_group(configs: dict, *, preset: str | None, seeds: int = 1) -> str | None:
    """Enqueue ``configs`` (label -> RunConfig) as one comparison group and open the Live page
    on it. Shows the reason and returns None when the queue refuses (limits, no queue, a store
    that cannot be written; a name that may not launch: ``identity.launch_owner``, which
    registers a new name first)."""
    me = launch_owner()
    if me is None:
        return None
    try:
        group, _ids = service.submit_group(
            configs, owner=me, preset=preset, seeds=seeds, store=store(),
            owner_key=owner_key(), teacher_token=teacher_token()
        )
    except (ValueError, DatabaseUnavailable, service.StoreUnavailable) as exc:
        # LimitExceeded and NotRunnable are ValueErrors; the two outages carry one-line messages
        identity.launch_failed()  # a name registered for this launch is given back
        st.error(f"Not launched: {md_escape(exc, 500)}", icon=":material/error:")
        return None
    identity.launch_succeeded()
    clear_caches()
    ensure_workers()
    # The Live page opens on the new group (?group=). switch_page gets a mapping: its default
    # (None) would try to clear the widget-bound ?owner= and fail.
    st.session_state["live_group"] = group
    st.switch_page(LIVE_PAGE, query_params={"group": group})
    return group  # not reached in a running app (switch_page stops the script)
