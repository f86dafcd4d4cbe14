"""Locks, limits and ownership on every path (issue 18, items 3, 5, 6 and 8).

The audit's reproductions, each as a test: runs under a name nobody registered taken over by
whoever registers it (the CLI's ``cli``, a script's name), ``preset="claim:x"`` passing the
teacher's "presets and claims only" lock with any config, Resume bringing back a run the
room's locks forbid now, a run pushed into another owner's comparison, ``samon landscape`` without
a key, fresh names without a bound, a 200,000-seed request worked through before the limit
refuses it, a 9 MB label, ``cancel`` creating folders in a store that is not there, and
cancel / delete / register on a read-only or full disk raising a raw ``OSError``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import types

import pytest
from support.configs import tiny_config
from support.faults import tmpfs
from support.teacher import TEACHER_TOKEN, teacher_settings

from samon_core import cli, service
from samon_core.claims.data import get_claim
from samon_core.runs import keys, ownerkeys
from samon_core.runs.owners import CLI_OWNER
from samon_core.runs.store import RunStore
from samon_core.service import preflight
from samon_core.service.room import Room, set_room

TINY = tiny_config()
submit_module = importlib.import_module("samon_core.service.submit")  # service.submit: the function


@pytest.fixture(autouse=True)
def _offline(clean_env):
    clean_env.setattr(preflight, "online", lambda timeout=3.0: False)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def settings(**kw):
    return teacher_settings(**kw)


def lock(store: RunStore, **locks) -> None:
    set_room(Room(**locks), teacher_token=TEACHER_TOKEN, store=store, settings=settings())


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("samon: error:") and err.count("\n") == 1 and "Traceback" not in err
    return err


# ---------------------------------------------------------------------------------------------
# item 3: runs under a name nobody registered
# ---------------------------------------------------------------------------------------------


def test_the_cli_s_runs_belong_to_a_name_nobody_can_register(store, monkeypatch, capsys):
    """`samon run` without --owner records 'cli'; typing 'cli' and launching once no longer
    gives the power to delete every CLI run."""
    fake = types.ModuleType("samon_core.train.lockstep")  # no training: only who owns the run
    fake.GroupJob = lambda config, run_dir, **kw: run_dir

    def train_group(jobs):  # the trainer ends each run 'finished' in the store
        for run_dir in jobs:
            RunStore(run_dir.parent).write_status(run_dir.name, "finished")
        return [{"state": "finished", "final_test_acc": 0.5, "best_test_acc": 0.5,
                 "total_time_s": 1.0} for _ in jobs]

    fake.train_group = train_group
    monkeypatch.setitem(sys.modules, "samon_core.train.lockstep", fake)
    cfg = store.root.parent / "cfg.json"
    TINY.save(cfg)
    assert cli.main(["run", "--config", str(cfg), "--runs-dir", str(store.root),
                     "--progress", "none"]) == 0
    (rid,) = store.run_ids()
    assert store.read_meta(rid)["owner"] == CLI_OWNER
    for spelling in ("cli", "CLI", " Cli "):
        with pytest.raises(service.NameTaken, match="reserved"):
            service.register_owner(spelling, store=store, settings=settings())
    capsys.readouterr()
    assert cli.main(["owner", "register", "cli", "--runs-dir", str(store.root)]) == 2
    assert "reserved" in one_line(capsys)
    # the teacher still manages them
    assert service.delete_run(rid, teacher_token=TEACHER_TOKEN, store=store,
                              settings=settings()) == "deleted"


def test_registering_a_name_that_owns_runs_is_refused(store):
    """A script queued runs as 'carol' without a key; registering 'carol' (in any spelling)
    would have given the registrant power to cancel and delete them."""
    s = settings()
    rid = service.submit(TINY, owner="carol", store=store, settings=s)
    for spelling in ("carol", "Carol", "carol "):
        with pytest.raises(service.NameTaken, match="already owns runs"):
            service.register_owner(spelling, store=store, settings=s)
    assert not store.is_registered("carol")
    assert service.cancel(rid, teacher_token=TEACHER_TOKEN, store=store,
                          settings=s) == "cancelled"


def test_a_name_registered_between_the_check_and_the_runs_gets_none(store, monkeypatch):
    """The race: the name is free when submit checks it and registered before the run is
    written. Under the key file's lock the submit sees the registration and creates nothing."""
    s = settings()
    real = submit_module.authorize_owner

    def check_then_register(owner, *args, **kw):
        ident = real(owner, *args, **kw)
        service.register_owner(owner, store=store, settings=s)  # someone is quicker
        return ident

    monkeypatch.setattr(submit_module, "authorize_owner", check_then_register)
    with pytest.raises(service.NotAllowed, match="registered just now"):
        service.submit(TINY, owner="dora", store=store, settings=s)
    assert store.run_ids() == []


