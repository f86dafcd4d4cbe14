"""The job queue in one process: settings, limits, reuse, cancel, positions, crash recovery, and a
worker driven in-process with a stand-in trainer (the real trainer and real worker processes are
in test_worker_recovery.py)."""

from __future__ import annotations

import functools
import os
import pkgutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.configs import tiny_config

from samon_core import service
from samon_core.runs.io import write_json
from samon_core.runs.store import RunStore
from samon_core.service.backend import QUEUE_DIR, get_queue
from samon_core.service.claims import CANCEL_FILE
from samon_core.service.devices import resolve_devices
from samon_core.service.hosts import this_host
from samon_core.service.settings import DevicePolicy, QueueBackend, load_settings
from samon_core.service.worker import Worker
from samon_core.service.worker_records import workers_dir

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
            w.write({"kind": "resume", "epoch": start, "step": 0, "time": 0.0})
        for epoch in range(start, config.epochs):
            for _ in range(3):
                if hook is not None:
                    hook(rid, epoch, step)
                if should_stop is not None and should_stop():
                    store.write_status(rid, "cancelled", message="cancelled")
                    return {"state": "cancelled", "stopped_at_step": step}
                step += 1
                w.write({"kind": "step", "epoch": epoch + 1, "step": step, "time": 0.0})
            w.write({"kind": "epoch", "epoch": epoch + 1, "step": step, "time": 0.0})
            ckpt.write_text(str(epoch + 1))
    store.write_status(rid, "finished")
    return {"state": "finished"}


# ---------------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------------


def test_settings_defaults_file_and_environment(tmp_path):
    s = settings()
    assert s.queue is QueueBackend.SQLITE and s.max_epochs == 0 and s.auto_resume
    toml = tmp_path / "samon.toml"
    toml.write_text('max_epochs = 5\nallowed_models = ["tiny_resnet"]\ndevice_policy = "cpu-only"\n'
                    'queue = "redis"\n')
    env = {"SAMON_SETTINGS": str(toml), "SAMON_MAX_EPOCHS": "7", "SAMON_AUTO_RESUME": "no",
           "SAMON_MAX_QUEUE": ""}  # empty = unset
    s = load_settings(environ=env)
    assert s.max_epochs == 7  # the environment wins over the file
    assert s.allowed_models == ("tiny_resnet",) and s.device_policy is DevicePolicy.CPU_ONLY
    assert s.queue is QueueBackend.REDIS and s.auto_resume is False and s.max_queue == 0
    assert load_settings(environ=s.to_environ()) == s  # what the pool hands to its children

    toml.write_text("max_epoch = 5\n")
    with pytest.raises(ValueError, match="unknown setting 'max_epoch'"):
        load_settings(environ={"SAMON_SETTINGS": str(toml)})
    with pytest.raises(ValueError, match=r"setting max_epochs \(from \$SAMON_MAX_EPOCHS\)"):
        load_settings(environ={"SAMON_MAX_EPOCHS": "lots"})
    with pytest.raises(ValueError, match="one of any, cpu-only, gpu-only; got 'tpu'"):
        load_settings(environ={"SAMON_DEVICE_POLICY": "tpu"})
    with pytest.raises(ValueError, match=r"max_queue \(from \$SAMON_MAX_QUEUE\): must be >= 0"):
        load_settings(environ={"SAMON_MAX_QUEUE": "-1"})
    with pytest.raises(ValueError, match=r"max_epochs \(from .*samon.toml\): must be a whole"):
        toml.write_text("max_epochs = 2.5\n")
        load_settings(environ={"SAMON_SETTINGS": str(toml)})
    with pytest.raises(ValueError, match="queue_name .*letters, digits and '_'"):
        load_settings(environ={}, queue_name="a-b")


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
    assert get_queue(store, s).size() == 0
    service.submit(TINY.replace(epochs=1, train_subset=128), owner="ann", store=store,
                   settings=settings())  # the same store takes requests within the limits


