"""Room: the teacher's page for a workshop. Pin a message every page shows, lock what students
may launch, see who is using the workers, run a class experiment (every student adds a seed;
``class_ui``), and queue a preset or a claim ahead of the class so that students who launch it
later get finished runs at once.

Listed in the menu only for the teacher (app.py); anyone else who opens its address is told
that only the teacher can open it. Every change goes through ``service.set_room`` /
``service.submit_group`` with the teacher token, so the server decides, not this page.
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from app_pages import checks, class_ui, identity, paths, reads, stores, workers
from samon_app.forms import MAX_SEEDS
from samon_app.markup import md_escape
from samon_app.room_view import (
    blocked_launches,
    clean_message,
    lock_lines,
    owner_rows,
    queue_counts,
    refusal_text,
)
from samon_core import service
from samon_core.catalog import MODELS
from samon_core.claims import CLAIM_IDS, SIZE_TEXT, get_claim
from samon_core.runs.database import DatabaseUnavailable, run_rows
from samon_core.runs.presets import get_preset, list_presets
from samon_core.service.room import MESSAGE_MAX_CHARS

CLAIM_SIZES = ("cpu", "gpu")  # the paper size takes days: not something to queue for a class
CLAIM_SEEDS = 3  # the Claims page's default: a verdict needs more than one seed

# ---------------------------------------------------------------------------------------------
# changing the room (button callbacks: they run before the page, so the banner is already new)
# ---------------------------------------------------------------------------------------------


def _store_room(section: str, changes: dict[str, Any]) -> service.Room | None:
    """The room with ``changes`` saved with this session's teacher token; the outcome is kept
    for ``notice_ui(section)``. None when the server refused."""
    try:
        current = service.read_room(stores.store())  # not the cached copy: change the latest
        new = service.Room(**{**current.model_dump(), **changes})
        service.set_room(new, teacher_token=identity.teacher_token(), store=stores.store())
    except (ValueError, service.StoreUnavailable) as exc:  # NotAllowed, pydantic's errors
        st.session_state["room_notice"] = (section, False, f"Not saved: {refusal_text(exc)}")
        return None
    checks.forget_room()
    return new


def _pin() -> None:
    message = clean_message(st.session_state.get("room_message"))
    if not message:
        st.session_state["room_notice"] = ("message", False, "Type a message first.")
        return
    if _store_room("message", {"message": message, "pinned_at": time.time()}):
        st.session_state["room_notice"] = ("message", True, "Pinned: every page shows it now.")


def _unpin() -> None:
    if _store_room("message", {"message": "", "pinned_at": None}):
        st.session_state["room_message"] = ""
        st.session_state["room_notice"] = ("message", True, "Unpinned.")


def _save_locks() -> None:
    epochs = st.session_state.get("room_max_epochs")
    room = _store_room("locks", {
        "presets_only": bool(st.session_state.get("room_presets_only")),
        "max_epochs": int(epochs) if epochs is not None else None,
        "models": tuple(st.session_state.get("room_models") or ()) or None,
    })
    if room is not None:
        locks = lock_lines(room)
        text = "Students may now launch " + "; ".join(locks) if locks else "No locks: students " \
            "may launch anything the server allows"
        st.session_state["room_notice"] = ("locks", True, f"Saved. {text}.")


def notice_ui(section: str) -> None:
    """The outcome of this section's last button, once."""
    notice = st.session_state.get("room_notice")
    if notice and notice[0] == section:
        del st.session_state["room_notice"]
        (st.success if notice[1] else st.error)(notice[2], icon=":material/info:")


# ---------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------


def message_ui(room: service.Room) -> None:
    """The pinned message: a text area, Pin and Unpin."""
    st.subheader("Pinned message", anchor=False)
    kw = {} if "room_message" in st.session_state else {"value": room.message}
    st.text_area("Message for everyone", key="room_message", max_chars=MESSAGE_MAX_CHARS,
                 height=100, help="Shown at the top of every page for everyone, as plain text "
                 "(links and formatting show as typed), with the time you pinned it.", **kw)
    left, right, _ = st.columns([1, 1, 4])
    left.button("Pin", key="room_pin", type="primary", icon=":material/push_pin:",
                on_click=_pin, width="stretch")
    right.button("Unpin", key="room_unpin", icon=":material/close:", on_click=_unpin,
                 disabled=not room.message, width="stretch")
    notice_ui("message")


def locks_ui(room: service.Room, settings: service.Settings) -> None:
    """The locks for students, saved together."""
    st.subheader("Locks for students", anchor=False)
    st.caption("The server refuses a student's launch that breaks a lock, with one line saying "
               "which; the Launch page follows them too. They do not bind you.")
    server_max = settings.max_epochs or None
    models = list(settings.allowed_models) or list(MODELS)
    if "room_presets_only" not in st.session_state:  # else the session's own edits stay
        st.session_state.update(
            room_presets_only=room.presets_only,
            room_max_epochs=min(room.max_epochs, server_max or room.max_epochs)
            if room.max_epochs else None,
            room_models=[m for m in room.models or () if m in models])
    st.toggle("Students may launch only presets and claims", key="room_presets_only")
    st.number_input("Most epochs per run (empty = no limit)", key="room_max_epochs", min_value=1,
                    max_value=server_max, step=1, value=None,
                    placeholder=f"the server's limit: {server_max}" if server_max else "no limit")
    st.multiselect("Models students may train (empty = all)", models, key="room_models",
                   format_func=lambda m: f"{m}: {MODELS[m].label}" if m in MODELS else m)
    blocked_ui(room)
    st.button("Save the locks", key="room_save", type="primary", icon=":material/lock:",
              on_click=_save_locks)
    notice_ui("locks")


