"""The three leftovers of the database cutover (issue 24), on SQLite and PostgreSQL:

* a stopping worker (SIGTERM) gives its run back from 'running' straight to 'queued': a trigger
  on the ``runs`` table records every state the row takes, and 'cancelled' is never one of them
  (in-process with a stand-in trainer, a real SIGTERM'd worker process, and the real trainer's
  loop);
* a slices request taken by a worker is that worker's until it is done: a worker killed (-9)
  while computing it leaves it to the next worker, which computes it;
* a damaged field of a run's status JSON is named in the status's ``problem`` and in the
  listing's, while the run still lists with the rest of its status.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.configs import tiny_config
from support.paths import REPO, TESTS
from support.teacher import TEACHER_TOKEN, teacher_settings

from samon_core import service
from samon_core.runs import database as db
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore
from samon_core.service import scheduler
from samon_core.service.settings import load_settings
from samon_core.service.worker import Worker

TINY = tiny_config()

# Fast heartbeats and sweeps for worker processes; no automatic resume of runs.
FAST = {"SAMON_RECOVER_EVERY_S": "0.5", "SAMON_HEARTBEAT_EVERY_S": "0.5", "SAMON_POLL_S": "0.2",
        "SAMON_AUTO_RESUME": "0", "SAMON_HEARTBEAT_TIMEOUT_S": "10"}


def settings(**kw):
    return load_settings(environ={}, **{"recover_every_s": 3600.0, **kw})


# --- every state a run's row takes ----------------------------------------------------------


def record_states(store: RunStore) -> None:
    """A trigger that logs every state written to a ``runs`` row (insert or update, by any
    process) into the table ``state_log``: a brief state no poll would catch is logged too."""
    with db.writing(store.engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("CREATE TABLE state_log (id SERIAL PRIMARY KEY, run_id TEXT, "
                                 "state TEXT)")
            conn.exec_driver_sql(
                "CREATE FUNCTION log_state() RETURNS trigger AS $$ BEGIN INSERT INTO state_log "
                "(run_id, state) VALUES (NEW.run_id, NEW.state); RETURN NEW; END $$ "
                "LANGUAGE plpgsql")
            conn.exec_driver_sql("CREATE TRIGGER runs_state AFTER INSERT OR UPDATE ON runs "
                                 "FOR EACH ROW EXECUTE FUNCTION log_state()")
        else:
            conn.exec_driver_sql("CREATE TABLE state_log (id INTEGER PRIMARY KEY "
                                 "AUTOINCREMENT, run_id TEXT, state TEXT)")
            for event in ("INSERT", "UPDATE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER runs_state_{event.lower()} AFTER {event} ON runs BEGIN "
                    "INSERT INTO state_log (run_id, state) VALUES (NEW.run_id, NEW.state); END")


def states_of(store: RunStore, run_id: str) -> list[str]:
    """The states the run's row took, in order, a repeated one once."""
    with db.reading(store.engine) as conn:
        seen = list(conn.execute(sa.text("SELECT state FROM state_log WHERE run_id = :r "
                                         "ORDER BY id"), {"r": run_id}).scalars())
    return [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]


def stand_in(config, run_dir, *, callback=None, should_stop=None, data_dir=None, resume=False,
             hook=None):
    """A stand-in trainer that knows nothing of a release: 3 steps per epoch, a 'checkpoint'
    per epoch, and, as the stand-ins always did, 'cancelled' written when ``should_stop()``
    says stop."""
    store, rid = RunStore(Path(run_dir).parent), Path(run_dir).name
    store.write_status(rid, "running", pid=os.getpid())
    ckpt = Path(run_dir) / "checkpoint.pt"
    start = int(ckpt.read_text()) if resume and ckpt.exists() else 0
    with store.metrics_writer(rid) as w:
        step = start * 3
        if resume:
            w.write({"kind": "resume", "epoch": start, "step": step, "time": 0.0})
        for epoch in range(start, config.epochs):
            for _ in range(3):
                if hook is not None:
                    hook(step)
                if should_stop is not None and should_stop():
                    store.write_status(rid, "cancelled", message="cancelled")
                    return {"state": "cancelled"}
                step += 1
                w.write({"kind": "step", "epoch": epoch + 1, "step": step, "time": 0.0})
            w.write({"kind": "epoch", "epoch": epoch + 1, "step": step, "time": 0.0})
            ckpt.write_text(str(epoch + 1))
    store.write_status(rid, "finished")
    return {"state": "finished"}


