"""The job service's database (runs/database.py, runs/importer.py) on SQLite and on a real
PostgreSQL server: admission with limits in one transaction, the fair-share claim with lockstep
groups, two workers never holding one run, dead workers, cancel, outages, and a run store
written by today's files-era code opening with every run, owner and key intact."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time

import pytest
import sqlalchemy as sa
from support.engines import ENGINES
from support.paths import DATA

from samon_core.runs import database as db
from samon_core.runs.importer import import_store
from samon_core.runs.keys import matches
from samon_core.runs.ownerkeys import TooManyNewNames, owner_of_key, register
from samon_core.runs.states import RunState
from samon_core.service import admission, scheduler
from samon_core.service.admission import LimitExceeded

WINDOW = 3600.0
CPU = ("auto", "cpu")


@pytest.fixture(params=ENGINES)
def url(request, tmp_path):
    """A fresh, empty database of each engine (``postgres``: conftest's, from support.engines)."""
    if request.param == "sqlite":
        return db.database_url(tmp_path)
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def engine(url):
    eng = db.open_database(url)
    yield eng
    eng.dispose()


def queue(engine, owner, *names, group=None, device="cpu", limits=None, now=None):
    """Admit runs named ``names`` (their config hash is the name: all different)."""
    new = [admission.NewRun(n, config_hash=n, device=device, group=group) for n in names]
    return admission.admit(engine, owner, new, limits or admission.QueueLimits(), now=now)


def state_of(engine, run_id):
    return {r["run_id"]: r for r in db.run_rows(engine)}[run_id]


# --- admission ----------------------------------------------------------------------------


def test_admission_inserts_reuses_and_counts_requesters(engine):
    first = queue(engine, "ann", "r1", "r2", now=1.0)
    assert first.inserted == ["r1", "r2"]
    again = admission.admit(engine, "bob", [admission.NewRun("r9", config_hash="r1")],
                            admission.QueueLimits())
    assert again.inserted == [] and again.reused == {"r9": "r1"}
    rows = {r["run_id"]: r for r in db.run_rows(engine)}
    assert rows["r1"]["requesters"] == ["ann", "bob"] and rows["r2"]["requesters"] == ["ann"]
    assert rows["r1"]["state"] == RunState.QUEUED and rows["r1"]["owner"] == "ann"
    twice = admission.admit(engine, " Cy", [admission.NewRun("c1", "same"),
                                            admission.NewRun("c2", "same")],
                            admission.QueueLimits())
    assert twice.inserted == ["c1"] and twice.reused == {"c2": "c1"}
    assert state_of(engine, "c1")["owner"] == "cy"  # normal form
    # bob joined ann's run: his own quota is untouched (he owns no run)
    queue(engine, "bob", "b1", "b2", limits=admission.QueueLimits(max_queued_per_owner=2))


def test_a_refused_admission_inserts_nothing(engine):
    queue(engine, "ann", "r1", "r2")
    with pytest.raises(LimitExceeded, match="max_queued_per_owner"):
        queue(engine, "ann", "r3", "r4", limits=admission.QueueLimits(max_queued_per_owner=3))
    with pytest.raises(LimitExceeded, match="max_queue"):
        queue(engine, "bob", "b1", "b2", limits=admission.QueueLimits(max_queue=3))

    def closed(body):
        raise LimitExceeded("room", "locked", "the teacher closed the queue")

    with pytest.raises(LimitExceeded, match="closed the queue"):
        admission.admit(engine, "bob", [admission.NewRun("b1", "b1")], admission.QueueLimits(),
                        check_room=closed)
    assert [r["run_id"] for r in db.run_rows(engine)] == ["r1", "r2"]


def _admit_one(url, i, barrier, results):
    engine = db.open_database(url)
    barrier.wait()
    try:
        queue(engine, "ann", f"run{i}", limits=admission.QueueLimits(max_queue=5,
                                                               max_queued_per_owner=3))
        results.put("in")
    except LimitExceeded as exc:
        results.put(exc.limit)
    finally:
        engine.dispose()


def _race(target, url, n=10):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, i, barrier, results)) for i in range(n)]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return out


def test_limits_hold_under_ten_racing_processes(url):
    db.open_database(url).dispose()
    out = _race(_admit_one, url)
    assert sorted(out) == ["in"] * 3 + ["max_queued_per_owner"] * 7
    engine = db.open_database(url)
    assert len(db.run_rows(engine)) == 3
    engine.dispose()


