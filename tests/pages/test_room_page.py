"""The teacher's Room page (AppTest through app.py) and its view model (samon_app.room_view):
hidden from students and refused without the token; a pinned message shown escaped on every
page; saved locks that shape the students' Launch form; precomputed runs owned by 'teacher'."""

from __future__ import annotations

import time

import pytest
import streamlit
from streamlit.testing.v1 import AppTest
from support.apptest import goto, session
from support.configs import tiny_config
from support.teacher import TEACHER_TOKEN

from samon_app.room_view import (
    FormLocks,
    banner_text,
    binding_room,
    clean_message,
    form_locks,
    launch_problems,
    lock_lines,
    owner_rows,
    queue_counts,
    refusal_text,
)
from samon_core.claims import get_claim
from samon_core.runs.database import run_rows
from samon_core.runs.presets import get_preset
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore
from samon_core.service import Room, read_room
from samon_core.service.scheduler import claim_next, finish, owner_usage

TOKEN = TEACHER_TOKEN
ROOM = "app_pages/room.py"
LAUNCH = "app_pages/launch.py"
EVERY_PAGE = ("app_pages/home.py", LAUNCH, "app_pages/live.py", "app_pages/compare.py",
              "app_pages/claims.py", ROOM)


@pytest.fixture
def room_env(runs, monkeypatch):
    """The app's store (conftest.runs) on a server with a teacher token."""
    monkeypatch.setenv("SAMON_TEACHER_TOKEN", TOKEN)
    return runs


def banners(at: AppTest) -> list[str]:
    return [i.value for i in at.info if "pinned by the teacher" in i.value]


# ---------------------------------------------------------------------------------------------
# who sees the page
# ---------------------------------------------------------------------------------------------


def menu_of(monkeypatch) -> list[dict[str, str]]:
    """The pages app.py hands to st.navigation on each run (url path -> visibility)."""
    seen: list[dict[str, str]] = []
    real = streamlit.navigation

    def recording(pages, **kw):
        seen.append({p.url_path: p.visibility for p in pages})
        return real(pages, **kw)

    monkeypatch.setattr(streamlit, "navigation", recording)
    return seen


@pytest.mark.parametrize("token", [None, "", "a-wrong-teacher-token"])
def test_students_neither_see_nor_open_the_room_page(room_env, monkeypatch, token):
    menu = menu_of(monkeypatch)
    at = goto(session(token), ROOM)
    assert menu[-1]["room"] == "hidden" and menu[-1]["launch"] == "visible"
    assert any("Only the teacher can open this page" in e.value for e in at.error)
    assert not at.text_area and not [b for b in at.button if b.key.startswith("room_")]
    assert read_room(room_env) == Room()


def test_the_teacher_sees_the_room_page_in_the_menu(room_env, monkeypatch):
    menu = menu_of(monkeypatch)
    at = goto(session(TOKEN), ROOM)
    assert menu[-1]["room"] == "visible"
    assert not at.error
    assert at.text_area(key="room_message") and at.toggle(key="room_presets_only")


# ---------------------------------------------------------------------------------------------
# the pinned message
# ---------------------------------------------------------------------------------------------


def test_a_pinned_message_shows_escaped_on_every_page(room_env):
    teacher = goto(session(TOKEN), ROOM)
    teacher.text_area(key="room_message").input("Break until <b>x</b> **x** [y](http://e.vil)")
    teacher.button(key="room_pin").click().run()
    assert any("Pinned" in s.value for s in teacher.success)
    room = read_room(room_env)
    assert room.message == "Break until <b>x</b> **x** [y](http://e.vil)" and room.pinned_at
    student = session(owner="alice")  # another session, not the teacher
    for at in (teacher, student):
        for path in EVERY_PAGE:
            shown = banners(goto(at, path))
            assert len(shown) == 1, (path, shown)
            text = shown[0]
            assert "&lt;b&gt;x&lt;/b&gt;" in text and r"\*\*x\*\*" in text, text
            assert r"\[y\](http" in text and "<b>" not in text  # no link, no HTML
            assert f"at {time.strftime('%H:%M', time.localtime(room.pinned_at))} (server " \
                   "time)" in text
    goto(teacher, ROOM).button(key="room_unpin").click().run()
    assert read_room(room_env).message == ""
    assert teacher.text_area(key="room_message").value == ""
    assert not banners(goto(student, "app_pages/home.py"))


