"""Owner keys and the teacher token: who may act on a run, and under which name one may submit.

A name alone proves nothing any more: cancel, delete, resume and slices need the requester's
owner key or the teacher token; a registered name cannot be submitted under without its key.
"""

from __future__ import annotations

import hmac
import logging
import threading

import pytest
from support.configs import tiny_config
from support.teacher import TEACHER_TOKEN, teacher_settings

from samon_core import service
from samon_core.runs import keys, ownerkeys
from samon_core.runs.database import DB_FILE
from samon_core.runs.importer import KEYS_FILE
from samon_core.runs.io import DamagedFile
from samon_core.runs.store import RunStore
from samon_core.service.settings import load_settings

TINY = tiny_config()
TOKEN = TEACHER_TOKEN
settings = teacher_settings
pytestmark = pytest.mark.usefixtures("clean_env")  # default settings in every test


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def record_compare_digest(monkeypatch) -> list[tuple]:
    """Calls of ``hmac.compare_digest`` (still doing its job) from here on."""
    calls: list[tuple] = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


# ---------------------------------------------------------------------------------------------
# keys and their digests in the database
# ---------------------------------------------------------------------------------------------


def test_a_key_is_random_and_its_digest_is_not_the_key():
    key = keys.new_key()
    assert len(key) == 22 and keys.check_key(key) == key and keys.new_key() != key
    digest = keys.digest(key)
    assert digest != key and key not in digest and keys.is_digest(digest)
    assert keys.matches(key, digest) and not keys.matches(keys.new_key(), digest)


def test_no_key_starts_with_a_dash_the_command_line_would_take_for_an_option():
    # 1 in 64 random keys would; 3,000 keys miss that bug with probability (63/64)**3000 ~ 3e-21
    drawn = [keys.new_key() for _ in range(3000)]
    assert not [k for k in drawn if k.startswith("-")]
    assert any("-" in k for k in drawn)  # '-' still occurs inside keys: the alphabet is intact


@pytest.mark.parametrize("bad", ["short", "x" * 65, "has space in it!!", "ab/cdefghijklmnopq",
                                 "é" * 20, None, 12345678901234567])
def test_text_that_is_no_key_is_refused_without_being_quoted(bad):
    with pytest.raises(keys.BadKey) as info:
        keys.digest(bad)
    assert "URL-safe" in str(info.value)
    if isinstance(bad, str):
        assert bad not in str(info.value)


def test_the_database_holds_digests_only(store):
    alice, bob = store.register_owner("alice"), store.register_owner("bob")
    assert ownerkeys.digests(store.engine) == {"alice": keys.digest(alice),
                                               "bob": keys.digest(bob)}
    stored = b"".join(p.read_bytes() for p in store.root.glob(DB_FILE + "*"))  # with -wal
    assert keys.digest(alice).encode() in stored  # the digests are where we looked
    assert alice.encode() not in stored and bob.encode() not in stored
    assert store.owner_of_key(alice) == "alice" and store.owner_of_key(bob) == "bob"
    assert store.owner_of_key(keys.new_key()) is None
    assert store.is_registered("alice") and not store.is_registered("carol")


def test_owner_of_key_compares_every_digest_in_constant_time(store, monkeypatch):
    for name in ("ann", "bob", "cy"):
        last = store.register_owner(name)
    calls = record_compare_digest(monkeypatch)
    assert store.owner_of_key(last) == "cy"
    assert len(calls) == 3  # one per owner: it does not stop at the match
    assert all(last not in (a, b) for a, b in calls)  # digests are compared, not keys


def test_a_name_is_registered_once_and_teacher_never(store):
    store.register_owner("alice")
    for again in ("alice", "Alice", "ALICE"):
        with pytest.raises(service.NameTaken, match="already has an owner key"):
            store.register_owner(again)
    for reserved in ("teacher", "Teacher"):
        with pytest.raises(service.NameTaken, match="reserved"):
            service.register_owner(reserved, store=store)
    with pytest.raises(ValueError, match="invalid owner name"):
        store.register_owner("../alice")
    assert isinstance(service.NameTaken("x"), ValueError)
    assert list(ownerkeys.digests(store.engine)) == ["alice"]


