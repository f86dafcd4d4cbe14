"""Live: the runs of one comparison group while they train.

A fragment polls the run store every second while any run of the group is queued or running
(reads are shared between sessions, see ``app_pages.reads``) and stops polling when none
is. Runs reused from an earlier request are named as such, and can be replayed or trained
again (``app_pages.live_reuse``)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app_pages import common, identity, live_card, live_reuse, paths, problems, reads, stores
from app_pages.robustness_view import robustness_ui
from samon_app import charts
from samon_app.landscape import flatness_sentence, slices
from samon_app.markup import color_dot, md_escape
from samon_app.progress import (
    PER_EPOCH,
    PER_STEP,
    bar_css,
    bar_key,
    default_resolution,
    empty_chart_note,
    is_active,
    run_progress,
    sharpness_note,
)
from samon_app.reader import RunInfo, chart_signature
from samon_app.speed import cost_ratios, expected_help, expected_ratio
from samon_app.tables import speed_summary
from samon_app.urlparams import LIVE_VIEWS
from samon_app.vocabulary import SYNTHETIC_NOTE
from samon_core import service
from samon_core.runs.database import DatabaseUnavailable
from samon_core.runs.states import UNKNOWN_STATE, RunState

POLL_S = 1.0  # how often the page looks for new records while runs are active
# A run whose problem is an error (red), not a warning: it failed, or its state is unreadable.
BROKEN = frozenset({RunState.FAILED, RunState.DIVERGED, UNKNOWN_STATE})

# ---------------------------------------------------------------------------------------------
# UI pieces (each returns plain values)
# ---------------------------------------------------------------------------------------------


def group_picker_ui(groups) -> str | None:
    """Which comparison group to follow. Kept in the URL as ``?group=<id>`` (synced by hand, so
    that the box can show readable labels while the link holds the id). Defaults to the group
    this session launched last, else the newest group of this user; a user without runs gets
    no one else's comparison (None: the page shows an empty state), but may pick one."""
    options = groups["group"].tolist()
    if not options:
        return None
    labels = dict(zip(groups["group"], groups["label"], strict=True))
    from_url = st.query_params.get("group")
    if from_url in options and from_url != st.session_state.get("live_url_group"):
        st.session_state["live_pick"] = from_url  # a link (or a launch) names the group
    st.session_state["live_url_group"] = from_url
    if st.session_state.get("live_pick") not in options:
        mine = groups.loc[groups["owner"] == identity.owner(), "group"].tolist()
        launched = st.session_state.get("live_group")
        st.session_state["live_pick"] = (
            launched if launched in options else (mine[0] if mine else None)
        )
    picked = st.selectbox("Comparison", options, key="live_pick", index=None,
                          placeholder="Pick a comparison (yours or another user's)",
                          format_func=lambda g: labels.get(g, g),
                          help="Runs launched together (one click on Launch) form a comparison.")
    if picked is not None and st.query_params.get("group") != picked:
        st.query_params["group"] = picked
        st.session_state["live_url_group"] = picked
    return picked


def run_row_ui(info: RunInfo, prog: dict[str, Any], position: int | None,
               why_not: str | None) -> str | None:
    """One run: coloured name, progress bar with epoch and ETA, and a cancel (or resume) button,
    disabled with ``why_not`` as its help when this user may not use it (None: they may).
    Returns 'cancel', 'resume' or None."""
    c1, c2, c3 = st.columns([2.2, 6, 1.4], vertical_alignment="center")
    with c1:
        st.markdown(f"{color_dot(info.color)} **{md_escape(info.label)}**")
    with c2:
        text = prog["text"]
        if info.state == RunState.QUEUED and position is not None:
            text += f" (position {position})"
        with st.container(key=bar_key(info)):  # coloured by bar_css
            st.progress(prog["progress"], text=text)
    action = None
    with c3:
        if prog["active"]:
            if st.button("Cancel", key=f"cancel_{info.run_id}", icon=":material/stop:",
                         disabled=why_not is not None, help=why_not):
                action = "cancel"
        elif info.state == RunState.INTERRUPTED and st.button(
                "Resume", key=f"resume_{info.run_id}", icon=":material/replay:",
                disabled=why_not is not None, help=why_not):
            action = "resume"
    if prog["problem"]:
        box = st.error if info.state in BROKEN else st.warning
        box(f"**{md_escape(info.label)}:** {md_escape(prog['problem'], 1000)}",
            icon=":material/report:")
        if prog.get("traceback") and why_not is None:  # its owner or the teacher only
            with st.expander("Details (traceback)"):
                st.code(prog["traceback"], language=None)
    return action