# --- the claim ------------------------------------------------------------------------------


def test_owners_take_turns(engine):
    """Ann's nine queued runs do not make Bob's single run, queued after them, wait."""
    queue(engine, "ann", *[f"a{i}" for i in range(9)], now=100.0)
    queue(engine, "bob", "b0", now=101.0)
    got = [scheduler.claim_next(engine, f"w{i}", CPU, window_s=WINDOW, now=200.0 + i)
           for i in range(3)]
    assert got == [["a0"], ["b0"], ["a1"]]


def test_device_time_in_the_window_decides_the_turn(engine):
    queue(engine, "ann", "a0", "a1", now=0.0)
    queue(engine, "bob", "b0", "b1", now=1.0)
    assert scheduler.claim_next(engine, "w1", CPU, window_s=WINDOW, now=10.0) == ["a0"]
    assert scheduler.claim_next(engine, "w2", CPU, window_s=WINDOW, now=11.0) == ["b0"]
    # bob's run ends after 5 s, ann's trains on: ann has used more, bob goes first
    assert scheduler.finish(engine, "b0", "w2", RunState.FINISHED, now=16.0)
    assert scheduler.fair_order(engine, CPU, window_s=WINDOW, now=500.0) == ["b1", "a1"]
    # outside the window nothing counts: the one who waits longest goes first
    assert scheduler.finish(engine, "a0", "w1", RunState.FINISHED, now=20.0)
    assert scheduler.fair_order(engine, CPU, window_s=5.0, now=10_000.0) == ["a1", "b1"]


def test_a_lockstep_group_is_claimed_together(engine):
    queue(engine, "ann", "g1", "g2", "g3", group="cmp", now=1.0)
    queue(engine, "ann", "g4", group="cmp", device="cuda", now=2.0)  # another device: stays
    together = scheduler.claim_next(engine, "w", CPU, window_s=WINDOW, group_max=8)
    assert together == ["g1", "g2", "g3"]
    assert scheduler.claim_next(engine, "w2", ("cuda",), window_s=WINDOW, group_max=8) == ["g4"]
    assert scheduler.claim_next(engine, "w3", CPU, window_s=WINDOW) == []
    shares = {r["run_id"]: r["share"] for r in db.run_rows(engine)}
    assert shares["g1"] == pytest.approx(1 / 3) and shares["g4"] == 1.0


def _claim_all(url, i, barrier, results):
    engine = db.open_database(url)
    barrier.wait()
    mine = []
    while True:
        got = scheduler.claim_next(engine, f"w{i}", CPU, window_s=WINDOW)
        if not got:
            break
        mine += got
    results.put(mine)
    engine.dispose()


def test_two_workers_never_claim_one_run(url):
    engine = db.open_database(url)
    for owner in ("ann", "bob", "cy"):
        queue(engine, owner, *[f"{owner}{i}" for i in range(8)])
    engine.dispose()  # no open connection crosses the fork
    out = _race(_claim_all, url)
    claimed = [rid for mine in out for rid in mine]
    assert sorted(claimed) == sorted(r["run_id"] for r in db.run_rows(engine))
    assert len(set(claimed)) == len(claimed) == 24
    engine.dispose()


# --- names --------------------------------------------------------------------------------


def test_a_name_is_registered_once_and_its_key_proves_it(engine):
    from samon_core.runs.owners import NameTaken

    key = register(engine, " Ann", 0.0)  # normal form: "ann"
    assert owner_of_key(engine, key) == "ann"
    assert matches(key, db.owner_digests(engine)["ann"])
    with pytest.raises(NameTaken, match="already has an owner key"):
        register(engine, "ANN", time.time())
    with pytest.raises(NameTaken, match="reserved"):
        register(engine, "teacher", time.time())
    queue(engine, "cli-user", "r1")  # runs started without a key
    with pytest.raises(NameTaken, match="already owns runs"):
        register(engine, "cli-user", time.time())
    register(engine, "bo", 10.0, max_per_hour=2)
    with pytest.raises(TooManyNewNames):
        register(engine, "cy", 20.0, max_per_hour=2)
    assert register(engine, "cy", 3_700.0, max_per_hour=2)
    from samon_core.runs.keys import BadKey, new_key

    assert owner_of_key(engine, new_key()) is None
    with pytest.raises(BadKey):
        owner_of_key(engine, "not a key")


