"""The job service in one process, on SQLite and on PostgreSQL: settings, limits, reuse, queue
positions, a worker driven in-process with a stand-in trainer (claims, cancel, stop and release,
a run taken back from a worker thought dead), crash recovery, slices requests. The real trainer
and real worker processes are in test_worker_recovery.py."""

from __future__ import annotations

import functools
import os
import pkgutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.configs import tiny_config
from support.paths import TESTS
from support.records import EPOCH_METRICS, STEP_METRICS, record

from samon_core import service
from samon_core.records import EpochRecord, ResumeRecord, StepRecord
from samon_core.runs.store import RunStore
from samon_core.service import scheduler
from samon_core.service.pool import resolve_devices
from samon_core.service.recovery import this_host
from samon_core.service.settings import DevicePolicy, load_settings
from samon_core.service.worker import Worker, claimable_devices

TINY = tiny_config()
TEACHER = "teacher-token-of-the-tests"


def settings(**kw):
    # environ={}: the developer's SAMON_* variables must not change what these tests see
    return load_settings(environ={}, **kw)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def fake_train(config, run_dir, *, callback=None, should_stop=None, data_dir=None, resume=False,
               hook=None):
    """Stand-in with the trainer's contract: 3 steps per epoch, should_stop polled every step,
    a 'checkpoint' per epoch, a resume marker when resuming."""
    run_dir = Path(run_dir)
    store, rid = RunStore(run_dir.parent), run_dir.name
    store.write_status(rid, "running", pid=os.getpid(), host=this_host())
    ckpt = run_dir / "checkpoint.pt"
    start, step = 0, 0
    with store.metrics_writer(rid) as w:
        if resume:
            start = int(ckpt.read_text())
            w.write(record(ResumeRecord, epoch=start, step=0, time=0.0))
        for epoch in range(start, config.epochs):
            for _ in range(3):
                if hook is not None:
                    hook(rid, epoch, step)
                if should_stop is not None and should_stop():
                    store.write_status(rid, "cancelled", message="cancelled")
                    return {"state": "cancelled", "stopped_at_step": step}
                step += 1
                w.write(record(StepRecord, without=STEP_METRICS, epoch=epoch + 1, step=step,
                               time=0.0))
            w.write(record(EpochRecord, without=EPOCH_METRICS, epoch=epoch + 1, step=step,
                           time=0.0))
            ckpt.write_text(str(epoch + 1))
    store.write_status(rid, "finished")
    return {"state": "finished"}


# ---------------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------------


def test_settings_defaults_file_and_environment(tmp_path):
    s = settings()
    assert s.database_url is None and s.checks_here and s.max_epochs == 0 and s.auto_resume
    toml = tmp_path / "samon.toml"
    toml.write_text('max_epochs = 5\nallowed_models = ["tiny_resnet"]\ndevice_policy = "cpu-only"\n'
                    'database_url = "postgresql+psycopg://lab:pw-of-the-lab@db/samon"\n')
    env = {"SAMON_SETTINGS": str(toml), "SAMON_MAX_EPOCHS": "7", "SAMON_AUTO_RESUME": "no",
           "SAMON_MAX_QUEUE": ""}  # empty = unset
    s = load_settings(environ=env)
    assert s.max_epochs == 7  # the environment wins over the file
    assert s.allowed_models == ("tiny_resnet",) and s.device_policy is DevicePolicy.CPU_ONLY
    assert s.auto_resume is False and s.max_queue == 0
    assert s.database == "postgresql+psycopg://lab:pw-of-the-lab@db/samon"
    assert not s.checks_here  # workers elsewhere: their machines may differ from this one
    assert load_settings(environ=s.to_environ()) == s  # what the pool hands to its children

    toml.write_text("max_epoch = 5\n")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \(from .*samon.toml\): max_epoch "
                       r"\(did you mean: max_epoch -> max_epochs\?\)"):
        load_settings(environ={"SAMON_SETTINGS": str(toml)})
    with pytest.raises(ValueError, match=r"setting max_epochs \(from \$SAMON_MAX_EPOCHS\)"):
        load_settings(environ={"SAMON_MAX_EPOCHS": "lots"})
    with pytest.raises(ValueError, match="one of any, cpu-only, gpu-only; got 'tpu'"):
        load_settings(environ={"SAMON_DEVICE_POLICY": "tpu"})
    with pytest.raises(ValueError, match=r"max_queue \(from \$SAMON_MAX_QUEUE\) must be an "
                       r"integer >= 0; got -1"):
        load_settings(environ={"SAMON_MAX_QUEUE": "-1"})
    with pytest.raises(ValueError, match=r"max_epochs \(from .*samon.toml\) must be an integer;"):
        toml.write_text("max_epochs = 2.5\n")
        load_settings(environ={"SAMON_SETTINGS": str(toml)})
    for gone in ("queue", "redis_url", "queue_name", "fair_queue"):  # the huey era's settings
        with pytest.raises(ValueError, match=rf"unknown setting\(s\) \(from .*\): {gone}\b"):
            toml.write_text(f"{gone} = 1\n")
            load_settings(environ={"SAMON_SETTINGS": str(toml)})