# ---------------------------------------------------------------------------------------------
# item 5: locks and limits on every path
# ---------------------------------------------------------------------------------------------


def test_a_claim_s_name_does_not_carry_any_config_past_presets_only(store):
    s = settings()
    lock(store, presets_only=True)
    for preset in ("claim:accuracy", "claim:nosuchclaim"):
        with pytest.raises(service.RoomLocked, match="allows only presets and claims"):
            service.submit(TINY, owner="ann", preset=preset, store=store, settings=s)
    claim = get_claim("accuracy")
    assert store.run_ids() == []
    group, ids = service.submit_group(claim.runs("cpu"), owner="ann", preset="claim:accuracy",
                                      seeds=2, store=store, settings=s)
    assert len(ids) == 2 * len(claim.runs("cpu"))


def test_resume_checks_the_locks_and_limits_of_today(store):
    """A 2-epoch run cancelled, then the teacher allows 1 epoch: Resume must not bring it
    back (it did, through the Live page's button)."""
    s = settings()
    key = service.register_owner("ann", store=store, settings=s)
    rid = service.submit(TINY, owner="ann", owner_key=key, store=store, settings=s)
    assert service.cancel(rid, owner_key=key, store=store, settings=s) == "cancelled"
    lock(store, max_epochs=1)
    with pytest.raises(service.RoomLocked, match="at most 1 epochs.*not resumed"):
        service.resume(rid, owner_key=key, store=store, settings=s)
    assert store.read_status(rid)["state"] == "cancelled"
    lock(store, presets_only=True)
    with pytest.raises(service.RoomLocked, match="presets and claims"):
        service.resume(rid, owner_key=key, store=store, settings=s)
    with pytest.raises(service.LimitExceeded, match="max_epochs = 1"):  # the server's, for all
        service.resume(rid, teacher_token=TEACHER_TOKEN, store=store,
                       settings=settings(max_epochs=1))
    service.resume(rid, teacher_token=TEACHER_TOKEN, store=store, settings=s)  # room: exempt
    assert store.read_status(rid)["state"] == "queued"


def test_a_comparison_belongs_to_its_creator(store):
    s = settings()
    key = {n: service.register_owner(n, store=store, settings=s) for n in ("ann", "bob")}
    group, ids = service.submit_group({"a": TINY}, owner="ann", owner_key=key["ann"],
                                      store=store, settings=s)
    for cfg in (TINY.replace(seed=7), TINY):  # a new run, and a run shared with ann's
        with pytest.raises(service.NotAllowed, match="another owner's"):
            service.submit(cfg, owner="bob", owner_key=key["bob"], group=group, store=store,
                           settings=s)
        with pytest.raises(service.NotAllowed, match="another owner's"):
            service.submit(cfg, owner="carl", group=group, store=store, settings=s)
    assert store.run_ids() == ids and len(store.read_meta(ids[0])["requesters"]) == 1
    mine = service.submit(TINY.replace(seed=8), owner="ann", owner_key=key["ann"], group=group,
                          store=store, settings=s)
    theirs = service.submit(TINY.replace(seed=9), owner="teacher", teacher_token=TEACHER_TOKEN,
                            group=group, store=store, settings=s)
    assert {store.read_meta(r)["group"] for r in (mine, theirs)} == {group}