def test_queue_limits_are_all_or_nothing(store):
    s = settings(max_queued_per_owner=2, max_queue=3)
    three = {f"r{i}": TINY.replace(seed=i) for i in range(3)}
    with pytest.raises(service.LimitExceeded, match=r"max_queued_per_owner = 2 .*'ann' has 0 runs"):
        service.submit_group(three, owner="ann", store=store, settings=s)
    assert store.run_ids() == [] and get_queue(store, s).size() == 0
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
    assert len(store.run_ids()) == 3 and get_queue(store, s).size() == 3


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


def test_positions_cancel_and_json_messages(store):
    s = settings()
    ann = service.register_owner("ann", store=store)
    ids = [service.submit(TINY.replace(seed=i), owner="ann", store=store, settings=s,
                          owner_key=ann) for i in range(3)]
    assert [service.queue_position(r, store=store) for r in ids] == [1, 2, 3]
    assert service.cancel(ids[1], owner_key=ann, store=store, settings=s) == "cancelled"
    assert service.cancel(ids[1], owner_key=ann, store=store, settings=s) == "cancelled"  # same
    assert store.read_status(ids[1])["message"] == "cancelled before it started"
    assert [service.queue_position(r, store=store) for r in ids] == [1, None, 2]
    assert get_queue(store, s).pending_run_ids() == ids  # the stale message is skipped later
    # messages are JSON, not pickle: a writable queue must not mean code execution on workers
    db = sqlite3.connect(store.root / QUEUE_DIR / "huey.db")
    blobs = [bytes(row[0]) for row in db.execute("select data from task")]
    db.close()
    assert len(blobs) == 3 and all(b.startswith(b'{"message":') for b in blobs)
    assert ids[0].encode() in blobs[0]



def test_workers_status_ages_heartbeats(store):
    s = settings(heartbeat_timeout_s=30.0)
    assert service.workers_status(store=store, settings=s) == []
    beat = time.time()
    record = {"id": "w1", "pid": os.getpid(), "host": this_host(), "device": "cpu",
              "state": "idle", "heartbeat": beat}
    workers_dir(store).mkdir(parents=True)
    write_json(workers_dir(store) / "w1.json", record)
    write_json(workers_dir(store) / "w2.json", {**record, "id": "w2", "pid": dead_pid()})
    (live,) = service.workers_status(store=store, settings=s, now=beat + 29.0)
    assert live["id"] == "w1" and live["heartbeat_age_s"] == 29.0
    assert service.workers_status(store=store, settings=s, now=beat + 31.0) == []


# ---------------------------------------------------------------------------------------------
# a worker in this process, with the stand-in trainer
# ---------------------------------------------------------------------------------------------


def test_worker_trains_skips_cancelled_and_gives_back_on_stop(store):
    s = settings(recover_every_s=3600.0)
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
    assert "its worker stopped" in status["message"] and "last checkpoint" in status["message"]
    assert service.queue_positions(store) == {ids[3]: 1, ids[2]: 2}
    assert list(workers_dir(store).glob("*.json")) == []  # the worker removed its record

    # the next worker resumes ids[2] from its checkpoint: every epoch exactly once
    Worker(store, s, exit_when_idle=True, trainer=fake_train).run()
    for rid in (ids[0], ids[2], ids[3]):
        assert store.read_status(rid)["state"] == "finished"
        assert list(store.epochs_df(rid)["epoch"]) == [1, 2]
    assert any(r["kind"] == "resume" for r in store.read_records(ids[2], resolve=False))


def test_stale_messages_are_skipped(store):
    """A message whose run is no longer queued (a duplicate, a deleted run, a cancelled run whose
    revocation did not reach the queue) trains nothing."""
    s = settings(recover_every_s=3600.0)
    finished, deleted, cancelled = (store.create_run(TINY.replace(seed=i)) for i in range(3))
    store.write_status(finished, "finished")
    store.write_status(cancelled, "cancelled")
    queue = get_queue(store, s)
    for rid in (finished, deleted, cancelled, "../escape"):
        queue.enqueue(queue.new_task(rid))
    store.delete_run(deleted, is_teacher=True)
    calls = []
    Worker(store, s, exit_when_idle=True, trainer=lambda *a, **k: calls.append(a)).run()
    assert calls == [] and queue.size() == 0
    assert [store.read_status(r)["state"] for r in (finished, cancelled)] == ["finished",
                                                                              "cancelled"]