VIEWS = LIVE_VIEWS  # declared once in samon_app/urlparams.py, which checks links against it


def view_ui() -> str:
    """Which charts to show (kept in the URL as ``?view=``)."""
    return st.segmented_control("Show", VIEWS, default=VIEWS[0], key="view", required=True,
                                bind="query-params", label_visibility="collapsed")


PER_CHOICE = "live_per_choice"  # session state: the resolution the user picked, if any


def _remember_per() -> None:
    st.session_state[PER_CHOICE] = st.session_state.get("live_per")


def curve_options_ui(auto: str) -> tuple[str, float]:
    """Per epoch or per step, and the smoothing of the step curves. Until the user picks one,
    ``auto`` (``progress.default_resolution``: per step during the first epoch, so the charts
    fill from the first step record on, then per epoch)."""
    st.session_state["live_per"] = st.session_state.get(PER_CHOICE) or auto
    c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
    with c1:
        per = st.segmented_control("Resolution", [PER_EPOCH, PER_STEP], key="live_per",
                                   required=True, on_change=_remember_per)
    with c2:
        smoothing = 0.0
        if per == PER_STEP:
            smoothing = st.slider("Smoothing of the step curves", 0.0, 0.95, 0.6, 0.05,
                                  key="live_smoothing")
    return ("step" if per == PER_STEP else "epoch"), float(smoothing)


CANCEL_ANSWERS = {
    service.DETACHED: "You left this run: other users asked for it too, so it goes on training for "
                "them. It no longer counts as yours.",
    service.CANCELLING: "Cancelling: the run stops within one training step.",
    RunState.CANCELLED: "Cancelled.",
}


def run_action(action: str, run_id: str, me: str) -> None:
    """Cancel or resume a run through the job API, then show the new state and what happened
    (a run shared with other users is not stopped: only ``me`` leaves it)."""
    try:
        if action == "cancel":
            answer = str(service.cancel(run_id, owner_key=identity.owner_key(),
                                        teacher_token=identity.teacher_token(),
                                        store=stores.store()))
            st.session_state["live_notice"] = CANCEL_ANSWERS.get(
                answer, f"Nothing to cancel: the run is already {answer}.")
        else:
            service.resume(run_id, owner_key=identity.owner_key(),
                           teacher_token=identity.teacher_token(), store=stores.store())
    except (ValueError, DatabaseUnavailable, service.StoreUnavailable) as exc:
        st.error(md_escape(exc, 500))  # NotAllowed is a ValueError; outages: one line
        return
    reads.clear_caches()
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
        VIEWS[4]: ("landscape",),
        VIEWS[5]: ("robustness",),
    }[view]


def status_panel(group: str, polling: bool, kinds: tuple[str, ...], shown: tuple) -> None:
    """Progress, step, time left and cancel button of every run. While runs are queued or
    training this fragment reruns every second (the step and the time left move with each step
    record), and reruns the whole page (so redraws the charts below) only when records the
    charts show have arrived, or when no run is active any more."""
    ids = _group_ids(group)
    infos = reads.infos(ids)
    data = reads.run_data(ids)
    # every damaged run of the group with its problem (one with a bad field is shown below too)
    problems.damaged_runs_ui(ids, key="live_damaged")
    problems.record_problems_ui(infos, data)
    if not infos:
        st.info("This comparison has no runs (any more).")
        return
    active = any(is_active(i.state) for i in infos)
    if polling and not active:
        reads.clear_caches()  # the comparison menu's "N active" is read afresh
        st.rerun()  # every run ended: re-run the page once, without polling
    if polling and chart_signature(infos, data, kinds) != shown:
        st.rerun()  # new records for the charts on screen

    me = identity.owner()
    positions = reads.queue_positions() if active else {}
    notice = st.session_state.pop("live_notice", None)
    if notice:
        st.info(notice, icon=":material/info:")
    st.html(bar_css(infos))
    with st.container(border=True):
        why_not = None  # the same for every run this user may not act on: worked out once
        for info in infos:
            mine = identity.can_act(info.meta)
            if not mine and why_not is None:
                why_not = identity.action_help("cancel or resume")
            action = run_row_ui(info, run_progress(info, data.get(info.run_id)),
                                positions.get(info.run_id),
                                None if mine else why_not)
            if action:
                run_action(action, info.run_id, me)



