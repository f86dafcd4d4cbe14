"""The class experiment on the pages: the students' "Add my seed" (Home and Claims), the class
verdict (the Room and the projector page ``class_view.py``) and the teacher's controls (Room:
start, provisional, stop, export, load last week's as a replay).

Everything is decided by the library (``samon_core.claims.classroom`` / ``class_replay``: the
teacher token is checked there, the student's key, limits and locks by ``submit_group``) and
computed by the view model ``samon_app.class_verdict``; this module only lays it out. The class
verdict is computed once per store and experiment for every session (shared cache, a couple of
seconds old at most); each session only marks its own seeds (``for_viewer``). Nothing here shows
a key, a token or another student's name.
"""

from __future__ import annotations

import time

import streamlit as st

from app_pages import checks, identity, launching, paths, reads, stores, workers
from samon_app.charts.base import plotly_config
from samon_app.charts.class_chart import interval_figures, strip_figure
from samon_app.class_verdict import ClassVerdict, class_verdict, for_viewer
from samon_app.estimates import estimate_text
from samon_app.markup import md_escape
from samon_app.verdicts import VERDICT_ICON
from samon_core import claims, service
from samon_core.claims import class_replay, classroom
from samon_core.runs.database import DatabaseUnavailable
from samon_core.service.room import ClassExperiment

CLAIM_SIZES = ("cpu", "gpu")  # the paper size takes days: not for one sitting
CACHE_TTL_S = 4.0  # one computation (about a second for 30 seeds) serves every session
POLL_S = 5.0  # while seeds train, the class verdict refreshes this often
_NOTICE = "_class_notice"  # (where, ok, text) of the last button, shown once
_EXPORT = "_class_export"  # (experiment json, zip bytes) prepared for the download button
VERDICT_BOX = {claims.CONSISTENT: st.success, claims.NOT_CONSISTENT: st.error,
               claims.INCONCLUSIVE: st.warning, claims.NO_VERDICT: st.info}


def _notice_ui(where: str) -> None:
    notice = st.session_state.get(_NOTICE)
    if notice and notice[0] == where:
        del st.session_state[_NOTICE]
        (st.success if notice[1] else st.error)(notice[2], icon=":material/info:")


def _say(where: str, ok: bool, text: str) -> None:
    st.session_state[_NOTICE] = (where, ok, text)


def describe(e: ClassExperiment) -> str:
    """'SAM-ON is at least as accurate ... at the cpu size, started at 10:02' in words."""
    title = claims.get_claim(e.claim).title
    at = time.strftime("%H:%M", time.localtime(e.started_at))
    if e.exported_at is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.exported_at))
        return f"**{title}** at the {e.size} size: a class experiment exported on {when}"
    state = f"stopped at {time.strftime('%H:%M', time.localtime(e.stopped_at))}" \
        if e.stopped_at is not None else "open for seeds"
    return f"**{title}** at the {e.size} size, started at {at}, {state}"


# ---------------------------------------------------------------------------------------------
# a student: add my seed
# ---------------------------------------------------------------------------------------------


def _add_seed(where: str) -> None:
    me = identity.launch_owner()  # a guest or a new name is registered here, as at any launch
    if me is None:
        return
    try:
        got = classroom.add_my_seed(owner=me, owner_key=identity.owner_key(),
                                    teacher_token=identity.teacher_token(), store=stores.store())
    except (ValueError, DatabaseUnavailable, service.StoreUnavailable) as exc:
        identity.launch_failed()  # a name registered for this launch is given back
        _say(where, False, f"Not added: {md_escape(exc, 500)}")
        return
    identity.launch_succeeded()
    reads.clear_caches()
    _shared.clear()
    workers.ensure_workers()
    _say(where, True, f"Added seed {got.seed} for {md_escape(me, 60)}: "
                      f"{len(got.run_ids)} runs queued. The class verdict counts it once all "
                      "of them have finished.")
    st.rerun()  # a name registered by this launch is then the sidebar's