def test_a_run_given_back_before_its_first_checkpoint_restarts_cleanly(store):
    s = settings(recover_every_s=3600.0)
    rid = service.submit(TINY, owner="ann", store=store, settings=s)
    worker: Worker

    def hook(run_id, epoch, step):
        if step == 2:
            worker.request_stop("test")

    worker = Worker(store, s, trainer=functools.partial(fake_train, hook=hook))
    worker.run()
    assert store.read_status(rid)["state"] == "queued"
    assert "from the start (no checkpoint yet)" in store.read_status(rid)["message"]
    Worker(store, s, exit_when_idle=True, trainer=fake_train).run()
    # the lost attempt's steps are dropped for readers: no step number appears twice
    assert list(store.steps_df(rid)["step"]) == [1, 2, 3, 4, 5, 6]
    assert list(store.epochs_df(rid)["epoch"]) == [1, 2]


def test_cancel_of_a_running_run_stops_it_at_the_next_step(store):
    s = settings(recover_every_s=3600.0)
    ann = service.register_owner("ann", store=store)
    rid = service.submit(TINY, owner="ann", store=store, settings=s, owner_key=ann)
    answers = []

    def hook(run_id, epoch, step):
        if step == 2:
            answers.append(service.cancel(run_id, owner_key=ann, store=store,
                                          settings=s))  # as the UI would

    worker = Worker(store, s, exit_when_idle=True, trainer=functools.partial(fake_train, hook=hook))
    worker.run()
    assert answers == [service.CANCELLING]
    status = store.read_status(rid)
    assert status["state"] == "cancelled"
    assert [r["step"] for r in store.steps_df(rid).to_dict("records")] == [1, 2]  # no step more
    assert service.submit(TINY, owner="bob", store=store, settings=s) != rid  # never shared again


def test_a_cancel_seen_only_through_the_queue_stops_the_run(store):
    """On NFS a worker on another host may not see the flag file yet: the queue's key works."""
    s = settings(recover_every_s=3600.0)
    rid = service.submit(TINY, owner="ann", store=store, settings=s)
    queue = get_queue(store, s)
    clock = [1000.0]

    def hook(run_id, epoch, step):
        if step == 1:
            queue.set_cancel(run_id)  # what cancel() does besides writing the file
            clock[0] += 1.05  # the key is read at most once a second

    Worker(store, s, exit_when_idle=True, trainer=functools.partial(fake_train, hook=hook),
           monotonic=lambda: clock[0]).run()
    assert store.read_status(rid)["state"] == "cancelled"
    assert list(store.steps_df(rid)["step"]) == [1]
    assert not queue.cancel_requested(rid)  # cleaned up


# ---------------------------------------------------------------------------------------------
# crash recovery and resume
# ---------------------------------------------------------------------------------------------


def _running(store, rid, **fields):
    status = {"state": "running", "heartbeat": time.time(), "updated": time.time(), **fields}
    write_json(store.run_dir(rid) / "status.json", status)


