"""Compare: all runs in one table (filters), any of them overlaid with smoothing and mean ± std
bands across seeds, a results table in the paper's format, loss landscapes, robustness, CSV / JSON
export, and deleting your own runs."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from app_pages import common, identity, live_card, paths, problems, reads, stores
from app_pages.robustness_view import robustness_ui
from samon_app import charts
from samon_app.export import export_csv, export_json
from samon_app.formatting import format_pct
from samon_app.landscape import flatness_sentence, slices
from samon_app.markup import md_escape
from samon_app.progress import is_active
from samon_app.series import seed_groups
from samon_app.tables import ROW_COST, results_table
from samon_app.urlparams import COMPARE_FILTERS, COMPARE_METRICS
from samon_app.vocabulary import SYNTHETIC_NOTE
from samon_core import service
from samon_core.runs.database import DatabaseUnavailable
from samon_core.runs.states import RunState

MAX_OVERLAY = 30
METRICS = COMPARE_METRICS
FILTERS = COMPARE_FILTERS


# ---------------------------------------------------------------------------------------------
# UI pieces (each returns plain values)
# ---------------------------------------------------------------------------------------------


ALL_RUNS = ""


def scope_ui(groups) -> str:
    """Which runs the page starts from: one comparison (default: this user's latest; a link's
    ``?group=``) or every run of every user (``ALL_RUNS``), narrowed by the filters below."""
    options = [ALL_RUNS, *groups["group"].tolist()]
    labels = {ALL_RUNS: "All runs of all users (narrow them with the filters)",
              **dict(zip(groups["group"], groups["label"], strict=True))}
    if st.session_state.get("c_group") not in options:
        from_url = st.query_params.get("group")
        mine = groups.loc[groups["owner"] == identity.owner(), "group"].tolist()
        st.session_state["c_group"] = (
            from_url if from_url in options and from_url else (mine[0] if mine else ALL_RUNS))
    return st.selectbox("Comparison", options, key="c_group", index=None,
                        format_func=lambda g: labels.get(g, g),
                        help="Opens on your latest comparison; pick another one, or all runs "
                        "(other users' runs included), and filter.") or ALL_RUNS


def filters_ui(df) -> dict[str, list[str]]:
    """One multiselect per column in ``FILTERS`` (empty = all), three to a row so that the
    chosen values stay readable. Returns column -> chosen."""
    chosen: dict[str, list[str]] = {}
    items = list(FILTERS.items())
    for row in range(0, len(items), 3):
        cols = st.columns(3)
        for col, (name, label) in zip(cols, items[row:row + 3], strict=False):
            values = df[name].fillna("(none)").astype(str) if len(df) else []
            with col:
                chosen[name] = st.multiselect(label, sorted(set(values)), key=f"f_{name}",
                                              placeholder="all", bind="query-params")
    return chosen


def apply_filters(df, chosen: dict[str, list[str]]):
    """The rows matching every chosen filter; cancelled runs only when the Status filter asks
    for them."""
    for name, values in chosen.items():
        if values:
            df = df[df[name].fillna("(none)").astype(str).isin(values)]
    if RunState.CANCELLED not in (chosen.get("state") or []):
        df = df[df["state"] != RunState.CANCELLED]
    return df


def _whole(value) -> int | None:
    return int(value) if value is not None and value == value else None  # NaN -> None


def test_acc_text(state: str, acc, last_epoch, epochs) -> str:
    """A run's test accuracy in the runs table: the final one of a finished run, else the one
    of its latest epoch, said so ('3.6% at epoch 1 of 6'): not a final accuracy."""
    text = format_pct(acc)
    if state == RunState.FINISHED or text == "-":
        return text
    done, total = _whole(last_epoch), _whole(epochs)
    return f"{text} at epoch {done if done is not None else '?'} of " \
           f"{total if total is not None else '?'}"


def runs_table_ui(df) -> list[str]:
    """The table of runs; returns the ids of the selected rows."""
    shown = df.assign(
        progress=[
            f"{int(le) if le == le and le is not None else 0}/"
            f"{int(ep) if ep == ep and ep is not None else '?'}"  # '?': a damaged config
            for le, ep in zip(df["last_epoch"], df["epochs"], strict=True)
        ],
        test_acc=[test_acc_text(st_, acc, le, ep) for st_, acc, le, ep in zip(
            df["state"], df["final_test_acc"], df["last_epoch"], df["epochs"], strict=True)],
        preset=df["preset"].fillna("custom"),
        created_at=[time.strftime("%Y-%m-%d %H:%M", time.localtime(c)) if c == c else ""
                    for c in df["created"]],
        note=problems.run_notes(df),  # why a run failed, its warning, or what is damaged
    )[["method_label", "state", "model", "dataset", "seed", "progress", "test_acc", "note",
       "owner", "preset", "created_at", "run_id"]]
    event = st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(shown), 360),
        on_select="rerun",
        selection_mode="multi-row",
        key="compare_table",
        column_config={
            "method_label": "method",
            "test_acc": st.column_config.TextColumn(
                "test acc.", help="Final for a finished run; for any other run the accuracy "
                "of its latest epoch, with that epoch."),
            "created_at": "created",
            "run_id": "run id",
        },
    )
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    return [shown["run_id"].iloc[i] for i in rows if 0 <= i < len(shown)]


def chart_options_ui() -> dict[str, Any]:
    c1, c2, c3 = st.columns([2, 2, 1.2], vertical_alignment="bottom")
    with c1:
        metric = st.selectbox("Metric", list(METRICS), format_func=lambda m: METRICS[m][0],
                              key="c_metric", bind="query-params")
    with c2:
        smoothing = st.slider("Smoothing", 0.0, 0.95, 0.0, 0.05, key="c_smooth",
                              help="Exponential moving average of each run's curve (0 = raw).")
    with c3:
        bands = st.toggle("± std bands", value=True, key="c_bands",
                          help="Runs that differ only in their seed become one line with a band "
                          "of ± one standard deviation.")
    return {"metric": metric, "smoothing": float(smoothing), "bands": bands}


def finished_only_ui() -> bool:
    """Whether the results table counts only finished runs (the curves show every run)."""
    return st.toggle("Count finished runs only", value=True, key="c_finished",
                     help="Filters this results table only (the curves above show every "
                     "selected run). Off: runs still training count with their latest epoch.")


def delete_ui(own: list[str], labels: dict[str, str], why_not: str | None) -> list[str]:
    """Pick own runs to delete and confirm; returns the ids to delete now (else []).
    ``why_not``: why this user can delete no run at all (None when they can delete theirs)."""
    if not own:
        st.caption(why_not or "Select runs of yours in the table above to delete them.")
        return []
    picked = st.multiselect("Your runs to delete", own, default=own,
                            format_func=lambda r: labels.get(r, r), key="delete_pick")
    sure = st.checkbox("Yes, delete these runs and their metrics for good", key="delete_sure")
    clicked = st.button(f"Delete {len(picked)} run{'s' if len(picked) != 1 else ''}",
                        disabled=not (picked and sure), icon=":material/delete:",
                        key="delete_go")
    return picked if clicked and sure else []


def results_ui(table) -> None:
    """The results table, fitted to the page: columns named by method, the settings that tell
    columns of one method apart in their tooltip (and in the 'settings' row)."""
    config = {"_index": st.column_config.TextColumn("", width="medium")}
    for name, details in zip(table.columns, table.details, strict=True):
        config[name] = st.column_config.TextColumn(name, help=details or None)
    st.dataframe(table.styled(), width="stretch", column_config=config, key="results_table")
    st.caption(f"'{ROW_COST}' compares fairly only between runs that trained interleaved (see "
               "the Speed view of the Live page): runs trained at different times were measured "
               "under different machine load.")


def landscape_ui(infos: list, data: dict) -> None:
    """The runs' loss slices overlaid, the sentence that reads them, and how to get slices for
    finished runs that have none (the trainer makes them when ``landscape_points`` > 0)."""
    c1, c2 = st.columns(2)
    direction = c1.segmented_control("Direction", ["random", "gradient"], default="random",
                                     key="c_ls_dir", required=True)
    split = c2.segmented_control("Images", ["train", "test"], default="test",
                                 key="c_ls_split", required=True)
    found = slices(infos, data, direction, split)
    common.plot(charts.landscape_figure(found, direction=direction, split=split),
         key=f"compare_landscape_{direction}_{split}")
    common.look_for(flatness_sentence(found, direction))
    planes = {i.label: rec for i in infos for rec in (data[i.run_id].records if i.run_id in data
                                                       else ()) if rec.get("kind") == "landscape2d"}
    if planes:
        label = st.selectbox("2D slice of", list(planes), key="c_ls_plane")
        rec = planes[label]
        common.plot(charts.plane_figure(label, rec["offsets"], rec["losses"]), key="compare_plane")
    have = {s.run_id for s in found}
    missing = [i.run_id for i in infos if i.state == RunState.FINISHED and i.run_id not in have]
    if missing:
        st.caption(f"{len(missing)} finished run(s) have no slices. A worker computes them from "
                   "the final checkpoint (the button, for your runs), or on a worker machine: "
                   f"`python -m samon_core landscape {missing[0]}`.")
        slices_button_ui(missing)


def slices_button_ui(missing: list[str]) -> None:
    """Ask a worker for the slices of the user's finished runs that have none."""
    plane = st.checkbox("with a 2D slice (points x points evaluations: slower)", key="c_ls_2d")
    if not st.button(f"Compute the slices of your {len(missing)} run(s) (a worker does it)",
                     key="c_ls_request", icon=":material/landscape:"):
        return
    outcome: dict[str, int] = {}
    for run_id in missing:
        try:
            state = service.request_slices(run_id, owner_key=identity.owner_key(),
                                           teacher_token=identity.teacher_token(), plane=plane,
                                           store=stores.store())
        except (ValueError, DatabaseUnavailable, service.StoreUnavailable) as exc:
            state = "refused"
            st.caption(f"{md_escape(run_id)}: {md_escape(str(exc))}")
        outcome[state] = outcome.get(state, 0) + 1
    st.info(", ".join(f"{n} {s}" for s, n in outcome.items()) + ": press Refresh in a minute.",
            icon=":material/schedule:")