def test_a_stopping_worker_gives_its_run_back_without_cancelled(any_store):
    store, s = any_store, settings()
    record_states(store)
    rid = service.submit(TINY.replace(epochs=3), owner="ann", store=store, settings=s)
    worker: Worker

    def hook(step):
        if step == 4:
            worker.request_stop("signal SIGTERM")  # what the signal handler does

    worker = Worker(store, s, trainer=functools.partial(stand_in, hook=hook))
    assert worker.run() == 0
    status = store.read_status(rid)
    assert status["state"] == "queued" and status.get("worker") is None
    assert "stopped (signal SIGTERM)" in status["message"]
    assert states_of(store, rid) == ["queued", "running", "queued"]

    Worker(store, s, exit_when_idle=True, trainer=stand_in).run()  # resumes at epoch 2
    assert states_of(store, rid) == ["queued", "running", "queued", "running", "finished"]
    assert list(store.epochs_df(rid)["epoch"]) == [1, 2, 3]


def test_a_cancel_asked_while_the_worker_stops_still_ends_the_run_cancelled(any_store):
    """The stop gives the run back unless its cancel was asked meanwhile: then it ends
    'cancelled' in the same transaction, never 'queued' again."""
    store = any_store
    rid = store.create_run(TINY)
    assert scheduler.claim_next(store.engine, "w", ["auto", "cpu"], window_s=3600) == [rid]
    assert scheduler.request_cancel(store.engine, rid) == RunState.RUNNING
    assert scheduler.release(store.engine, rid, "w", reason="stopped") == RunState.CANCELLED
    assert store.read_status(rid)["state"] == "cancelled"
    assert scheduler.release(store.engine, rid, "w", reason="stopped") is None  # not held


# A worker process with a stand-in trainer (no torch) of the old contract: 'cancelled' when
# should_stop() says stop; one epoch every 0.1 s.
_WORKER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from samon_core.runs.store import RunStore
    from samon_core.service.worker import worker_main

    def train(config, run_dir, *, callback=None, should_stop=None, data_dir=None, resume=False):
        store, rid = RunStore(Path(run_dir).parent), Path(run_dir).name
        store.write_status(rid, "running", pid=os.getpid())
        ckpt = Path(run_dir) / "checkpoint.pt"
        start = int(ckpt.read_text()) if resume and ckpt.exists() else 0
        with store.metrics_writer(rid) as w:
            for epoch in range(start + 1, config.epochs + 1):
                if should_stop is not None and should_stop():
                    store.write_status(rid, "cancelled")
                    return {"state": "cancelled"}
                time.sleep(0.1)
                w.write({"kind": "epoch", "epoch": epoch, "step": epoch, "time": 0.0})
                ckpt.write_text(str(epoch))
        store.write_status(rid, "finished")
        return {"state": "finished"}

    sys.exit(worker_main(sys.argv[1:], trainer=train))