def _register(url, i, barrier, results):
    from samon_core.runs.owners import NameTaken

    engine = db.open_database(url)
    barrier.wait()
    try:
        register(engine, "dana", time.time())
        results.put("key")
    except NameTaken:
        results.put("taken")
    finally:
        engine.dispose()


def test_ten_racing_registrations_of_one_name_give_one_key(url):
    db.open_database(url).dispose()
    assert sorted(_race(_register, url)) == ["key"] + ["taken"] * 9


def test_a_submit_under_an_unregistered_name_rechecks_it_in_its_transaction(engine):
    """The files era held the key file's lock around such a submit; here the check runs in
    the admission's own transaction, ordered with registrations."""
    from samon_core.runs.owners import NotAllowed

    def unregistered(stored):
        if stored is not None:
            raise NotAllowed("the name was registered meanwhile; its key is needed")

    admission.admit(engine, "eve", [admission.NewRun("e1", "e1")], admission.QueueLimits(),
                    check_owner=unregistered)
    register(engine, "fay", time.time())
    with pytest.raises(NotAllowed):
        admission.admit(engine, "fay", [admission.NewRun("f1", "f1")],
                        admission.QueueLimits(), check_owner=unregistered)
    assert [r["run_id"] for r in db.run_rows(engine)] == ["e1"]


def test_slices_are_asked_once_for_a_finished_run(engine):
    queue(engine, "ann", "r1")
    with pytest.raises(ValueError, match="not finished"):
        admission.request_slices(engine, "r1", {"points": 5})
    scheduler.claim_next(engine, "w", CPU, window_s=WINDOW)
    scheduler.finish(engine, "r1", "w", RunState.FINISHED)
    rid = admission.request_slices(engine, "r1", {"points": 5})
    with pytest.raises(ValueError, match="already"):
        admission.request_slices(engine, "r1", {"points": 7})
    assert scheduler.next_request(engine) == (rid, "r1", {"points": 5})
    scheduler.complete_request(engine, rid)
    assert scheduler.next_request(engine) is None
    assert admission.request_slices(engine, "r1", {"points": 7}) != rid


# --- workers: heartbeats, dead workers, cancel ---------------------------------------------


def test_a_dead_workers_runs_go_back_to_the_queue(engine):
    queue(engine, "ann", "r1", "r2", now=0.0)
    scheduler.heartbeat(engine, "alive", host="h", pid=1, device="cpu", now=100.0)
    scheduler.heartbeat(engine, "dead", host="h", pid=2, device="cpu", now=99.0)
    assert scheduler.claim_next(engine, "alive", CPU, window_s=WINDOW, now=100.0) == ["r1"]
    assert scheduler.claim_next(engine, "dead", CPU, window_s=WINDOW, now=100.0) == ["r2"]
    assert scheduler.reclaim_dead(engine, stale_s=30.0, now=101.0) == []  # just claimed: grace
    scheduler.heartbeat(engine, "alive", host="h", pid=1, device="cpu", now=130.0)
    assert scheduler.reclaim_dead(engine, stale_s=30.0, now=131.0) == ["r2"]
    row = state_of(engine, "r2")
    assert row["state"] == RunState.QUEUED and row["worker"] is None and row["auto_resumes"] == 1
    # the dead worker's late write changes nothing; the run trains again once
    assert not scheduler.finish(engine, "r2", "dead", RunState.FAILED, reason="late")
    assert scheduler.claim_next(engine, "alive", CPU, window_s=WINDOW, now=132.0) == ["r2"]
    assert scheduler.finish(engine, "r2", "alive", RunState.FINISHED, now=133.0)
    assert state_of(engine, "r2")["state"] == RunState.FINISHED
    assert state_of(engine, "r1")["state"] == RunState.RUNNING  # its worker is alive


def test_cancel_is_a_column_the_stop_check_reads(engine):
    queue(engine, "ann", "q", "r")
    scheduler.claim_next(engine, "w", CPU, window_s=WINDOW)  # takes "q"
    assert not scheduler.should_stop(engine, "q")
    assert scheduler.request_cancel(engine, "q") == RunState.RUNNING
    assert scheduler.should_stop(engine, "q")
    assert scheduler.request_cancel(engine, "r") == RunState.CANCELLED  # queued: cancelled at once
    assert scheduler.claim_next(engine, "w", CPU, window_s=WINDOW) == []
    assert scheduler.request_cancel(engine, "nope") is None