def test_a_refused_message_is_said_in_one_line(room_env):
    teacher = goto(session(TOKEN), ROOM)
    teacher.text_area(key="room_message").input("bell \x07 here").run()
    teacher.button(key="room_pin").click().run()
    errors = [e.value for e in teacher.error]
    assert errors == ["Not saved: message: the message must be plain text (no control "
                      "characters)"], errors
    assert read_room(room_env) == Room()


# ---------------------------------------------------------------------------------------------
# the locks on the Launch page
# ---------------------------------------------------------------------------------------------


def save_locks(teacher: AppTest, *, presets_only: bool, max_epochs: int | None,
               models: list[str]) -> None:
    goto(teacher, ROOM)
    teacher.toggle(key="room_presets_only").set_value(presets_only)
    teacher.number_input(key="room_max_epochs").set_value(max_epochs)
    teacher.multiselect(key="room_models").set_value(models)
    teacher.button(key="room_save").click().run()
    assert not teacher.error, [e.value for e in teacher.error]
    assert any(s.value.startswith("Saved.") for s in teacher.success)


def test_presets_only_replaces_the_students_form_with_a_line(room_env):
    teacher = session(TOKEN)
    save_locks(teacher, presets_only=True, max_epochs=None, models=[])
    assert read_room(room_env) == Room(presets_only=True)
    student = goto(session(owner="alice"), LAUNCH)
    captions = [c.value for c in student.caption]
    assert any("The teacher allows only presets and claims in this room" in c for c in captions)
    assert not student.multiselect and not any(b.key == "launch_form" for b in student.button)
    assert not student.button(key="launch_preset").disabled  # presets stay
    assert student.button(key="edit_preset").disabled
    student.button(key="launch_preset").click().run()
    assert set(room_env.list_runs()["owner"]) == {"alice"}
    # the teacher sees the lock but keeps the form
    teacher = goto(teacher, LAUNCH)
    assert teacher.multiselect(key="methods")
    assert any("do not bind you" in c.value for c in teacher.caption)


def test_epochs_and_models_locks_shape_the_students_form(room_env):
    teacher = session(TOKEN)
    save_locks(teacher, presets_only=False, max_epochs=3, models=["tiny_resnet", "resnet8"])
    student = goto(session(owner="alice"), LAUNCH)
    epochs = student.number_input(key="epochs")
    assert epochs.value == 3 and epochs.max == 3  # the default (6) lowered to the lock
    assert student.selectbox(key="model").options == ["tiny_resnet", "resnet8"]
    captions = " ".join(c.value for c in student.caption)
    assert "at most 3 epochs per run" in captions and "only these models" in captions
    # the quick-demo preset asks for 6 epochs: its button says why it is off
    assert student.button(key="launch_preset").disabled
    assert "the teacher allows at most 3 epochs" in captions.lower()
    student.number_input(key="epochs").set_value(2).run()
    student.button(key="launch_form").click().run()
    assert not student.exception
    configs = [room_env.read_config(r) for r in room_env.list_runs()["run_id"]]
    assert configs and {c.epochs for c in configs} == {2}
    teacher = goto(teacher, LAUNCH)  # the teacher is not bound
    assert len(teacher.selectbox(key="model").options) > 2
    assert teacher.number_input(key="epochs").value == 6


def test_a_lock_saved_while_a_students_page_is_open_applies_on_its_next_run(room_env):
    student = goto(session(owner="alice"), LAUNCH)
    teacher = session(TOKEN)
    save_locks(teacher, presets_only=False, max_epochs=None, models=["resnet8"])
    time.sleep(1.1)  # the room is read at most once a second
    student.run()
    assert student.selectbox(key="model").value == "resnet8"
    assert not student.button(key="launch_form").disabled


# ---------------------------------------------------------------------------------------------
# the room at a glance and precompute
# ---------------------------------------------------------------------------------------------


