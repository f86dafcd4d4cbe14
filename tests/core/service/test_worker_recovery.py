"""Real worker processes against one database (SQLite and PostgreSQL): two workers sharing the
queue with cancel of a queued and of a running run, three workers never training one run,
kill -9 of a worker in the middle of an epoch (the run resumes from its checkpoint, every epoch
once), and a restart of the app's worker pool with runs still queued. The real trainer (tiny
runs on the synthetic set, one thread each) where it matters; the stand-in of
support/slow_trainer.py (no torch) where only the queue is tested."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.configs import tiny_config
from support.paths import REPO, TESTS

from samon_core import service
from samon_core.runs.store import RunStore
from samon_core.service.settings import load_settings

pytestmark = pytest.mark.slow

TINY = tiny_config()

# What the workers (and this process, for the jobs API) use: fast heartbeats and sweeps, no
# automatic resume unless a test asks for it.
FAST = {"SAMON_RECOVER_EVERY_S": "0.5", "SAMON_HEARTBEAT_EVERY_S": "0.5", "SAMON_POLL_S": "0.2",
        "SAMON_AUTO_RESUME": "0", "SAMON_HEARTBEAT_TIMEOUT_S": "10"}


def settings(**env):
    return load_settings(environ={**FAST, **env})


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    for var in list(os.environ):
        if var.startswith("SAMON_") and var != "SAMON_DATABASE_URL":  # any_store sets it
            monkeypatch.delenv(var)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the machine is shared: one thread per worker


class Workers:
    """Worker processes of one run store; their logs go to files shown when a wait fails.
    ``stand_in``: the stand-in trainer of support/slow_trainer.py instead of the real one."""

    def __init__(self, root: Path):
        self.root = root
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, *, stand_in: bool = False, **env_extra: str) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SAMON_") or k == "SAMON_DATABASE_URL"}
        env.update(FAST, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **env_extra)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS)])
        module = "support.slow_trainer" if stand_in else "samon_core.service.worker"
        log = self.root.parent / f"worker-{len(self.procs)}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen([sys.executable, "-m", module, "--devices", "cpu",
                                     "--runs-dir", str(self.root)], env=env, stdout=fh,
                                    stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
                         for p in self.logs if p.exists())

    def wait_for(self, what: str, predicate, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{self.tail()}")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(any_store):
    w = Workers(any_store.root)
    yield w
    w.stop_all()


def state(store: RunStore, rid: str) -> str:
    return store.read_status(rid)["state"]


def assert_epochs_once(store: RunStore, rid: str, epochs: int, *, gammas: bool = True) -> None:
    df = store.epochs_df(rid)
    assert list(df["epoch"]) == list(range(1, epochs + 1)), rid
    assert df["step"].is_monotonic_increasing
    if gammas:
        assert [r["epoch"] for r in store.norm_stats(rid, "gamma")] == list(range(epochs + 1))


def test_two_workers_finish_runs_and_cancel_queued_and_running(any_store, workers):
    store, s = any_store, settings()
    key = {name: service.register_owner(name, store=store) for name in ("ann", "cy")}
    long_run = service.submit(TINY.replace(epochs=60, seed=100), owner="ann", store=store,
                              settings=s, owner_key=key["ann"])
    tiny = [service.submit(TINY.replace(seed=i), owner="bob", store=store, settings=s)
            for i in range(2)]
    never = service.submit(TINY.replace(seed=50), owner="cy", store=store, settings=s,
                           owner_key=key["cy"])
    assert service.cancel(never, owner_key=key["cy"], store=store, settings=s) == "cancelled"
    first, second = workers.start(), workers.start()

    workers.wait_for("the long run to train", lambda: len(store.steps_df(long_run)) >= 2)
    assert state(store, long_run) == "running"
    t_cancel = time.monotonic()
    # 'cancelled' if the trainer saw the request before cancel() read the state back
    assert service.cancel(long_run, owner_key=key["ann"], store=store, settings=s) in (
        service.CANCELLING, "cancelled")
    workers.wait_for("the long run to stop", lambda: state(store, long_run) == "cancelled", 20)
    assert time.monotonic() - t_cancel < 10
    assert store.read_summary(long_run) is None
    assert len(store.epochs_df(long_run)) < 60

    workers.wait_for("the tiny runs", lambda: all(state(store, r) == "finished" for r in tiny), 120)
    for rid in tiny:
        assert_epochs_once(store, rid, 2)
    assert state(store, never) == "cancelled"
    assert "started" not in store.read_status(never)  # it never ran
    assert not store.metrics_path(never).exists()
    trained_by = {store.read_status(r)["worker"] for r in [long_run, *tiny]}
    assert len(trained_by) == 2, "both workers should have trained runs"
    assert {w["pid"] for w in service.workers_status(store=store, settings=s)} == {
        first.pid, second.pid}

    for proc in (first, second):  # SIGTERM: a clean exit that removes the worker's row
        proc.send_signal(signal.SIGTERM)
    assert [p.wait(20) for p in (first, second)] == [0, 0]
    assert service.workers_status(store=store, settings=s) == []


def test_three_workers_never_train_one_run(any_store, workers):
    store, s = any_store, settings()
    ids = [service.submit(TINY.replace(seed=i, epochs=5), owner=f"o{i % 3}", store=store,
                          settings=s) for i in range(9)]
    for _ in range(3):
        workers.start(stand_in=True)
    workers.wait_for("every run", lambda: all(state(store, r) == "finished" for r in ids), 90)
    for rid in ids:  # one trainer per run: each epoch record exactly once
        assert_epochs_once(store, rid, 5, gammas=False)
    assert len({store.read_status(r)["worker"] for r in ids}) >= 2  # they shared the queue


def test_kill9_mid_epoch_resumes_from_the_checkpoint_with_every_epoch_once(any_store, workers):
    store, s = any_store, settings()
    cfg = TINY.replace(epochs=6, train_subset=512, seed=7)
    ann = service.register_owner("ann", store=store)
    rid = service.submit(cfg, owner="ann", store=store, settings=s, owner_key=ann)
    procs = {p.pid: p for p in (workers.start(), workers.start())}

    def kill_mid_epoch(after_epoch: int) -> None:
        workers.wait_for(f"epoch {after_epoch} of the run",
                         lambda: len(store.epochs_df(rid)) >= after_epoch
                         and store.checkpoint_path(rid).is_file())
        steps = len(store.steps_df(rid))
        workers.wait_for("a step into the next epoch", lambda: len(store.steps_df(rid)) > steps)
        assert len(store.epochs_df(rid)) < cfg.epochs, "the run finished before the kill"
        proc = procs.pop(store.read_status(rid)["pid"])
        os.kill(proc.pid, signal.SIGKILL)  # no clean-up of any kind
        proc.wait()

    # 1) the worker training it dies; without auto_resume the other worker's recovery marks the
    #    run interrupted at once (a vanished process of this host), and it is resumed by hand
    kill_mid_epoch(1)
    service.recover(store, force=True, settings=s)  # what the app does when it lists runs
    workers.wait_for("the run to be interrupted", lambda: state(store, rid) == "interrupted", 10)
    assert "died" in store.read_status(rid)["message"]
    time.sleep(1.5)  # a few more sweeps: nothing resumes it without auto_resume
    assert state(store, rid) == "interrupted"
    service.resume(rid, owner_key=ann, store=store, settings=s)  # the surviving worker takes it

    # 2) that worker dies too: a worker started with auto_resume re-queues it at start-up
    kill_mid_epoch(len(store.epochs_df(rid)) + 1)
    assert not procs
    workers.start(SAMON_AUTO_RESUME="1")
    workers.wait_for("the run to finish", lambda: state(store, rid) == "finished", 180)
    assert store.read_status(rid)["auto_resumes"] == 1
    assert_epochs_once(store, rid, cfg.epochs)
    markers = [r["epoch"] for r in store.read_records(rid, resolve=False) if r["kind"] == "resume"]
    assert len(markers) == 2 and 1 <= markers[0] < markers[1] < cfg.epochs
    assert store.read_summary(rid)["epochs_done"] == cfg.epochs


def test_restarting_the_worker_pool_loses_no_run(tmp_path):
    store = RunStore(tmp_path / "runs")
    s = settings(SAMON_WORKER_DEVICES="cpu,cpu", SAMON_STOP_GRACE_S="30")
    ids = [service.submit(TINY.replace(seed=i), owner="ann", store=store, settings=s)
           for i in range(4)]
    try:
        info = service.ensure_workers(store=store, settings=s)
        assert info["started"] == 2, info
        assert service.ensure_workers(store=store, settings=s)["started"] == 0  # idempotent
        deadline = time.monotonic() + 60
        while not any(len(store.steps_df(r)) for r in ids):
            assert time.monotonic() < deadline, "no run started"
            time.sleep(0.1)
        deadline = time.monotonic() + 30
        while len(service.workers_status(store=store, settings=s)) < 2:
            assert time.monotonic() < deadline, "the workers did not report"
            time.sleep(0.1)
        service.stop_workers()  # like the app exiting: runs in progress go back to the queue
        states = [state(store, r) for r in ids]
        assert "running" not in states and states.count("queued") >= 2, states
        messages = [store.read_status(r).get("message", "") for r in ids]
        assert any("stopped" in m and "queued again" in m for m in messages), messages
        assert service.workers_status(store=store, settings=s) == []

        assert service.ensure_workers(store=store, settings=s)["started"] == 2  # the app restarts
        deadline = time.monotonic() + 150
        while not all(state(store, r) == "finished" for r in ids):
            assert time.monotonic() < deadline, [state(store, r) for r in ids]
            time.sleep(0.2)
        for rid in ids:
            assert_epochs_once(store, rid, 2)
    finally:
        service.stop_workers(timeout=20)