# --- outages ----------------------------------------------------------------------------------


def test_a_postgres_outage_is_waited_out_and_loses_nothing(postgres):
    engine = db.open_database(postgres.new_database())
    queue(engine, "ann", "before")
    postgres.stop()
    done = {}

    def during():
        done["got"] = db.retrying(lambda: queue(engine, "ann", "during"), wait_s=0.2,
                                  give_up_s=60)

    thread = threading.Thread(target=during)
    thread.start()
    time.sleep(1.5)
    assert thread.is_alive()  # waiting, not failed
    postgres.start()
    thread.join(60)
    assert done["got"].inserted == ["during"]
    assert sorted(r["run_id"] for r in db.run_rows(engine)) == ["before", "during"]
    engine.dispose()


def test_a_busy_sqlite_writer_is_waited_for(tmp_path):
    url = db.database_url(tmp_path)
    engine = db.open_database(url)
    other = db.open_database(url)
    with db.writing(other) as conn:  # holds the write lock for a while
        conn.execute(sa.text("UPDATE samon SET value = value"))
        waiter = threading.Thread(target=lambda: queue(engine, "ann", "late"))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive()
    waiter.join(20)
    assert [r["run_id"] for r in db.run_rows(engine)] == ["late"]


def test_retrying_gives_up_with_one_line_and_no_password():
    calls = []
    url = "postgresql+psycopg://lab:s3cret-pw@127.0.0.1:1/samon"

    def down():
        calls.append(1)
        raise sa.exc.OperationalError("connect", {}, ConnectionRefusedError(
            f"connection to {url} refused (password s3cret-pw)"))

    with pytest.raises(db.DatabaseUnavailable) as caught:
        db.retrying(down, url=url, wait_s=0.01, give_up_s=0.05)
    message = str(caught.value)
    assert len(calls) >= 2 and "\n" not in message
    assert "s3cret" not in message and "lab:***@127.0.0.1:1/samon" in message


@pytest.mark.parametrize("url", ["postgresql+psycopg://lab:s3cret-pw@db:notaport/samon",
                                 "nosuchdriver://lab:s3cret-pw@db/samon"])
def test_a_bad_database_url_is_named_without_its_password(url):
    with pytest.raises(ValueError) as caught:
        db.open_database(url)
    message = str(caught.value)
    assert "s3cret" not in message and "lab:***@db" in message and "\n" not in message


def _hold_a_claim(url, ready):
    engine = db.open_database(url)
    with db.writing(engine) as conn:  # a claim half done: the run is running, not committed
        conn.execute(db.runs.update().values(state="running", worker="doomed"))
        ready.set()
        time.sleep(600)