def test_precompute_queues_a_claim_as_the_teacher(room_env):
    teacher = goto(session(TOKEN), ROOM)
    assert any("get these runs at once" in c.value for c in teacher.caption)
    teacher.radio(key="room_pre_kind").set_value("A claim").run()
    teacher.selectbox(key="room_pre_claim").set_value("sparsity").run()
    teacher.number_input(key="room_pre_seeds").set_value(2).run()
    teacher.button(key="room_precompute").click().run()
    assert not teacher.exception and not teacher.error, [e.value for e in teacher.error]
    df = room_env.list_runs()
    assert len(df) == 2 * len(get_claim("sparsity").runs("cpu"))
    assert set(df["owner"]) == {"teacher"} and set(df["preset"]) == {"claim:sparsity"}
    assert set(df["state"]) == {"queued"}
    assert any(s.value.startswith("Queued as teacher: 6 runs") for s in teacher.success)
    table = teacher.dataframe[0].value  # the glance table counts them at once
    assert table.iloc[0]["Owner"] == "teacher" and table.iloc[0]["Queued"] == len(df)
    assert {m.label: m.value for m in teacher.metric}["Waiting in the queue"] == str(len(df))


def test_precompute_of_a_preset_is_reused_by_a_student(room_env):
    teacher = goto(session(TOKEN), ROOM)
    teacher.button(key="room_precompute").click().run()  # the default: the first preset
    first = teacher.selectbox(key="room_pre_preset").value
    ids = set(room_env.list_runs()["run_id"])
    assert len(ids) == len(get_preset(first).configs)
    student = goto(session(owner="bob", preset=first), LAUNCH)
    student.button(key="launch_preset").click().run()
    assert set(room_env.list_runs()["run_id"]) == ids  # shared, not queued again


# ---------------------------------------------------------------------------------------------
# room_view (pure)
# ---------------------------------------------------------------------------------------------


def test_banner_text_is_literal_and_says_when():
    assert banner_text(Room()) is None
    assert banner_text(Room(message="  \n ")) is None
    text = banner_text(Room(message="a <i>b</i>\n:red[c] $x$", pinned_at=0.0))
    first, second, when = text.split("  \n")
    assert first == "a &lt;i&gt;b&lt;/i&gt;" and second == r":red\[c\] \$x\$"
    assert when == f"*pinned by the teacher at {time.strftime('%H:%M', time.localtime(0))} " \
                   "(server time)*"


def test_clean_message_makes_line_ends_plain():
    assert clean_message(" a\r\nb\rc \n") == "a\nb\nc"
    assert clean_message(None) == ""
    Room(message=clean_message("a\r\nb"))  # accepted: \r would be a control character


def test_refusal_text_is_one_line():
    try:
        Room(max_epochs=0)
    except ValueError as exc:
        assert refusal_text(exc) == "max_epochs: Input should be greater than or equal to 1"
    assert refusal_text(ValueError("two\nlines")) == "two lines"


def test_locks_bind_students_not_the_teacher():
    room = Room(message="hi", presets_only=True, max_epochs=4, models=("resnet8",))
    assert lock_lines(room) == ["only presets and claims", "at most 4 epochs per run",
                                "only the models resnet8"]
    assert lock_lines(Room(max_epochs=1)) == ["at most 1 epoch per run"]
    free = binding_room(room, is_teacher=True)
    assert free == Room(message="hi") and form_locks(free) == FormLocks()
    assert binding_room(room, is_teacher=False) is room
    locks = form_locks(room)
    assert locks.model_options(["tiny_resnet", "resnet8"]) == ["resnet8"]
    assert locks.epochs_value(10) == 4 and locks.epochs_value(2) == 2
    assert FormLocks().model_options(["a", "b"]) == ["a", "b"]
    assert FormLocks(models=("gone",)).model_options(["a"]) == ["a"]  # never an empty box


def test_launch_problems_are_the_servers_lines():
    cfg = tiny_config()  # tiny_resnet, 2 epochs
    assert launch_problems(Room(max_epochs=2), [cfg], None) == []
    assert launch_problems(Room(max_epochs=1, models=("resnet8",)), [cfg], None) == [
        "the teacher allows at most 1 epochs (this request asks for 2)",
        "the teacher allows only the models resnet8 (not 'tiny_resnet')"]
    demo = get_preset("cpu-quick-demo").configs
    assert launch_problems(Room(presets_only=True), demo.values(), "cpu-quick-demo") == []
    assert launch_problems(Room(presets_only=True), demo.values(), None)


