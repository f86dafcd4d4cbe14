"""Run store: creation, status, listing, path safety, metrics reading, resume de-dup, races."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from support.paths import REPO
from support.records import record

from samon_core.records import EpochRecord, SharpnessRecord, StepRecord
from samon_core.runs.config import RunConfig
from samon_core.runs.io import file_lock
from samon_core.runs.metrics import MetricsWriter, resolve_resumes
from samon_core.runs.states import ACTIVE_STATES, TERMINAL_STATES, RunState
from samon_core.runs.store import RunStore, new_run_id, validate_run_id


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def _epoch(e, acc=0.5):
    return record(EpochRecord, without=("train_ce", "test_ce", "sam"), epoch=e, step=e * 10,
                  time=float(e), train_loss=1.0, train_acc=acc, test_loss=1.1, test_acc=acc,
                  epoch_time=1.0, eta_s=0.0)


def _step(e, s):
    return record(StepRecord, without=("load",), epoch=e, step=s, time=float(s), loss=1.0,
                  acc=0.5, lr=0.1, step_time=0.01, images_per_s=100.0)


# --- ids and paths ------------------------------------------------------------------------------


def test_new_run_id_format():
    rid = new_run_id()
    assert validate_run_id(rid) == rid
    date, clock, tail = rid.split("-")
    assert len(date) == 8 and len(clock) == 6 and len(tail) == 6
    int(tail, 16)


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "/etc",
        "a/b",
        "..",
        "a..b",
        ".hidden",
        "",
        "-x",
        "a" * 81,
        "a b",
        "a\\b",
        "x\x00",
        None,
        3,
    ],
)
def test_bad_run_ids_rejected(store, bad):
    with pytest.raises(ValueError):
        validate_run_id(bad)
    with pytest.raises(ValueError):
        store.run_dir(bad)


def test_run_dir_inside_root(store):
    assert store.run_dir("abc").parent == store.root
    assert store.run_dir("a.b_c-1").name == "a.b_c-1"


def test_symlink_escaping_root_rejected(store, tmp_path):
    store.root.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, store.root / "evil")
    with pytest.raises(ValueError):
        store.run_dir("evil")


def test_default_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SAMON_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert RunStore().root == (tmp_path / "elsewhere").resolve()
    monkeypatch.delenv("SAMON_RUNS_DIR")
    monkeypatch.chdir(tmp_path)
    assert RunStore().root == (tmp_path / "runs").resolve()


# --- creation, status, summary, listing ---------------------------------------------------------


def test_create_run_writes_files(store):
    cfg = RunConfig(epochs=3, scope="all")
    rid = store.create_run(cfg, {"owner": "ann", "group": "g1", "preset": "p"})
    d = store.run_dir(rid)
    # the state is the database's row, not a file
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "meta.json"]
    assert RunStore(store.root).read_status(rid)["state"] == "queued"
    assert store.read_config(rid) == cfg
    meta = store.read_meta(rid)
    assert meta["owner"] == "ann" and meta["group"] == "g1" and meta["preset"] == "p"
    assert meta["label"] == "SAM-all" and meta["config_hash"] == cfg.config_hash()
    assert abs(meta["created"] - time.time()) < 60
    status = store.read_status(rid)
    assert status["state"] == "queued" and "heartbeat" in status
    assert store.read_summary(rid) is None
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]  # no leftovers
    with pytest.raises(ValueError):
        store.create_run(cfg, run_id=rid)  # exists
    assert store.create_run(cfg, {"label": "mine"}, run_id="custom-1") == "custom-1"
    assert store.read_meta("custom-1")["label"] == "mine"
    with pytest.raises(TypeError):
        store.create_run(cfg.to_dict())  # type: ignore[arg-type]


def test_status_merge_and_states(tmp_path):
    clock = [1000.0]
    store = RunStore(tmp_path / "runs", clock=lambda: clock[0])
    rid = store.create_run(RunConfig())
    s1 = store.write_status(rid, "running", pid=123, epoch=1)
    assert s1["state"] == "running" and s1["pid"] == 123 and s1["started"] == 1000.0
    clock[0] += 0.01
    s2 = store.write_status(rid, RunState.RUNNING, epoch=2)
    assert s2["pid"] == 123 and s2["epoch"] == 2 and s2["started"] == s1["started"]
    assert s2["heartbeat"] > s1["heartbeat"] and s2["updated"] >= s2["heartbeat"] - 1
    hb = store.heartbeat(rid, progress=0.5)
    assert hb["state"] == "running" and hb["progress"] == 0.5 and hb["heartbeat"] >= s2["heartbeat"]
    assert store.read_status(rid)["progress"] == 0.5
    clock[0] += 5.0
    fin = store.write_status(rid, "finished")
    assert fin["state"] == "finished" and fin["ended"] == clock[0] and fin["epoch"] == 2
    seen = RunStore(store.root).read_status(rid)  # another reader sees the committed row
    assert seen["state"] == "finished" and type(seen["state"]) is str and seen["epoch"] == 2
    assert not (store.run_dir(rid) / "status.json").exists()
    with pytest.raises(ValueError, match="state must be one of queued, running, .*; got 'done'"):
        store.write_status(rid, "done")
    with pytest.raises(FileNotFoundError):
        store.write_status("no-such-run", "running")
    assert set(TERMINAL_STATES) < set(RunState) and "running" not in TERMINAL_STATES
    assert not TERMINAL_STATES & ACTIVE_STATES and "queued" in ACTIVE_STATES
    assert f"{RunState.QUEUED}" == "queued" and RunState("interrupted") in TERMINAL_STATES


def _files_era_folder(store, run_id, status_text):
    """A run folder as the files era wrote it (config, meta, status.json), without a row."""
    d = store.root / run_id
    d.mkdir(parents=True)
    RunConfig().save(d / "config.json")
    (d / "meta.json").write_text(json.dumps({"run_id": run_id, "owner": "ann", "created": 1.0,
                                             "label": "x", "config_hash": "h"}))
    (d / "status.json").write_text(status_text)
    return d


def test_a_files_era_folder_without_a_row_is_adopted_and_a_damaged_status_reads_interrupted(
        store):
    store.list_runs()  # the database exists (and imported the then empty store)
    _files_era_folder(store, "old-run", json.dumps({"state": "finished", "epoch": 7}))
    _files_era_folder(store, "damaged-run", "")  # e.g. after a power loss in the files era
    assert store.read_status("old-run")["state"] == "finished"
    assert store.read_status("old-run")["epoch"] == 7
    status = store.read_status("damaged-run")
    assert status["state"] == "interrupted" and status["damaged"] is True
    assert "empty file" in status["message"]
    assert sorted(store.list_runs()["state"]) == ["finished", "interrupted"]
    status = store.write_status("damaged-run", "queued")
    assert status["state"] == "queued" and "message" in status  # the import's reason stays


def test_a_folder_that_never_got_its_row_is_listed_with_its_problem_once_it_is_old(tmp_path):
    clock = [time.time()]
    store = RunStore(tmp_path / "runs", clock=lambda: clock[0])
    rid = store.create_run(RunConfig(), admit=False)  # a submit between folder and admission
    assert store.list_runs().empty  # not listed while its admission may still come
    clock[0] += 120
    df = store.list_runs()
    assert df["run_id"].tolist() == [rid] and "not in the database" in df["problem"][0]
    with pytest.raises(FileNotFoundError, match="not in the database"):
        store.read_status(rid)
    assert store.delete_run(rid, owner=None, is_teacher=True) == "deleted"


def test_summary_round_trip(store):
    rid = store.create_run(RunConfig())
    store.write_summary(rid, {"final_test_acc": 0.5, "best_test_acc": 0.6, "loss": math.nan})
    summary = store.read_summary(rid)
    assert summary["final_test_acc"] == 0.5 and math.isnan(summary["loss"])


def test_list_runs(store):
    empty = store.list_runs()
    assert len(empty) == 0 and "run_id" in empty.columns
    ids = []
    for i, (owner, method) in enumerate([("ann", "base"), ("bob", "sam"), ("ann", "sam")]):
        rid = store.create_run(
            RunConfig(method=method, seed=i, epochs=4),
            {"owner": owner, "group": "g", "created": 1000.0 + i},
        )
        ids.append(rid)
    store.write_status(ids[0], "finished", epoch=4, test_acc=0.3)
    store.write_summary(ids[0], {"final_test_acc": 0.4, "best_test_acc": 0.45, "epochs_done": 4})
    store.write_status(ids[1], "running", epoch=2, test_acc=0.2)
    (store.root / ".creating-x").mkdir()  # half-created run: ignored
    (store.root / "not-a-run").mkdir()  # folder without config: ignored
    (store.root / "stray.txt").write_text("x")

    df = store.list_runs()
    assert list(df["run_id"]) == ids[::-1]  # newest first
    row = df.set_index("run_id").loc[ids[0]]
    assert row["state"] == "finished" and row["label"] == "SGD" and row["method"] == "base"
    assert row["final_test_acc"] == 0.4 and row["best_test_acc"] == 0.45
    assert row["last_epoch"] == 4 and row["epochs"] == 4 and row["seed"] == 0
    assert row["heartbeat_age_s"] >= 0
    running = df.set_index("run_id").loc[ids[1]]
    assert running["last_epoch"] == 2 and running["final_test_acc"] == 0.2
    assert list(store.list_runs(owner="ann")["run_id"]) == [ids[2], ids[0]]
    assert list(store.list_runs(status="running")["run_id"]) == [ids[1]]
    assert len(store.list_runs(status=["running", "queued"])) == 2
    assert len(store.list_runs(group="other")) == 0


def test_list_runs_fast_for_200_runs(store, monkeypatch):
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # creation speed is not under test
    cfg = RunConfig()
    for i in range(200):
        rid = store.create_run(cfg.replace(seed=i), run_id=f"run-{i:03d}")
        if i % 2:
            store.write_summary(rid, {"final_test_acc": 0.1})
    t0 = time.perf_counter()
    df = store.list_runs()
    elapsed = time.perf_counter() - t0
    assert len(df) == 200
    assert elapsed < 2.0, elapsed  # about 0.05 s on a laptop


def test_delete_refuses_running(store):
    rid = store.create_run(RunConfig())
    store.write_status(rid, "running")
    with pytest.raises(ValueError, match="running"):
        store.delete_run(rid, owner="")
    assert store.run_dir(rid).is_dir()
    store.write_status(rid, "cancelled")
    with pytest.raises(ValueError, match="needs the owner"):
        store.delete_run(rid)
    assert store.delete_run(rid, owner="") == "deleted"
    assert not store.run_dir(rid).exists()
    assert len(store.list_runs()) == 0
    assert store.run_ids() == []
    with pytest.raises(FileNotFoundError):
        store.delete_run(rid, owner="")
    other = store.create_run(RunConfig())
    store.write_status(other, "running")
    store.delete_run(other, is_teacher=True, force=True)
    assert not store.exists(other)
    with pytest.raises(ValueError):
        store.delete_run("../x", is_teacher=True)


def test_owner_keys_live_in_the_database_as_digests_and_are_never_listed(store):
    key = store.register_owner("alice")  # before her run: a name with runs is not registered
    rid = store.create_run(RunConfig(), {"owner": "alice"})
    assert not (store.root / ".owner_keys.json").exists()
    assert store.run_ids() == [rid] and list(store.list_runs()["run_id"]) == [rid]
    assert store.owner_of_key(key) == "alice" and store.is_registered("alice")
    assert key not in (store.root / "samon.db").read_bytes().decode("latin-1")



# --- metrics ------------------------------------------------------------------------------------


def test_metrics_writer_and_frames(store):
    rid = store.create_run(RunConfig())
    with store.metrics_writer(rid) as w:
        w.write(_step(1, 1))
        w.write(_step(1, 2))
        w.write(_epoch(1, 0.3))
        w.write(record(SharpnessRecord, epoch=1, step=2, time=2.0, steps=1, rho=0.01, value=0.2,
                       m=128, n=256))
        for param in ("gamma", "beta"):
            w.write(
                {
                    "kind": "norm_stats",
                    "epoch": 0,
                    "param": param,
                    "bin_edges": [0, 1, 2],
                    "counts": [3, 4],
                    "layers": [{"name": "bn1", "mean": 1.0, "std": 0.1}],
                }
            )
        with pytest.raises(ValueError):
            w.write({"epoch": 1})  # no kind
    records = store.read_records(rid)
    assert [r["kind"] for r in records] == [
        "step",
        "step",
        "epoch",
        "sharpness",
        "norm_stats",
        "norm_stats",
    ]
    steps = store.steps_df(rid)
    assert list(steps["step"]) == [1, 2] and "kind" not in steps.columns
    assert list(steps.columns[:8]) == [
        "epoch",
        "step",
        "time",
        "loss",
        "acc",
        "lr",
        "step_time",
        "images_per_s",
    ]
    assert list(store.epochs_df(rid)["test_acc"]) == [0.3]
    assert list(store.sharpness_df(rid)["value"]) == [0.2]
    gamma = store.norm_stats(rid, "gamma")
    assert len(gamma) == 1 and gamma[0]["counts"] == [3, 4]
    with pytest.raises(ValueError):
        store.norm_stats(rid, "alpha")


def test_frames_empty_when_no_metrics(store):
    rid = store.create_run(RunConfig())
    assert store.read_records(rid) == []
    assert store.read_records_since(rid, 0) == ([], 0)
    assert len(store.steps_df(rid)) == 0 and "loss" in store.steps_df(rid).columns
    assert len(store.epochs_df(rid)) == 0 and "test_acc" in store.epochs_df(rid).columns
    assert len(store.sharpness_df(rid)) == 0


def test_writer_serialises_numpy_scalars_and_nan(store):
    np = pytest.importorskip("numpy")
    rid = store.create_run(RunConfig())
    with store.metrics_writer(rid) as w:
        w.write(
            {
                "kind": "step",
                "epoch": np.int64(1),
                "loss": np.float32(0.5),
                "counts": np.arange(3),
                "acc": math.nan,
            }
        )
    (rec,) = store.read_records(rid)
    assert rec["epoch"] == 1 and rec["loss"] == 0.5 and rec["counts"] == [0, 1, 2]
    assert math.isnan(rec["acc"])


def test_reader_ignores_partial_trailing_line(store):
    rid = store.create_run(RunConfig())
    path = store.metrics_path(rid)
    good = json.dumps(_step(1, 1)) + "\n"
    path.write_text(good + '{"kind": "step", "epoch": 1, "st')
    assert [r["step"] for r in store.read_records(rid)] == [1]
    recs, offset = store.read_records_since(rid, 0)
    assert len(recs) == 1 and offset == len(good.encode())
    # the line completes: the incremental reader picks it up from the offset
    with open(path, "a") as fh:
        fh.write('ep": 2}\n')
    recs2, offset2 = store.read_records_since(rid, offset)
    assert recs2 == [{"kind": "step", "epoch": 1, "step": 2}]
    assert offset2 == path.stat().st_size
    assert store.read_records_since(rid, offset2) == ([], offset2)


def test_reader_skips_malformed_lines_and_writer_repairs_torn_line(store):
    rid = store.create_run(RunConfig())
    path = store.metrics_path(rid)
    path.write_text(json.dumps(_step(1, 1)) + "\nnot json\n[1, 2]\n" + '{"kind": "st')
    with store.metrics_writer(rid) as w:  # a resumed writer after a crash mid-line
        w.write(_step(1, 2))
    assert [r["step"] for r in store.read_records(rid)] == [1, 2]


def test_offset_beyond_file_restarts(store):
    rid = store.create_run(RunConfig())
    with store.metrics_writer(rid) as w:
        w.write(_step(1, 1))
    recs, offset = store.read_records_since(rid, 10_000)
    assert len(recs) == 1 and offset < 10_000


# --- resume de-duplication ----------------------------------------------------------------------


def test_resume_drops_lost_epochs(store):
    rid = store.create_run(RunConfig(epochs=5))
    with store.metrics_writer(rid) as w:
        for e in (1, 2, 3):
            w.write(_step(e, e * 10 - 5))
            w.write(_epoch(e, acc=0.1 * e))
        w.write(_step(4, 35))  # epoch 4 in progress; crash; last checkpoint after epoch 2
    with store.metrics_writer(rid) as w:
        w.write({"kind": "resume", "epoch": 2, "step": 20, "time": 2.0})
        for e in (3, 4, 5):
            w.write(_step(e, e * 10 - 5))
            w.write(_epoch(e, acc=0.2 * e))
    epochs = store.epochs_df(rid)
    assert list(epochs["epoch"]) == [1, 2, 3, 4, 5]
    assert list(epochs["test_acc"]) == pytest.approx([0.1, 0.2, 0.6, 0.8, 1.0])
    assert list(store.steps_df(rid)["step"]) == [5, 15, 25, 35, 45]
    records = store.read_records(rid)
    assert sum(r["kind"] == "resume" for r in records) == 1
    raw = store.read_records(rid, resolve=False)
    assert len(raw) == len(records) + 3  # the lost epoch-3 step and epoch records, the epoch-4 step


def test_resolve_resumes_rules():
    recs = [
        _epoch(1),
        _epoch(2),
        {"kind": "note"},
        _step(3, 1),
        {"kind": "resume", "epoch": 1},
        _epoch(2, 0.9),
        {"kind": "resume", "epoch": 2},
        _epoch(3),
    ]
    out = resolve_resumes(recs)
    assert [(r["kind"], r.get("epoch")) for r in out] == [
        ("epoch", 1),
        ("note", None),
        ("resume", 1),
        ("epoch", 2),
        ("resume", 2),
        ("epoch", 3),
    ]
    assert out[3]["test_acc"] == 0.9
    # without a marker, a repeated epoch record: the later wins
    out = resolve_resumes([_epoch(1, 0.1), _epoch(1, 0.2)])
    assert [r["test_acc"] for r in out] == [0.2]
    assert resolve_resumes([]) == []


# --- a reader racing a writer -------------------------------------------------------------------


def _check_growing(seen_counts, records):
    for i, rec in enumerate(records):
        assert rec == {
            "kind": "step",
            "epoch": 1,
            "step": i,
            "time": float(i),
            "pad": "x" * (i % 300),
        }
    seen_counts.append(len(records))


def test_reader_races_writer_thread(store):
    rid = store.create_run(RunConfig())
    n = 5000
    writer = store.metrics_writer(rid, fsync_every_s=None)
    done = threading.Event()

    def produce():
        try:
            for i in range(n):
                writer.write(
                    {
                        "kind": "step",
                        "epoch": 1,
                        "step": i,
                        "time": float(i),
                        "pad": "x" * (i % 300),
                    }
                )
        finally:
            writer.close()
            done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    counts: list[int] = []
    incremental: list[dict] = []
    offset = 0
    while True:
        finished = done.is_set()
        _check_growing(counts, store.read_records(rid))
        new, offset = store.read_records_since(rid, offset)
        incremental.extend(new)
        if finished:
            break
    thread.join()
    assert counts == sorted(counts) and counts[-1] == n
    _check_growing([], incremental)
    assert len(incremental) == n


def test_reader_races_writer_subprocess(store):
    rid = store.create_run(RunConfig())
    n = 5000
    script = textwrap.dedent(
        f"""
        from samon_core.runs.store import RunStore
        store = RunStore({str(store.root)!r})
        with store.metrics_writer({rid!r}, fsync_every_s=0.05) as w:
            for i in range({n}):
                w.write({{"kind": "step", "epoch": 1, "step": i, "time": float(i),
                          "pad": "x" * (i % 300)}})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stderr=subprocess.PIPE)
    counts: list[int] = []
    offset = 0
    incremental: list[dict] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        finished = proc.poll() is not None
        _check_growing(counts, store.read_records(rid))
        new, offset = store.read_records_since(rid, offset)
        incremental.extend(new)
        store.list_runs()  # listing while writing never fails either
        if finished:
            break
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert counts == sorted(counts) and counts[-1] == n
    _check_growing([], incremental)
    assert len(incremental) == n