def test_the_database_url_is_shown_without_its_password():
    url = "postgresql+psycopg://lab:pw-of-the-lab@db/samon"
    s = settings(database_url=url)
    assert s.describe()["database_url"] == "postgresql+psycopg://lab:***@db/samon"
    assert "pw-of-the-lab" not in repr(s) and "pw-of-the-lab" not in str(s.describe())
    assert s.to_environ()["SAMON_DATABASE_URL"] == url  # the workers need it to connect
    with pytest.raises(ValueError, match="database_url .*postgresql") as bad:
        load_settings(environ={"SAMON_DATABASE_URL": "redis://:pw-of-the-lab@host:6379/0"})
    assert "pw-of-the-lab" not in str(bad.value)


def test_settings_follow_changes_of_their_sources(tmp_path):
    """load_settings reads its sources on every call: a changed variable or file applies at the
    next call, in the same process."""
    toml = tmp_path / "samon.toml"
    toml.write_text("[samon]\nmax_epochs = 3\n")
    env = {"SAMON_SETTINGS": str(toml)}
    assert load_settings(environ=env).max_epochs == 3
    env["SAMON_MAX_EPOCHS"] = "4"
    assert load_settings(environ=env).max_epochs == 4
    del env["SAMON_MAX_EPOCHS"]
    toml.write_text("[samon]\nmax_epochs = 12\n")
    assert load_settings(environ=env).max_epochs == 12
    assert load_settings(environ=env, max_epochs=5).max_epochs == 5  # arguments win


def test_worker_devices_follow_the_policy():
    s = settings()
    assert resolve_devices("cpu,cpu", s) == ["cpu", "cpu"]
    assert resolve_devices("0,1", s) == ["0", "1"]
    with pytest.raises(ValueError, match="gpu-only"):
        resolve_devices("cpu", settings(device_policy=DevicePolicy.GPU_ONLY))
    with pytest.raises(ValueError, match="cpu-only"):
        resolve_devices("0", settings(device_policy=DevicePolicy.CPU_ONLY))
    with pytest.raises(ValueError, match="neither 'cpu' nor a GPU"):
        resolve_devices("cuda0", s)
    # what a worker claims: a CPU worker never takes a run that asked for a GPU
    assert "cuda" not in claimable_devices("cpu") and "auto" in claimable_devices("cpu")
    assert {"auto", "cuda", "cuda:0", "cuda:1"} == set(claimable_devices("1"))