def test_cli_landscape_needs_a_requesters_key_or_the_teacher(store, capsys):
    s = settings()
    key = {n: service.register_owner(n, store=store, settings=s) for n in ("ann", "mallory")}
    rid = service.submit(TINY, owner="ann", owner_key=key["ann"], store=store, settings=s)
    store.write_status(rid, "finished")
    base = ["landscape", rid, "--runs-dir", str(store.root)]
    capsys.readouterr()
    assert cli.main(base) == 2
    assert "landscape needs --owner-key" in one_line(capsys)
    assert cli.main([*base, "--owner-key", key["mallory"]]) == 2
    err = one_line(capsys)
    assert "did not request" in err and key["mallory"] not in err
    assert not (store.run_dir(rid) / "metrics.jsonl").exists()


def test_new_names_per_hour_are_bounded(tmp_path):
    now = [1000.0]
    store = RunStore(tmp_path / "runs", clock=lambda: now[0])
    s = settings(max_new_names_per_hour=3)
    for i in range(3):
        service.register_owner(f"visitor-{i:04d}", store=store, settings=s)
    with pytest.raises(service.LimitExceeded, match="max_new_names_per_hour = 3") as info:
        service.register_owner("visitor-0003", store=store, settings=s)
    assert "no name was registered" in str(info.value)
    assert not store.is_registered("visitor-0003")
    now[0] += 3601.0  # an hour later the bound has room again
    assert service.register_owner("visitor-0003", store=store, settings=s)
    assert settings().max_new_names_per_hour > 0  # on by default


def test_a_guest_over_the_bound_of_new_names_launches_nothing(runs, monkeypatch):
    """The app's side: a guest's first launch registers a visitor name; over the bound it is
    one line on the page, and nothing is queued."""
    from streamlit.testing.v1 import AppTest
    from support.apptest import APP, TIMEOUT

    monkeypatch.setenv("SAMON_MAX_NEW_NAMES_PER_HOUR", "1")
    runs.register_owner("someone")  # the hour's one new name
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/launch.py").run()
    next(b for b in at.button if b.key == "launch_preset").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Not launched" in e.value and "1 new name was registered in the last hour"
               in e.value for e in at.error)
    assert runs.list_runs().empty and not runs.is_registered("guest")


def test_a_huge_request_is_refused_before_any_work(store, monkeypatch):
    """The audit: 200,000 seeds with max_queue=5 took 67 s before the refusal, building a
    request per seed and checking each. Refused on its size alone: no seed's request is built
    and nothing reaches the admission."""
    built = []
    real_request = submit_module._Request
    monkeypatch.setattr(submit_module, "_Request",
                        lambda *a, **kw: built.append(a) or real_request(*a, **kw))

    def admitted(*_a, **_kw):
        raise AssertionError("a request over the limits reached the admission")

    monkeypatch.setattr(submit_module, "_submit_many", admitted)
    with pytest.raises(service.LimitExceeded, match="max_queue = 5"):
        service.submit_group({"a": TINY}, owner="ann", seeds=200_000, store=store,
                             settings=settings(max_queue=5))
    with pytest.raises(ValueError, match="at most 1,000 per request"):
        service.submit_group({"a": TINY, "b": TINY.replace(lr=0.2)}, owner="ann", seeds=600,
                             store=store, settings=settings())
    assert built == []
    assert store.run_ids() == []


# ---------------------------------------------------------------------------------------------
# item 8: free text bounded; cancel on a missing store
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "why"), [
    ("label", "x" * 9_000_000, "label is 9,000,000 characters long"),
    ("label", "a\nb", "control character"),
    ("group", "g" * 81, "at most 80"),
    ("group", "g\x00", "control character"),
    ("preset", "p" * 10_000, "at most 80"),
])
def test_free_text_is_bounded_at_submit(store, field, value, why, monkeypatch):
    def looked_up(*_a, **_kw):
        raise AssertionError("the owner was looked up before the free text was checked")

    # refused before any work: the first thing submit reads from the store is the owner
    monkeypatch.setattr(submit_module, "authorize_owner", looked_up)
    with pytest.raises(ValueError, match=why) as info:
        service.submit(TINY, owner="ann", store=store, settings=settings(), **{field: value})
    assert len(str(info.value)) < 1500
    assert store.run_ids() == []
    with pytest.raises(ValueError, match=why):  # the store itself (samon run, scripts)
        store.create_run(TINY, {field: value})
    assert store.run_ids() == []


