"""Faults that used to stop the job service for good (issue 18, items 7 and 8).

* one bad ``status.json`` (counters that are lists or text, a folder, a JSON list, absurd time
  stamps) made every recovery sweep raise: now that run is skipped and reported, and the others
  are recovered and their lost messages sent again;
* a stuck holder of ``submit.lock`` blocked every submit for ever: now a clear ``LockTimeout``;
* a FIFO (or a folder) in place of ``metrics.jsonl`` blocked the worker for ever while its
  heartbeat kept the run alive: now the run fails with the reason, and readers see no records;
* 20,000 resume markers made ``resolve_resumes`` quadratic: now linear (counted, not timed),
  with the old semantics (checked against the old code on random small inputs);
* leftovers of killed writers (a checkpoint's temporary file, ``.creating-*``, ``.deleting-*``)
  are swept when a worker starts, never while their writer lives;
* a slices request made while the queue was down stayed "pending" for ever: the recovery sends
  it again.

Each test enters through the public entry point that failed (``recover``, ``submit``, a
``Worker``), so that it fails on the code before the fix for the reason it names, not on an
import.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest
from support.configs import tiny_config
from support.faults import within

from samon_core import service
from samon_core.runs import io as store_io
from samon_core.runs import metrics as metrics_module
from samon_core.runs.io import write_json
from samon_core.runs.metrics import resolve_resumes
from samon_core.runs.store import RunStore
from samon_core.service.backend import Queue, QueueUnavailable, get_queue
from samon_core.service.hosts import this_host
from samon_core.service.settings import load_settings
from samon_core.service.worker import Worker

REPO = Path(__file__).resolve().parents[1]
TINY = tiny_config()
TEACHER = "teacher-token-of-the-fault-tests"


@pytest.fixture(autouse=True)
def _env(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def settings(**kw):
    return load_settings(environ={}, **{"teacher_token": TEACHER, **kw})


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def running(store: RunStore, rid: str, **fields) -> None:
    status = {"state": "running", "heartbeat": time.time(), "updated": time.time(),
              "host": this_host(), "pid": dead_pid(), "worker": "w-dead", **fields}
    write_json(store.run_dir(rid) / "status.json", status)


# ---------------------------------------------------------------------------------------------
# item 7: one bad status.json never stops the recovery
# ---------------------------------------------------------------------------------------------


def test_recovery_skips_a_bad_status_and_recovers_the_others(store, caplog):
    s = settings(heartbeat_timeout_s=1.0, auto_resume=True, max_auto_resumes=3)
    names = ["healthy", "interruptions_list", "auto_resumes_text", "status_folder",
             "status_list", "heartbeat_huge", "epoch_huge", "lost", "lost_queued_at_huge"]
    rid = {name: store.create_run(TINY.replace(seed=i)) for i, name in enumerate(names)}
    running(store, rid["healthy"])
    running(store, rid["interruptions_list"], interruptions=[1])
    running(store, rid["auto_resumes_text"], auto_resumes="x", manual_resumes={"a": 1})
    folder = store.run_dir(rid["status_folder"]) / "status.json"
    folder.unlink()
    folder.mkdir()
    (store.run_dir(rid["status_list"]) / "status.json").write_text("[1]")
    running(store, rid["heartbeat_huge"], host="elsewhere", heartbeat=10**400)
    running(store, rid["epoch_huge"], epoch=10**4000)
    # queued runs whose message was lost (never enqueued), one with an absurd queued_at
    write_json(store.run_dir(rid["lost_queued_at_huge"]) / "status.json",
               {"state": "queued", "created": time.time(), "queued_at": 10**400})
    later = time.time() + 60
    report = within(30, lambda: service.recover(store, force=True, settings=s, now=later))
    assert report["skipped"] == [rid["status_folder"]]
    assert any("skipped" in r.getMessage() and rid["status_folder"] in r.getMessage()
               for r in caplog.records)
    back = [rid[n] for n in names if n != "status_folder"]
    lost = [rid["lost"], rid["lost_queued_at_huge"]]
    resumed = [r for r in back if r not in lost]
    assert sorted(report["interrupted"]) == sorted(resumed)
    assert sorted(report["requeued"]) == sorted(resumed)
    assert sorted(report["lost"]) == sorted(lost)
    assert sorted(get_queue(store, s).pending_run_ids()) == sorted(back)
    for r in back:
        assert store.read_status(r)["state"] == "queued"
    repaired = store.read_status(rid["interruptions_list"])
    assert repaired["interruptions"] == 1 and repaired["auto_resumes"] == 1
    assert store.read_status(rid["auto_resumes_text"])["auto_resumes"] == 1
    # the next sweep still runs, and still reports the run it cannot handle
    again = service.recover(store, force=True, settings=s, now=later)
    assert again["skipped"] == [rid["status_folder"]] and again["lost"] == []


def test_a_worker_serves_the_queue_past_a_run_with_a_bad_status(store):
    s = settings(heartbeat_timeout_s=1.0)
    bad = store.create_run(TINY, {"owner": "ann"})
    running(store, bad, interruptions=[1], auto_resumes="x")
    good = service.submit(TINY.replace(seed=1), owner="teacher", teacher_token=TEACHER,
                          store=store, settings=s)

    def finish(config, run_dir, **kwargs):
        RunStore(Path(run_dir).parent).write_status(Path(run_dir).name, "finished")
        return {"state": "finished"}

    worker = Worker(store, s, exit_when_idle=True, trainer=finish)
    within(60, worker.run)
    assert store.read_status(good)["state"] == "finished"
    assert store.read_status(bad)["state"] == "finished"  # recovered, re-queued, trained


# ---------------------------------------------------------------------------------------------
# item 7: a stuck holder of a lock
# ---------------------------------------------------------------------------------------------


def test_stuck_submit_lock_gives_a_clear_error_not_a_hang(store):
    assert settings().lock_timeout_s == 10.0  # the default: a stuck holder costs 10 s, once
    s = settings(lock_timeout_s=0.5)
    (store.root / ".queue").mkdir(parents=True)
    lock = store.root / ".queue" / "submit.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from samon_core.runs.io import file_lock
            with file_lock({str(lock)!r}):
                print("held", flush=True)
                time.sleep(120)
        """)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(service.StoreUnavailable, match=r"submit\.lock.*0\.5 s") as refused:
            within(30, lambda: service.submit(TINY, owner="teacher", teacher_token=TEACHER,
                                              store=store, settings=s))
        assert time.monotonic() - t0 < 10
        assert isinstance(refused.value, store_io.LockTimeout)
        assert store.run_ids() == []
    finally:
        holder.kill()
        holder.wait()
    # once the holder is gone the lock is free again
    assert service.submit(TINY, owner="teacher", teacher_token=TEACHER, store=store, settings=s)