def blocked_ui(saved: service.Room) -> None:
    """Which presets and claims the locks as set above take away from the students (the quick
    demo too, silently for them otherwise), before and after they are saved."""
    epochs = st.session_state.get("room_max_epochs")
    try:
        shown = service.Room(presets_only=bool(st.session_state.get("room_presets_only")),
                             max_epochs=int(epochs) if epochs is not None else None,
                             models=tuple(st.session_state.get("room_models") or ()) or None)
    except ValueError:  # pydantic refuses the values: the saved locks still hold
        shown = saved
    lines = blocked_launches(shown, CLAIM_SIZES)
    if not lines:
        return
    unsaved = (shown.presets_only, shown.max_epochs, shown.models) != (
        saved.presets_only, saved.max_epochs, saved.models)
    st.warning(("With these locks (not saved yet)" if unsaved else "These locks")
               + " students cannot launch:\n" + "\n".join(f"- {line}" for line in lines),
               icon=":material/block:")


@st.cache_resource(ttl=2.0, show_spinner=False, max_entries=4)
def _glance(root_dir: str, window_s: float) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every run's owner and state, and each owner's device time in the window (the database's
    rows: one read each, however many runs)."""
    engine = stores.store_at(root_dir).engine
    return run_rows(engine), service.owner_usage(engine, window_s=window_s)


def glance_ui(settings: service.Settings) -> None:
    """Who is using the workers: the queue and one row per owner."""
    st.subheader("The room at a glance", anchor=False)
    rows, usage = _glance(stores.root(), settings.fair_window_s)
    queued, running = queue_counts(rows)
    table = owner_rows(rows, usage)
    c1, c2, c3 = st.columns(3)
    c1.metric("Waiting in the queue", queued)
    c2.metric("Training now", running)
    c3.metric("Owners", len(table))
    if table:
        st.dataframe(table, hide_index=True, width="stretch")
    hours = settings.fair_window_s / 3600
    st.caption(f"Device time: the last {hours:g} h, as the fair queue counts it (owners who "
               "used less go first). As of " + time.strftime("%H:%M:%S") + ".")


def _choice_ui() -> tuple[dict, str, int]:
    """What to queue: (label -> config, preset name or 'claim:<id>', seeds)."""
    kind = st.radio("Queue", ("A preset", "A claim"), horizontal=True, key="room_pre_kind")
    if kind == "A preset":
        name = st.selectbox("Preset", list_presets(), key="room_pre_preset")
        preset = get_preset(name)
        st.caption(preset.description)
        return dict(preset.configs), name, 1  # the Launch page's presets run one seed
    c1, c2, c3 = st.columns([3, 2, 1])
    claim = get_claim(c1.selectbox("Claim", CLAIM_IDS, key="room_pre_claim",
                                   format_func=lambda c: get_claim(c).title))
    with c2:
        size = st.radio("Size", CLAIM_SIZES, horizontal=True, key="room_pre_size")
        st.caption(SIZE_TEXT[size])
    seeds = c3.number_input("Seeds", 1, MAX_SEEDS, CLAIM_SEEDS, key="room_pre_seeds")
    return claim.runs(size), f"claim:{claim.id}", int(seeds)


def precompute_ui() -> None:
    """Queue a preset or a claim as owner 'teacher', before the class asks for it."""
    st.subheader("Train ahead of the class", anchor=False)
    configs, preset, seeds = _choice_ui()
    n = len(configs) * seeds
    st.caption(":material/recycling: Students who launch the same preset or claim later get "
               "these runs at once when they have finished (identical runs are reused), and "
               "share them while they train.")
    blocked = checks.data_warning_ui(cfg.dataset for cfg in configs.values())
    clicked = st.button(f"Queue {n} run{'s' if n != 1 else ''} as teacher",
                        key="room_precompute", icon=":material/rocket_launch:", disabled=blocked)
    notice_ui("precompute")
    if st.session_state.get("room_group"):
        st.page_link(paths.LIVE_PAGE, label="Follow the runs you queued last on the Live page",
                     icon=":material/monitoring:",
                     query_params={"group": st.session_state["room_group"]})
    if clicked:
        _precompute(configs, preset, seeds)


def _precompute(configs: dict, preset: str, seeds: int) -> None:
    """Queue the runs as owner 'teacher'; the page runs again so the glance above counts them."""
    try:
        group, ids = service.submit_group(configs, owner=service.TEACHER_OWNER, preset=preset,
                                          seeds=seeds, store=stores.store(),
                                          teacher_token=identity.teacher_token())
    except (ValueError, DatabaseUnavailable, service.StoreUnavailable) as exc:
        st.error(f"Not queued: {md_escape(exc, 500)}", icon=":material/error:")
        return
    reads.clear_caches()
    _glance.clear()
    workers.ensure_workers()
    st.session_state["room_group"] = group
    st.session_state["room_notice"] = (
        "precompute", True, f"Queued as teacher: {len(ids)} run{'s' if len(ids) != 1 else ''} "
        "(any already trained or training are shared, not trained again).")
    st.rerun()


# ---------------------------------------------------------------------------------------------
# page
# ---------------------------------------------------------------------------------------------

st.title("Room")
if not checks.is_teacher():
    st.error("Only the teacher can open this page (sign in as the teacher in the sidebar).",
             icon=":material/lock:")
    st.stop()
st.markdown("What you set here holds for everyone on this server until you change it.")
current = checks.room()
server = service.load_settings()
with st.container(border=True):
    message_ui(current)
with st.container(border=True):
    locks_ui(current, server)
with st.container(border=True):
    glance_ui(server)
with st.container(border=True):
    class_ui.teacher_ui()
with st.container(border=True):
    precompute_ui()