def test_status_readers_race_status_writer(store):
    rid = store.create_run(RunConfig())
    stop = threading.Event()
    errors: list[BaseException] = []

    def hammer():
        try:
            for i in range(200):
                store.write_status(rid, "running", epoch=i)
                store.heartbeat(rid)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=hammer)
    thread.start()
    last = -1
    while not stop.is_set():
        status = store.read_status(rid)
        epoch = status.get("epoch", -1)
        assert epoch >= last
        last = epoch
    thread.join()
    assert not errors
    assert store.read_status(rid)["epoch"] == 199


def test_file_lock_is_exclusive_across_processes_and_freed_by_death(tmp_path):
    """The lock the store, the submissions and the workers' claims use: held by one process at a
    time, and free again when its holder dies (a free claim lock means a dead worker)."""
    path = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from samon_core.runs.io import file_lock
            with file_lock({str(path)!r}):
                print("held", flush=True)
                time.sleep(60)
        """)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with file_lock(path, blocking=False) as taken:
            assert taken is False
        holder.kill()  # SIGKILL: no clean-up of any kind
        holder.wait()
        with file_lock(path, blocking=False) as taken:
            assert taken is True
            with file_lock(path, blocking=False) as again:  # one holder at a time, even here
                assert again is False
    finally:
        holder.kill()
        holder.wait()
    # a lock never re-creates a deleted run folder
    with pytest.raises(FileNotFoundError), file_lock(tmp_path / "gone" / ".lock", blocking=False):
        pass
    assert not (tmp_path / "gone").exists()


def test_metrics_writer_direct(tmp_path):
    with MetricsWriter(tmp_path) as w:
        w.write({"kind": "x", "epoch": 0})
    assert (tmp_path / "metrics.jsonl").read_text() == '{"kind":"x","epoch":0}\n'
    with pytest.raises(ValueError):
        w.write({"kind": "x"})  # closed


def test_the_first_requester_who_leaves_hands_the_run_to_the_next(store):
    rid = store.create_run(RunConfig(), {"owner": "ann"})
    store.add_requester(rid, "bob")
    assert store.release_request(rid, "ann") is False  # bob still wants it
    assert store.read_meta(rid)["owner"] == "bob"
    assert [r["owner"] for r in store.read_meta(rid)["requesters"]] == ["bob"]
    assert store.list_runs()["owner"].tolist() == ["bob"]
    assert store.release_request(rid, "bob") is True  # the last one acts on the whole run