def test_file_lock_waits_as_long_as_asked(tmp_path):
    path = tmp_path / "x.lock"
    with store_io.file_lock(path):
        done = []

        def other():
            with (pytest.raises(store_io.LockTimeout, match="x.lock"),
                  store_io.file_lock(path, timeout=0.2)):
                pass
            done.append(True)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(10)
        assert done == [True]
        with store_io.file_lock(path, blocking=False) as taken:  # one attempt, no error
            assert taken is False


# ---------------------------------------------------------------------------------------------
# item 7: a FIFO or a folder in place of a store file
# ---------------------------------------------------------------------------------------------


def _metrics_writing_trainer(config, run_dir, **kwargs):
    """A stand-in that writes its records as the trainer does (run.py: store.metrics_writer)."""
    store, rid = RunStore(Path(run_dir).parent), Path(run_dir).name
    with store.metrics_writer(rid) as writer:
        writer.write({"kind": "epoch", "epoch": 1, "step": 1, "time": 0.0})
    store.write_status(rid, "finished")
    return {"state": "finished"}


@pytest.mark.parametrize("what", ["fifo", "folder"])
def test_metrics_that_are_not_a_file_fail_the_run_instead_of_blocking_the_worker(store, what):
    s = settings()
    rid = service.submit(TINY, owner="teacher", teacher_token=TEACHER, store=store, settings=s)
    path = store.run_dir(rid) / "metrics.jsonl"
    os.mkfifo(path) if what == "fifo" else path.mkdir()
    worker = Worker(store, s, max_runs=1, exit_when_idle=True, trainer=_metrics_writing_trainer)
    within(30, worker.run)
    status = store.read_status(rid)
    assert status["state"] == "failed", status
    assert "metrics.jsonl" in status["message"] and "not a regular file" in status["message"]
    # readers: no records, no error, no hang (the pages' reader included)
    from samon_app.reader import RunReader

    assert within(10, lambda: store.read_records(rid)) == []
    assert within(10, lambda: store.epochs_df(rid)).empty
    assert within(10, lambda: RunReader(store).get(rid)) is not None
    with pytest.raises(store_io.DamagedFile, match="not a regular file"):
        within(10, lambda: store.metrics_writer(rid))


