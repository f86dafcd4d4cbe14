"""The fair queue as workers see it (samon_core/service/scheduler.py), on SQLite and PostgreSQL:
owners take turns by device time, a lockstep group is claimed together and counts its worker's
time once, and nothing is lost or trained twice. The SQL order itself is checked against the
files-era fair queue's answers in test_database.py."""

from __future__ import annotations

import os
from pathlib import Path

from support.configs import tiny_config

from samon_core import service
from samon_core.runs import database as db
from samon_core.runs.store import RunStore
from samon_core.service import scheduler
from samon_core.service.recovery import this_host
from samon_core.service.settings import load_settings
from samon_core.service.worker import Worker

TINY = tiny_config(epochs=1)
HOUR = 3600.0
CPU = ("auto", "cpu")


def settings(**kw):
    return load_settings(environ={}, recover_every_s=HOUR, max_queued_per_owner=20, **kw)


def recording_trainer(started: list[str], during=None):
    """A stand-in trainer that records which run starts (``during(run_id)`` then) and finishes
    it at once."""

    def train(config, run_dir, *, should_stop=None, data_dir=None, resume=False, **_):
        run_dir = Path(run_dir)
        store, rid = RunStore(run_dir.parent), run_dir.name
        started.append(rid)
        store.write_status(rid, "running", pid=os.getpid(), host=this_host())
        if during is not None:
            during(rid)
        store.write_status(rid, "finished")
        return {"state": "finished"}

    return train


def sweep_then_one(store, s) -> tuple[list[str], str]:
    """ann queues a nine-run sweep, then bob queues one run."""
    ann = [service.submit(TINY.replace(seed=i), owner="ann", store=store, settings=s)
           for i in range(9)]
    bob = service.submit(TINY.replace(seed=100), owner="bob", store=store, settings=s)
    return ann, bob


def test_a_sweep_does_not_make_the_next_owner_wait(any_store):
    store, s = any_store, settings()
    ann, bob = sweep_then_one(store, s)
    assert service.queue_positions(store, s)[bob] == 2  # what the page says: second, not tenth
    started: list[str] = []
    Worker(store, s, exit_when_idle=True, trainer=recording_trainer(started)).run()
    assert started[:2] == [ann[0], bob]  # bob's run second, not tenth
    assert started[2:] == ann[1:]  # then ann's sweep in its order
    # nothing lost, nothing twice
    assert sorted(started) == sorted([*ann, bob])
    assert {store.read_status(r)["state"] for r in started} == {"finished"}
    assert service.queue_positions(store, s) == {}


def test_an_owner_who_used_the_device_waits_behind_one_who_did_not(any_store):
    store, s = any_store, settings()
    ann, bob = sweep_then_one(store, s)
    engine = store.engine
    now = 1_000_000.0
    # ann's first run trained for a minute; bob has used nothing: bob's run goes first
    assert scheduler.claim_next(engine, "w", CPU, window_s=HOUR, now=now - 60) == [ann[0]]
    assert scheduler.finish(engine, ann[0], "w", service.RunState.FINISHED, now=now)
    assert scheduler.fair_order(engine, CPU, window_s=HOUR, now=now)[0] == bob
    # a window that no longer sees ann's minute: the one waiting longest (ann) goes first
    assert scheduler.fair_order(engine, CPU, window_s=HOUR, now=now + 2 * HOUR)[0] == ann[1]


def test_a_lockstep_group_is_claimed_together_and_counts_its_time_once(any_store):
    """A comparison's runs are claimed in one transaction by one worker (they train together)
    and each counts 1/3 of the worker's time: ann's three-run comparison of 40 minutes does not
    rank her behind bob, who trained one run for 50 minutes."""
    store, s = any_store, settings()
    _, group = service.submit_group({"a": TINY.replace(seed=1), "b": TINY.replace(seed=2),
                                     "c": TINY.replace(seed=3)}, owner="ann", store=store,
                                    settings=s)
    seen = {}

    def during(rid):  # while the first run trains, its mates are held by the same worker
        seen.setdefault(rid, {r["run_id"]: (r["state"], r["worker"])
                              for r in db.run_rows(store.engine, group)})

    started: list[str] = []
    worker = Worker(store, s, exit_when_idle=True, trainer=recording_trainer(started, during))
    worker.run()
    first = seen[started[0]]
    assert {state for state, _ in first.values()} == {"running"}
    assert {holder for _, holder in first.values()} == {worker.id}
    assert sorted(started) == sorted(group)

    engine, now = store.engine, 2_000_000.0
    with db.writing(engine) as conn:  # the group held the worker 40 minutes, shares of 1/3
        conn.execute(db.runs.update().where(db.runs.c.run_id.in_(group)).values(
            started=now - 3000, ended=now - 600))
    bob_run = service.submit(TINY.replace(seed=50), owner="bob", store=store, settings=s)
    assert scheduler.claim_next(engine, "w2", CPU, window_s=HOUR, now=now - 3000) == [bob_run]
    assert scheduler.finish(engine, bob_run, "w2", service.RunState.FINISHED, now=now)
    ann_next = service.submit(TINY.replace(seed=60), owner="ann", store=store, settings=s)
    bob_next = service.submit(TINY.replace(seed=61), owner="bob", store=store, settings=s)
    assert scheduler.fair_order(engine, CPU, window_s=HOUR, now=now) == [ann_next, bob_next]


def test_lockstep_off_claims_one_run_at_a_time(any_store):
    store = any_store
    _, group = service.submit_group({"a": TINY.replace(seed=1), "b": TINY.replace(seed=2)},
                                    owner="ann", store=store, settings=settings())
    s = settings(lockstep_max_runs=1)
    held = []
    Worker(store, s, exit_when_idle=True, trainer=recording_trainer(
        [], lambda rid: held.append([r["run_id"] for r in db.run_rows(store.engine, group)
                                     if r["state"] == "running"]))).run()
    assert [len(h) for h in held] == [1, 1]