def accuracy_charts_ui(infos: list, data: dict, per: str, smoothing: float) -> None:
    note = empty_chart_note(infos)
    c1, c2 = st.columns(2)
    for col, metric, title in ((c1, "acc", "Accuracy"), (c2, "loss", "Loss")):
        with col:
            st.markdown(f"**{title}**")
            common.plot(common.figure(
                f"live_{metric}", lambda m=metric: charts.run_curves_figure(
                    infos, data, m, per=per, smoothing=smoothing, empty_note=note),
                infos, data, (per,), (per, smoothing, note)), key=f"live_{metric}_chart")
    if per == "epoch":
        common.look_for(
            "solid lines are test, dashed lines train; the gap between them is what SAM aims to "
            "shrink. The paper: SAM-ON matches or beats SAM-all, both beat SGD (on CIFAR-100, "
            "200 epochs)."
        )
        verdict_ui("accuracy", infos, data)
    else:
        common.look_for(
            "the training loss and accuracy of every logged window of steps (train only: the "
            "test set is evaluated once per epoch). Each SAM step takes two passes, so at the "
            "same step SAM has cost more time than SGD."
        )


def sharpness_charts_ui(infos: list, data: dict) -> None:
    note = sharpness_note(infos) if any(is_active(i.state) for i in infos) else (
        empty_chart_note(infos) if not any(i.state == RunState.FINISHED for i in infos)
        else "these runs recorded no sharpness (the probe was off).")
    common.plot(common.figure("live_sharp", lambda: charts.sharpness_figure(infos, data,
                                                                     empty_note=note),
                       infos, data, ("sharpness",), (note,)), key="live_sharp_chart")
    common.look_for(
        "how much the loss rises under a small worst-case weight perturbation (lower = "
        "flatter). The paper reports that SAM-ON ends *sharper* than SAM-all, yet generalizes "
        "better, so flatness alone would not explain SAM."
    )
    verdict_ui("sharpness", infos, data)


def verdict_ui(view: str, infos: list, data: dict) -> None:
    """What the user's own runs show about the claim behind ``view`` (samon_app.verdicts): one
    line, the details behind an expander."""
    live_card.view_verdict_ui(view, infos, data, key=f"live_verdict_{view}")


def landscape_options_ui() -> tuple[str, str]:
    c1, c2 = st.columns(2)
    direction = c1.segmented_control(
        "Direction", ["random", "gradient"], default="random", key="ls_dir", required=True,
        help="random: one filter-normalised Gaussian direction, the same draw for every run; "
        "gradient: the direction in which the loss rises fastest.")
    split = c2.segmented_control("Images", ["train", "test"], default="test", key="ls_split",
                                 required=True)
    return direction, split


def landscape_charts_ui(infos: list, data: dict) -> None:
    direction, split = landscape_options_ui()
    found = slices(infos, data, direction, split)
    common.plot(charts.landscape_figure(found, direction=direction, split=split),
         key=f"live_landscape_{direction}_{split}")
    common.look_for(flatness_sentence(found, direction))


def gamma_charts_ui(infos: list, data: dict) -> None:
    common.plot(common.figure("live_gamma", lambda: charts.gamma_animation(infos, data),
                       infos, data, ("norm_stats",)), key="live_gamma_anim")
    for note in charts.gamma_notes(infos, data):
        st.caption(note)
    common.look_for(
        "press play or drag the epoch slider: all runs start from the same gamma = 1 (epoch 0, "
        "clipped). The paper reports that under SAM-ON the distribution of gamma moves to "
        "*larger* values than under SGD and SAM-all."
    )
    verdict_ui("gamma", infos, data)
    c1, c2 = st.columns(2)
    with c1:
        common.plot(common.figure("live_gamma_mean", lambda: charts.gamma_mean_figure(infos, data),
                           infos, data, ("norm_stats",)), key="live_gamma_mean")
        common.look_for("the exact average gamma per epoch (the verdict above reads it).")
    with c2:
        common.plot(common.figure("live_gamma_layers",
                                  lambda: charts.layer_gamma_figure(infos, data),
                                  infos, data, ("norm_stats",)), key="live_gamma_layers")
        common.look_for("the mean gamma of each norm layer at the latest epoch, from input "
                        "to output, against the initialisation (dotted): where in the "
                        "network the shift happens.")