def test_status_fifo_neither_blocks_readers_nor_the_recovery(store):
    s = settings(heartbeat_timeout_s=1.0, auto_resume=False)
    rid = store.create_run(TINY)
    path = store.run_dir(rid) / "status.json"
    path.unlink()
    os.mkfifo(path)
    assert within(10, lambda: store.read_status(rid))["damaged"]
    # a run's last word on a full disk is written in place: not into a FIFO, which would block
    with pytest.raises(store_io.DamagedFile, match="not a regular file"):
        within(10, lambda: store_io.overwrite_in_place(path, "{}"))
    report = within(10, lambda: service.recover(store, force=True, settings=s))
    assert report["interrupted"] == [rid] and report["skipped"] == []
    assert store.read_status(rid)["state"] == "interrupted"


# ---------------------------------------------------------------------------------------------
# item 7: resume markers in linear time
# ---------------------------------------------------------------------------------------------


def _resolve_resumes_before_the_fix(records):
    """The semantics to keep: the quadratic implementation the fix replaced."""
    out = []
    for rec in records:
        if rec.get("kind") == "resume":
            resume_epoch = metrics_module._epoch_of(rec)
            if resume_epoch is not None:
                out = [r for r in out if (e := metrics_module._epoch_of(r)) is None
                       or e <= resume_epoch]
        out.append(rec)
    seen, kept = set(), []
    for rec in reversed(out):
        key = metrics_module._dedupe_key(rec)
        if key is not None:
            try:
                if key in seen:
                    continue
                seen.add(key)
            except TypeError:
                pass
        kept.append(rec)
    return kept[::-1]


EPOCHS = [None, 0, 1, 2, 3, 1.5, math.nan, math.inf, True, "2", 10**30, [1]]


def test_resolve_resumes_keeps_its_semantics():
    rng = random.Random(18)
    for _ in range(3000):
        records = [{"kind": rng.choice(["step", "epoch", "resume", "sharpness", "norm_stats"]),
                    "epoch": rng.choice(EPOCHS), "steps": rng.choice([1, 20]), "rho": 0.1,
                    "param": rng.choice(["gamma", "beta", [1]]), "i": i}
                   for i in range(rng.randint(0, 14))]
        expected = [r["i"] for r in _resolve_resumes_before_the_fix(records)]
        assert [r["i"] for r in resolve_resumes(records)] == expected, records


def test_resolve_resumes_is_linear_in_the_resume_markers(monkeypatch):
    """20,000 resumes (a run killed again and again): the work is counted in reads of a
    record's epoch, which the quadratic version did 10^8 times. The count stops the old code
    early instead of letting it run for minutes."""
    n = 20_000
    records = []
    for epoch in range(n):
        records.append({"kind": "epoch", "epoch": epoch + 1, "step": epoch, "time": 0.0})
        records.append({"kind": "resume", "epoch": epoch, "step": epoch, "time": 0.0})
    budget = 4 * len(records)
    calls = [0]
    original = metrics_module._epoch_of

    def counted(rec):
        calls[0] += 1
        if calls[0] > budget:
            raise AssertionError(f"more than {budget} epoch reads for {len(records)} records")
        return original(rec)

    monkeypatch.setattr(metrics_module, "_epoch_of", counted)
    t0 = time.perf_counter()
    kept = resolve_resumes(records)
    assert time.perf_counter() - t0 < 20  # about 0.02 s; generous for a loaded machine
    # each epoch record E+1 is dropped by the marker at E that follows it; the last survives
    assert [r for r in kept if r["kind"] == "epoch"] == []
    assert len(kept) == n  # the markers