# ---------------------------------------------------------------------------------------------
# page
# ---------------------------------------------------------------------------------------------

st.title("Compare runs")
st.markdown(
    "Your latest comparison opens first; every run of every user is one choice away. Filter the "
    "table, select rows to overlay them (without a selection the "
    f"{MAX_OVERLAY} newest runs shown are overlaid), and read the results in the paper's format "
    "below. Cancelled runs are left out unless the Status filter asks for them."
)
top_l, top_r = st.columns([6, 1], vertical_alignment="bottom")
with top_r:
    if st.button("Refresh", icon=":material/refresh:", key="c_refresh"):
        reads.clear_caches()
all_runs = reads.list_runs()
if all_runs.empty:
    st.info("No runs yet. Launch some on the Launch page.", icon=":material/info:")
    st.page_link(paths.LAUNCH_PAGE, label="Launch a comparison", icon=":material/rocket_launch:")
    st.stop()

with top_l:
    scope = scope_ui(reads.groups())
scoped = all_runs
if scope != ALL_RUNS:
    scoped = all_runs[all_runs["run_id"].isin(list(reads.members().get(scope, {})))]
chosen = filters_ui(scoped)
filtered = apply_filters(scoped, chosen)
st.caption(f"{len(filtered)} of {len(all_runs)} runs"
           + (" (this comparison)" if scope != ALL_RUNS else ""))