""")


def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SAMON_") or k == "SAMON_DATABASE_URL"}  # any_store's
    env.update(FAST, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]))
    return env


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, *args], env=_worker_env(), stdout=fh,
                                stderr=subprocess.STDOUT)


def _wait_for(what: str, predicate, log: Path, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


@pytest.mark.slow
def test_sigterm_of_a_worker_process_requeues_its_run_never_cancelled(any_store):
    store = any_store
    record_states(store)
    rid = service.submit(TINY.replace(epochs=30), owner="ann", store=store, settings=settings())
    log = store.root.parent / "workers.log"
    args = ["-c", _WORKER, "--devices", "cpu", "--runs-dir", str(store.root)]
    first = _start(args, log)
    try:
        _wait_for("three epochs", lambda: len(store.epochs_df(rid)) >= 3, log)
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert store.read_status(rid)["state"] == "queued"
    assert states_of(store, rid) == ["queued", "running", "queued"]
    done = len(store.epochs_df(rid))

    second = _start([*args, "--exit-when-idle"], log)
    try:
        assert second.wait(60) == 0
    finally:
        if second.poll() is None:
            second.kill()
    assert states_of(store, rid) == ["queued", "running", "queued", "running", "finished"]
    epochs = list(store.epochs_df(rid)["epoch"])
    assert epochs == list(range(1, 31)) and done < 30  # resumed: every epoch once


@pytest.mark.slow
def test_the_real_trainer_stops_a_released_run_without_an_end(any_store):
    """The trainer's loop (torch): a ``should_stop`` that raises ``Released`` stops it within
    a step; it writes no end and no summary, the row stays 'running' with its worker until
    ``release`` makes it 'queued'."""
    from samon_core.train.stopping import RELEASED, Released
    from samon_core.train.trainer import train

    store = any_store
    record_states(store)
    rid = store.create_run(TINY)
    assert scheduler.claim_next(store.engine, "w", ["auto", "cpu"], window_s=3600) == [rid]
    polls = []

    def should_stop() -> bool:
        polls.append(1)
        if len(polls) > 3:
            raise Released("the worker stops")
        return False

    summary = train(TINY, store.run_dir(rid), should_stop=should_stop,
                    data_dir=str(store.root.parent / "data"))
    assert summary["state"] == RELEASED
    status = store.read_status(rid)
    assert status["state"] == "running" and status["worker"] == "w"
    assert store.read_summary(rid) is None
    assert scheduler.release(store.engine, rid, "w", reason="queued again") == "queued"
    assert states_of(store, rid) == ["queued", "running", "queued"]


# --- a slices request of a dead worker ------------------------------------------------------

# A worker process whose slices take for ever (they write a mark file first): killed -9 there.
_SLICING_WORKER = textwrap.dedent("""
    import sys, time, types
    from pathlib import Path
    from samon_core.service.worker import worker_main

    fake = types.ModuleType("samon_core.train.slice_run")

    def slice_finished_run(store, run_id, **kw):
        Path(sys.argv[1]).write_text(run_id)
        time.sleep(600)

    fake.slice_finished_run = slice_finished_run
    sys.modules["samon_core.train.slice_run"] = fake
    sys.exit(worker_main(sys.argv[2:], trainer=lambda *a, **k: {"state": "failed"}))