# ---------------------------------------------------------------------------------------------
# item 8: leftovers of killed writers, swept when a worker starts
# ---------------------------------------------------------------------------------------------


def _aged(path: Path, seconds: float) -> Path:
    past = time.time() - seconds
    os.utime(path, (past, past), follow_symlinks=False)
    return path


def test_killed_checkpoint_write_leaves_a_temp_file_the_next_worker_sweeps(store):
    """A real checkpoint write killed between writing and renaming (os.replace never returns)."""
    rid = store.create_run(TINY)
    run_dir = store.run_dir(rid)
    code = textwrap.dedent(f"""
        import os, time, torch
        from pathlib import Path
        from samon_core.train import checkpoint
        os.replace = lambda *a: (print("written", flush=True), time.sleep(120))
        target = Path({str(run_dir)!r}) / "checkpoint.pt"
        checkpoint.atomic_torch_save({{"w": torch.zeros(3)}}, target)
    """)
    writer = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert writer.stdout.readline().strip() == "written"
        temps = [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
        assert len(temps) == 1 and temps[0].startswith(".checkpoint.pt.")
        # while its writer lives, a worker start leaves it alone
        Worker(store, settings(), exit_when_idle=True, trainer=_metrics_writing_trainer).run()
        assert (run_dir / temps[0]).exists()
    finally:
        writer.kill()
        writer.wait()
    Worker(store, settings(), exit_when_idle=True, trainer=_metrics_writing_trainer).run()
    assert not (run_dir / temps[0]).exists()  # its writer is gone: swept at once


def test_worker_start_sweeps_old_leftovers_and_keeps_fresh_ones(store):
    rid = store.create_run(TINY)
    run_dir = store.run_dir(rid)
    this = getattr(store_io, "THIS_HOST_TAG", this_host())
    old = [  # unchanged for over an hour, or of a process of this host that is gone: swept
        run_dir / ".checkpoint.pt.99999991.tmp",  # an older version's name (no host)
        run_dir / ".status.json.abc123.tmp",
        run_dir / ".status.json.otherhost~123~abcd.tmp",  # another host's
        store.root / ".owner_keys.json.x1y2.tmp",
    ]
    dead = run_dir / f".checkpoint.pt.{this}~{dead_pid()}~ab.tmp"  # fresh, but its writer died
    fresh = [run_dir / ".checkpoint.pt.99999992.tmp", run_dir / ".status.json.otherhost~1~e.tmp"]
    alive = run_dir / f".checkpoint.pt.{this}~{os.getpid()}~cd.tmp"  # old, but its writer lives
    real = run_dir / "checkpoint.pt"  # not a leftover
    for path in [*old, dead, *fresh, alive, real]:
        path.write_bytes(b"x")
    for path in [*old, alive, real]:
        _aged(path, 3700)
    creating, deleting = store.root / ".creating-r1-ab", store.root / ".deleting-r2-cd"
    fresh_creating = store.root / ".creating-r3-ef"
    for folder in (creating, deleting, fresh_creating):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "config.json").write_text("{}")
    for folder in (creating, deleting):
        _aged(folder, 3700)
    link = run_dir / ".evil.tmp"  # nothing the store writes
    link.symlink_to(real)
    _aged(link, 3700)

    Worker(store, settings(), exit_when_idle=True, trainer=_metrics_writing_trainer).run()
    for path in [*old, dead, creating, deleting]:
        assert not path.exists(), path
    for path in [*fresh, alive, real, fresh_creating, link]:
        assert path.exists() or path.is_symlink(), path
    assert store.run_ids() == [rid]