# ---------------------------------------------------------------------------------------------
# limits
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limits,change,text",
    [
        ({"max_epochs": 1}, {"epochs": 2}, "max_epochs = 1"),
        ({"max_train_subset": 200}, {}, "max_train_subset = 200"),
        ({"max_train_subset": 5000}, {"train_subset": 0}, "train_subset=0 means the whole"),
        ({"allowed_models": ("resnet20",)}, {}, "allowed_models = resnet20"),
        ({"max_model_params": 1000}, {}, "max_model_params = 1000"),
        ({"device_policy": DevicePolicy.CPU_ONLY}, {"device": "cuda"}, "device_policy = cpu-only"),
        ({"device_policy": DevicePolicy.GPU_ONLY}, {"device": "cpu"}, "device_policy = gpu-only"),
    ],
)
def test_config_limits_refuse_with_their_name_and_value(store, limits, change, text):
    s = settings(**limits)
    with pytest.raises(service.LimitExceeded, match=text) as err:
        service.submit(TINY.replace(**change), owner="ann", store=store, settings=s)
    assert err.value.limit == next(iter(limits))
    assert "nothing was queued" in str(err.value)
    with pytest.raises(service.LimitExceeded):  # a group with one bad config queues nothing either
        service.submit_group({"ok": TINY.replace(epochs=1, train_subset=128, device="auto"),
                              "bad": TINY.replace(**change)}, owner="ann", store=store,
                             settings=s)
    assert store.run_ids() == []
    assert service.queue_positions(store, s) == {}
    service.submit(TINY.replace(epochs=1, train_subset=128), owner="ann", store=store,
                   settings=settings())  # the same store takes requests within the limits


def test_queue_limits_are_all_or_nothing(store):
    s = settings(max_queued_per_owner=2, max_queue=3)
    three = {f"r{i}": TINY.replace(seed=i) for i in range(3)}
    with pytest.raises(service.LimitExceeded, match=r"max_queued_per_owner = 2 .*'ann' has 0 runs"):
        service.submit_group(three, owner="ann", store=store, settings=s)
    assert store.run_ids() == [] and service.queue_positions(store, s) == {}
    _, ids = service.submit_group({"a": TINY, "b": TINY.replace(seed=1)}, owner="ann",
                                  store=store, settings=s)
    assert len(set(ids)) == 2
    with pytest.raises(service.LimitExceeded, match="max_queued_per_owner"):
        service.submit(TINY.replace(seed=9), owner="ann", store=store, settings=s)
    # an identical request costs no queue slot: it shares the queued run
    assert service.submit(TINY, owner="ann", store=store, settings=s) == ids[0]
    service.submit(TINY.replace(seed=5), owner="bob", store=store, settings=s)
    with pytest.raises(service.LimitExceeded, match=r"max_queue = 3 .*: 3 runs are waiting"):
        service.submit(TINY.replace(seed=6), owner="cy", store=store, settings=s)
    assert len(store.run_ids()) == 3 and len(service.queue_positions(store, s)) == 3


# ---------------------------------------------------------------------------------------------
# reuse, sharing, cancel, positions
# ---------------------------------------------------------------------------------------------


def test_identical_requests_reuse_and_share(store):
    s = settings()
    key = {name: service.register_owner(name, store=store) for name in ("ann", "bob", "mallory")}
    first = service.submit_info(TINY, owner="ann", store=store, settings=s, owner_key=key["ann"])
    assert first["reused"] is False
    shared = service.submit_info(TINY, owner="bob", store=store, settings=s,
                                 owner_key=key["bob"])
    assert shared == {"run_id": first["run_id"], "reused": True, "reused_state": "queued"}
    other_seed = service.submit(TINY.replace(seed=1), owner="bob", store=store, settings=s,
                                owner_key=key["bob"])
    assert other_seed != first["run_id"]
    own = service.submit(TINY, owner="cy", store=store, settings=settings(share_active=False))
    assert own != first["run_id"]
    assert service.submit(TINY, owner="cy", store=store, settings=s, reuse=False) not in (
        first["run_id"], own)
    def requesters(run_id):
        return [r["owner"] for r in store.read_meta(run_id)["requesters"]]

    assert requesters(first["run_id"]) == ["ann", "bob"]

    # a stranger cannot cancel it; one requester of a shared run is only detached
    with pytest.raises(service.NotAllowed, match="did not request"):
        service.cancel(first["run_id"], owner_key=key["mallory"], store=store, settings=s)
    assert service.cancel(first["run_id"], owner_key=key["bob"], store=store,
                          settings=s) == "detached"
    assert requesters(first["run_id"]) == ["ann"]
    assert store.read_status(first["run_id"])["state"] == "queued"
    assert service.cancel(first["run_id"], owner_key=key["ann"], store=store,
                          settings=s) == "cancelled"

    # a finished identical run is returned instead of training again (even with share_active off)
    store.write_status(own, "finished")
    again = service.submit_info(TINY, owner="dan", store=store,
                                settings=settings(share_active=False))
    assert again == {"run_id": own, "reused": True, "reused_state": "finished"}