def add_seed_ui(where: str) -> None:
    """The class experiment's one button for students (nothing while none is open)."""
    e = checks.room().experiment
    if e is None or not e.running:
        return
    claim = claims.get_claim(e.claim)
    runs = claim.runs(e.size)
    with st.container(border=True, key=f"class_seed_{where}"):
        st.subheader("Class experiment", anchor=False)
        st.markdown(f"The teacher started a class experiment: {describe(e)}. Each student adds "
                    "one seed; the class verdict pools every seed of the class.")
        st.caption(f"**Add my seed** queues {len(runs)} runs ({', '.join(runs)}) with the next "
                   "seed nobody has used yet, under your name. "
                   + estimate_text(workers.preset_estimate(runs, 1)))
        blocked = launching.launch_block()
        no_data = checks.data_warning_ui(cfg.dataset for cfg in runs.values())  # gpu: CIFAR
        left, right = st.columns([1, 2])
        if left.button("Add my seed", key=f"class_add_seed_{where}", type="primary",
                       icon=":material/add_circle:", disabled=blocked is not None or no_data,
                       help=blocked):
            _add_seed(where)
        right.page_link(paths.CLASS_PAGE, label="See the class verdict", icon=":material/groups:")
        _notice_ui(where)


# ---------------------------------------------------------------------------------------------
# the class verdict
# ---------------------------------------------------------------------------------------------


@st.cache_resource(ttl=CACHE_TTL_S, show_spinner=False, max_entries=8)
def _shared(root_dir: str, experiment_json: str, replay: bool) -> ClassVerdict:
    store = stores.store_at(root_dir)
    return class_verdict(class_replay.replay_store(store) if replay else store,
                         ClassExperiment.model_validate_json(experiment_json))


def verdict_of(root_dir: str, e: ClassExperiment, viewer: str | None, *,
               replay: bool = False) -> ClassVerdict:
    """The class verdict (shared, at most ``CACHE_TTL_S`` old) with ``viewer``'s seeds marked;
    ``replay``: of the room's replay (``class_replay.replay_store`` under ``root_dir``)."""
    return for_viewer(_shared(root_dir, e.model_dump_json(), replay), viewer)


def _figures_ui(cv: ClassVerdict, key: str) -> None:
    if cv.dots:
        st.plotly_chart(strip_figure(cv), key=f"{key}_dots", config=plotly_config("class-seeds"))
    for i, (_metric, fig) in enumerate(interval_figures(cv)):
        st.plotly_chart(fig, key=f"{key}_interval_{i}", config=plotly_config("class-interval"))


def verdict_body_ui(cv: ClassVerdict, key: str) -> None:
    """Counts, the verdict with what it rests on, the power, the charts."""
    c1, c2, c3 = st.columns(3)
    c1.metric("Seeds counted", cv.seeds)
    c2.metric("Students", cv.students)
    c3.metric("Still training", len(cv.pool.waiting))
    v = cv.verdict
    if v is None:
        st.info("No verdict yet: no seed has every method's run finished.",
                icon=":material/hourglass_empty:")
    else:
        head = v.verdict.upper() + (" (so far: runs still training)" if v.provisional else "")
        VERDICT_BOX[v.verdict](f"**{head}.** {v.sentence}", icon=VERDICT_ICON[v.verdict])
    st.caption(cv.rests_on)
    st.caption(f"**Power:** {cv.power.text}")
    if cv.mine:
        st.caption(f"Your seed{'s' if len(cv.mine) != 1 else ''}: "
                   f"{', '.join(map(str, cv.mine))} (the stars on the chart).")
    _figures_ui(cv, key)


def class_verdict_ui(root_dir: str, e: ClassExperiment, key: str, viewer: str | None, *,
                     replay: bool = False) -> None:
    """The class verdict of ``e`` on the store at ``root_dir`` (``replay``: on its replay
    store); polls while seeds may arrive."""
    st.markdown(describe(e) + ".")

    def body() -> None:
        verdict_body_ui(verdict_of(root_dir, e, viewer, replay=replay), key)

    live = e.running or e.provisional or bool(
        _shared(root_dir, e.model_dump_json(), replay).pool.waiting)
    st.fragment(run_every=POLL_S if live else None)(body)()


# ---------------------------------------------------------------------------------------------
# the teacher (Room page)
# ---------------------------------------------------------------------------------------------


def _teacher_call(where: str, call, done: str) -> None:
    try:
        call()
    except (ValueError, service.StoreUnavailable) as exc:  # NotAllowed is a ValueError
        _say(where, False, f"Not done: {md_escape(exc, 500)}")
        return
    checks.forget_room()
    _shared.clear()
    _say(where, True, done)