# ---------------------------------------------------------------------------------------------
# item 8: a slices request made while the queue is down
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def finished(store):
    rid = store.create_run(TINY, {"owner": "teacher"})
    store.write_status(rid, "finished")
    (store.run_dir(rid) / "checkpoint.pt").write_bytes(b"weights")
    return rid


def _queue_down(monkeypatch):
    def down(self, task):
        raise QueueUnavailable("cannot reach the queue (test)")

    monkeypatch.setattr(Queue, "enqueue", down)


def _fake_slicer(monkeypatch, calls: list[str]):
    module = types.ModuleType("samon_core.train.slice_run")

    def slice_finished_run(store, run_id, **kwargs):
        calls.append(run_id)
        return 3

    module.slice_finished_run = slice_finished_run
    monkeypatch.setitem(sys.modules, "samon_core.train.slice_run", module)


def test_slices_asked_while_the_queue_is_down_are_sent_again(store, finished, monkeypatch):
    s = settings(heartbeat_timeout_s=1.0)
    with monkeypatch.context() as m:
        _queue_down(m)
        with pytest.raises(QueueUnavailable):
            service.request_slices(finished, teacher_token=TEACHER, store=store, settings=s)
        assert service.request_slices(finished, teacher_token=TEACHER, store=store,
                                      settings=s) == "pending"
        # the recovery meets the outage too: the request stays
        report = service.recover(store, force=True, settings=s, now=time.time() + 60)
        assert report["slices"] == [] and store.run_ids() == [finished]
    queue = get_queue(store, s)
    assert queue.pending_run_ids() == []
    assert service.recover(store, force=True, settings=s)["slices"] == []  # too young
    report = service.recover(store, force=True, settings=s, now=time.time() + 60)
    assert report["slices"] == [finished]
    assert queue.pending_run_ids() == [finished]
    # sent once is enough while its message waits
    assert service.recover(store, force=True, settings=s, now=time.time() + 120)["slices"] == []
    calls: list[str] = []
    _fake_slicer(monkeypatch, calls)
    within(30, Worker(store, s, exit_when_idle=True, trainer=_metrics_writing_trainer).run)
    assert calls == [finished]
    assert service.pending_slices(store, finished) is None


def test_a_slices_request_that_keeps_losing_its_worker_is_dropped(store, finished):
    s = settings(heartbeat_timeout_s=1.0)
    assert service.request_slices(finished, teacher_token=TEACHER, store=store,
                                  settings=s) == "queued"
    queue = get_queue(store, s)
    sent = []
    for i in range(1, 6):
        queue.huey.flush()  # the worker that took the message died
        report = service.recover(store, force=True, settings=s, now=time.time() + 60 * i)
        sent.append((report["slices"], report["slices_dropped"]))
    assert sent[:2] == [([finished], []), ([finished], [])]
    assert sent[2] == ([], [finished])  # three messages in all: dropped, with a log line
    assert service.pending_slices(store, finished) is None
    assert sent[3:] == [([], []), ([], [])]


def test_a_fifo_as_slices_request_blocks_no_worker(store, finished):
    s = settings(heartbeat_timeout_s=1.0)
    os.mkfifo(store.run_dir(finished) / "landscape_requested")
    queue = get_queue(store, s)
    queue.enqueue(queue.new_task(finished))
    within(30, Worker(store, s, exit_when_idle=True, trainer=_metrics_writing_trainer).run)
    report = within(10, lambda: service.recover(store, force=True, settings=s,
                                                now=time.time() + 60))
    assert report["slices_dropped"] == [finished]
    assert not (store.run_dir(finished) / "landscape_requested").exists()


def test_an_unreadable_slices_request_is_dropped(store, finished):
    s = settings(heartbeat_timeout_s=1.0)
    (store.run_dir(finished) / "landscape_requested").write_text("{broken")
    report = service.recover(store, force=True, settings=s, now=time.time() + 60)
    assert report["slices_dropped"] == [finished]
    assert service.request_slices(finished, teacher_token=TEACHER, store=store,
                                  settings=s) == "queued"
    assert json.loads((store.run_dir(finished) / "landscape_requested").read_text())["points"]
