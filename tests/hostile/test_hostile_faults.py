"""Faults that used to stop the job service for good (issue 18, items 7 and 8), on the database.

* one run with a damaged status (the status column no JSON, absurd numbers) must not stop the
  recovery or a worker: the others are recovered and trained;
* a FIFO (or a folder) in place of ``metrics.jsonl`` blocked the worker for ever while its
  heartbeat kept the run alive: now the run fails with the reason, and readers see no records;
* 20,000 resume markers made ``resolve_resumes`` quadratic: now linear (counted, not timed),
  with the old semantics (checked against the old code on random small inputs);
* leftovers of killed writers (a checkpoint's temporary file, ``.creating-*``, ``.deleting-*``)
  are swept when a worker starts, never while their writer lives;
* a slices request whose computation fails is done (the run stays finished), never retried for
  ever.

Each test enters through the public entry point that failed (``recover``, ``submit``, a
``Worker``), so that it fails on the code before the fix for the reason it names, not on an
import.
"""

from __future__ import annotations

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
from support.paths import REPO

from samon_core import service
from samon_core.runs import database as db
from samon_core.runs import io as store_io
from samon_core.runs import metrics as metrics_module
from samon_core.runs.metrics import resolve_resumes
from samon_core.runs.store import RunStore
from samon_core.service import scheduler
from samon_core.service.recovery import this_host
from samon_core.service.settings import load_settings
from samon_core.service.worker import Worker

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


def held_by_a_dead_worker(store: RunStore, rid: str, status: str | None = None) -> None:
    """``rid`` running on a worker of this host whose process is gone; ``status``: the text of
    its status column (damaged on purpose)."""
    scheduler.heartbeat(store.engine, "w-dead", host=this_host(), pid=dead_pid(), device="cpu")
    assert scheduler.claim_runs(store.engine, [rid], "w-dead") == [rid]
    if status is not None:
        with db.writing(store.engine) as conn:
            conn.execute(db.runs.update().where(db.runs.c.run_id == rid).values(status=status))


def _finish(config, run_dir, **kwargs):
    RunStore(Path(run_dir).parent).write_status(Path(run_dir).name, "finished")
    return {"state": "finished"}


# ---------------------------------------------------------------------------------------------
# item 7: one damaged status never stops the recovery or a worker
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["", "[1]", "{not json", '{"epoch": 1e999, "auto_resumes": "x"}',
                                    '{"interruptions": [1]}'])
def test_a_damaged_status_stops_neither_the_recovery_nor_the_worker(store, status):
    s = settings(heartbeat_timeout_s=1.0, auto_resume=True, max_auto_resumes=3)
    bad, healthy = (store.create_run(TINY.replace(seed=i), {"owner": "ann"}) for i in range(2))
    held_by_a_dead_worker(store, bad, status)
    held_by_a_dead_worker(store, healthy)
    report = within(30, lambda: service.recover(store, force=True, settings=s))
    assert sorted(report["reclaimed"]) == sorted([bad, healthy])
    listed = within(10, store.list_runs)
    assert set(listed["run_id"]) == {bad, healthy}
    within(60, Worker(store, s, exit_when_idle=True, trainer=_finish).run)
    assert {store.read_status(r)["state"] for r in (bad, healthy)} == {"finished"}


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
    kept = resolve_resumes(records)  # linear: the count of epoch reads above, not a clock
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


def _fake_slicer(monkeypatch, calls: list[str]):
    module = types.ModuleType("samon_core.train.slice_run")

    def slice_finished_run(store, run_id, **kwargs):
        calls.append(run_id)
        return 3

    module.slice_finished_run = slice_finished_run
    monkeypatch.setitem(sys.modules, "samon_core.train.slice_run", module)


def test_a_slices_request_that_fails_is_done_and_the_run_stays_finished(store, finished,
                                                                         monkeypatch, caplog):
    s = settings(heartbeat_timeout_s=1.0)
    assert service.request_slices(finished, teacher_token=TEACHER, points=3, store=store,
                                  settings=s) == "queued"
    module = types.ModuleType("samon_core.train.slice_run")

    def broken(store, run_id, **kwargs):
        raise RuntimeError("the checkpoint is not a checkpoint")

    module.slice_finished_run = broken
    monkeypatch.setitem(sys.modules, "samon_core.train.slice_run", module)
    within(30, Worker(store, s, exit_when_idle=True, trainer=_finish).run)
    assert service.pending_slices(store, finished) is None  # done: not taken again and again
    assert store.read_status(finished)["state"] == "finished"
    assert any("slices of run" in r.getMessage() for r in caplog.records)
    calls: list[str] = []
    _fake_slicer(monkeypatch, calls)  # asked again: a new request, computed once
    assert service.request_slices(finished, teacher_token=TEACHER, points=3, store=store,
                                  settings=s) == "queued"
    within(30, Worker(store, s, exit_when_idle=True, trainer=_finish).run)
    assert calls == [finished]


def test_slices_of_a_run_that_is_not_finished_are_refused(store, finished):
    s = settings()
    rid = store.create_run(TINY.replace(seed=3), {"owner": "teacher"})
    with pytest.raises(ValueError, match="has not finished"):
        service.request_slices(rid, teacher_token=TEACHER, store=store, settings=s)
    with pytest.raises(ValueError, match="2..101 points"):
        service.request_slices(finished, teacher_token=TEACHER, points=1000, store=store,
                               settings=s)
    assert service.pending_slices(store, finished) is None
