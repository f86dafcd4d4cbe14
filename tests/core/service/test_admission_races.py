"""Submit, cancel and resume on the database (issue 24): limits, names and seeds under racing
processes, on SQLite and on a real PostgreSQL server, and what one submit or cancel does.

The races run ten forked processes that wait at one barrier and then call the service as
students' browsers would (``service.submit`` / ``submit_group`` / ``register_owner``): the
limits must hold exactly, a name registered while a submit under it is on its way must never
end up owning runs started without its key, and "add my seed" must give every caller its own
seed. The parent opens the store's engine only after the children have ended (a forked child
must not share the parent's pooled connections).
"""

from __future__ import annotations

import importlib
import multiprocessing

import pytest
from support.configs import tiny_config
from support.engines import ENGINES
from support.teacher import TEACHER_TOKEN, teacher_settings

from samon_core import service
from samon_core.runs import database as db
from samon_core.runs import ownerkeys
from samon_core.runs.store import RunStore
from samon_core.service import preflight
from samon_core.service.submit import submit_group

TINY = tiny_config()
N = 10
settings = teacher_settings


@pytest.fixture(autouse=True)
def _offline(clean_env):
    clean_env.setattr(preflight, "online", lambda timeout=3.0: False)


@pytest.fixture(params=ENGINES)
def database_url(request, tmp_path):
    """A fresh database of each engine for the store under ``tmp_path / 'runs'`` (``postgres``:
    the session's server, conftest's)."""
    if request.param == "sqlite":
        return db.database_url(tmp_path / "runs")
    return request.getfixturevalue("postgres").new_database()


