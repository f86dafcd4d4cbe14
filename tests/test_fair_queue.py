"""The fair queue (samon_core/service/fairness.py): owners take turns by device time, and the
worker's message juggling loses no run and trains none twice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.configs import tiny_config

from samon_core import service
from samon_core.runs.store import RunStore
from samon_core.service.backend import get_queue
from samon_core.service.fairness import (
    device_seconds,
    device_shares,
    fair_candidates,
    fair_order,
)
from samon_core.service.hosts import this_host
from samon_core.service.recovery import recover
from samon_core.service.scan import RunRow
from samon_core.service.settings import load_settings
from samon_core.service.worker import Worker

TINY = tiny_config(epochs=1)
HOUR = 3600.0


def settings(**kw):
    return load_settings(environ={}, recover_every_s=HOUR, **kw)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def recording_trainer(started: list[str]):
    """A stand-in trainer that records which run starts and finishes it at once."""

    def train(config, run_dir, *, should_stop=None, data_dir=None, resume=False, **_):
        run_dir = Path(run_dir)
        store, rid = RunStore(run_dir.parent), run_dir.name
        started.append(rid)
        store.write_status(rid, "running", pid=os.getpid(), host=this_host())
        store.write_status(rid, "finished")
        return {"state": "finished"}

    return train


def sweep_then_one(store, s) -> tuple[list[str], str]:
    """ann queues a nine-run sweep, then bob queues one run."""
    ann = [service.submit(TINY.replace(seed=i), owner="ann", store=store, settings=s)
           for i in range(9)]
    bob = service.submit(TINY.replace(seed=100), owner="bob", store=store, settings=s)
    return ann, bob


def test_a_sweep_does_not_make_the_next_owner_wait(store):
    s = settings()
    ann, bob = sweep_then_one(store, s)
    started: list[str] = []
    Worker(store, s, exit_when_idle=True, trainer=recording_trainer(started)).run()
    assert started[:2] == [ann[0], bob]  # bob's run second, not tenth
    assert started[2:] == ann[1:]  # then ann's sweep in its order
    # nothing lost, nothing twice, no message left over or missing
    assert sorted(started) == sorted([*ann, bob])
    assert {store.read_status(r)["state"] for r in started} == {"finished"}
    assert get_queue(store, s).size() == 0
    assert recover(store, force=True, settings=s, now=1e12)["lost"] == []


def test_first_in_first_out_when_switched_off(store):
    s = settings(fair_queue=False)
    ann, bob = sweep_then_one(store, s)
    started: list[str] = []
    Worker(store, s, exit_when_idle=True, trainer=recording_trainer(started)).run()
    assert started == [*ann, bob]


def test_every_queued_run_keeps_one_message_when_another_goes_first(store):
    """A worker holding ann's message trains bob's run: ann's run gets its message back, bob's
    message is skipped later (bob's run is no longer queued)."""
    s = settings()
    ann, bob = sweep_then_one(store, s)
    queue = get_queue(store, s)
    # ann has used the device for a minute already (her first run, finished; its message is
    # stale now and skipped)
    store.write_status(ann[0], "finished")
    store.write_status(ann[0], "finished", started=store.read_status(ann[0])["ended"] - 60)
    assert fair_candidates(store, ann[1], s) == [bob, ann[1]]
    started: list[str] = []
    Worker(store, s, max_runs=1, trainer=recording_trainer(started)).run()
    assert started == [bob]  # taken with ann[1]'s message
    # ann[1]'s message is back (at the end); bob's own message is still there, stale: nine
    # messages for eight queued runs and one skip to come
    assert queue.pending_run_ids() == [*ann[2:], bob, ann[1]]
    assert fair_candidates(store, bob, s) == [bob]  # not queued: the worker skips it
    Worker(store, s, exit_when_idle=True, trainer=recording_trainer(started)).run()
    assert started == [bob, *ann[1:]] and queue.size() == 0


def row(run_id: str, owner: str, state: str, **status) -> RunRow:
    return RunRow(run_id, {"owner": owner, "created": status.get("queued_at", 0.0)},
                  {"state": state, **status})


def test_owners_are_ranked_by_device_time_in_the_window():
    now = 100 * HOUR
    rows = [
        row("a-done", "ann", "finished", started=now - 600, ended=now - 500),  # 100 s
        row("b-done", "bob", "finished", started=now - 600, ended=now - 590),  # 10 s
        row("c-old", "cy", "finished", started=now - 9 * HOUR, ended=now - 4 * HOUR),  # outside
        row("a-q", "ann", "queued", queued_at=now - 900),
        row("b-q", "bob", "queued", queued_at=now - 800),
        row("c-q", "cy", "queued", queued_at=now - 10),
    ]
    assert fair_order(rows, now, 3 * HOUR) == ["c-q", "b-q", "a-q"]
    # a run training now counts up to now: bob's 20-minute run puts bob behind ann
    rows.append(row("b-run", "bob", "running", started=now - 1200))
    assert fair_order(rows, now, 3 * HOUR) == ["c-q", "a-q", "b-q"]
    # a long window sees cy's old run (5 h): cy goes last
    assert fair_order(rows, now, 24 * HOUR)[-1] == "c-q"


def test_device_seconds_are_clipped_to_the_window():
    now = 10 * HOUR
    window = HOUR
    assert device_seconds(row("r", "a", "queued"), now, window) == 0.0  # never started
    done = row("r", "a", "finished", started=now - 2 * HOUR, ended=now - 0.5 * HOUR)
    assert device_seconds(done, now, window) == pytest.approx(0.5 * HOUR)
    requeued = row("r", "a", "queued", started=now - 600, updated=now - 300, queued_at=now - 300)
    assert device_seconds(requeued, now, window) == pytest.approx(300)
    assert device_seconds(row("r", "a", "running", started=now - 60), now, window) == 60


def test_ties_go_to_the_owner_waiting_longest():
    rows = [row("b1", "bob", "queued", queued_at=5.0), row("a1", "ann", "queued", queued_at=7.0),
            row("b2", "bob", "queued", queued_at=8.0)]
    assert fair_order(rows, 100.0, HOUR) == ["b1", "b2", "a1"]


def test_queue_positions_follow_the_fair_order(tmp_path):
    """The app's "position in the queue": Bob's one run after Ann's nine is second, not tenth,
    when the fair queue is on; tenth when it is off."""
    from support.configs import tiny_config

    from samon_core import service
    from samon_core.runs.store import RunStore
    from samon_core.service.positions import queue_positions
    from samon_core.service.settings import load_settings

    store = RunStore(tmp_path / "runs")
    s = load_settings(environ={}, max_queued_per_owner=20)
    ann = [service.submit(tiny_config(seed=i), owner="ann", store=store, settings=s)
           for i in range(9)]
    bob = service.submit(tiny_config(seed=99), owner="bob", store=store, settings=s)
    assert queue_positions(store, s)[bob] == 2 and queue_positions(store, s)[ann[0]] == 1
    off = load_settings(environ={}, max_queued_per_owner=20, fair_queue=False)
    assert queue_positions(store, off)[bob] == 10


def test_a_lockstep_group_counts_its_worker_time_once():
    """Three runs one worker trained together for 40 minutes count 40 minutes in all (each its
    share), not 2 hours: the student who ran one comparison is not ranked behind one who ran
    three runs one after the other for longer. A run that goes on alone after its mates ended
    counts the rest in full; runs of different workers do not share."""
    now = 100 * HOUR
    start, end = now - 3000, now - 600  # 40 minutes
    group = [row(f"g{i}", "ann", "finished", started=start, ended=end, worker="w1")
             for i in range(3)]
    shares = device_shares(group, now, 3 * HOUR)
    assert sum(shares.values()) == pytest.approx(2400)
    assert all(v == pytest.approx(800) for v in shares.values())
    # bob trained one run alone for 50 minutes on another worker: ann's comparison held a
    # worker for less (40 min; counted once per run it would be 2 h), so ann goes first
    rows = [*group, row("b1", "bob", "finished", started=start, ended=start + 3000, worker="w2"),
            row("a-q", "ann", "queued", queued_at=now - 60),
            row("b-q", "bob", "queued", queued_at=now - 30)]
    assert fair_order(rows, now, 3 * HOUR) == ["a-q", "b-q"]
    # one mate ends early (diverged at 10 min): the other two split the rest
    mixed = [row("m0", "cy", "diverged", started=start, ended=start + 600, worker="w3"),
             row("m1", "cy", "finished", started=start, ended=end, worker="w3"),
             row("m2", "cy", "running", started=start, worker="w3")]
    got = device_shares(mixed, now, 3 * HOUR)
    assert got["m0"] == pytest.approx(200)  # 600 s / 3
    assert got["m1"] == pytest.approx(200 + 1800 / 2)
    assert got["m2"] == pytest.approx(200 + 1800 / 2 + 600)  # alone since m1 ended
    assert sum(got.values()) == pytest.approx(3000)  # the worker was held 50 minutes