class Clock:
    """A store's clock the test moves (``started`` / ``ended`` are written at its time)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def add_run(store: RunStore, clock: Clock, owner: str, states: list[tuple[float, str]],
            **meta) -> str:
    """A run of ``owner`` created at the first time and moved through (time, state) pairs."""
    clock.now = states[0][0]
    rid = store.create_run(tiny_config().replace(seed=len(store.run_ids())),
                           {"owner": owner, **meta})
    for at, state in states[1:]:
        clock.now = at
        store.write_status(rid, state)
    return rid


def test_owner_rows_count_states_and_device_time(any_store):
    now = 10_000.0
    clock = Clock(now)
    store = any_store
    store.clock = clock
    add_run(store, clock, "alice", [(now - 700, "queued"), (now - 600, "running"),
                                    (now - 300, "finished")])
    add_run(store, clock, "alice", [(now - 100, "queued"), (now - 60, "running")])
    add_run(store, clock, "alice", [(now - 50, "queued"), (now - 40, "diverged")])
    add_run(store, clock, "bob", [(now - 30, "queued")])
    add_run(store, clock, "bob", [(now - 20, "queued")])
    add_run(store, clock, "", [(now - 20, "queued"), (now - 10, "cancelled")])
    add_run(store, clock, "carol", [(now - 9_500, "queued"), (now - 9_000, "running"),
                                    (now - 8_000, "finished")])
    rows = run_rows(store.engine)
    usage = owner_usage(store.engine, window_s=3_600, now=now)
    assert usage == {"alice": 360.0}  # 300 s + 60 s; carol's run ended before the window
    table = owner_rows(rows, usage)
    assert [r["Owner"] for r in table] == ["alice", "(unknown)", "bob", "carol"]
    alice = table[0]
    assert (alice["Finished"], alice["Running"], alice["Failed"], alice["Queued"]) == (1, 1, 1, 0)
    assert alice["Device time"] == "6 min"
    assert table[2]["Queued"] == 2 and table[2]["Device time"] == "-"
    assert table[1]["Stopped"] == 1
    assert table[3]["Finished"] == 1 and table[3]["Device time"] == "-"  # outside the window
    assert queue_counts(rows) == (2, 1)
    assert owner_rows([], {}) == []


def test_owner_rows_count_a_lockstep_group_once(any_store):
    """A comparison of three runs that held the one worker for 40 minutes shows 40 min of
    device time, not 2 h (each run counts its share of the worker, as the fair queue does)."""
    now = 10_000.0
    clock = Clock(now - 3_100)
    store = any_store
    store.clock = clock
    ids = [add_run(store, clock, "alice", [(now - 3_100, "queued")], group="g1")
           for _ in range(3)]
    device = tiny_config().device
    claimed = claim_next(store.engine, "w1", [device], window_s=3_600, group_max=3,
                         now=now - 3_000)
    assert sorted(claimed) == sorted(ids)
    for rid in ids:
        assert finish(store.engine, rid, "w1", RunState.FINISHED, now=now - 600)
    usage = owner_usage(store.engine, window_s=3_600, now=now)
    assert usage == pytest.approx({"alice": 2_400.0})
    assert owner_rows(run_rows(store.engine), usage)[0]["Device time"] == "40 min"


def test_the_room_page_names_the_presets_a_lock_takes_away(room_env):
    """A lock of 3 epochs takes the quick demo (6 epochs) from every student: the teacher reads
    so beside the locks, as they type them and once they are saved; no lock, no warning."""
    teacher = goto(session(TOKEN), ROOM)
    demo = get_preset("cpu-quick-demo").title

    def blocked() -> str:
        return "\n".join(w.value for w in teacher.warning if "students cannot launch" in w.value)

    assert blocked() == ""
    teacher.number_input(key="room_max_epochs").set_value(3).run()
    text = blocked()
    assert "not saved yet" in text and demo in text and "(6 epochs)" in text
    teacher.button(key="room_save").click().run()
    text = blocked()
    assert text.startswith("These locks") and demo in text
    assert "claims at size cpu (30 epochs)" in text
    teacher.number_input(key="room_max_epochs").set_value(None).run()
    teacher.button(key="room_save").click().run()
    assert blocked() == ""