def test_submit_group_with_seeds(store):
    s = settings()
    group, ids = service.submit_group({"SGD": TINY.replace(method="base"), "SAM-ON": TINY},
                                      owner="ann", preset="cpu-quick-demo", seeds=2, store=store,
                                      settings=s)
    metas = [store.read_meta(r) for r in ids]
    assert [m["label"] for m in metas] == ["SGD (seed 0)", "SGD (seed 1)", "SAM-ON (seed 0)",
                                           "SAM-ON (seed 1)"]
    assert [store.read_config(r).seed for r in ids] == [0, 1, 0, 1]
    assert {m["group"] for m in metas} == {group} and {m["preset"] for m in metas} == {
        "cpu-quick-demo"}
    with pytest.raises(ValueError, match="seeds must be a positive integer"):
        service.submit_group({"SGD": TINY}, owner="ann", seeds=0, store=store, settings=s)


def test_positions_follow_turns_and_cancel(any_store):
    store, s = any_store, settings()
    ann = service.register_owner("ann", store=store)
    ids = [service.submit(TINY.replace(seed=i), owner="ann", store=store, settings=s,
                          owner_key=ann) for i in range(3)]
    bob = service.submit(TINY.replace(seed=9), owner="bob", store=store, settings=s)
    # owners take turns: bob's one run is expected second, not fourth
    assert service.queue_positions(store, s) == {ids[0]: 1, bob: 2, ids[1]: 3, ids[2]: 4}
    assert service.cancel(ids[1], owner_key=ann, store=store, settings=s) == "cancelled"
    assert [service.queue_position(r, store=store, settings=s) for r in ids] == [1, None, 3]


def test_workers_status_comes_from_the_database(any_store):
    store, s = any_store, settings(heartbeat_timeout_s=30.0)
    assert service.workers_status(store=store, settings=s) == []
    beat = time.time()
    scheduler.heartbeat(store.engine, "w1", host=this_host(), pid=os.getpid(), device="cpu",
                        now=beat)
    scheduler.heartbeat(store.engine, "w2", host=this_host(), pid=os.getpid(), device="cpu",
                        now=beat - 40)
    (live,) = service.workers_status(store=store, settings=s, now=beat + 29.0)
    assert live["id"] == "w1" and live["heartbeat_age_s"] == 29.0
    assert live["state"] == "idle" and live["run_id"] is None
    rid = store.create_run(TINY)
    assert scheduler.claim_next(store.engine, "w1", ["auto", "cpu"], window_s=3600) == [rid]
    (live,) = service.workers_status(store=store, settings=s, now=beat + 1)
    assert live["state"] == "training" and live["run_ids"] == [rid]
    assert service.workers_status(store=store, settings=s, now=beat + 31.0) == []


# ---------------------------------------------------------------------------------------------
# a worker in this process, with the stand-in trainer
# ---------------------------------------------------------------------------------------------