def test_recover_marks_dead_runs_and_resumes_them(store):
    s = settings(auto_resume=False, heartbeat_timeout_s=5.0, teacher_token=TEACHER)
    host = this_host()
    rid = {name: store.create_run(TINY.replace(seed=i)) for i, name in enumerate(
        ["dead", "alive", "remote_old", "remote_fresh", "cancelled", "pid_reused", "held"])}
    _running(store, rid["dead"], pid=dead_pid(), host=host, epoch=1, worker="w1")
    _running(store, rid["alive"], pid=os.getpid(), host=host)  # e.g. `samon run`: no worker
    _running(store, rid["remote_old"], pid=1, host="elsewhere", heartbeat=time.time() - 60)
    _running(store, rid["remote_fresh"], pid=1, host="elsewhere")
    _running(store, rid["cancelled"], pid=dead_pid(), host=host)
    (store.run_dir(rid["cancelled"]) / CANCEL_FILE).touch()
    # a worker run whose pid exists (reused by another process) but whose claim lock is free
    _running(store, rid["pid_reused"], pid=os.getpid(), host=host, worker="w2")
    # a worker run on this host whose worker holds the claim lock, even with an old heartbeat
    _running(store, rid["held"], pid=dead_pid(), host=host, worker="w3",
             heartbeat=time.time() - 600)

    with service.claim_lock(store.run_dir(rid["held"])) as mine:
        assert mine
        report = service.recover(store, force=True, settings=s)
    assert sorted(report["interrupted"]) == sorted(
        [rid["dead"], rid["remote_old"], rid["pid_reused"]])
    assert report["cancelled"] == [rid["cancelled"]] and report["requeued"] == []
    state = {k: store.read_status(v)["state"] for k, v in rid.items()}
    assert state == {"dead": "interrupted", "alive": "running", "remote_old": "interrupted",
                     "remote_fresh": "running", "cancelled": "cancelled",
                     "pid_reused": "interrupted", "held": "running"}
    assert "is gone" in store.read_status(rid["dead"])["message"]
    assert "no longer holds it" in store.read_status(rid["pid_reused"])["message"]
    assert "no heartbeat from elsewhere" in store.read_status(rid["remote_old"])["message"]

    # by hand: resume re-queues it; finished runs cannot be resumed
    service.resume(rid["dead"], teacher_token=TEACHER, store=store, settings=s)
    assert store.read_status(rid["dead"])["state"] == "queued"
    assert get_queue(store, s).pending_run_ids() == [rid["dead"]]
    store.write_status(rid["alive"], "finished")
    with pytest.raises(ValueError, match="is finished; only cancelled or interrupted"):
        service.resume(rid["alive"], teacher_token=TEACHER, store=store, settings=s)
    store.write_status(rid["held"], "finished")

    # automatically, at most max_auto_resumes times
    s_auto = settings(auto_resume=True, max_auto_resumes=1)
    _running(store, rid["remote_fresh"], pid=dead_pid(), host=host)
    assert service.recover(store, force=True, settings=s_auto)["requeued"] == [rid["remote_fresh"]]
    status = store.read_status(rid["remote_fresh"])
    assert status["state"] == "queued" and status["auto_resumes"] == 1
    _running(store, rid["remote_fresh"], pid=dead_pid(), host=host, auto_resumes=1)
    report = service.recover(store, force=True, settings=s_auto)
    assert report["interrupted"] == [rid["remote_fresh"]] and report["requeued"] == []


def test_recover_requeues_a_queued_run_whose_message_was_lost(store):
    s = settings(heartbeat_timeout_s=0.5)
    rid = service.submit(TINY, owner="ann", store=store, settings=s)
    queue = get_queue(store, s)
    queue.huey.flush()  # e.g. a Redis server restarted without persistence
    assert queue.pending_run_ids() == []
    assert service.recover(store, force=True, settings=s)["lost"] == []  # too young to be lost
    later = time.time() + 1.2  # beyond the grace of 2 x heartbeat_timeout_s
    assert service.recover(store, force=True, settings=s, now=later)["lost"] == [rid]
    assert queue.pending_run_ids() == [rid]
    assert service.recover(store, force=True, settings=s, now=later)["lost"] == []


def test_ensure_workers_can_be_disabled(store):
    info = service.ensure_workers(store=store, settings=settings(start_workers=False))
    assert info["enabled"] is False and info["started"] == 0
    assert "SAMON_START_WORKERS" in info["message"]
    assert service.workers_status(store=store, settings=settings()) == []


def test_service_modules_do_not_import_torch():
    """The app imports the job service: none of its modules may pull in torch (or streamlit)."""
    import samon_core.service as package

    names = [f"samon_core.service.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    assert "samon_core.service.worker" in names and "samon_core.service.pool" in names
    code = (f"import importlib, sys\nfor name in {names!r}:\n    importlib.import_module(name)\n"
            "sys.exit(1 if {'torch', 'streamlit'} & set(sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_preflight_knows_the_cifar_files_the_loader_reads():
    from samon_core.service.preflight import CIFAR_FILES
    from samon_core.train.data.cifar import CIFAR_SPECS

    expected = {name: (spec.base_folder, spec.files) for name, spec in CIFAR_SPECS.items()}
    assert expected == CIFAR_FILES