def _start() -> None:
    claim = st.session_state.get("class_claim")
    size = st.session_state.get("class_size")
    provisional = bool(st.session_state.get("class_provisional_new"))
    _teacher_call("teacher", lambda: classroom.start_experiment(
        claim, size, provisional=provisional, teacher_token=identity.teacher_token(),
        store=stores.store()), "Started: every student's Home and Claims page now offers "
        "'Add my seed'.")


def _stop() -> None:
    _teacher_call("teacher", lambda: classroom.stop_experiment(
        teacher_token=identity.teacher_token(), store=stores.store()),
        "Stopped: no more seeds are added; runs still training finish and count.")


def _provisional() -> None:
    flag = bool(st.session_state.get("class_provisional"))
    _teacher_call("teacher", lambda: classroom.set_provisional(
        flag, teacher_token=identity.teacher_token(), store=stores.store()),
        "Runs still training now count, provisionally." if flag else
        "Only finished runs count now.")


def _controls_ui(e: ClassExperiment | None) -> None:
    if e is not None and e.running:  # what it is: the class verdict below says
        st.toggle("Count runs still training (provisional verdict)", key="class_provisional",
                  value=e.provisional, on_change=_provisional)
        st.button("Stop the class experiment", key="class_stop", icon=":material/stop_circle:",
                  on_click=_stop)
        return
    c1, c2 = st.columns([3, 2])
    c1.selectbox("Claim", claims.CLAIM_IDS, key="class_claim",
                 format_func=lambda c: claims.get_claim(c).title)
    with c2:
        size = st.radio("Size", CLAIM_SIZES, horizontal=True, key="class_size")
        st.caption(claims.SIZE_TEXT[size])
    st.checkbox("Count runs still training (provisional verdict)", key="class_provisional_new")
    st.button("Start the class experiment", key="class_start", type="primary",
              icon=":material/play_circle:", on_click=_start)


def _export_ui(e: ClassExperiment) -> None:
    if st.button("Prepare the export file", key="class_export_prepare",
                 icon=":material/archive:"):
        data = class_replay.export_experiment(stores.store(), e)
        st.session_state[_EXPORT] = (e.model_dump_json(), data)
    prepared = st.session_state.get(_EXPORT)
    if prepared and prepared[0] == e.model_dump_json():
        st.download_button(f"Download ({len(prepared[1]) / 2**20:.1f} MiB)", prepared[1],
                           file_name=f"class-{e.claim}-{e.size}-"
                                     f"{time.strftime('%Y%m%d', time.localtime(e.started_at))}"
                                     ".zip", mime="application/zip", key="class_export_download",
                           icon=":material/download:")


def _load_replay() -> None:
    upload = st.session_state.get("class_replay_file")
    if upload is None:
        _say("replay", False, "Choose a file first.")
        return
    _teacher_call("replay", lambda: class_replay.load_replay(
        upload.getvalue(), teacher_token=identity.teacher_token(), store=stores.store()),
        "Loaded: the projector page shows it beside this class's experiment.")


def _clear_replay() -> None:
    _teacher_call("replay", lambda: class_replay.clear_replay(
        teacher_token=identity.teacher_token(), store=stores.store()), "Replay removed.")


def teacher_ui() -> None:
    """The Room page's section: start or stop, the class verdict, export, load a replay."""
    st.subheader("Class experiment", anchor=False)
    st.caption("Every student adds one seed of the same claim ('Add my seed' on Home and "
               "Claims); the class verdict pools every seed of exactly these runs, whoever "
               "trained it. The projector page (Class verdict, in everyone's menu) shows it "
               "without any key.")
    room = checks.room()
    e = room.experiment
    _controls_ui(e)
    _notice_ui("teacher")
    if e is not None:
        class_verdict_ui(stores.root(), e, "room_class", identity.owner())
        _export_ui(e)
    st.markdown("**Replay a class experiment** exported earlier (its finished runs' records, "
                "no checkpoints):")
    st.file_uploader("Class experiment file", type=["zip"], key="class_replay_file")
    left, right = st.columns(2)
    left.button("Show it as a replay", key="class_replay_load", icon=":material/upload:",
                on_click=_load_replay)
    right.button("Remove the replay", key="class_replay_clear", disabled=room.replay is None,
                 on_click=_clear_replay)
    _notice_ui("replay")
    if room.replay is not None:
        class_verdict_ui(stores.root(), room.replay, "room_replay", None, replay=True)
