"""Hostile inputs and faults against the service, the store and the CLI.

Every case checks the same promises: a clear answer (CLI: exit code 2 for bad input, 1 for a
store or queue that cannot be used, one ``samon: error:`` line, never a traceback, long input
cut), no run folder for a rejected input, and nothing lost that was stored before (the runs of
the ``seeded`` store are still listed with their metrics). In-process wherever possible; faults
use a tiny tmpfs (full disk, read-only) when this machine lets the test mount one, a database
that goes away (a PostgreSQL server stopped and started again; SQLite's file locked), and damaged
files written by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from support.configs import tiny_config
from support.faults import tmpfs, within
from support.paths import REPO, TESTS

from samon_core import cli, service
from samon_core.runs import database as db
from samon_core.runs.io import atomic_write_text, write_json
from samon_core.runs.store import RunStore
from samon_core.service import preflight
from samon_core.service.settings import load_settings
from samon_core.service.worker import Worker

TINY = tiny_config()
LONG = "x" * 100_000
MAX_ERROR_CHARS = 1500  # a whole error message, quoted input included
TEACHER = "teacher-token-of-the-tests"


@pytest.fixture(autouse=True)
def _clean_env(clean_env):
    # no samon.toml, no ./runs, no ./data of the developer (conftest.clean_env)
    clean_env.setattr(preflight, "online", lambda timeout=3.0: False)  # the lab is offline


def settings(**kw):
    return load_settings(environ={}, **kw)


def fake_epochs(store: RunStore, rid: str, epochs: int) -> None:
    with store.metrics_writer(rid) as w:
        for e in range(1, epochs + 1):
            w.write({"kind": "epoch", "epoch": e, "step": 3 * e, "time": float(e),
                     "test_acc": 0.1 * e, "test_loss": float("nan") if e == 2 else 1.0})


@pytest.fixture
def seeded(tmp_path):
    """A store with two finished runs (two epochs of metrics each) that must survive every
    case."""
    store = RunStore(tmp_path / "runs")
    ids = []
    for seed, owner in ((7, "alice"), (8, "bob")):
        rid = store.create_run(TINY.replace(seed=seed), {"owner": owner})
        fake_epochs(store, rid, 2)
        store.write_status(rid, "finished", epoch=2)
        ids.append(rid)
    return store, ids


def snapshot(store: RunStore) -> dict[str, tuple]:
    df = store.list_runs()
    return {r: (s, tuple(store.epochs_df(r)["epoch"])) for r, s in zip(df["run_id"], df["state"],
                                                                        strict=True)}


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        rc = cli.main(args)
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_clear_line(err: str) -> None:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith(("samon: error", "samon worker: error",
                                                            "samon run: error"))
             or "error:" in ln]
    assert lines, err
    assert len(err) < MAX_ERROR_CHARS + 2000, len(err)  # usage text + one cut line at most
    assert all(len(ln) < MAX_ERROR_CHARS for ln in lines), [len(ln) for ln in lines]


# ---------------------------------------------------------------------------------------------
# CLI: rejected input -> exit 2, one line, no run folder, nothing lost
# ---------------------------------------------------------------------------------------------

RUN = ["run", "--preset", "cpu-quick-demo", "--method", "SGD", "--progress", "none"]


def _config_file(tmp_path: Path, content: bytes | str) -> str:
    path = tmp_path / "cfg.json"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


CLI_REJECTS = {
    "empty preset": (["run", "--preset", ""], {}),
    "long preset": (["run", "--preset", LONG], {}),
    "unknown method": ([*RUN[:3], "--method", "NOPE"], {}),
    "unknown model": ([*RUN, "--set", "model=nope"], {}),
    "missing cuda device": ([*RUN, "--set", "device=cuda:99"], {}),
    "cuda without gpu": ([*RUN, "--set", "device=cuda"], {"CUDA_VISIBLE_DEVICES": ""}),
    "mps off a mac": ([*RUN, "--set", "device=mps"], {}),
    "cifar100 offline without files": ([*RUN, "--set", "dataset=cifar100"], {}),
    "cifar10 offline without files": ([*RUN, "--set", "dataset=cifar10"], {}),
    "oversized train_subset": ([*RUN, "--set", "train_subset=99999999"], {}),
    "oversized test_subset": ([*RUN, "--set", "test_subset=99999999"], {}),
    "max_epochs limit": ([*RUN, "--set", "epochs=3"], {"SAMON_MAX_EPOCHS": "2"}),
    "max_train_subset limit": (RUN, {"SAMON_MAX_TRAIN_SUBSET": "10"}),
    "allowed_models limit": (RUN, {"SAMON_ALLOWED_MODELS": "resnet20"}),
    "max_model_params limit": (RUN, {"SAMON_MAX_MODEL_PARAMS": "1000"}),
    "gpu-only policy": ([*RUN, "--set", "device=cpu"], {"SAMON_DEVICE_POLICY": "gpu-only"}),
    "bad setting": (RUN, {"SAMON_MAX_EPOCHS": "lots"}),
    "negative epochs": ([*RUN, "--set", "epochs=-1"], {}),
    "text epochs": ([*RUN, "--set", "epochs=abc"], {}),
    "nan lr": ([*RUN, "--set", "lr=nan"], {}),
    "inf lr": ([*RUN, "--set", "lr=inf"], {}),
    "unknown field": ([*RUN, "--set", "nosuchfield=1"], {}),
    "override without =": ([*RUN, "--set", "epochs"], {}),
    "long field name": ([*RUN, "--set", LONG + "=1"], {}),
    "long model name": ([*RUN, "--set", "model=" + LONG], {}),
    "nul in value": ([*RUN, "--set", "model=a\x00b"], {}),
    "config /dev/zero": (["run", "--config", "/dev/zero"], {}),
    "config missing": (["run", "--config", "/no/such/file.json"], {}),
    "config folder without config.json": (["run", "--config", "/"], {}),
    "runs-dir is a file": ([*RUN, "--runs-dir", "/etc/hostname"], {}),
    "list runs-dir is a file": (["list", "--runs-dir", "/etc/hostname"], {}),
    "list unknown status": (["list", "--status", "bogus"], {}),
    "list long status": (["list", "--status", LONG], {}),
    "show traversal": (["show", "../etc"], {}),
    "show absolute": (["show", "/etc/passwd"], {}),
    "show nul": (["show", "a\x00b"], {}),
    "show newline": (["show", "abc\n"], {}),
    "show long id": (["show", LONG], {}),
    "show unicode id": (["show", "rün-ü"], {}),
    "show missing run": (["show", "20200101-000000-abcdef"], {}),
    "show dotdot": (["show", ".."], {}),
    "export traversal": (["export", "../../x"], {}),
    "export csv of all": (["export", "{rid}", "--kind", "all"], {}),
    "export to a folder": (["export", "{rid}", "-o", "/tmp"], {}),
    "export to /dev/full": (["export", "{rid}", "--format", "json", "-o", "/dev/full"], {}),
    "export to missing folder": (["export", "{rid}", "-o", "/no/such/dir/x.csv"], {}),
    "bad format": (["export", "{rid}", "--format", "xml"], {}),
    "unknown command": (["explode"], {}),
    "worker bad database url": (["worker"], {"SAMON_DATABASE_URL": "redis://:pw@host:6379/0"}),
    "worker bad devices": (["worker", "--devices", "gpu0;rm"], {}),
    "worker negative max-runs": (["worker", "--max-runs", "-1"], {}),
    "worker poll inf": (["worker"], {"SAMON_POLL_S": "inf"}),
    "worker poll nan": (["worker"], {"SAMON_POLL_S": "nan"}),
    "worker heartbeat negative": (["worker"], {"SAMON_HEARTBEAT_EVERY_S": "-1"}),
    "worker timeout huge": (["worker"], {"SAMON_HEARTBEAT_TIMEOUT_S": "1e300"}),
    "worker runs-dir is a file": (["worker", "--runs-dir", "/etc/hostname"], {}),
    "worker unknown queue option": (["worker", "--queue", "redis"], {}),
}

CONFIG_FILES = {
    "invalid json": "{not json",
    "json array": "[1, 2]",
    "json null": "null",
    "empty file": "",
    "unknown key": json.dumps({**TINY.to_dict(), "nosuchkey": 1}),
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "nan value": json.dumps({**TINY.to_dict(), "lr": float("nan")}),
    "not utf-8": b"\xff\xfe\x00garbage",
    "over a megabyte": " " * (1024 * 1024 + 10) + "{}",
    "long string value": json.dumps({**TINY.to_dict(), "model": LONG}),
    "unknown model in file": json.dumps({**TINY.to_dict(), "model": "nope"}),
    "oversized subset in file": json.dumps({**TINY.to_dict(), "train_subset": 10**9}),
}


@pytest.mark.parametrize("case", sorted(CLI_REJECTS))
def test_cli_rejects_with_one_line(case, seeded, monkeypatch, capsys):
    store, ids = seeded
    args, env = CLI_REJECTS[case]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    args = [a.replace("{rid}", ids[0]) for a in args]
    if "--runs-dir" not in args and args[0] != "worker":
        args += ["--runs-dir", str(store.root)]
    if args[0] == "worker" and "--runs-dir" not in args:
        args += ["--runs-dir", str(store.root), "--exit-when-idle"]
    before = snapshot(store)
    rc, _, err = run_cli(args, capsys)
    assert rc == 2, (rc, err[-2000:])
    assert_one_clear_line(err)
    assert snapshot(store) == before


@pytest.mark.parametrize("case", sorted(CONFIG_FILES))
def test_cli_rejects_bad_config_files(case, seeded, tmp_path, capsys):
    store, _ = seeded
    before = snapshot(store)
    path = _config_file(tmp_path, CONFIG_FILES[case])
    rc, _, err = run_cli(["run", "--config", path, "--progress", "none", "--runs-dir",
                          str(store.root)], capsys)
    assert rc == 2, (rc, err[-2000:])
    assert_one_clear_line(err)
    assert snapshot(store) == before


def test_export_json_is_strict_json(seeded, tmp_path, capsys):
    store, ids = seeded
    out = tmp_path / "e.json"
    rc, _, err = run_cli(["export", ids[0], "--format", "json", "-o", str(out), "--runs-dir",
                          str(store.root)], capsys)
    assert rc == 0, err
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert [r["test_loss"] for r in data["records"]] == [1.0, None]


# ---------------------------------------------------------------------------------------------
# run ids through the store and the job API
# ---------------------------------------------------------------------------------------------

BAD_IDS = ["../x", "..", "a/b", "/etc", "a\x00b", "a" * 81, "rün", "abc\n", "", ".hidden",
           "-rf", "a\\b", "x/../../y"]


@pytest.mark.parametrize("run_id", BAD_IDS, ids=lambda r: repr(r)[:20])
def test_bad_run_ids_are_refused_everywhere(run_id, seeded):
    store, _ = seeded
    before = snapshot(store)
    for call in (store.run_dir, store.read_status,
                 lambda r: service.cancel(r, teacher_token=TEACHER, store=store,
                                          settings=settings(teacher_token=TEACHER)),
                 lambda r: service.resume(r, teacher_token=TEACHER, store=store,
                                          settings=settings(teacher_token=TEACHER)),
                 lambda r: store.delete_run(r, is_teacher=True)):
        with pytest.raises(ValueError) as info:
            call(run_id)
        assert len(str(info.value)) < 300
    assert snapshot(store) == before


# ---------------------------------------------------------------------------------------------
# the job API: checks before a run folder exists; who may cancel and delete
# ---------------------------------------------------------------------------------------------

API_REJECTS = {
    "unknown model": (TINY.replace(model="nope"), {}),
    "missing cuda device": (TINY.replace(device="cuda:99"), {}),
    "max_train_subset": (TINY.replace(train_subset=200), {"max_train_subset": 100}),
    "cifar100 offline": (TINY.replace(dataset="cifar100"), {}),
    "max_epochs": (TINY.replace(epochs=3), {"max_epochs": 2}),
    "max_model_params": (TINY, {"max_model_params": 1000}),
    "allowed_models": (TINY, {"allowed_models": ("resnet20",)}),
    "cpu-only policy": (TINY.replace(device="cuda"), {"device_policy": "cpu-only"}),
}


@pytest.mark.parametrize("case", sorted(API_REJECTS))
def test_submit_rejects_before_creating_anything(case, seeded):
    store, _ = seeded
    config, kw = API_REJECTS[case]
    before = snapshot(store)
    with pytest.raises(ValueError) as info:
        service.submit(config, owner="ann", store=store, settings=settings(**kw))
    assert len(str(info.value)) < MAX_ERROR_CHARS
    assert snapshot(store) == before


def test_remote_workers_skip_local_checks_and_the_worker_fails_the_run(seeded):
    store, _ = seeded
    s = settings(local_checks=False, recover_every_s=3600.0)
    rid = service.submit(TINY.replace(device="cuda"), owner="ann", store=store, settings=s)
    # a CPU worker leaves a run that asks for a GPU to a GPU worker
    Worker(store, s, max_runs=1, exit_when_idle=True, trainer=_never_called).run()
    assert store.read_status(rid)["state"] == "queued"
    # a worker pinned to a GPU this machine does not have fails it with one line
    Worker(store, s, device="7", max_runs=1, exit_when_idle=True, trainer=_never_called).run()
    status = store.read_status(rid)
    assert status["state"] == "failed" and "cuda" in status["message"], status
    assert "\n" not in status["message"]


def test_worker_enforces_limits_on_runs_queued_under_laxer_settings(seeded):
    store, ids = seeded
    rid = service.submit(TINY.replace(epochs=5), owner="ann", store=store, settings=settings())
    strict = settings(max_epochs=2, recover_every_s=3600.0)
    Worker(store, strict, max_runs=1, exit_when_idle=True, trainer=_never_called).run()
    status = store.read_status(rid)
    assert status["state"] == "failed" and "max_epochs" in status["message"]
    assert "SAMON_MAX_EPOCHS" in status["message"]


def _never_called(*args, **kwargs):
    raise AssertionError("a run over the limits must not be trained")


def test_ownership_of_cancel_and_delete(seeded):
    store, ids = seeded  # alice and bob own runs without keys: new names act here
    s = settings(teacher_token=TEACHER)
    key = {name: service.register_owner(name, store=store) for name in ("carol", "dave", "mallory")}
    rid = service.submit(TINY.replace(seed=99), owner="carol", store=store, settings=s,
                         owner_key=key["carol"])
    assert service.submit(TINY.replace(seed=99), owner="dave", store=store, settings=s,
                          owner_key=key["dave"]) == rid
    for who, credential in (("mallory", key["mallory"]), ("", ""), (LONG, LONG)):
        with pytest.raises(service.NotAllowed) as info:
            service.cancel(rid, owner_key=credential, store=store, settings=s)
        assert len(str(info.value)) < MAX_ERROR_CHARS
        with pytest.raises(service.NotAllowed):
            store.delete_run(rid, owner=who)
    with pytest.raises(service.NotAllowed, match="needs its owner's key"):
        service.cancel(rid, store=store, settings=s)
    # the creator leaves a shared run: dave keeps it (and becomes its owner)
    assert service.delete_run(rid, owner_key=key["carol"], store=store,
                              settings=s) == service.DETACHED
    assert store.read_status(rid)["state"] == "queued"
    assert store.read_meta(rid)["owner"] == "dave"
    with pytest.raises(service.NotAllowed):
        service.cancel(rid, owner_key=key["carol"], store=store, settings=s)
    assert service.delete_run(rid, owner_key=key["dave"], store=store, settings=s) == "deleted"
    assert not store.run_dir(rid).exists()
    # a teacher acts on the whole run at once; finished runs stay untouched by strangers
    with pytest.raises(service.NotAllowed):
        store.delete_run(ids[0], owner="bob")
    assert service.cancel(ids[1], teacher_token=TEACHER, store=store, settings=s) == "finished"


# ---------------------------------------------------------------------------------------------
# damaged store files: listed, shown, resumable; never fatal, never hanging
# ---------------------------------------------------------------------------------------------


def _damage(store: RunStore, rid: str, how: str) -> None:
    folder = store.run_dir(rid)
    if how == "corrupt meta":
        (folder / "meta.json").write_text("{broken")
    elif how == "config is a folder":
        (folder / "config.json").unlink()
        (folder / "config.json").mkdir()
    elif how == "config is a fifo":
        (folder / "config.json").unlink()
        os.mkfifo(folder / "config.json")
    elif how == "status is a fifo":  # the files era's status.json, left in a folder
        os.mkfifo(folder / "status.json")
    elif how == "metrics is a fifo":
        (folder / "metrics.jsonl").unlink(missing_ok=True)
        os.mkfifo(folder / "metrics.jsonl")
    elif how == "huge meta":
        with open(folder / "meta.json", "wb") as fh:
            fh.truncate(64 * 1024 * 1024)  # sparse: no disk used
    elif how == "deep meta":
        (folder / "meta.json").write_text("[" * 50_000 + "]" * 50_000)
    elif how == "unknown config key":
        data = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**data, "from_the_future": 1}))
    elif how in ("empty status", "status not an object"):  # the status column, damaged
        with db.writing(store.engine) as conn:
            conn.execute(db.runs.update().where(db.runs.c.run_id == rid).values(
                status="" if how == "empty status" else "[]"))
    elif how == "garbage metrics lines":
        with open(folder / "metrics.jsonl", "ab") as fh:
            fh.write(b"\xff\xfe not json\n{\"kind\": \n" + b"[" * 10_000 + b"\n")
    elif how == "summary is a folder":
        (folder / "summary.json").mkdir()


DAMAGE = ["corrupt meta", "config is a folder", "config is a fifo", "status is a fifo",
          "metrics is a fifo", "huge meta", "deep meta", "unknown config key", "empty status",
          "status not an object", "garbage metrics lines", "summary is a folder"]


def _within(seconds: float, fn):
    return within(seconds, fn, "blocked (a FIFO opened without O_NONBLOCK?)")


@pytest.mark.parametrize("how", DAMAGE)
def test_one_damaged_run_never_breaks_listing_or_show(how, seeded, capsys):
    store, ids = seeded
    victim = store.create_run(TINY.replace(seed=50), {"owner": "carol"})
    if "metrics" not in how:
        fake_epochs(store, victim, 1)
    store.write_status(victim, "finished")
    _damage(store, victim, how)
    df = _within(10, store.list_runs)
    assert set(ids) | {victim} == set(df["run_id"])  # listed, not hidden
    for rid in ids:  # the healthy runs keep their metrics
        assert list(store.epochs_df(rid)["epoch"]) == [1, 2]
    _within(10, lambda: service.recover(store, force=True, settings=settings()))
    _within(10, lambda: service.submit(TINY.replace(seed=51), owner="dan", store=store,
                                       settings=settings()))
    rc, out, err = _within(10, lambda: run_cli(["show", victim, "--runs-dir", str(store.root)],
                                               capsys))
    assert rc == 0 and "Traceback" not in err
    shown = json.loads(out)
    assert shown["run_id"] == victim
    rc, out, err = _within(10, lambda: run_cli(["list", "--runs-dir", str(store.root)], capsys))
    assert rc == 0 and victim in out and "Traceback" not in err
    assert store.delete_run(victim, is_teacher=True, force=True) == "deleted"


def test_unknown_config_key_is_shown_with_the_problem(seeded, capsys):
    store, ids = seeded
    _damage(store, ids[0], "unknown config key")
    rc, out, _ = run_cli(["show", ids[0], "--runs-dir", str(store.root)], capsys)
    shown = json.loads(out)
    assert rc == 0 and shown["config"]["from_the_future"] == 1
    assert any("from_the_future" in p for p in shown["problems"])


def _finish(config, run_dir, **kwargs):
    store, rid = RunStore(Path(run_dir).parent), Path(run_dir).name
    store.write_status(rid, "finished")
    return {"state": "finished"}


def test_corrupt_meta_run_is_listed_and_a_teacher_can_delete_it(seeded):
    store, ids = seeded
    _damage(store, ids[1], "corrupt meta")
    df = store.list_runs()
    row = df[df["run_id"] == ids[1]].iloc[0]
    assert "meta.json" in row["problem"]
    with pytest.raises(service.NotAllowed, match="damaged meta.json"):
        store.delete_run(ids[1], owner="bob")
    assert store.delete_run(ids[1], is_teacher=True) == "deleted"
    assert list(store.list_runs()["run_id"]) == [ids[0]]


def test_worker_with_a_damaged_database_file_says_so_in_one_line(seeded, capsys):
    store, _ = seeded
    db_file = store.root / db.DB_FILE
    db_file.unlink()
    for suffix in ("-wal", "-shm"):
        (store.root / (db.DB_FILE + suffix)).unlink(missing_ok=True)
    db_file.write_bytes(b"SQLite format 3\x00" + os.urandom(2000))
    db._OPEN.clear()  # this process opened it before it was damaged
    rc, _, err = run_cli(["worker", "--runs-dir", str(store.root), "--exit-when-idle",
                          "--log-level", "error"], capsys)
    assert rc == 1 and "Traceback" not in err, err
    assert_one_clear_line(err)


# ---------------------------------------------------------------------------------------------
# faults: a full disk and a read-only store (a tiny tmpfs), temporary files removed
# ---------------------------------------------------------------------------------------------


def fill(folder: Path) -> None:
    with open(folder / "filler", "wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


def remount_ro(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*.tmp")]


def test_full_disk_atomic_write_leaves_no_temporary_file(tmp_path):
    with tmpfs(tmp_path / "fs", "256k") as fs:
        fill(fs)
        with pytest.raises(OSError):
            atomic_write_text(fs / "x.json", "y" * 100_000)
        assert leftovers(fs) == [] and not (fs / "x.json").exists()


def test_full_disk_run_ends_failed_with_its_reason(tmp_path):
    """The disk fills while a worker trains (SQLite's database on it too): the trainer cannot
    write its checkpoint, nor its 'failed' status; the worker frees its reserve and ends the
    run 'failed' with the reason, in one line."""
    with tmpfs(tmp_path / "fs", "4m") as fs:
        store = RunStore(fs / "runs")
        rid = service.submit(TINY, owner="ann", store=store, settings=settings())

        def trainer(config, run_dir, **kwargs):
            run_store, run_id = RunStore(Path(run_dir).parent), Path(run_dir).name
            run_store.write_status(run_id, "running", epoch=1, note="x" * 300)
            fill(fs)
            try:
                write_json(Path(run_dir) / "summary.json", {"big": "z" * 100_000})
            except OSError as exc:  # what the trainer does: its status, then the error
                run_store.write_status(run_id, "failed", message=f"OSError: {exc}",
                                       traceback="T" * 400)
                raise
            return {"state": "finished"}

        Worker(store, settings(recover_every_s=3600.0), exit_when_idle=True,
               trainer=trainer).run()
        status = store.read_status(rid)
        assert status["state"] == "failed" and "No space" in status["message"], status
        assert "\n" not in status["message"]
        assert leftovers(fs) == []  # the reserve went with the worker


def test_full_disk_submit_is_one_clear_error_and_creates_nothing(tmp_path):
    with tmpfs(tmp_path / "fs", "512k") as fs:
        store = RunStore(fs / "runs")
        store.root.mkdir()
        service.submit(TINY, owner="ann", store=store, settings=settings())  # queue file exists
        fill(fs)
        before = set(store.run_ids())
        with pytest.raises((service.StoreUnavailable, service.QueueUnavailable)) as info:
            service.submit(TINY.replace(seed=3), owner="ann", store=store, settings=settings())
        assert "full" in str(info.value)
        assert set(store.run_ids()) == before
        assert not [p for p in store.root.iterdir() if p.name.startswith(".creating")]


@pytest.mark.parametrize("command", ["run", "list", "worker", "submit"])
def test_read_only_store_gives_one_clear_line(command, tmp_path, capsys):
    with tmpfs(tmp_path / "fs", "1m") as fs:
        store = RunStore(fs / "runs")
        rid = store.create_run(TINY, {"owner": "ann"})
        store.write_status(rid, "finished")
        remount_ro(fs)
        if command == "submit":
            with pytest.raises((service.StoreUnavailable, service.QueueUnavailable)) as info:
                service.submit(TINY.replace(seed=5), owner="ann", store=store,
                               settings=settings())
            assert "read-only" in str(info.value)
            return
        args = {"run": [*RUN, "--set", "dataset=synthetic"], "list": ["list"],
                "worker": ["worker", "--exit-when-idle"]}[command]
        rc, out, err = run_cli([*args, "--runs-dir", str(store.root)], capsys)
        if command == "list":
            assert rc == 0 and rid in out
        else:
            assert rc == 1, err
            assert "read-only" in err and "Traceback" not in err


@pytest.mark.slow
def test_full_disk_during_training_fails_the_run_and_removes_the_checkpoint_temp(tmp_path):
    """The real trainer, in a worker, on a tmpfs too small for its first checkpoint."""
    from samon_core.train.trainer import train

    with tmpfs(tmp_path / "fs", "4m") as fs:
        store = RunStore(fs / "runs")
        rid = service.submit(TINY, owner="ann", store=store, settings=settings())

        def nearly_full(*args, **kwargs):  # leave ~100 kB: metrics fit, a checkpoint does not
            free = os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize
            with open(fs / "filler", "wb") as fh:
                fh.write(b"\0" * max(0, free - 100 * 1024))
            return train(*args, **kwargs)

        Worker(store, settings(recover_every_s=3600.0), exit_when_idle=True,
               trainer=nearly_full).run()
        status = store.read_status(rid)
        assert status["state"] == "failed", status
        assert "No space" in status["message"]
        assert leftovers(fs) == []


# ---------------------------------------------------------------------------------------------
# faults: the database goes away while a worker trains, and comes back
# ---------------------------------------------------------------------------------------------


def _outage_worker(store, caplog):
    """A worker in a thread with a stand-in trainer that trains 40 steps of 0.05 s (heartbeats
    and cancel checks go to the database meanwhile); returns (worker, thread)."""
    s = settings(recover_every_s=3600.0, heartbeat_every_s=0.1)

    def trainer(config, run_dir, *, should_stop=None, **kw):
        run_store, rid = RunStore(Path(run_dir).parent), Path(run_dir).name
        with run_store.metrics_writer(rid) as w:
            for step in range(1, 41):
                time.sleep(0.05)
                should_stop()
                w.write({"kind": "step", "epoch": 1, "step": step, "time": 0.05 * step})
        run_store.write_status(rid, "finished")
        return {"state": "finished"}

    worker = Worker(store, s, exit_when_idle=True, trainer=trainer)
    return worker, threading.Thread(target=worker.run, daemon=True)


def _wait_for(what, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _train_through(store, caplog, outage) -> None:
    """Two runs queued, a worker training them; ``outage(thread)`` once the first run has
    trained 5 steps (it must return with the database back); then both runs finished, each of
    their 40 steps once."""
    ids = [service.submit(TINY.replace(seed=i), owner="ann", store=store, settings=settings())
           for i in range(2)]
    _worker, thread = _outage_worker(store, caplog)
    caplog.set_level("WARNING", logger="samon.worker")
    thread.start()
    _wait_for("the first run to train", lambda: len(store.steps_df(ids[0])) >= 5)
    outage(thread)
    thread.join(60)
    assert not thread.is_alive(), "the worker did not come back"
    for rid in ids:  # both runs trained to their end, each step once
        assert store.read_status(rid)["state"] == "finished"
        assert list(store.steps_df(rid)["step"]) == list(range(1, 41))


@pytest.mark.slow
def test_a_postgresql_outage_is_waited_out_and_loses_nothing(tmp_path, postgres, monkeypatch,
                                                               caplog):
    url = postgres.new_database()
    monkeypatch.setenv("SAMON_DATABASE_URL", url)

    def outage(thread):
        postgres.stop()  # immediate: every connection is cut
        try:
            time.sleep(2.0)
            assert thread.is_alive(), "the worker gave up during the outage"
        finally:
            postgres.start()

    _train_through(RunStore(tmp_path / "runs", database_url=url), caplog, outage)
    said = [r.getMessage() for r in caplog.records if r.name == "samon.worker"]
    # a line when it went away (heartbeat, main loop), one when it came back: not one per try
    assert 1 <= sum("cannot be reached" in m for m in said) <= 2, said
    assert any("is back" in m for m in said), said


@pytest.mark.slow
def test_a_locked_sqlite_database_is_waited_out_and_loses_nothing(tmp_path, monkeypatch, caplog):
    """Another process holds SQLite's write lock for longer than the busy timeout (a stuck
    writer, a backup): the worker waits and goes on."""
    import sqlite3

    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 300)  # a waiter gives up after 0.3 s, then retries
    store = RunStore(tmp_path / "runs")

    def outage(thread):
        holder = sqlite3.connect(store.root / db.DB_FILE, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        time.sleep(2.5)
        assert thread.is_alive(), "the worker gave up while the database was locked"
        holder.execute("COMMIT")
        holder.close()

    _train_through(store, caplog, outage)


# ---------------------------------------------------------------------------------------------
# faults: kill -9 of a worker in the middle of a run (real process, stand-in trainer)
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_of_a_worker_keeps_the_metrics_and_the_run_resumes(tmp_path):
    import signal
    import sys

    store, s = RunStore(tmp_path / "runs"), settings(auto_resume=False, teacher_token=TEACHER)
    rid = service.submit(TINY.replace(epochs=50), owner="ann", store=store, settings=s)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMON_")}
    env.update(SAMON_AUTO_RESUME="0", SAMON_HEARTBEAT_EVERY_S="0.2",
               PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]))
    proc = subprocess.Popen([sys.executable, "-m", "support.slow_trainer", "--devices",
                             "cpu", "--runs-dir", str(store.root)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(store.epochs_df(rid)) < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = list(store.epochs_df(rid)["epoch"])
    report = service.recover(store, force=True, settings=s)
    assert report["reclaimed"] == [rid]  # a vanished process of this host: at once
    assert store.read_status(rid)["state"] == "interrupted"
    assert list(store.epochs_df(rid)["epoch"])[: len(kept)] == kept
    service.resume(rid, teacher_token=TEACHER, store=store, settings=s)
    assert store.read_status(rid)["state"] == "queued"
