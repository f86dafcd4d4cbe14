"""Live: the runs of one comparison group while they train.

A fragment polls the run store every second while any run of the group is queued or running
(reads are shared between sessions, see ``app_pages.common``) and stops polling when none
is."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app_pages import common
from samon_app import charts
from samon_app.progress import is_active, run_progress
from samon_app.reader import RunInfo, chart_signature
from samon_app.tables import speed_summary
from samon_app.vocabulary import SYNTHETIC_NOTE
from samon_core import service

# ---------------------------------------------------------------------------------------------
# UI pieces (each returns plain values)
# ---------------------------------------------------------------------------------------------


def group_picker_ui(groups) -> str | None:
    """Which comparison group to follow. Kept in the URL as ``?group=<id>`` (synced by hand, so
    that the box can show readable labels while the link holds the id). Defaults to the group
    this session launched last, else the newest group of this user, else the newest group."""
    options = groups["group"].tolist()
    if not options:
        return None
    labels = dict(zip(groups["group"], groups["label"], strict=True))
    from_url = st.query_params.get("group")
    if from_url in options and from_url != st.session_state.get("live_url_group"):
        st.session_state["live_pick"] = from_url  # a link (or a launch) names the group
    st.session_state["live_url_group"] = from_url
    if st.session_state.get("live_pick") not in options:
        mine = groups.loc[groups["owner"] == common.owner(), "group"].tolist()
        launched = st.session_state.get("live_group")
        st.session_state["live_pick"] = (
            launched if launched in options else (mine[0] if mine else options[0])
        )
    picked = st.selectbox("Comparison", options, key="live_pick",
                          format_func=lambda g: labels.get(g, g),
                          help="Runs launched together (one click on Launch) form a comparison.")
    if st.query_params.get("group") != picked:
        st.query_params["group"] = picked
        st.session_state["live_url_group"] = picked
    return picked


def run_row_ui(info: RunInfo, prog: dict[str, Any], position: int | None, mine: bool) -> str | None:
    """One run: coloured name, progress bar with epoch and ETA, and a cancel (or resume) button.
    Returns 'cancel', 'resume' or None."""
    c1, c2, c3 = st.columns([2.2, 6, 1.4], vertical_alignment="center")
    with c1:
        st.markdown(f"{common.color_dot(info.color)} **{info.label}**", unsafe_allow_html=True)
    with c2:
        text = prog["text"]
        if info.state == "queued" and position is not None:
            text += f" (position {position})"
        st.progress(prog["progress"], text=text)
    action = None
    with c3:
        if prog["active"]:
            if st.button("Cancel", key=f"cancel_{info.run_id}", icon=":material/stop:",
                         disabled=not mine, help=None if mine else "Only its owner can cancel it."):
                action = "cancel"
        elif (info.state == "interrupted" and mine
              and st.button("Resume", key=f"resume_{info.run_id}", icon=":material/replay:")):
            action = "resume"
    if prog["problem"]:
        box = st.error if info.state in ("failed", "diverged", "unknown") else st.warning
        box(f"**{info.label}:** {prog['problem']}", icon=":material/report:")
        if prog.get("traceback"):
            with st.expander("Details (traceback)"):
                st.code(prog["traceback"], language=None)
    return action


VIEWS = ("Accuracy & loss", "Sharpness", "γ distribution", "Speed")


def view_ui() -> str:
    """Which charts to show (kept in the URL as ``?view=``)."""
    return st.segmented_control("Show", VIEWS, default=VIEWS[0], key="view", required=True,
                                bind="query-params", label_visibility="collapsed")


def curve_options_ui() -> tuple[str, float]:
    """Per epoch or per step, and the smoothing of the step curves."""
    c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
    with c1:
        per = st.segmented_control("Resolution", ["per epoch", "per step"], default="per epoch",
                                   key="live_per", required=True)
    with c2:
        smoothing = 0.0
        if per == "per step":
            smoothing = st.slider("Smoothing of the step curves", 0.0, 0.95, 0.6, 0.05,
                                  key="live_smoothing")
    return ("step" if per == "per step" else "epoch"), float(smoothing)


def run_action(action: str, run_id: str, me: str) -> None:
    """Cancel or resume a run through the job API, then show the new state."""
    try:
        if action == "cancel":
            service.cancel(run_id, owner=me, store=common.store())
        else:
            service.resume(run_id, store=common.store())
    except ValueError as exc:
        st.error(str(exc))
        return
    common.clear_caches()
    st.rerun()


# ---------------------------------------------------------------------------------------------
# the status panel (a fragment that polls) and the charts (redrawn only when their data changed)
# ---------------------------------------------------------------------------------------------


def chart_kinds(view: str, per: str) -> tuple[str, ...]:
    """The record kinds the charts of ``view`` are drawn from."""
    return {
        VIEWS[0]: (per,),
        VIEWS[1]: ("sharpness",),
        VIEWS[2]: ("norm_stats",),
        VIEWS[3]: ("step",),
    }[view]


def status_panel(group: str, polling: bool, kinds: tuple[str, ...], shown: tuple) -> None:
    """Progress, ETA and cancel button of every run. While runs are queued or training this
    fragment reruns every second, and reruns the whole page (so redraws the charts below) only
    when records the charts show have arrived, or when no run is active any more."""
    ids = _group_ids(group)
    infos = common.infos(ids)
    if not infos:
        st.info("This comparison has no runs (any more).")
        return
    active = any(is_active(i.state) for i in infos)
    if polling and not active:
        st.rerun()  # every run ended: re-run the page once, without polling
    if polling and chart_signature(infos, common.run_data(ids), kinds) != shown:
        st.rerun()  # new records for the charts on screen

    me = common.owner()
    asked = common.members().get(group, {})
    positions = common.queue_positions() if active else {}
    with st.container(border=True):
        for info in infos:
            mine = me in (info.meta.get("owner"), asked.get(info.run_id))
            action = run_row_ui(info, run_progress(info), positions.get(info.run_id), mine)
            if action:
                run_action(action, info.run_id, me)


def accuracy_charts_ui(infos: list, data: dict, per: str, smoothing: float) -> None:
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Accuracy**")
        common.plot(common.figure(
            "live_acc", lambda: charts.run_curves_figure(
                infos, data, "acc", per=per, smoothing=smoothing),
            infos, data, (per,), (per, smoothing)), key="live_acc_chart")
    with c2:
        st.markdown("**Loss**")
        common.plot(common.figure(
            "live_loss", lambda: charts.run_curves_figure(
                infos, data, "loss", per=per, smoothing=smoothing),
            infos, data, (per,), (per, smoothing)), key="live_loss_chart")
    common.look_for(
        "solid lines are test, dashed lines train. SAM's runs usually train slower (lower "
        "train accuracy, higher train loss) yet end with an equal or better *test* "
        "accuracy: the gap between dashed and solid is what SAM shrinks."
    )


def sharpness_charts_ui(infos: list, data: dict) -> None:
    common.plot(common.figure("live_sharp", lambda: charts.sharpness_figure(infos, data),
                              infos, data, ("sharpness",)), key="live_sharp_chart")
    common.look_for(
        "how much the loss rises under a small worst-case weight perturbation (lower = "
        "flatter). The paper's surprise: SAM-ON ends *sharper* than SAM-all and even SGD, "
        "yet generalizes better, so flatness alone does not explain SAM."
    )


def gamma_charts_ui(infos: list, data: dict) -> None:
    common.plot(common.figure("live_gamma", lambda: charts.gamma_animation(infos, data),
                              infos, data, ("norm_stats",)), key="live_gamma_anim")
    common.look_for(
        "press play or drag the epoch slider: all runs start from the same gamma = 1. "
        "Under SAM-ON the distribution of gamma moves to *larger* values than under SGD "
        "and SAM-all, the parameter shift the paper reports."
    )
    c1, c2 = st.columns(2)
    with c1:
        common.plot(common.figure("live_gamma_mean",
                                  lambda: charts.gamma_mean_figure(infos, data),
                                  infos, data, ("norm_stats",)), key="live_gamma_mean")
        common.look_for("the average gamma per epoch: SAM-ON's line should climb above the "
                        "others.")
    with c2:
        common.plot(common.figure("live_gamma_layers",
                                  lambda: charts.layer_gamma_figure(infos, data),
                                  infos, data, ("norm_stats",)), key="live_gamma_layers")
        common.look_for("the mean gamma of each norm layer at the latest epoch, from input "
                        "to output, against the initialisation (dotted): where in the "
                        "network the shift happens.")


def speed_charts_ui(infos: list, data: dict) -> None:
    c1, c2 = st.columns(2)
    with c1:
        common.plot(common.figure(
            "live_step_time", lambda: charts.speed_figure(infos, data, what="step_time"),
            infos, data, ("step",)), key="live_step_time")
    with c2:
        common.plot(common.figure(
            "live_ips", lambda: charts.speed_figure(infos, data, what="images_per_s"),
            infos, data, ("step",)), key="live_ips")
    table = speed_summary(infos, data)
    if len(table):
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={
                         "median step time (ms)": st.column_config.NumberColumn(format="%.1f"),
                         "images/s": st.column_config.NumberColumn(format="%.0f"),
                         "cost vs SGD": st.column_config.NumberColumn(format="%.2fx"),
                     })
    common.look_for(
        "SAM needs two gradient passes per step, so SAM-all costs about twice SGD. SAM-ON's "
        "first pass computes only the norm layers' gradients, so it should sit between the "
        "two (about 5/3 of SGD in forward-pass units). Runs that share a CPU slow each "
        "other down: compare runs that trained alone."
    )


def charts_panel(infos: list, data: dict, view: str, per: str, smoothing: float) -> None:
    """The charts of ``view``, each with what to look for."""
    if view == VIEWS[0]:
        accuracy_charts_ui(infos, data, per, smoothing)
    elif view == VIEWS[1]:
        sharpness_charts_ui(infos, data)
    elif view == VIEWS[2]:
        gamma_charts_ui(infos, data)
    else:
        speed_charts_ui(infos, data)


def _group_ids(group: str) -> list[str]:
    return list(common.members().get(group, {}))


# ---------------------------------------------------------------------------------------------
# page
# ---------------------------------------------------------------------------------------------

st.title("Live")
groups = common.groups()
picked = group_picker_ui(groups)
if picked is None:
    st.info("No comparison has been launched yet. Start one on the Launch page, or run the "
            "quick demo from Home.", icon=":material/info:")
    st.page_link(common.LAUNCH_PAGE, label="Launch a comparison", icon=":material/rocket_launch:")
else:
    run_ids = _group_ids(picked)
    infos = common.infos(run_ids)
    polling = any(is_active(i.state) for i in infos)
    if polling:
        st.caption(":material/autorenew: updates every second while runs are queued or training")
    status_box = st.container()
    if any(i.synthetic for i in infos):
        st.caption(":material/science: " + SYNTHETIC_NOTE)
    view = view_ui()
    per, smoothing = curve_options_ui() if view == VIEWS[0] else ("epoch", 0.0)
    data = common.run_data(run_ids)
    kinds = chart_kinds(view, per)
    with status_box:
        st.fragment(run_every=common.POLL_S if polling else None)(status_panel)(
            picked, polling, kinds, chart_signature(infos, data, kinds))
    charts_panel(infos, data, view, per, smoothing)