selected = runs_table_ui(filtered)
problems.damaged_runs_ui(None, key="compare_damaged")  # all of them, whatever the filters
overlay_ids = selected or filtered["run_id"].head(MAX_OVERLAY).tolist()
if not overlay_ids:
    st.info("No run matches the filters.")
    st.stop()

infos = reads.infos(overlay_ids)
data = reads.run_data([i.run_id for i in infos])
problems.record_problems_ui(infos, data)
groups = seed_groups(infos)

st.header("Curves", divider="gray")
opts = chart_options_ui()
metric, x = opts["metric"], METRICS[opts["metric"]][1]
group_sig = tuple((g.key, g.label, g.color, g.dash, g.details) for g in groups)
common.plot(common.figure(
    "compare", lambda: charts.compare_figure(groups, data, metric, x=x,
                                             smoothing=opts["smoothing"], bands=opts["bands"]),
    infos, data, (x,), (metric, x, opts["smoothing"], opts["bands"], group_sig)),
    key="compare_chart")
common.look_for(
    "with several seeds per method, the bands show how much of a gap is noise: a difference "
    "between methods counts when their bands do not overlap. In the paper, SAM-ON's test "
    "accuracy ends above SAM-all's, and both above SGD."
)
live_card.view_verdict_ui("accuracy", infos, data, key="compare_verdict")
if any(i.synthetic for i in infos):
    st.caption(":material/science: " + SYNTHETIC_NOTE)