def test_worker_trains_skips_cancelled_and_gives_back_on_stop(any_store):
    store, s = any_store, settings(recover_every_s=3600.0)
    ann = service.register_owner("ann", store=store)
    ids = [service.submit(TINY.replace(seed=i), owner="ann", store=store, settings=s,
                          owner_key=ann) for i in range(4)]
    service.cancel(ids[1], owner_key=ann, store=store, settings=s)
    started = []
    worker: Worker

    def hook(rid, epoch, step):
        if step == 0:
            started.append(rid)
        if rid == ids[2] and epoch == 1 and step == 4:
            worker.request_stop("test")  # the worker stops in the middle of ids[2]

    worker = Worker(store, s, exit_when_idle=True, trainer=functools.partial(fake_train, hook=hook))
    assert worker.run() == 0
    assert started == [ids[0], ids[2]]  # the cancelled run never started
    states = [store.read_status(r)["state"] for r in ids]
    assert states == ["finished", "cancelled", "queued", "queued"]
    status = store.read_status(ids[2])
    assert "stopped (test)" in status["message"] and "from its checkpoint" in status["message"]
    assert "worker" not in status or status["worker"] is None
    assert service.queue_positions(store, s) == {ids[3]: 1, ids[2]: 2}
    assert service.workers_status(store=store, settings=s) == []  # the worker removed its row

    # the next worker resumes ids[2] from its checkpoint: every epoch exactly once
    Worker(store, s, exit_when_idle=True, trainer=fake_train).run()
    for rid in (ids[0], ids[2], ids[3]):
        assert store.read_status(rid)["state"] == "finished"
        assert list(store.epochs_df(rid)["epoch"]) == [1, 2]
    assert any(r["kind"] == "resume" for r in store.read_records(ids[2], resolve=False))


def test_a_run_given_back_before_its_first_checkpoint_restarts_cleanly(any_store):
    store, s = any_store, settings(recover_every_s=3600.0)
    rid = service.submit(TINY, owner="ann", store=store, settings=s)
    worker: Worker

    def hook(run_id, epoch, step):
        if step == 2:
            worker.request_stop("test")

    worker = Worker(store, s, trainer=functools.partial(fake_train, hook=hook))
    worker.run()
    assert store.read_status(rid)["state"] == "queued"
    Worker(store, s, exit_when_idle=True, trainer=fake_train).run()
    # the lost attempt's steps are dropped for readers: no step number appears twice
    assert list(store.steps_df(rid)["step"]) == [1, 2, 3, 4, 5, 6]
    assert list(store.epochs_df(rid)["epoch"]) == [1, 2]


def test_cancel_of_a_running_run_stops_it_at_the_next_step(any_store):
    store, s = any_store, settings(recover_every_s=3600.0)
    ann = service.register_owner("ann", store=store)
    rid = service.submit(TINY, owner="ann", store=store, settings=s, owner_key=ann)
    answers = []
    clock = [1000.0]

    def hook(run_id, epoch, step):
        if step == 2:
            answers.append(service.cancel(run_id, owner_key=ann, store=store,
                                          settings=s))  # as the UI would
            clock[0] += 1.05  # the column is read at most once a second

    worker = Worker(store, s, exit_when_idle=True, monotonic=lambda: clock[0],
                    trainer=functools.partial(fake_train, hook=hook))
    worker.run()
    assert answers == [service.CANCELLING]
    assert store.read_status(rid)["state"] == "cancelled"
    assert [r["step"] for r in store.steps_df(rid).to_dict("records")] == [1, 2]  # no step more
    assert service.submit(TINY, owner="bob", store=store, settings=s) != rid  # never shared again


def test_the_cancel_column_is_read_at_most_once_a_second(any_store):
    store = any_store
    rid = store.create_run(TINY)
    clock = [0.0]
    check = scheduler.cancel_check(store.engine, rid, clock=lambda: clock[0])
    assert check() is False
    scheduler.claim_next(store.engine, "w", ["auto", "cpu"], window_s=3600)
    scheduler.request_cancel(store.engine, rid)
    clock[0] = 0.9
    assert check() is False  # not read again yet
    clock[0] = 1.0
    assert check() is True


