"""The room: the teacher's pinned message and locks, stored under the runs root, enforced where
runs are created (submit and the CLI) for students and not for the teacher."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError
from support.configs import tiny_config
from support.teacher import TEACHER_TOKEN, teacher_settings

from samon_core import cli, service
from samon_core.claim_cli import claim_preset
from samon_core.claims.data import get_claim
from samon_core.runs import database as db
from samon_core.runs.presets import get_preset
from samon_core.runs.store import RunStore
from samon_core.service.room import Room, check_room, read_room, room_from_body, set_room

TINY = tiny_config()  # tiny_resnet, 2 epochs
TOKEN = TEACHER_TOKEN
settings = teacher_settings
pytestmark = pytest.mark.usefixtures("clean_env")  # default settings in every test


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def lock(store: RunStore, **fields) -> Room:
    return set_room(Room(**fields), teacher_token=TOKEN, store=store, settings=settings())


# ---------------------------------------------------------------------------------------------
# the stored room
# ---------------------------------------------------------------------------------------------


def test_only_the_teacher_sets_the_room(store):
    room = Room(message="Exam at 3 pm", pinned_at=1.0e9, presets_only=True, max_epochs=3,
                models=("tiny_resnet", "resnet20"))
    assert read_room(store) == Room()  # none yet: no message, no locks
    for token in (None, "", "a-wrong-teacher-token"):
        with pytest.raises(service.NotAllowed):
            set_room(room, teacher_token=token, store=store, settings=settings())
    assert db.read_room_body(store.engine) is None  # nothing was written
    assert set_room(room, teacher_token=TOKEN, store=store, settings=settings()) == room
    assert read_room(store) == room
    assert read_room(RunStore(store.root)) == room  # another process's store reads it too
    assert store.run_ids() == [] and store.list_runs().empty  # the room is not a run


def test_the_room_is_one_row_every_store_of_the_database_reads(any_store):
    """On each engine (SQLite in the run folder, a PostgreSQL server): the room the teacher
    sets is what every store on that database reads, a damaged body reads as no locks there
    too, and a student's submit is held to the stored locks."""
    lock(any_store, message="Exam at 3 pm", max_epochs=1)
    again = RunStore(any_store.root)  # on PostgreSQL: SAMON_DATABASE_URL names it
    assert read_room(again) == Room(message="Exam at 3 pm", max_epochs=1)
    with pytest.raises(service.RoomLocked, match="at most 1 epochs"):
        service.submit(TINY, owner="ann", store=again, settings=settings())
    with db.writing(any_store.engine) as conn:
        conn.execute(db.room.update().values(body="{not json"))
    assert read_room(again) == Room()
    assert service.submit(TINY, owner="ann", store=again, settings=settings())


@pytest.mark.parametrize("fields, why", [
    ({"message": "x" * 501}, "at most 500"),
    ({"message": "bell\x07"}, "plain text"),
    ({"models": ("no_such_model",)}, "unknown model"),
    ({"models": ()}, "non-empty"),
    ({"max_epochs": 0}, "greater than or equal to 1"),
    ({"max_epochs": 2.0}, "valid integer"),
    ({"presets_only": "yes"}, "valid boolean"),
    ({"pinned_at": float("nan")}, "a time"),
    ({"colour": "red"}, "Extra inputs"),
])
def test_bad_room_values_are_refused(fields, why):
    with pytest.raises(ValidationError, match=why):
        Room(**fields)


def test_room_locks_cannot_be_wider_than_the_server(store):
    s = settings(max_epochs=5, allowed_models=("tiny_resnet",))
    with pytest.raises(ValueError, match=r"max_epochs \(6\) is above the server's max_epochs"):
        set_room(Room(max_epochs=6), teacher_token=TOKEN, store=store, settings=s)
    with pytest.raises(ValueError, match="'resnet20' is not among the server's allowed"):
        set_room(Room(models=("resnet20",)), teacher_token=TOKEN, store=store, settings=s)
    set_room(Room(max_epochs=5), teacher_token=TOKEN, store=store, settings=s)


@pytest.mark.parametrize("damage", ["{not json", '{"max_epochs": "ten"}', "[]", "42",
                                    '{"models": ["tiny_resnet"], "colour": "red"}'])