def test_concurrent_registrations_all_count(store):
    names = [f"student{i}" for i in range(8)]
    got: dict[str, str] = {}
    threads = [threading.Thread(target=lambda n=n: got.update({n: store.register_owner(n)}))
               for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {store.owner_of_key(k) for k in got.values()} == set(names)


def test_a_damaged_key_file_of_the_files_era_fails_closed_with_one_clear_line(tmp_path):
    """A files-era store whose .owner_keys.json is damaged: its names must not become free to
    take (that would hand their runs to whoever registers first), and its runs still list."""
    old = RunStore(tmp_path / "runs")
    rid = old.create_run(TINY, {"owner": "alice"}, admit=False)  # a folder, as main wrote it
    (old.run_dir(rid) / "status.json").write_text('{"state": "finished"}')
    old.root.joinpath(KEYS_FILE).write_text('{"owners": {"alice": {"digest": "nope"}}}')
    store = RunStore(old.root)
    with pytest.raises(DamagedFile, match="owner key file .* is damaged") as info:
        store.register_owner("bob")
    assert "\n" not in str(info.value)
    with pytest.raises(DamagedFile):
        store.owner_of_key(keys.new_key())
    assert list(store.list_runs()["run_id"]) == [rid]  # one damaged file breaks no page
    assert store.run_ids() == [rid]


# ---------------------------------------------------------------------------------------------
# acting on runs: cancel, delete, resume, slices
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def alice_run(store):
    """A queued run of alice's; the keys of alice and bob."""
    key = {name: service.register_owner(name, store=store) for name in ("alice", "bob")}
    rid = service.submit(TINY, owner="alice", owner_key=key["alice"], store=store,
                         settings=settings())
    return rid, key


def _unchanged(store: RunStore, rid: str, state: str) -> None:
    assert store.read_status(rid)["state"] == state
    assert [r["owner"] for r in store.read_meta(rid)["requesters"]] == ["alice"]


def test_another_owners_key_cannot_touch_a_run(store, alice_run):
    rid, key = alice_run
    s = settings()
    for act in (service.cancel, service.delete_run, service.resume):
        with pytest.raises(service.NotAllowed, match="'bob' did not request"):
            act(rid, owner_key=key["bob"], store=store, settings=s)
        _unchanged(store, rid, "queued")
    with pytest.raises(service.NotAllowed, match="'bob' did not request"):
        service.request_slices(rid, owner_key=key["bob"], store=store, settings=s)
    with pytest.raises(service.NotAllowed, match="not known on this server"):
        service.cancel(rid, owner_key=keys.new_key(), store=store, settings=s)
    with pytest.raises(service.NotAllowed, match="needs its owner's key"):
        service.cancel(rid, store=store, settings=s)
    _unchanged(store, rid, "queued")


def test_the_owners_key_cancels_resumes_and_deletes(store, alice_run):
    rid, key = alice_run
    s = settings()
    assert service.cancel(rid, owner_key=key["alice"], store=store, settings=s) == "cancelled"
    with pytest.raises(service.NotAllowed):
        service.resume(rid, owner_key=key["bob"], store=store, settings=s)
    _unchanged(store, rid, "cancelled")
    service.resume(rid, owner_key=key["alice"], store=store, settings=s)
    assert store.read_status(rid)["state"] == "queued"
    with pytest.raises(ValueError, match="has not finished"):  # allowed, but not finished yet
        service.request_slices(rid, owner_key=key["alice"], store=store, settings=s)
    assert service.delete_run(rid, owner_key=key["alice"], store=store, settings=s) == "deleted"
    assert not store.run_dir(rid).exists()


def test_the_teacher_token_acts_on_any_run_and_a_wrong_one_on_none(store, alice_run, caplog):
    rid, _ = alice_run
    s = settings()
    caplog.set_level(logging.DEBUG)
    for wrong in ("not-the-teacher-token", TOKEN + "x", TOKEN.upper()):
        with pytest.raises(service.NotAllowed, match="teacher token is wrong") as info:
            service.cancel(rid, teacher_token=wrong, store=store, settings=s)
        assert wrong not in str(info.value) and TOKEN not in str(info.value)
    _unchanged(store, rid, "queued")
    assert service.cancel(rid, teacher_token=TOKEN, store=store, settings=s) == "cancelled"
    service.resume(rid, teacher_token=TOKEN, store=store, settings=s)
    assert service.delete_run(rid, teacher_token=TOKEN, store=store, settings=s) == "deleted"
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(s) and TOKEN not in str(s.describe())
    assert s.to_environ()["SAMON_TEACHER_TOKEN"] == ""  # the app's workers do not inherit it
    ident = service.identify(teacher_token=TOKEN, store=store, settings=s)
    assert ident == service.Identity(owner=None, is_teacher=True) and TOKEN not in repr(ident)


def test_the_teacher_deletes_a_run_whose_meta_is_damaged(store):
    s = settings()
    alice = service.register_owner("alice", store=store)
    rid = service.submit(TINY, owner="alice", owner_key=alice, store=store, settings=s)
    (store.run_dir(rid) / "meta.json").write_text("{broken")
    with pytest.raises(service.NotAllowed, match="damaged meta.json"):
        service.delete_run(rid, owner_key=alice, store=store, settings=s)
    assert service.delete_run(rid, teacher_token=TOKEN, store=store, settings=s) == "deleted"


def test_without_a_configured_token_nobody_is_the_teacher(store, alice_run):
    rid, _ = alice_run
    s = load_settings(environ={})
    assert not service.is_teacher(TOKEN, s) and not service.is_teacher(None, settings())
    with pytest.raises(service.NotAllowed, match="no teacher token"):
        service.cancel(rid, teacher_token=TOKEN, store=store, settings=s)
    _unchanged(store, rid, "queued")


def test_is_teacher_compares_in_constant_time(monkeypatch):
    calls = record_compare_digest(monkeypatch)
    assert service.is_teacher(TOKEN, settings()) and not service.is_teacher("x" * 30, settings())
    assert len(calls) == 2


def test_runs_of_an_unregistered_name_are_the_teachers_to_cancel(store):
    s = settings()
    alice = service.register_owner("alice", store=store)
    rid = service.submit(TINY, owner="carol", store=store, settings=s)  # a script, no key
    with pytest.raises(service.NotAllowed, match="'alice' did not request"):
        service.cancel(rid, owner_key=alice, store=store, settings=s)
    assert service.cancel(rid, teacher_token=TOKEN, store=store, settings=s) == "cancelled"


# ---------------------------------------------------------------------------------------------
# submitting under a name
# ---------------------------------------------------------------------------------------------


def test_a_registered_name_needs_its_key_to_submit(store):
    s = settings()
    key = {name: service.register_owner(name, store=store) for name in ("alice", "bob")}
    refusals = {
        None: "is registered",
        "": "is registered",
        key["bob"]: "belongs to another name",
        keys.new_key(): "not known on this server",
        "not a key": "not an owner key",
    }
    for credential, why in refusals.items():
        with pytest.raises(service.NotAllowed, match=why):
            service.submit(TINY, owner="alice", owner_key=credential, store=store, settings=s)
        with pytest.raises(service.NotAllowed, match=why):
            service.submit_group({"a": TINY}, owner="alice", owner_key=credential, store=store,
                                 settings=s)
    assert store.run_ids() == []  # nothing was created
    rid = service.submit(TINY, owner="alice", owner_key=key["alice"], store=store, settings=s)
    assert store.read_meta(rid)["owner"] == "alice"
    # the teacher may submit under any name, and an unregistered name needs no key
    assert service.submit_info(TINY.replace(seed=1), owner="alice", teacher_token=TOKEN,
                               store=store, settings=s)["reused"] is False
    assert service.submit(TINY.replace(seed=2), owner="carol", store=store, settings=s)


def test_the_name_teacher_needs_the_token(store):
    s = settings()
    for name in ("teacher", "Teacher"):
        with pytest.raises(service.NotAllowed, match="needs the teacher token"):
            service.submit(TINY, owner=name, store=store, settings=s)
    with pytest.raises(service.NotAllowed, match="wrong"):
        service.submit(TINY, owner="teacher", teacher_token="a-wrong-token-here", store=store,
                       settings=s)
    assert store.run_ids() == []
    rid = service.submit(TINY, owner="teacher", teacher_token=TOKEN, store=store, settings=s)
    assert store.read_meta(rid)["owner"] == "teacher"