def test_a_run_taken_back_from_a_worker_stops_there(any_store):
    """A worker thought dead (its heartbeat stale, e.g. through a long outage) whose run was
    queued again and claimed by another worker stops training it at its next heartbeat, and
    writes nothing over the new holder's state: two workers never train one run."""
    store, s = any_store, settings(recover_every_s=3600.0, heartbeat_every_s=0.05)
    rid = service.submit(TINY.replace(epochs=50), owner="ann", store=store, settings=s)
    seen = {}
    worker: Worker

    def hook(run_id, epoch, step):
        if step == 1 and "taken" not in seen:
            later = time.time() + 120
            seen["taken"] = scheduler.reclaim_dead(store.engine, stale_s=30, now=later)
            seen["other"] = scheduler.claim_next(store.engine, "other", ["auto", "cpu"],
                                                 window_s=3600)
        time.sleep(0.01)

    worker = Worker(store, s, exit_when_idle=True, trainer=functools.partial(fake_train, hook=hook))
    done = threading.Thread(target=worker.run)
    done.start()
    done.join(30)
    assert not done.is_alive()
    assert seen == {"taken": [rid], "other": [rid]}
    status = store.read_status(rid)
    # the first worker's trainer stopped (its own 'cancelled' is the stand-in's doing); the run
    # was neither released nor finished by the worker: it still names the new holder
    assert status["worker"] == "other"
    assert len(store.steps_df(rid)) < 150


def test_a_failure_before_training_ends_the_run_failed_with_one_line(any_store):
    store = any_store
    rid = service.submit(TINY.replace(epochs=3), owner="ann", store=store, settings=settings())
    Worker(store, settings(max_epochs=2, recover_every_s=3600.0), exit_when_idle=True,
           trainer=fake_train).run()
    status = store.read_status(rid)
    assert status["state"] == "failed" and "max_epochs = 2" in status["message"]
    assert "\n" not in status["message"] and status.get("worker") is None


# ---------------------------------------------------------------------------------------------
# crash recovery and resume
# ---------------------------------------------------------------------------------------------


def _claimed_by(store, worker, *, pid, host=None, beat=None, **claim):
    scheduler.heartbeat(store.engine, worker, host=host or this_host(), pid=pid, device="cpu",
                        now=beat)
    return scheduler.claim_next(store.engine, worker, ["auto", "cpu"], window_s=3600, **claim)


def test_recover_requeues_the_runs_of_dead_workers(any_store):
    store = any_store
    s = settings(auto_resume=True, max_auto_resumes=1, heartbeat_timeout_s=5.0,
                 teacher_token=TEACHER)
    rid = {name: store.create_run(TINY.replace(seed=i)) for i, name in enumerate(
        ["dead_pid", "alive", "remote_old", "remote_fresh", "cancelled"])}
    old = time.time() - 60
    assert _claimed_by(store, "w-dead", pid=dead_pid()) == [rid["dead_pid"]]
    assert _claimed_by(store, "w-alive", pid=os.getpid()) == [rid["alive"]]
    assert _claimed_by(store, "w-old", pid=1, host="elsewhere", beat=old) == [rid["remote_old"]]
    assert _claimed_by(store, "w-fresh", pid=1, host="elsewhere") == [rid["remote_fresh"]]
    assert _claimed_by(store, "w-cancel", pid=dead_pid()) == [rid["cancelled"]]
    scheduler.request_cancel(store.engine, rid["cancelled"])

    later = time.time() + 10  # the claims are 10 s old, beyond heartbeat_timeout_s
    scheduler.heartbeat(store.engine, "w-alive", host=this_host(), pid=os.getpid(),
                        device="cpu", now=later)
    scheduler.heartbeat(store.engine, "w-fresh", host="elsewhere", pid=1, device="cpu",
                        now=later)
    report = service.recover(store, force=True, settings=s, now=later)
    assert sorted(report["reclaimed"]) == sorted(
        [rid["dead_pid"], rid["remote_old"], rid["cancelled"]])
    state = {k: store.read_status(v)["state"] for k, v in rid.items()}
    assert state == {"dead_pid": "queued", "alive": "running", "remote_old": "queued",
                     "remote_fresh": "running", "cancelled": "cancelled"}
    status = store.read_status(rid["dead_pid"])
    assert "w-dead died" in status["message"] and status["auto_resumes"] == 1

    # a dead process of this host is dead at once, without waiting for its heartbeat to age
    scheduler.heartbeat(store.engine, "w-dead2", host=this_host(), pid=dead_pid(), device="cpu")
    assert scheduler.claim_runs(store.engine, [rid["dead_pid"]], "w-dead2") == [rid["dead_pid"]]
    report = service.recover(store, force=True, settings=s)
    status = store.read_status(rid["dead_pid"])  # resumed once already: max_auto_resumes = 1
    assert report["reclaimed"] == [rid["dead_pid"]] and status["state"] == "interrupted"
    assert "resume it by hand" in status["message"]
    service.resume(rid["dead_pid"], teacher_token=TEACHER, store=store, settings=s)
    assert store.read_status(rid["dead_pid"])["state"] == "queued"
    assert service.recover(store, force=True, settings=s)["reclaimed"] == []  # idempotent


