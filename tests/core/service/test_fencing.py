"""Fencing, on SQLite and PostgreSQL: a trainer writes only while its worker holds the run.

A worker thought dead (stalled, or away from the database) has its run taken back
(``reclaim_dead``) and another worker claims it. Every write of the old trainer carries its
claim (worker and ``attempt``, runs/fence.py) and changes nothing once the row holds another:

* the real trainer's next write after the take-over is refused, it stops with ``Released``
  (no end, no summary, no more metrics records), and the new holder finishes the run: the row's
  end and the summary are the new holder's;
* a worker's should_stop is a fence too: a worker whose run was taken over stops its trainer and
  leaves the run to its new holder, which finishes it;
* a stale end (finished, failed), heartbeat or status write is refused, also one of the same
  worker's earlier claim;
* a write without a claim (``samon run``'s trainer, a plain store write) is not fenced.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.configs import tiny_config

from samon_core import service
from samon_core.runs import database as db
from samon_core.runs.fence import NotHeld, WorkerClaim
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore
from samon_core.service import scheduler
from samon_core.service.room import Identity
from samon_core.service.settings import load_settings
from samon_core.service.submit import train_now
from samon_core.service.worker import Worker

TINY = tiny_config()
DEVICES = ["auto", "cpu"]


def settings(**kw):
    # no heartbeat thread or recovery sweep within a test: the fence alone must stop the trainer
    return load_settings(environ={}, **{"recover_every_s": 3600.0, "heartbeat_every_s": 3600.0,
                                        **kw})


def claim(store: RunStore, worker: str) -> tuple[str, WorkerClaim]:
    """``worker`` claims the next queued run: (its id, the claim)."""
    [rid] = scheduler.claim_next(store.engine, worker, DEVICES, window_s=3600)
    return rid, scheduler.claims_of(store.engine, worker, [rid])[rid]


def take_over(store: RunStore, rid: str, old: str, new: str) -> WorkerClaim:
    """``old`` is thought dead: its run goes back to the queue and ``new`` claims it."""
    assert scheduler.reclaim_dead(store.engine, stale_s=3600, dead_workers=[old]) == [rid]
    got, new_claim = claim(store, new)
    assert got == rid
    return new_claim


def row_of(store: RunStore, rid: str) -> dict:
    with db.reading(store.engine) as conn:
        return dict(conn.execute(sa.select(db.runs).where(db.runs.c.run_id == rid))
                    .first()._mapping)


def test_claims_number_each_hand_out(any_store):
    store = any_store
    rid = store.create_run(TINY)
    got, first = claim(store, "A")
    assert got == rid and first == WorkerClaim("A", 1)
    take_over(store, rid, "A", "B")
    assert scheduler.claims_of(store.engine, "B", [rid]) == {rid: WorkerClaim("B", 2)}
    assert scheduler.claims_of(store.engine, "A", [rid]) == {}  # taken back


@pytest.mark.slow
def test_the_old_trainer_stops_at_its_next_write_and_the_new_holder_finishes(
        any_store, one_torch_thread):
    """The real trainer (torch): a take-over between two steps; A's next write is refused,
    A stops (``Released``) without touching the row, the metrics or the summary; B finishes."""
    from samon_core.train.stopping import RELEASED
    from samon_core.train.trainer import train

    store = any_store
    config = TINY.replace(epochs=2)
    store.create_run(config)
    rid, mine = claim(store, "A")
    data = str(store.root.parent / "data")
    polls, at_take_over = [], {}

    def stalled_then_back() -> bool:  # A's stop check notices nothing (its heartbeat stalled)
        polls.append(1)
        if len(polls) == 3:
            at_take_over["claim"] = take_over(store, rid, "A", "B")
            at_take_over["row"] = row_of(store, rid)
            at_take_over["metrics"] = store.metrics_path(rid).stat().st_size
        return False

    summary_a = train(config, store.run_dir(rid), should_stop=stalled_then_back, data_dir=data,
                      claim=mine)
    assert summary_a["state"] == RELEASED and len(polls) >= 3
    assert row_of(store, rid) == at_take_over["row"]  # A changed nothing in B's row
    assert store.metrics_path(rid).stat().st_size == at_take_over["metrics"]  # nor appended
    assert store.read_summary(rid) is None

    resume = store.checkpoint_path(rid).is_file()
    summary_b = train(config, store.run_dir(rid), data_dir=data, resume=resume,
                      claim=at_take_over["claim"])
    assert summary_b["state"] == "finished"
    status = store.read_status(rid)
    assert status["state"] == "finished" and status["worker"] == "B"
    assert store.read_summary(rid)["total_time_s"] == pytest.approx(summary_b["total_time_s"])
    assert [e["epoch"] for e in store.read_records(rid) if e["kind"] == "epoch"] == [1, 2]


def fenced_stand_in(config, run_dir, *, should_stop=None, data_dir=None, resume=False,
                    claim=None, hook=None):
    """A stand-in trainer that takes the worker's claim: 3 steps per epoch, each status write
    under the claim, a summary naming its worker; ``should_stop`` may raise ``Released``."""
    store, rid = RunStore(Path(run_dir).parent), Path(run_dir).name
    store.write_status(rid, "running", claim=claim, pid=os.getpid())
    with store.metrics_writer(rid) as w:
        for epoch in range(config.epochs):
            for step in range(3):
                if hook is not None:
                    hook(claim, epoch * 3 + step)
                if should_stop is not None and should_stop():
                    store.write_status(rid, "cancelled", claim=claim)
                    return {"state": "cancelled"}
                store.write_status(rid, "running", claim=claim, step=epoch * 3 + step + 1)
                w.write({"kind": "step", "epoch": epoch + 1, "step": epoch * 3 + step + 1,
                         "time": 0.0, "by": claim.worker})
    store.write_summary(rid, {"state": "finished", "by": claim.worker})
    store.write_status(rid, "finished", claim=claim)
    return {"state": "finished"}


def test_a_worker_whose_run_was_taken_over_stops_and_leaves_it(any_store, caplog):
    """Worker A stalls mid-run: its run is reclaimed and worker B trains it to the end
    meanwhile. A's next stop check (the fence) stops A's trainer with ``Released``; A writes
    nothing more and leaves the run to B: the row's end and the summary are B's."""
    store, s = any_store, settings()
    rid = service.submit(TINY.replace(epochs=2), owner="ann", store=store, settings=s)
    ticks = iter(range(0, 10_000, 2))  # every stop check reads the row (at most one a second)
    b = Worker(store, s, max_runs=1, exit_when_idle=True, trainer=fenced_stand_in)
    seen = {}

    def a_stalls(claim, step):
        if step == 2 and claim.worker == a.id:
            seen["a"] = claim
            assert scheduler.reclaim_dead(store.engine, stale_s=3600,
                                          dead_workers=[a.id]) == [rid]
            assert b.run() == 0  # B claims the run and finishes it while A is stalled
            seen["row"] = row_of(store, rid)

    a = Worker(store, s, max_runs=1, monotonic=lambda: float(next(ticks)),
               trainer=lambda *a_, **kw: fenced_stand_in(*a_, **kw, hook=a_stalls))
    with caplog.at_level("INFO", logger="samon.worker"):
        assert a.run() == 0
    assert seen["a"] == WorkerClaim(a.id, 1)
    status = store.read_status(rid)
    assert status["state"] == "finished" and status["worker"] == b.id
    assert row_of(store, rid) == seen["row"]  # A wrote nothing after B's end
    assert store.read_summary(rid) == {"state": "finished", "by": b.id}
    raw = store.read_records(rid, resolve=False)  # B restarted: no checkpoint (a marker)
    assert [r.get("by", r["kind"]) for r in raw] == [a.id] * 2 + ["resume"] + [b.id] * 6
    assert f"run {rid} left to its new holder" in caplog.text


def test_a_stale_end_is_refused(any_store):
    """A's late writes after the take-over (finished, failed, a heartbeat, a status) are
    refused with ``NotHeld`` and change nothing; so is a write of A's own earlier claim after
    A claimed the run again (the attempt differs)."""
    store = any_store
    rid = store.create_run(TINY)
    _, a = claim(store, "A")
    # taken back, not claimed yet: queued, no holder
    assert scheduler.reclaim_dead(store.engine, stale_s=3600, dead_workers=["A"]) == [rid]
    before = row_of(store, rid)
    with pytest.raises(NotHeld, match=f"run {rid} is no longer held by worker A"):
        store.write_status(rid, RunState.FINISHED, claim=a, progress=1.0)
    assert row_of(store, rid) == before
    _, b = claim(store, "B")
    store.write_status(rid, RunState.RUNNING, claim=b, epoch=1, progress=0.5)
    before = row_of(store, rid)
    for state in (RunState.FINISHED, RunState.FAILED, RunState.RUNNING):
        with pytest.raises(NotHeld):
            store.write_status(rid, state, claim=a, message="A's late end", progress=1.0)
    with pytest.raises(NotHeld):
        store.heartbeat(rid, claim=a, progress=0.9)
    with pytest.raises(NotHeld):
        store.check_held(rid, a)
    with pytest.raises(NotHeld):
        scheduler.should_stop(store.engine, rid, a)
    assert row_of(store, rid) == before
    assert store.read_status(rid)["progress"] == 0.5 and store.read_status(rid)["epoch"] == 1

    # B ends it; A, alive again, claims it once more: a write of its first claim is refused
    store.write_status(rid, RunState.FINISHED, claim=b)
    store.check_held(rid, b)
    with db.writing(store.engine) as conn:  # queued again by hand (a resume)
        conn.execute(db.runs.update().where(db.runs.c.run_id == rid).values(
            state="queued", worker=None))
    _, a2 = claim(store, "A")
    assert a2 == WorkerClaim("A", a.attempt + 2)
    with pytest.raises(NotHeld):
        store.write_status(rid, RunState.FAILED, claim=a)
    assert store.write_status(rid, RunState.FINISHED, claim=a2)["state"] == "finished"


@pytest.mark.parametrize("end", ["finished", "failed"])
def test_a_refused_end_releases_the_trainers_run(any_store, end):
    """The trainer's recorder taken over before its end: the end (finished, with its summary;
    failed) is refused, its summary says released, no summary.json is written and the row keeps
    B's state."""
    from samon_core.train.recorder import StoreRecorder
    from samon_core.train.stopping import RELEASED

    store = any_store
    store.create_run(TINY)
    rid, a = claim(store, "A")
    recorder = StoreRecorder(TINY, store.run_dir(rid), claim=a)
    b = take_over(store, rid, "A", "B")
    store.write_status(rid, RunState.RUNNING, claim=b, message="B trains it", progress=0.5)
    before = row_of(store, rid)
    summary = ({"state": "finished", "steps": 8, "final_test_acc": 0.5} if end == "finished"
               else {"state": "failed", "error": "RuntimeError: late"})
    recorder.on_end(None, summary, None if end == "finished" else RuntimeError("late"))
    assert summary["state"] == RELEASED and "no longer held by worker A" in summary["released"]
    assert store.read_summary(rid) is None
    assert row_of(store, rid) == before