def cost_ratios_ui(infos: list, data: dict) -> None:
    """The measured cost ratios beside the FLOP expectation, for interleaved runs only."""
    ratios = cost_ratios(infos, data)
    if ratios.rows:
        st.dataframe(ratios.rows, hide_index=True, width="stretch", key="live_ratios",
                     column_config={
                         "measured": st.column_config.NumberColumn(format="%.2fx"),
                         "expected (FLOPs)": st.column_config.NumberColumn(
                             format="%.2fx", help=expected_help()),
                     })
    if ratios.note:
        st.info(ratios.note, icon=":material/info:")


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
    cost_ratios_ui(infos, data)
    verdict_ui("speed", infos, data)
    table = speed_summary(infos, data)
    if len(table):
        st.dataframe(table, hide_index=True, width="stretch", key="live_speed",
                     column_config={
                         "median step time (ms)": st.column_config.NumberColumn(format="%.1f"),
                         "images/s": st.column_config.NumberColumn(format="%.0f"),
                         "load (1 min)": st.column_config.NumberColumn(
                             format="%.2f", help="The machine's 1-minute load average while "
                             "the run trained (median): above the number of cores, runs wait "
                             "for each other."),
                     })
    common.look_for(
        "SAM needs two gradient passes per step, so the lab's FLOP estimate puts SAM-all at "
        f"{expected_ratio('SAM-all', 'SGD'):.2f}x SGD; SAM-ON's first pass computes only the norm "
        f"layers' gradients, so the estimate puts it near {expected_ratio('SAM-ON', 'SGD'):.2f}x "
        "SGD. Measured ratios also carry per-step overheads the FLOP count leaves out, so small "
        "models may differ."
    )


def charts_panel(infos: list, data: dict, view: str, per: str, smoothing: float) -> None:
    """The charts of ``view``, each with what to look for."""
    if view == VIEWS[0]:
        accuracy_charts_ui(infos, data, per, smoothing)
    elif view == VIEWS[1]:
        sharpness_charts_ui(infos, data)
    elif view == VIEWS[2]:
        gamma_charts_ui(infos, data)
    elif view == VIEWS[3]:
        speed_charts_ui(infos, data)
    elif view == VIEWS[4]:
        landscape_charts_ui(infos, data)
    else:
        robustness_ui(infos, data, key="live")


def _group_ids(group: str) -> list[str]:
    return list(reads.members().get(group, {}))


# ---------------------------------------------------------------------------------------------
# page
# ---------------------------------------------------------------------------------------------

st.title("Live")
groups = reads.groups()
picked = group_picker_ui(groups)
if picked is None:
    st.info("You have no comparison yet. Start one on the Launch page, or run the quick demo "
            "from Home; other users' comparisons are in the menu above." if len(groups) else
            "No comparison has been launched yet. Start one on the Launch page, or run the "
            "quick demo from Home.", icon=":material/info:")
    st.page_link(paths.LAUNCH_PAGE, label="Launch a comparison", icon=":material/rocket_launch:")
else:
    run_ids = _group_ids(picked)
    infos = reads.infos(run_ids)
    polling = any(is_active(i.state) for i in infos)
    if polling:
        st.caption(":material/autorenew: updates every second while runs are queued or training")
    status_box = st.container()
    if any(i.synthetic for i in infos):
        st.caption(":material/science: " + SYNTHETIC_NOTE)
    if live_reuse.reuse_note_ui(infos, picked):
        live_reuse.train_my_own_ui(infos)
    all_finished = bool(infos) and all(i.state == RunState.FINISHED for i in infos)
    if all_finished:
        live_card.verdict_card_ui(infos, reads.run_data(run_ids))
        live_reuse.replay_controls_ui(picked)
    view = view_ui()
    data = reads.run_data(run_ids)
    auto_per = default_resolution(infos, data)
    per, smoothing = curve_options_ui(auto_per) if view == VIEWS[0] else ("epoch", 0.0)
    kinds = chart_kinds(view, per)
    if view == VIEWS[0] and auto_per == PER_STEP:
        kinds += ("epoch",)  # the first epoch record switches the default to per epoch
    with status_box:
        st.fragment(run_every=POLL_S if polling else None)(status_panel)(
            picked, polling, kinds, chart_signature(infos, data, kinds))
    replay = live_reuse.replaying(picked) if all_finished else None
    if replay:  # the recorded curves redrawn as if live, from the records read above
        st.fragment(run_every=POLL_S)(live_reuse.replay_ui)(
            replay, infos, data, lambda runs, shown: charts_panel(runs, shown, view, per,
                                                                  smoothing))
    else:
        charts_panel(infos, data, view, per, smoothing)
