"""What went wrong, said where the runs are shown: why a run failed, diverged or stopped (or the
warning of one that finished), metric records left out, and damaged run folders with a Delete
button for whoever may delete them. One bad run never breaks a page: it is named, not hidden.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import streamlit as st

from app_pages import identity, reads, stores
from samon_app.markup import md_escape
from samon_app.reader import RunData, RunInfo
from samon_core import service
from samon_core.runs.database import DatabaseUnavailable
from samon_core.runs.files import CONFIG_FILE
from samon_core.runs.messages import clip_message
from samon_core.runs.states import ACTIVE_STATES, STOPPED_STATES, RunState


@st.cache_resource(max_entries=4096, show_spinner=False)
def _note(root_dir: str, run_id: str, state: str, updated: Any) -> str | None:
    """The reason a run did not finish, or the warning of one that did (cached per status
    change: ``updated`` changes with every write of the run's database row)."""
    s = stores.store_at(root_dir)
    try:
        status = s.read_status(run_id)
        summary = s.read_summary(run_id) if state == RunState.FINISHED else None
    except (FileNotFoundError, ValueError) as exc:
        return str(exc)
    if summary and summary.get("warning"):
        return str(summary["warning"])
    if state in STOPPED_STATES or status.get("damaged"):
        # one line for everyone (the traceback is its owner's, on Live)
        return clip_message(" ".join(str(status.get("message") or state).split()), 300)
    return None


@st.cache_resource(max_entries=8192, show_spinner=False)
def _config_problem(root_dir: str, run_id: str) -> str | None:
    """Why a run's config.json cannot be read (e.g. written by another version), or None. A
    config never changes once written, so the answer is cached for good."""
    try:
        stores.store_at(root_dir).read_config(run_id)
    except FileNotFoundError:
        return None  # deleted meanwhile (or named by the listing's own problem)
    except ValueError as exc:
        return f"{CONFIG_FILE}: {exc}"
    return None


def run_problem(row: Any) -> str | None:
    """What is damaged in the run folder of a listing row: the listing's ``problem``, or a
    config.json the app cannot read (the listing shows such a run without a problem)."""
    if isinstance(row.problem, str) and row.problem:
        return row.problem
    return _config_problem(stores.root(), str(row.run_id))


def run_notes(df: Any) -> list[str]:
    """One note per row of a run listing: what is damaged (``problem``), why the run failed,
    diverged or stopped, or the warning of a finished run; '' when there is nothing to say."""
    out = []
    for row in df[["run_id", "state", "updated", "problem"]].itertuples(index=False):
        problem = run_problem(row)
        if problem:
            out.append(f"damaged: {problem}")
        elif row.state in ACTIVE_STATES:
            out.append("")
        else:
            updated = row.updated if row.updated == row.updated else None  # NaN -> None
            out.append(_note(stores.root(), str(row.run_id), str(row.state), updated) or "")
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
        answer = service.delete_run(run_id, owner_key=identity.owner_key(),
                                    teacher_token=identity.teacher_token(), store=stores.store())
    except (ValueError, FileNotFoundError, DatabaseUnavailable,
            service.StoreUnavailable) as exc:  # NotAllowed is a ValueError
        st.error(f"Not deleted: {md_escape(exc, 500)}", icon=":material/error:")
        return
    with contextlib.suppress(Exception):
        reads.reader().forget(run_id)
    reads.clear_caches()
    st.toast(f"Run {run_id}: {answer}.")
    st.rerun()


def damaged_runs_ui(run_ids: Iterable[str] | None = None, *, key: str = "damaged") -> int:
    """Every damaged run (of ``run_ids``, or of the store) with what is damaged, and a Delete
    button for its owner (with their key) or the teacher; only the teacher may delete a run
    whose meta.json is damaged (its owner is unknown). A damaged run is never hidden. Returns
    how many were shown."""
    df = reads.list_runs()
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
            mine = identity.can_act([row.owner] if isinstance(row.owner, str) else None)
            if st.button("Delete", key=f"{key}_delete_{row.run_id}", icon=":material/delete:",
                         disabled=not mine, help=None if mine else identity.action_help("delete")):
                _delete_damaged(str(row.run_id))
    return len(bad)