def test_writes_without_a_claim_are_not_fenced(any_store):
    """``samon run`` trains in its own process: its trainer writes without a claim, as do the
    store's plain callers, whoever holds the row."""
    store = any_store
    rid = store.create_run(TINY)
    assert store.write_status(rid, "queued", progress=0.1)["progress"] == 0.1
    claim(store, "B")
    assert store.write_status(rid, "running", progress=0.2)["worker"] == "B"
    assert store.heartbeat(rid, progress=0.3)["progress"] == 0.3
    store.check_held(rid, None)
    assert store.write_status(rid, "finished")["state"] == "finished"


@pytest.mark.slow
def test_samon_run_trains_without_a_worker(any_store, one_torch_thread):
    """``train_now`` (``samon run``): claimed by this process (``train_here``), trained without
    a claim on its writes, finished."""
    store = any_store
    [trained] = train_now({"tiny": TINY.replace(epochs=1)}, owner="ann",
                                  ident=Identity(), store=store,
                                  data_dir=str(store.root.parent / "data"))
    assert trained.summary["state"] == "finished"
    assert store.read_status(trained.run_id)["state"] == "finished"
    assert store.read_summary(trained.run_id)["state"] == "finished"


def test_a_database_made_before_claims_gets_the_attempt_column(any_store):
    """A database whose ``runs`` table has no ``attempt`` (made before this version) gets it
    when it is opened; its queued run is claimed as claim 1 and fenced."""
    store = any_store
    rid = store.create_run(TINY)
    with db.writing(store.engine) as conn:
        conn.exec_driver_sql("ALTER TABLE runs DROP COLUMN attempt")
    engine = db.open_database(store.database_url)
    try:
        assert scheduler.claim_next(engine, "A", DEVICES, window_s=3600) == [rid]
        assert scheduler.claims_of(engine, "A", [rid]) == {rid: WorkerClaim("A", 1)}
        with pytest.raises(NotHeld):
            scheduler.should_stop(engine, rid, WorkerClaim("A", 0))
    finally:
        engine.dispose()