def test_a_damaged_stored_room_reads_as_the_default_room(store, damage, caplog):
    lock(store, max_epochs=3)
    with db.writing(store.engine) as conn:  # a body edited by hand in the database
        conn.execute(db.room.update().values(body=damage))
    with caplog.at_level(logging.WARNING):
        assert read_room(store) == Room()
    assert "stored room is damaged" in caplog.text and "no locks" in caplog.text
    service.submit(TINY, owner="ann", store=store, settings=settings())  # it binds nobody
    lock(store, max_epochs=1)  # the teacher's next save replaces it
    assert read_room(store) == Room(max_epochs=1)


def test_room_from_body_is_the_check_the_admission_applies(caplog):
    assert room_from_body(None) == Room()
    assert room_from_body({"max_epochs": 2}) == Room(max_epochs=2)
    with caplog.at_level(logging.WARNING):
        assert room_from_body({"max_epochs": "ten"}) == Room()
        assert room_from_body(["x"]) == Room()
    assert caplog.text.count("stored room is damaged") == 2


@pytest.mark.parametrize("text, expected, warns", [
    ('{"message": "Exam at 3", "max_epochs": 2}', Room(message="Exam at 3", max_epochs=2), False),
    ('{"max_epochs": "ten"}', Room(), True),  # imported as it was, read as no locks
    ("{not json", Room(), False),  # not imported (the importer reports it)
    ("folder", Room(), False),
])
def test_a_files_era_room_file_is_imported_once(tmp_path, text, expected, warns, caplog):
    root = tmp_path / "old"
    root.mkdir()
    path = root / ".room.json"
    if text == "folder":
        path.mkdir()
    else:
        path.write_text(text)
    store = RunStore(root)
    with caplog.at_level(logging.WARNING):
        assert read_room(store) == expected
    assert ("stored room is damaged" in caplog.text) == warns
    lock(store, max_epochs=4)
    if text != "folder":
        path.write_text('{"max_epochs": 1}')  # the file is not read again
    assert read_room(RunStore(root)) == Room(max_epochs=4)


# ---------------------------------------------------------------------------------------------
# enforcement
# ---------------------------------------------------------------------------------------------


def test_students_are_held_to_the_locks_and_nothing_is_created(store):
    s = settings()
    lock(store, max_epochs=1)
    with pytest.raises(service.LimitExceeded) as info:
        service.submit(TINY, owner="ann", store=store, settings=s)
    assert str(info.value) == ("the teacher allows at most 1 epochs (this request asks for 2); "
                               "nothing was queued")
    assert isinstance(info.value, service.RoomLocked) and info.value.limit == "max_epochs"
    lock(store, models=("resnet20",))
    with pytest.raises(service.LimitExceeded, match="allows only the models resnet20"):
        service.submit_group({"a": TINY}, owner="ann", store=store, settings=s)
    lock(store, presets_only=True)
    for preset in (None, "my-own-preset", "claim:../x"):
        with pytest.raises(service.LimitExceeded, match="allows only presets and claims"):
            service.submit(TINY, owner="ann", preset=preset, store=store, settings=s)
    assert store.run_ids() == []
    lock(store)  # no locks: the same request goes through
    assert service.submit(TINY, owner="ann", store=store, settings=s)


def test_the_teacher_is_exempt_from_the_locks(store):
    s = settings()
    lock(store, max_epochs=1, presets_only=True, models=("resnet20",))
    rid = service.submit(TINY, owner="teacher", teacher_token=TOKEN, store=store, settings=s)
    group, ids = service.submit_group({"a": TINY.replace(seed=5)}, owner="ann",
                                      teacher_token=TOKEN, store=store, settings=s)
    assert store.read_config(rid).epochs == 2 and len(ids) == 1


def test_presets_only_lets_presets_and_claims_through_unchanged():
    room = Room(presets_only=True)
    preset = get_preset("cpu-quick-demo")
    configs = list(preset.configs.values())
    check_room(room, configs, "cpu-quick-demo")
    check_room(room, [c.replace(seed=3) for c in configs], "cpu-quick-demo")  # more seeds
    with pytest.raises(service.LimitExceeded, match="was changed"):
        check_room(room, [configs[0].replace(epochs=configs[0].epochs + 1)], "cpu-quick-demo")
    claim = get_claim("accuracy")
    check_room(room, list(claim.runs("cpu").values()), claim_preset(claim))


def test_the_cli_applies_the_locks_before_creating_a_run(store, tmp_path, capsys):
    lock(store, presets_only=True)
    config = tmp_path / "cfg.json"
    TINY.save(config)
    rc = cli.main(["run", "--config", str(config), "--runs-dir", str(store.root),
                   "--progress", "none"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "the teacher allows only presets and claims; nothing was started" in err
    assert store.run_ids() == []