def _race(target, root, url, n=N):
    """``target(store, i)`` in ``n`` forked processes started together; what each returned (or
    the name of what it raised, with the limit's name for ``LimitExceeded``)."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(n), ctx.Queue()

    def child(i):
        store = RunStore(root, database_url=url)
        barrier.wait()
        try:
            results.put((i, target(store, i)))
        except service.LimitExceeded as exc:
            results.put((i, exc.limit))
        except Exception as exc:  # noqa: BLE001 - the test compares the kinds of outcome
            results.put((i, f"{type(exc).__name__}: {exc}"))

    procs = [ctx.Process(target=child, args=(i,)) for i in range(n)]
    for p in procs:
        p.start()
    out = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return [out[i] for i in range(n)]


def _rows(store):
    return {r["run_id"]: r for r in db.run_rows(store.engine)}


# ---------------------------------------------------------------------------------------------
# races
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("limits", "owners", "expect"), [
    ({"max_queued_per_owner": 3, "max_queue": 5}, "one", ("max_queued_per_owner", 3)),
    ({"max_queue": 4}, "each", ("max_queue", 4)),
])
def test_limits_hold_under_ten_racing_submits(tmp_path, database_url, limits, owners, expect):
    """Ten students submit different runs at once: exactly as many get in as the limit allows,
    the others are refused naming the limit, and no refused request leaves a folder."""
    root = tmp_path / "runs"
    s = settings(**limits)

    def one(store, i):
        owner = "ann" if owners == "one" else f"student{i}"
        return service.submit(TINY.replace(seed=i), owner=owner, store=store, settings=s)

    out = _race(one, root, database_url)
    limit, allowed = expect
    admitted = [r for r in out if r != limit]
    assert len(admitted) == allowed and out.count(limit) == N - allowed, out
    store = RunStore(root, database_url=database_url)
    assert sorted(_rows(store)) == sorted(admitted)
    assert sorted(store.run_ids()) == sorted(admitted)  # refused requests: folders removed
    assert not [p for p in root.iterdir() if p.name.startswith(".creating")]


def test_a_submit_under_a_free_name_racing_its_registration_gets_none(tmp_path, database_url):
    """Five processes submit under 'dora' (nobody's name yet, no key) while five register it.
    Either the registration comes first, and then no run is dora's, or a run comes first, and
    then nobody can register the name: never a key for a name whose runs were queued
    without it."""
    root = tmp_path / "runs"
    s = settings()

    def one(store, i):
        if i % 2:
            return "key" if service.register_owner("dora", store=store, settings=s) else "?"
        return "run:" + service.submit(TINY.replace(seed=i), owner="dora", store=store,
                                       settings=s)

    out = _race(one, root, database_url)
    store = RunStore(root, database_url=database_url)
    owned = [r for r in _rows(store).values() if "dora" in r["requesters"]]
    keys = out.count("key")
    assert keys <= 1, out
    if keys:
        assert owned == [] and not [r for r in out if r.startswith("run:")], out
        assert all("NotAllowed" in r and "registered" in r for r in out[0::2]), out
    else:
        assert owned and all("NameTaken" in r and "owns runs" in r for r in out[1::2]), out
    assert ("dora" in ownerkeys.digests(store.engine)) == bool(keys)
    assert sorted(store.run_ids()) == sorted(r["run_id"] for r in owned)


def _next_unused(rows) -> int:
    used = {r.config_hash for r in rows}
    return next(s for s in range(1000) if TINY.replace(seed=s).config_hash() not in used)


def test_add_my_seed_gives_ten_racing_students_ten_seeds(tmp_path, database_url):
    root = tmp_path / "runs"
    s = settings()

    def one(store, i):
        _, (rid,) = submit_group({"a": TINY}, owner=f"student{i}", store=store, settings=s,
                                 pick_seed=_next_unused)
        return store.read_config(rid).seed

    seeds = _race(one, root, database_url)
    assert all(isinstance(seed, int) for seed in seeds), seeds  # no student got an error
    assert sorted(seeds) == list(range(N)), seeds
    store = RunStore(root, database_url=database_url)
    assert len(_rows(store)) == N and len(store.run_ids()) == N


# ---------------------------------------------------------------------------------------------
# one submit, one cancel (SQLite)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    now = [1000.0]
    st = RunStore(tmp_path / "runs", clock=lambda: now[0])
    st.now = now  # the test moves the clock
    return st


def _keys(store, *names):
    return {n: service.register_owner(n, store=store, settings=settings()) for n in names}


def test_identical_requests_share_an_active_run_unless_share_active_is_off(store):
    key = _keys(store, "ann", "bob")
    s = settings()
    first = service.submit(TINY, owner="ann", owner_key=key["ann"], store=store, settings=s)
    info = service.submit_info(TINY, owner="bob", owner_key=key["bob"], store=store, settings=s)
    assert info == {"run_id": first, "reused": True, "reused_state": "queued"}
    assert [r["owner"] for r in store.read_meta(first)["requesters"]] == ["ann", "bob"]
    assert store.run_ids() == [first]  # no folder was made for bob's request
    apart = service.submit_info(TINY, owner="bob", owner_key=key["bob"], store=store,
                                settings=settings(share_active=False))
    assert apart["reused"] is False and apart["run_id"] != first
    store.write_status(first, "finished")
    again = service.submit_info(TINY, owner="cy", store=store,
                                settings=settings(share_active=False))
    assert again == {"run_id": first, "reused": True, "reused_state": "finished"}


def test_a_run_whose_cancel_is_pending_is_never_reused(store):
    key = _keys(store, "ann")
    s = settings()
    rid = service.submit(TINY, owner="ann", owner_key=key["ann"], store=store, settings=s)
    store.write_status(rid, "running", worker="w1")
    assert service.cancel(rid, owner_key=key["ann"], store=store, settings=s) == "cancelling"
    assert store.read_status(rid)["cancel_requested"] is True  # the column the trainer reads
    assert not (store.run_dir(rid) / "cancel_requested").exists()  # no flag file
    other = service.submit_info(TINY, owner="bob", store=store, settings=s)
    assert other["reused"] is False and other["run_id"] != rid


def test_a_refused_request_leaves_no_folder_and_no_row(store):
    key = _keys(store, "ann")
    with pytest.raises(service.LimitExceeded, match="max_queued_per_owner"):
        submit_group({"a": TINY, "b": TINY.replace(lr=0.2)}, owner="ann", owner_key=key["ann"],
                     store=store, settings=settings(max_queued_per_owner=1))
    assert store.run_ids() == [] and _rows(store) == {}
    assert [p.name for p in store.root.iterdir() if not p.name.startswith("samon.db")] == []


def test_a_key_given_back_before_the_admission_queues_nothing(store, monkeypatch):
    """The key proved 'ann' when submit checked it; the name was given back (the app's failed
    first launch) before the runs were admitted: the admission reads the stored digest again."""
    submit_module = importlib.import_module("samon_core.service.submit")  # not the function
    key = _keys(store, "ann")["ann"]
    real = submit_module.authorize_owner

    def check_then_give_back(owner, *args, **kw):
        ident = real(owner, *args, **kw)
        assert store.unregister_owner(key) == "ann"
        return ident

    monkeypatch.setattr(submit_module, "authorize_owner", check_then_give_back)
    with pytest.raises(service.NotAllowed, match="no longer registered"):
        service.submit(TINY, owner="ann", owner_key=key, store=store, settings=settings())
    assert store.run_ids() == [] and _rows(store) == {}


def test_cancel_detaches_a_requester_and_the_last_one_cancels(store):
    key = _keys(store, "ann", "bob")
    s = settings()
    rid = service.submit(TINY, owner="ann", owner_key=key["ann"], store=store, settings=s)
    service.submit(TINY, owner="bob", owner_key=key["bob"], store=store, settings=s)
    assert service.cancel(rid, owner_key=key["ann"], store=store, settings=s) == "detached"
    row = _rows(store)[rid]
    assert row["state"] == "queued" and row["requesters"] == ["bob"]
    assert row["owner"] == "bob"  # the run now counts for bob's limit and turn
    assert service.cancel(rid, owner_key=key["bob"], store=store, settings=s) == "cancelled"
    status = store.read_status(rid)
    assert status["state"] == "cancelled" and status["message"] == "cancelled before it started"
    assert service.cancel(rid, owner_key=key["bob"], store=store, settings=s) == "cancelled"


def test_resume_queues_the_run_again_now(store):
    key = _keys(store, "ann")
    s = settings()
    rid = service.submit(TINY, owner="ann", owner_key=key["ann"], store=store, settings=s)
    assert service.cancel(rid, owner_key=key["ann"], store=store, settings=s) == "cancelled"
    store.now[0] = 2000.0
    service.resume(rid, owner_key=key["ann"], store=store, settings=s)
    status = store.read_status(rid)
    assert status["state"] == "queued" and status["queued_at"] == 2000.0
    assert status["manual_resumes"] == 1 and not status.get("cancel_requested")
    assert "from the start (no checkpoint yet)" in status["message"]
    with pytest.raises(ValueError, match="is queued; only cancelled or interrupted"):
        service.resume(rid, owner_key=key["ann"], store=store, settings=s)
    assert service.delete_run(rid, teacher_token=TEACHER_TOKEN, store=store,
                              settings=s) == "deleted"
    assert _rows(store) == {} and store.run_ids() == []


def test_a_room_lock_set_between_the_checks_and_the_admission_refuses_the_runs(store,
                                                                              monkeypatch):
    """The checks before the folders saw an open room; the teacher locked it before the rows
    were admitted: the admission reads the room as stored now, and nothing is queued."""
    submit_module = importlib.import_module("samon_core.service.submit")
    real = submit_module.check_runnable

    def check_then_lock(config, **kw):
        real(config, **kw)
        service.set_room(service.Room(max_epochs=1), teacher_token=TEACHER_TOKEN, store=store,
                         settings=settings())

    monkeypatch.setattr(submit_module, "check_runnable", check_then_lock)
    with pytest.raises(service.RoomLocked, match="at most 1 epochs"):
        submit_group({"a": TINY, "b": TINY.replace(lr=0.2)}, owner="ann", store=store,
                     settings=settings())
    assert store.run_ids() == [] and _rows(store) == {}
    # the teacher is exempt from the room's locks, checked in the same place
    group, ids = submit_group({"a": TINY}, owner="ann", teacher_token=TEACHER_TOKEN,
                              store=store, settings=settings())
    assert [_rows(store)[rid]["state"] for rid in ids] == ["queued"]


def test_runs_the_command_line_trains_get_the_same_recheck_of_the_name(store):
    """`samon run --owner dora` checked that nobody had the name; a browser registered it before
    the runs were written: the command's runs are refused in their admission (the files era
    left this race open on the command line), and a later run under a free name is admitted."""
    from samon_core.service.room import authorize_owner
    from samon_core.service.submit import admit_here

    ident = authorize_owner("dora", store=store, settings=settings())
    service.register_owner("dora", store=store, settings=settings())
    with pytest.raises(service.NotAllowed, match="registered just now"):
        admit_here({"a": TINY, "b": TINY.replace(lr=0.2)}, owner="dora", ident=ident,
                   store=store)
    assert store.run_ids() == [] and _rows(store) == {}
    ids = admit_here({"a": TINY, "a again": TINY}, owner="cli", ident=ident, store=store)
    rows = _rows(store)
    assert len(set(ids.values())) == 2 and [rows[r]["requesters"] for r in ids.values()] == [
        ["cli"], ["cli"]]  # identical configs: two runs (no reuse), both the command's
