"""Compare: all runs in one table (filters), any of them overlaid with smoothing and mean ± std
bands across seeds, a results table in the paper's format, CSV / JSON export, and deleting your
own runs."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from app_pages import common
from samon_app import charts
from samon_app.export import export_csv, export_json
from samon_app.formatting import format_pct
from samon_app.progress import is_active
from samon_app.series import seed_groups
from samon_app.tables import results_table
from samon_app.vocabulary import SYNTHETIC_NOTE
from samon_core import service

MAX_OVERLAY = 30
METRICS = {
    "test_acc": ("Test accuracy", "epoch"),
    "train_acc": ("Train accuracy", "epoch"),
    "test_loss": ("Test loss", "epoch"),
    "train_loss": ("Train loss", "epoch"),
    "acc": ("Train accuracy per step", "step"),
    "loss": ("Train loss per step", "step"),
}
FILTERS = {
    "method_label": "Method",
    "model": "Model",
    "dataset": "Dataset",
    "preset": "Preset",
    "owner": "Owner",
    "state": "Status",
}


# ---------------------------------------------------------------------------------------------
# UI pieces (each returns plain values)
# ---------------------------------------------------------------------------------------------


def filters_ui(df) -> dict[str, list[str]]:
    """One multiselect per column in ``FILTERS`` (empty = all). Returns column -> chosen."""
    chosen: dict[str, list[str]] = {}
    cols = st.columns(len(FILTERS))
    for col, (name, label) in zip(cols, FILTERS.items(), strict=True):
        values = df[name].fillna("(none)").astype(str) if len(df) else []
        options = sorted(set(values))
        with col:
            chosen[name] = st.multiselect(label, options, key=f"f_{name}", placeholder="all",
                                          bind="query-params")
    return chosen


def apply_filters(df, chosen: dict[str, list[str]]):
    for name, values in chosen.items():
        if values:
            df = df[df[name].fillna("(none)").astype(str).isin(values)]
    return df


def runs_table_ui(df) -> list[str]:
    """The table of runs; returns the ids of the selected rows."""
    shown = df.assign(
        progress=[
            f"{int(le) if le == le and le is not None else 0}/{int(ep)}"
            for le, ep in zip(df["last_epoch"], df["epochs"], strict=True)
        ],
        test_acc=[format_pct(v) for v in df["final_test_acc"]],
        preset=df["preset"].fillna("custom"),
        created_at=[time.strftime("%Y-%m-%d %H:%M", time.localtime(c)) if c == c else ""
                    for c in df["created"]],
    )[["method_label", "state", "model", "dataset", "seed", "progress", "test_acc", "owner",
       "preset", "created_at", "run_id"]]
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
            "test_acc": "final test acc.",
            "created_at": "created",
            "run_id": "run id",
        },
    )
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    return [shown["run_id"].iloc[i] for i in rows if 0 <= i < len(shown)]


def chart_options_ui() -> dict[str, Any]:
    c1, c2, c3, c4 = st.columns([2, 2, 1.2, 1.2], vertical_alignment="bottom")
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
    with c4:
        finished_only = st.toggle("Finished only", value=True, key="c_finished",
                                  help="The results table counts only finished runs.")
    return {"metric": metric, "smoothing": float(smoothing), "bands": bands,
            "finished_only": finished_only}


def delete_ui(own: list[str], labels: dict[str, str]) -> list[str]:
    """Pick own runs to delete and confirm; returns the ids to delete now (else [])."""
    if not own:
        st.caption("Select runs of yours in the table above to delete them.")
        return []
    picked = st.multiselect("Your runs to delete", own, default=own,
                            format_func=lambda r: labels.get(r, r), key="delete_pick")
    sure = st.checkbox("Yes, delete these runs and their metrics for good", key="delete_sure")
    clicked = st.button(f"Delete {len(picked)} run{'s' if len(picked) != 1 else ''}",
                        disabled=not (picked and sure), icon=":material/delete:",
                        key="delete_go")
    return picked if clicked and sure else []


# ---------------------------------------------------------------------------------------------
# page
# ---------------------------------------------------------------------------------------------

st.title("Compare runs")
st.markdown(
    "Every run of every user is here. Filter the table, select rows to overlay them (without a "
    f"selection the {MAX_OVERLAY} newest filtered runs are shown), and read the results in the "
    "paper's format below."
)
top_l, top_r = st.columns([6, 1], vertical_alignment="bottom")
with top_r:
    if st.button("Refresh", icon=":material/refresh:", key="c_refresh"):
        common.clear_caches()
all_runs = common.list_runs()
if all_runs.empty:
    st.info("No runs yet. Launch some on the Launch page.", icon=":material/info:")
    st.page_link(common.LAUNCH_PAGE, label="Launch a comparison", icon=":material/rocket_launch:")
    st.stop()

with top_l:
    chosen = filters_ui(all_runs)
filtered = apply_filters(all_runs, chosen)
st.caption(f"{len(filtered)} of {len(all_runs)} runs")
selected = runs_table_ui(filtered)
overlay_ids = selected or filtered["run_id"].head(MAX_OVERLAY).tolist()
if not overlay_ids:
    st.info("No run matches the filters.")
    st.stop()

infos = common.infos(overlay_ids)
data = common.run_data([i.run_id for i in infos])
groups = seed_groups(infos)

st.header("Curves", divider="gray")
opts = chart_options_ui()
metric, x = opts["metric"], METRICS[opts["metric"]][1]
group_sig = tuple((g.key, g.label, g.color) for g in groups)
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
if any(i.synthetic for i in infos):
    st.caption(":material/science: " + SYNTHETIC_NOTE)
if any(is_active(i.state) for i in infos):
    st.caption(":material/autorenew: Some of these runs are still training; press Refresh for "
               "their latest records, or follow them on the Live page.")

st.header("Results in the paper's format", divider="gray")
table = results_table(groups, data, finished_only=opts["finished_only"])
if all(n == 0 for n in table.n):
    st.info("None of the shown runs has finished yet.")
else:
    st.markdown(table.markdown())
    common.look_for(
        "final test accuracy as mean ± std over seeds (n = runs per column; bold = best), and "
        "the final l_inf m-sharpness of each probe (bold = flattest). The paper's pattern: "
        "SAM-ON has the best accuracy but *not* the lowest sharpness."
    )

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
    me = common.owner()
    own = [i.run_id for i in infos if i.meta.get("owner") == me and i.run_id in selected]
    labels = {i.run_id: f"{i.label} ({i.state}, {i.run_id})" for i in infos}
    to_delete = delete_ui(own, labels)
    if to_delete:
        problems = []
        for info in [i for i in infos if i.run_id in to_delete]:
            try:
                if is_active(info.state):
                    service.cancel(info.run_id, owner=me, store=common.store())
                common.store().delete_run(info.run_id, owner=me)
                common.reader().forget(info.run_id)
            except (ValueError, FileNotFoundError) as exc:
                problems.append(f"{info.label}: {exc}")
        common.clear_caches()
        if problems:
            st.error("Not deleted: " + "; ".join(problems))
        else:
            st.rerun()
