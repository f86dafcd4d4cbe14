"""The Live page's pieces for comparisons whose runs were trained before (or for someone else).

A comparison that reused recorded runs shows finished curves at once, so the page says whose
runs they are (``reuse_note_ui``), can redraw the recorded curves as if live (``replay_*``: no
compute, the records already read, cut by ``samon_app.replay``) and offers to queue the same
comparison with a seed nothing in the store has used (``train_my_own_ui``). UI only: the logic
is in ``samon_app.reuse``, ``samon_app.replay`` and ``samon_app.retrain``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from app_pages import identity, launching, reads, workers
from samon_app.formatting import format_duration
from samon_app.markup import md_escape
from samon_app.reader import RunData, RunInfo
from samon_app.replay import REPLAY_SPEEDS, replay_data, replay_infos
from samon_app.retrain import fresh_seed, group_configs, retrain_text
from samon_app.reuse import group_request, recorded_sentence, reused_runs, shared_sentence

REPLAY_KEY = "live_replay"  # session state: {"group", "start" (unix time), "speed"}


def reuse_note_ui(infos: list[RunInfo], group: str) -> bool:
    """Which runs of ``group`` were trained for someone else (one or two sentences). Returns
    True when there were any."""
    requester, created = group_request([i.meta for i in infos], group)
    runs = [{"label": i.label, "method_label": i.method_label, "meta": i.meta,
             "status": i.status} for i in infos]
    reused = reused_runs(runs, requester, created)
    if not reused:
        return False
    me = identity.owner()
    for text in (recorded_sentence(reused, requester=requester, viewer=me, created=created,
                                   n_runs=len(infos)),
                 shared_sentence(reused, requester=requester, viewer=me)):
        if text:
            st.info(md_escape(text, 1200), icon=":material/history:")
    return True


def _preset(infos: list[RunInfo]) -> str | None:
    """The preset the runs were launched from (the first one named), kept for the new runs."""
    return next((str(i.meta["preset"]) for i in infos if i.meta.get("preset")), None)


def train_my_own_ui(infos: list[RunInfo]) -> None:
    """'Train my own': what it does, said before the click, and the button that queues the
    comparison again with a fresh seed (through ``launching.launch_group``)."""
    try:
        configs, seeds = group_configs({"config": i.config, "meta": i.meta} for i in infos)
    except ValueError as exc:  # a config of another version: nothing safe to queue again
        st.caption(f"These runs cannot be trained again here: {md_escape(exc, 300)}")
        return
    seed = fresh_seed(list(configs.values()), seeds,
                      set(reads.list_runs()["config_hash"].dropna()))
    configs = {label: config.replace(seed=seed) for label, config in configs.items()}
    wall_s = workers.preset_estimate(configs, seeds)["wall_s"]
    c1, c2 = st.columns([5, 1.6], vertical_alignment="center")
    with c1:
        st.caption(md_escape(retrain_text(list(configs), seed, seeds,
                                          format_duration(wall_s)), 600))
    with c2:
        clicked = st.button("Train my own", key="live_train_own", icon=":material/model_training:",
                            help="Queues these runs under your name; you watch them train here.")
    if clicked:
        launching.launch_group(configs, preset=_preset(infos), seeds=seeds)


# ---------------------------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------------------------


def replaying(group: str) -> dict[str, Any] | None:
    """The replay in progress on ``group`` in this session, or None."""
    replay = st.session_state.get(REPLAY_KEY)
    return replay if isinstance(replay, dict) and replay.get("group") == group else None


def replay_controls_ui(group: str) -> None:
    """Speed and play button (for a group whose runs have all finished); play starts a replay
    that the charts below show."""
    c1, c2, c3 = st.columns([2, 1.3, 4], vertical_alignment="bottom")
    with c1:
        speed = st.selectbox("Replay speed", REPLAY_SPEEDS, index=1, key="live_replay_speed",
                             format_func=lambda s: f"{s}x real time")
    with c2:
        play = st.button("Replay", key="live_replay_play", icon=":material/play_arrow:")
    with c3:
        st.caption("Redraws the recorded curves as they arrived during training, faster than "
                   "real time. Nothing is trained or computed.")
    if play:
        st.session_state[REPLAY_KEY] = {"group": group, "start": time.time(), "speed": speed}


def replay_ui(replay: dict[str, Any], infos: list[RunInfo], data: dict[str, RunData],
              draw: Callable[[list[RunInfo], dict[str, RunData]], None]) -> None:
    """One frame of a replay: what the recorded runs showed by now, drawn by ``draw`` (the
    page's chart functions) as running runs. Run as a fragment that redraws every
    ``POLL_S``; it ends the replay (and reruns the page, which then draws the whole
    runs) at the end or on Stop."""
    shown, fraction = replay_data(data, time.time() - replay["start"], replay["speed"])
    c1, c2 = st.columns([6, 1.3], vertical_alignment="center")
    with c1:
        st.progress(fraction, text=f"Replay at {replay['speed']}x real time: {fraction:.0%} of "
                    "the recorded training shown")
    with c2:
        stop = st.button("Stop", key="live_replay_stop", icon=":material/stop:")
    if stop or fraction >= 1.0:
        st.session_state.pop(REPLAY_KEY, None)
        st.rerun()
    draw(replay_infos(infos), shown)