def test_a_long_label_within_the_bound_keeps_meta_readable(store):
    s = settings()
    key = service.register_owner("ann", store=store, settings=s)
    rid = service.submit(TINY, owner="ann", owner_key=key, label="é" * 200, store=store,
                         settings=s)
    assert store.read_meta(rid)["label"] == "é" * 200
    assert service.cancel(rid, owner_key=key, store=store, settings=s) == "cancelled"


def test_acting_on_a_run_of_a_missing_store_creates_nothing(tmp_path):
    store = RunStore(tmp_path / "nothing-here")
    s = settings()
    for act in (service.cancel, service.delete_run, service.resume, service.request_slices):
        with pytest.raises(FileNotFoundError, match="no run"):
            act("20240101-000000-abcdef", teacher_token=TEACHER_TOKEN, store=store, settings=s)
    assert not store.root.exists()


# ---------------------------------------------------------------------------------------------
# item 6: a read-only or full store is one line, never a raw OSError
# ---------------------------------------------------------------------------------------------


def test_read_only_store_cancel_delete_resume_register_slices_are_one_line(tmp_path, capsys):
    s = settings()
    with tmpfs(tmp_path / "fs", "1m") as fs:
        store = RunStore(fs / "runs")
        key = service.register_owner("ann", store=store, settings=s)
        # runs written by the store alone (no worker holds a file open)
        queued, stopped = (store.create_run(TINY.replace(seed=i), {"owner": "ann"})
                           for i in (1, 2))
        store.write_status(stopped, "cancelled")
        finished = store.create_run(TINY.replace(seed=3), {"owner": "ann"})
        store.write_status(finished, "finished")
        store.checkpoint_path(finished).write_bytes(b"weights")
        for lock_file in fs.rglob("*.lock"):  # as after a reboot: the locks must be created
            lock_file.unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        calls = [lambda: service.cancel(queued, owner_key=key, store=store, settings=s),
                 lambda: service.delete_run(queued, owner_key=key, store=store, settings=s),
                 lambda: service.resume(stopped, owner_key=key, store=store, settings=s),
                 lambda: service.register_owner("bea", store=store, settings=s),
                 lambda: service.request_slices(finished, owner_key=key, store=store,
                                                settings=s)]
        for call in calls:
            with pytest.raises(service.StoreUnavailable, match="read-only") as info:
                call()
            assert "\n" not in str(info.value)
        capsys.readouterr()
        root = str(store.root)
        assert cli.main(["cancel", queued, "--owner-key", key, "--runs-dir", root]) == 1
        assert "read-only" in one_line(capsys)
        assert cli.main(["owner", "register", "bea", "--runs-dir", root]) == 1
        assert "read-only" in one_line(capsys)
        assert store.read_status(queued)["state"] == "queued"


def test_full_disk_register_and_submit_are_one_line_and_leave_the_database_whole(tmp_path):
    s = settings()
    with tmpfs(tmp_path / "fs", "256k") as fs:
        store = RunStore(fs / "runs")
        key = service.register_owner("ann", store=store, settings=s)
        fd = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT)  # unbuffered: nothing left over
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        with pytest.raises(service.StoreUnavailable, match="full") as info:
            service.register_owner("bea", store=store, settings=s)
        assert "\n" not in str(info.value)
        with pytest.raises(service.StoreUnavailable, match="full"):
            service.submit(TINY, owner="ann", owner_key=key, store=store, settings=s)
        (fs / "filler").unlink()  # room again: what was there is intact, nothing half-written
        assert ownerkeys.digests(store.engine) == {"ann": keys.digest(key)}
        assert store.run_ids() == [] and store.list_runs().empty