def test_a_worker_killed_in_its_claim_transaction_changes_nothing(url):
    import os
    import signal

    engine = db.open_database(url)
    queue(engine, "ann", "r1")
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_a_claim, args=(url, ready))
    proc.start()
    assert ready.wait(60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert state_of(engine, "r1")["state"] == RunState.QUEUED  # rolled back by the engine
    assert scheduler.claim_next(engine, "w", CPU, window_s=WINDOW) == ["r1"]
    engine.dispose()


# --- a store written by today's files-era code -------------------------------------------




def test_a_files_era_store_opens_with_every_run_owner_and_key(tmp_path, url):
    """tests/data/files_era_store was written by main at 021a22d, the last files-era version
    (ann registered, three runs of hers, bob joined the first, one running with an old worker,
    one finished, a room): it opens with every run, owner and key intact."""
    import shutil

    from samon_core.runs.store import RunStore
    from samon_core.service.room import Room

    expect = json.loads((DATA / "files_era_store.expect.json").read_text())
    ids, key = expect["ids"], expect["key"]
    root = tmp_path / "runs"
    shutil.copytree(DATA / "files_era_store", root)
    (root / "broken").mkdir()  # a run folder whose files cannot be read

    engine = db.open_database(url)
    report = import_store(engine, root, RunStore(root).run_ids())
    assert sorted(report.runs) == sorted(ids) and report.owners == ["ann"] and report.room
    rows = {r["run_id"]: r for r in db.run_rows(engine)}
    assert rows[ids[0]]["requesters"] == ["ann", "bob"] and rows[ids[0]]["owner"] == "ann"
    assert rows[ids[0]]["state"] == RunState.QUEUED
    assert rows[ids[2]]["state"] == RunState.FINISHED and rows[ids[2]]["ended"] == 2.0
    assert rows[ids[1]]["state"] == RunState.RUNNING and json.loads(
        rows[ids[1]]["status"])["epoch"] == 3
    assert matches(key, db.owner_digests(engine)["ann"])
    assert Room.model_validate(db.read_room_body(engine)).message == "Quiet please"
    # the running run's old worker has no heartbeat here: it is queued again, to resume
    assert scheduler.reclaim_dead(engine, stale_s=60.0, now=time.time() + 120) == [ids[1]]
    assert import_store(engine, root, RunStore(root).run_ids()).already  # once per database
    assert len(db.run_rows(engine)) == 3
    engine.dispose()


def test_a_files_era_store_opens_through_the_store_with_its_keys(tmp_path):
    """The same store opened the way the app opens it (``RunStore``): imported on first use,
    the runs listed with their states, ann's key proves ann, bob is a requester."""
    import shutil

    from samon_core.runs.store import RunStore

    expect = json.loads((DATA / "files_era_store.expect.json").read_text())
    root = tmp_path / "runs"
    shutil.copytree(DATA / "files_era_store", root)
    store = RunStore(root)
    df = store.list_runs()
    assert sorted(df["run_id"]) == sorted(expect["ids"])
    assert dict(zip(df["run_id"], df["state"], strict=True))[expect["ids"][2]] == "finished"
    assert store.owner_of_key(expect["key"]) == "ann" and store.is_registered("Ann")
    meta = store.read_meta(expect["ids"][0])
    assert [r["owner"] for r in meta["requesters"]] == ["ann", "bob"]


@pytest.mark.parametrize("case", json.loads((DATA / "fair_order_cases.json").read_text()),
                         ids=lambda c: f"seed{c['seed']}")
def test_the_sql_fair_order_is_the_files_era_fair_queue(engine, case):
    """The order claim_next takes runs in is the files-era fair queue's (service/fairness.py
    at 021a22d, its answers frozen in tests/data/fair_order_cases.json) on the same runs:
    owners by device seconds, then runs started, in the window, then who waits longest; each
    owner's runs oldest first (one run per worker, so no shares)."""
    with db.writing(engine) as conn:
        conn.execute(db.runs.insert(), case["runs"])
    assert len(case["expected"]) > 5
    assert scheduler.fair_order(engine, CPU, window_s=case["window"],
                                now=case["now"]) == case["expected"]


def test_a_writer_of_this_process_waits_its_turn_and_gives_up_with_one_line(tmp_path,
                                                                           monkeypatch):
    from samon_core.runs.io import LockTimeout

    engine = db.open_database(db.database_url(tmp_path))
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 300)
    with db.writing(engine):
        failed = []
        waiter = threading.Thread(target=lambda: failed.append(
            pytest.raises(LockTimeout, queue, engine, "ann", "r1")))
        waiter.start()
        waiter.join(10)
    assert failed and "write lock" in str(failed[0].value)
    queue(engine, "ann", "r1")  # its turn has come
    assert [r["run_id"] for r in db.run_rows(engine)] == ["r1"]
    engine.dispose()


def _open_fresh(url, barrier, results):
    barrier.wait()
    try:
        db.shared_engine(url)
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - the test lists what went wrong
        results.put(f"{type(exc).__name__}: {exc}")


def test_ten_processes_opening_a_new_sqlite_file_at_once_all_get_in(tmp_path):
    """The app and its workers (or ten racing students' first requests) create samon.db at the
    same moment: switching a new file to WAL answers 'database is locked' to the others, which
    SQLite's busy handler does not always wait out (4 of 30 such starts failed before the
    connection waited its turn: ``database._wal``)."""
    ctx = multiprocessing.get_context("fork")
    for attempt in range(10):
        url = db.database_url(tmp_path / f"runs{attempt}")
        (tmp_path / f"runs{attempt}").mkdir()
        barrier, results = ctx.Barrier(10), ctx.Queue()
        procs = [ctx.Process(target=_open_fresh, args=(url, barrier, results)) for _ in range(10)]
        for p in procs:
            p.start()
        out = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(30)
        assert out == ["ok"] * 10, out