""")


def _finished_run(store: RunStore) -> str:
    rid = store.create_run(TINY)
    store.write_status(rid, RunState.FINISHED)
    (store.run_dir(rid) / "checkpoint.pt").write_text("final weights")
    return rid


def test_a_taken_request_stays_its_workers_until_done(any_store):
    store = any_store
    rid = _finished_run(store)
    s = teacher_settings()
    assert service.request_slices(rid, teacher_token=TEACHER_TOKEN, points=3, store=store,
                                  settings=s) == "queued"
    taken = scheduler.take_request(store.engine, "w1")
    assert taken is not None and taken[1] == rid
    assert scheduler.take_request(store.engine, "w2") is None  # w1's
    assert service.pending_slices(store, rid) is not None  # the page still says: computing
    assert service.request_slices(rid, teacher_token=TEACHER_TOKEN, points=3, store=store,
                                  settings=s) == "pending"
    assert not scheduler.complete_request(store.engine, taken[0], "w2")  # not w2's to end
    assert scheduler.complete_request(store.engine, taken[0], "w1")
    assert service.pending_slices(store, rid) is None


def test_a_request_that_keeps_killing_its_workers_is_given_up(any_store):
    store = any_store
    rid = _finished_run(store)
    service.request_slices(rid, teacher_token=TEACHER_TOKEN, store=store,
                           settings=teacher_settings())
    for n in range(scheduler.MAX_REQUEST_TAKES):
        assert scheduler.take_request(store.engine, f"w{n}") is not None
        scheduler.reclaim_dead(store.engine, stale_s=10, dead_workers=[f"w{n}"])
    assert scheduler.take_request(store.engine, "last") is None
    assert service.pending_slices(store, rid) is None


@pytest.mark.slow
def test_a_request_of_a_worker_killed_while_slicing_goes_to_another(any_store, tmp_path,
                                                                    monkeypatch):
    store = any_store
    rid = _finished_run(store)
    assert service.request_slices(rid, teacher_token=TEACHER_TOKEN, points=5, store=store,
                                  settings=teacher_settings()) == "queued"
    mark, log = tmp_path / "slicing", tmp_path / "worker.log"
    dying = _start(["-c", _SLICING_WORKER, str(mark), "--devices", "cpu", "--runs-dir",
                    str(store.root)], log)
    try:
        _wait_for("the worker to take the request", mark.exists, log)
    finally:
        dying.kill()  # -9 in the middle of the slices
        dying.wait()
    assert service.pending_slices(store, rid) is not None  # not lost with its worker

    calls = []
    fake = types.ModuleType("samon_core.train.slice_run")
    fake.slice_finished_run = lambda store, run_id, **kw: calls.append((run_id, kw)) or 1
    monkeypatch.setitem(sys.modules, "samon_core.train.slice_run", fake)
    # the next worker's recovery at start: the dead process of this host is dead at once
    Worker(store, settings(), exit_when_idle=True, trainer=stand_in).run()
    assert [(r, kw["points"]) for r, kw in calls] == [(rid, 5)]
    assert service.pending_slices(store, rid) is None


def test_a_database_made_before_the_requests_workers_gets_their_columns(any_store):
    """A database whose ``requests`` table has no ``worker`` / ``attempts`` (made before this
    version) gets them when it is opened; its waiting request is kept and can be taken."""
    store = any_store
    rid = _finished_run(store)
    service.request_slices(rid, teacher_token=TEACHER_TOKEN, store=store,
                           settings=teacher_settings())
    with db.writing(store.engine) as conn:
        for column in ("worker", "attempts"):
            conn.exec_driver_sql(f"ALTER TABLE requests DROP COLUMN {column}")
    engine = db.open_database(store.database_url)
    try:
        taken = scheduler.take_request(engine, "w")
        assert taken is not None and taken[1] == rid
    finally:
        engine.dispose()


# --- damaged fields of a run's status -------------------------------------------------------


def _damage(store: RunStore, run_id: str, status_text: str) -> None:
    with db.writing(store.engine) as conn:
        conn.execute(db.runs.update().where(db.runs.c.run_id == run_id)
                     .values(status=status_text))


def test_a_damaged_status_field_is_named_and_the_run_still_lists(any_store):
    store = any_store
    rid = store.create_run(TINY)
    store.write_status(rid, RunState.RUNNING, epoch=1, test_acc=0.5, message="training")
    _damage(store, rid, json.dumps({"epoch": 1, "test_acc": 0.5, "eta_s": "soon",
                                    "host": "lab-3"}))
    status = store.read_status(rid)
    assert "eta_s" not in status  # left out, and said so
    assert "eta_s" in status["problem"] and "'soon'" in status["problem"]
    assert status["epoch"] == 1 and status["test_acc"] == 0.5 and status["host"] == "lab-3"
    assert status["state"] == "running" and status["message"] == "training"

    df = store.list_runs()
    row = df[df["run_id"] == rid].iloc[0]
    assert "eta_s" in row["problem"] and "status" in row["problem"]
    assert row["state"] == "running" and row["last_epoch"] == 1 and row["final_test_acc"] == 0.5

    store.write_status(rid, RunState.RUNNING, eta_s=12.0)  # the trainer's next write heals it
    assert "problem" not in store.read_status(rid)
    assert store.list_runs()["problem"].isna().all()


def test_a_status_that_is_no_json_object_is_named(any_store):
    store = any_store
    rid = store.create_run(TINY)
    for damaged, words in (("{not json", "is not JSON"), ("[1, 2]", "not a JSON object")):
        _damage(store, rid, damaged)
        status = store.read_status(rid)
        assert words in status["problem"] and status["state"] == "queued"
        row = store.list_runs().iloc[0]
        assert row["run_id"] == rid and words in row["problem"]


def test_a_sound_status_has_no_problem(any_store):
    store = any_store
    rid = store.create_run(TINY)
    store.write_status(rid, RunState.RUNNING, epoch=1, eta_s=3.0, problem="a trainer's field")
    assert "problem" not in store.read_status(rid)
    assert store.list_runs()["problem"].isna().all()