def test_ensure_workers_can_be_disabled(store):
    info = service.ensure_workers(store=store, settings=settings(start_workers=False))
    assert info["enabled"] is False and info["started"] == 0
    assert "SAMON_START_WORKERS" in info["message"]
    assert service.workers_status(store=store, settings=settings()) == []


def test_a_slices_request_is_computed_once(any_store, monkeypatch):
    """A finished run's slices request is taken by one worker in one transaction."""
    import types

    store = any_store
    rid = service.submit(TINY, owner="ann", store=store, settings=settings())
    Worker(store, settings(recover_every_s=3600.0), exit_when_idle=True,
           trainer=fake_train).run()
    (store.run_dir(rid) / "checkpoint.pt").write_text("2")
    assert service.request_slices(rid, teacher_token=TEACHER, points=3, store=store,
                                  settings=settings(teacher_token=TEACHER)) == "queued"
    assert service.request_slices(rid, teacher_token=TEACHER, points=3, store=store,
                                  settings=settings(teacher_token=TEACHER)) == "pending"
    calls = []
    fake = types.ModuleType("samon_core.train.slice_run")
    fake.slice_finished_run = lambda store, run_id, **kw: calls.append((run_id, kw)) or 1
    monkeypatch.setitem(sys.modules, "samon_core.train.slice_run", fake)
    for _ in range(2):  # two workers: one computes it
        Worker(store, settings(recover_every_s=3600.0), exit_when_idle=True,
               trainer=fake_train).run()
    assert [(r, kw["points"]) for r, kw in calls] == [(rid, 3)]
    assert service.pending_slices(store, rid) is None


def test_service_modules_do_not_import_torch():
    """The app imports the job service: none of its modules may pull in torch (or streamlit)."""
    import samon_core.service as package

    names = [f"samon_core.service.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    assert "samon_core.service.worker" in names and "samon_core.service.pool" in names
    code = (f"import importlib, sys\nfor name in {names!r}:\n    importlib.import_module(name)\n"
            "sys.exit(1 if {'torch', 'streamlit', 'huey', 'redis'} & set(sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_app_never_trains(tmp_path):
    """What the app calls (submit, positions, workers, recovery, cancel, ensure_workers with its
    pool off) never trains in the app's process: no torch imported, the run stays queued for a
    worker, and the app's process holds no run and has no worker row."""
    code = f"""
import os, sys
sys.path.insert(0, {str(TESTS)!r})
from support.configs import tiny_config
from samon_core import service
from samon_core.runs.store import RunStore
from samon_core.service.settings import load_settings
store = RunStore({str(tmp_path / "runs")!r})
s = load_settings(environ={{}}, start_workers=False)
rid = service.submit(tiny_config(), owner="ann", store=store, settings=s)
service.ensure_workers(store=store, settings=s)
service.recover(store, force=True, settings=s)
assert service.queue_positions(store, s) == {{rid: 1}}
assert service.workers_status(store=store, settings=s) == []
status = store.read_status(rid)
assert status["state"] == "queued" and status.get("worker") is None, status
sys.exit(1 if {{"torch", "streamlit"}} & set(sys.modules) else 0)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMON_")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