if any(is_active(i.state) for i in infos):
    st.caption(":material/autorenew: Some of these runs are still training; press Refresh for "
               "their latest records, or follow them on the Live page.")

st.header("Results in the paper's format", divider="gray")
table = results_table(groups, data, finished_only=finished_only_ui())
if not table.columns:
    st.info("None of the shown runs has finished yet.")
else:
    results_ui(table)
    common.look_for(
        "final test accuracy, time per step, final mean gamma and the final l_inf m-sharpness "
        "of each probe, as mean ± std over seeds (n = runs per column; bold = best accuracy, "
        "lowest sharpness). The paper reports SAM-ON with the best accuracy but *not* the "
        "lowest sharpness; see whether your runs agree."
    )

st.header("Loss landscapes", divider="gray")
landscape_ui(infos, data)

st.header("Robustness", divider="gray")
robustness_ui(infos, data, key="compare")

st.header("Export and clean up", divider="gray")
c1, c2 = st.columns(2)
with c1:
    st.markdown(f"**Download** the {len(infos)} shown runs")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    st.download_button("Metrics as CSV", data=lambda: export_csv(infos, data),
                       file_name=f"samon-metrics-{stamp}.csv", mime="text/csv",
                       icon=":material/download:", key="dl_csv", on_click="ignore")
    st.download_button("Configs and metrics as JSON", data=lambda: export_json(infos, data),
                       file_name=f"samon-runs-{stamp}.json", mime="application/json",
                       icon=":material/download:", key="dl_json", on_click="ignore")
    st.caption("CSV: one row per epoch, step or sharpness record, with the run, method, model, "
               "dataset and seed. JSON: each run's config, meta, summary and all its records.")
with c2:
    own = [i.run_id for i in infos if i.run_id in selected and identity.can_act(i.meta)]
    labels = {i.run_id: f"{i.label} ({i.state}, {i.run_id})" for i in infos}
    to_delete = delete_ui(own, labels, identity.read_only())
    if to_delete:
        failures = []
        for info in [i for i in infos if i.run_id in to_delete]:
            try:  # cancels it first if it waits or trains; NotAllowed is a ValueError
                service.delete_run(info.run_id, owner_key=identity.owner_key(),
                                   teacher_token=identity.teacher_token(), store=stores.store())
                reads.reader().forget(info.run_id)
            except (ValueError, FileNotFoundError, DatabaseUnavailable,
                    service.StoreUnavailable) as exc:
                failures.append(f"{info.label}: {exc}")
        reads.clear_caches()
        if failures:
            st.error("Not deleted: " + md_escape("; ".join(failures), 1000))
        else:
            st.rerun()
