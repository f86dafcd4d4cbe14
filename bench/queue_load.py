"""Queue load test: many tiny runs through the real queue, real worker processes, real trainer.

The queue is the job service's database (issue 24): ``--engine sqlite`` (the default, ``samon.db``
in a fresh run store) or ``--engine postgres`` (a throw-away PostgreSQL server on this machine,
``tests/support/postgres_server.py``; needs Debian's ``postgresql``).

Submits ``--runs`` distinct tiny runs (as if ``--owners`` students clicked at once), then starts
``--workers`` worker processes (``python -m samon_core worker --devices cpu
--exit-when-idle``, one thread each) and waits until every run has ended. Checks that nothing
was lost: every run finished, with epochs 1..E exactly once, increasing steps and a summary.
Prints the figures: submit latency, queue-listing latency, total wall time, runs per minute,
per-run training time and the share of the wall time spent outside training (queue, process
start, data generation), with the hardware and the versions.

``--workers-per-device 1,2,4`` measures the worker pool instead, one value after another in this
one invocation: for each value a fresh run store gets the same runs, and one ``samon_core
worker --devices D --workers-per-device N --exit-when-idle`` supervisor trains them (the pool's own
thread split on a CPU: ``OMP_NUM_THREADS`` is not passed on). One table: runs per hour, mean
run time, the share of the wall time in which no run was training (the device idle) and the
share of worker time outside ``train()``, per value, with the hardware and the versions.

Usage: python bench/queue_load.py [--runs 50] [--workers 2] [--engine sqlite|postgres]
       [--epochs 1] [--train-subset 128] [--keep]
       python bench/queue_load.py --workers-per-device 1,2,4 [--device cpu|cuda]
       [--model tiny_resnet] [--runs 12] ...
Not part of the test suite (it takes minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from samon_core import service
from samon_core.runs import database as db
from samon_core.runs.config import RunConfig
from samon_core.runs.store import RunStore
from samon_core.service.pool import cpu_threads_per_worker
from samon_core.service.settings import load_settings
from samon_core.train.hardware import cpu_model

REPO = Path(__file__).resolve().parents[1]
# The worker devices of a sweep for each run device (cuda: every GPU the machine has).
_WORKER_DEVICES = {"cpu": "cpu", "cuda": "auto"}
ENGINES = ("sqlite", "postgres")  # the job service's database: embedded, or a server


@contextlib.contextmanager
def database(engine: str) -> Iterator[str | None]:
    """A bench's database URL: None for SQLite in the run store; for 'postgres' a fresh database
    on a throw-away PostgreSQL server on this machine, removed afterwards."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if engine == "sqlite":
        yield None
        return
    sys.path.insert(0, str(REPO / "tests"))  # the test support code starts the server
    from support.postgres_server import PostgresServer, why_unavailable

    why = why_unavailable()
    if why:
        raise RuntimeError(f"--engine postgres: {why}")
    server = PostgresServer()
    try:
        server.start()
        yield server.new_database()
    finally:
        server.remove()


def database_text(store: RunStore) -> str:
    """Which database served a bench, for its report."""
    engine = store.engine
    if engine.dialect.name == "sqlite":
        return "SQLite (samon.db in the run store)"
    version = ".".join(str(v) for v in engine.dialect.server_version_info or ()) or "?"
    return f"PostgreSQL {version} on this machine"


def bench_env(engine_url: str | None, **settings: str) -> dict[str, str]:
    """The SAMON_* settings of a bench's store: its database (when not the store's SQLite), no
    automatic resume (a run interrupted by a crash must show as a problem), and ``settings``."""
    env = {"SAMON_AUTO_RESUME": "0", **settings}
    if engine_url:
        env[db.DATABASE_URL_ENV] = engine_url
    return env


def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _per_device_list(text: str) -> list[int]:
    """``1,2,4`` -> [1, 2, 4]; each a whole number from 1 to 8 (the setting's bounds)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2,4; got {text!r}") from None
    if not values or any(not 1 <= v <= 8 for v in values):
        raise argparse.ArgumentTypeError(f"expected numbers from 1 to 8; got {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2,
                    help="separate CPU worker processes, 1 thread each (without "
                         "--workers-per-device)")
    ap.add_argument("--workers-per-device", type=_per_device_list, default=None,
                    metavar="N[,N...]", help="sweep: one pool per value, e.g. 1,2,4")
    ap.add_argument("--device", choices=sorted(_WORKER_DEVICES), default="cpu",
                    help="the runs' device (and the sweep's worker devices)")
    ap.add_argument("--model", default="tiny_resnet")
    ap.add_argument("--owners", type=int, default=30, help="distinct owners submitting")
    ap.add_argument("--engine", choices=ENGINES, default="sqlite",
                    help="the database: SQLite in the run store, or a throw-away PostgreSQL "
                         "server on this machine (Debian's postgresql)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-subset", type=int, default=128)
    ap.add_argument("--test-subset", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=1800.0, help="give up after this many s")
    ap.add_argument("--keep", action="store_true", help="keep the run store (printed)")
    return ap


def _submit_all(args: argparse.Namespace, store: RunStore, settings: Any) -> dict[str, Any]:
    """Submit the runs as from the app (each its own seed: nothing is shared or reused)."""
    base = RunConfig(
        model=args.model,
        dataset="synthetic",
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        sharpness_samples=0,
        stats_bins=10,
        log_every_s=0.5,
        device=args.device,
    )
    t0 = time.perf_counter()
    submit_ms = []
    ids = []
    for i in range(args.runs):
        t = time.perf_counter()
        ids.append(
            service.submit(
                base.replace(seed=i),
                owner=f"student{i % args.owners}",
                store=store,
                settings=settings,
            )
        )
        submit_ms.append((time.perf_counter() - t) * 1000)
    t_submit = time.perf_counter() - t0
    t = time.perf_counter()
    positions = service.queue_positions(store)
    listing_ms = (time.perf_counter() - t) * 1000
    assert sorted(positions.values()) == list(range(1, args.runs + 1))
    return {"ids": ids, "submit_ms": submit_ms, "t_submit": t_submit, "listing_ms": listing_ms}


def _worker_cmd(root: Path, devices: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "samon_core", "worker", "--devices", devices,
            "--runs-dir", str(root), "--exit-when-idle", *extra]


def _worker_env(env_settings: dict[str, str], threads: str | None) -> dict[str, str]:
    """This process's environment without its SAMON_* settings, plus the bench's; with
    ``threads`` None, OMP_NUM_THREADS is dropped so that the pool splits the cores itself."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SAMON_") and k != "OMP_NUM_THREADS"}
    env.update(env_settings, PYTHONUNBUFFERED="1")
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    return env


def _run_until_exit(cmds: list[list[str]], env: dict[str, str], log_dir: Path,
                    timeout: float, tag: str) -> tuple[float, float, bool]:
    """Start the processes, wait until all have exited or ``timeout`` passed (then kill them);
    returns (start, end) in epoch seconds (the run store's clock) and whether it timed out."""
    logs = [open(log_dir / f"{tag}-{i}.log", "wb") for i in range(len(cmds))]  # noqa: SIM115
    t_start = time.time()
    procs = [subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
             for cmd, log in zip(cmds, logs, strict=True)]
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while any(p.poll() is None for p in procs) and not timed_out:
            timed_out = time.monotonic() > deadline
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()  # a pool's children follow their supervisor (--exit-with-parent)
        for log in logs:
            log.close()
    return t_start, time.time(), timed_out


def _run_workers(args: argparse.Namespace, root: Path, env_settings: dict[str, str]) -> float:
    """Start ``--workers`` separate CPU workers (1 thread each), wait until all have exited;
    returns the wall time."""
    cmds = [_worker_cmd(root, "cpu")] * args.workers
    t_start, t_end, timed_out = _run_until_exit(cmds, _worker_env(env_settings, "1"),
                                                root.parent, args.timeout, "worker")
    if timed_out:
        raise SystemExit(f"timed out; worker logs in {root.parent}")
    return t_end - t_start


def _check_runs(ids: list[str], store: RunStore, epochs: int) -> dict[str, Any]:
    """Nothing lost? Every run finished, epochs 1..E once, increasing steps, a summary."""
    problems = []
    train_s, fit_s, spans, first_start, last_end = [], [], [], float("inf"), 0.0
    for rid in ids:
        status = store.read_status(rid)
        if status.get("state") != "finished":
            problems.append(f"{rid}: {status.get('state')} {status.get('message', '')}")
            continue
        df = store.epochs_df(rid)
        if list(df["epoch"]) != list(range(1, epochs + 1)):
            problems.append(f"{rid}: epochs {list(df['epoch'])}")
        steps = store.steps_df(rid)["step"]
        if not steps.is_monotonic_increasing or steps.duplicated().any():
            problems.append(f"{rid}: step records out of order or repeated")
        summary = store.read_summary(rid)
        if not summary:
            problems.append(f"{rid}: no summary")
            continue
        # started -> ended: the whole train() call (data, model, training, evaluation)
        train_s.append(float(status["ended"]) - float(status["started"]))
        fit_s.append(float(summary["train_time_s"]))
        spans.append((float(status["started"]), float(status["ended"])))
        first_start = min(first_start, status["started"])
        last_end = max(last_end, status["ended"])
    return {"problems": problems, "train_s": train_s, "fit_s": fit_s, "spans": spans,
            "first_start": first_start, "last_end": last_end}


def _gpus() -> str:
    """The GPUs nvidia-smi lists (name, memory), without importing torch here."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "no GPU"
    out = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True, check=False, timeout=15).stdout
    return "; ".join(line.strip() for line in out.splitlines() if line.strip()) or "no GPU"


def _environment() -> list[str]:
    """The hardware and versions lines every report starts with."""
    return [
        f"  hardware : {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} "
        f"{platform.release()}; GPU: {_gpus()}; load average now {os.getloadavg()[0]:.2f}",
        f"  versions : Python {platform.python_version()}, torch {_version('torch')}, "
        f"SQLAlchemy {_version('sqlalchemy')}, psycopg {_version('psycopg')}",
    ]


def _runs_text(args: argparse.Namespace) -> str:
    return (f"{args.runs} runs ({args.model}, synthetic, {args.train_subset} train / "
            f"{args.test_subset} test images, {args.epochs} epoch(s), batch {args.batch_size}, "
            f"device {args.device})")


def _report(args: argparse.Namespace, sub: dict[str, Any], wall: float,
            res: dict[str, Any], where: str) -> None:
    problems, train_s, fit_s = res["problems"], res["train_s"], res["fit_s"]
    runs_done = len(train_s)
    print("queue load test")
    for line in _environment():
        print(line)
    print(f"  setup    : {_runs_text(args)}, {args.workers} CPU workers x 1 thread, "
          f"database {where}")
    print(
        f"  submit   : {sub['t_submit']:.2f} s for {args.runs} runs; per submit median "
        f"{statistics.median(sub['submit_ms']):.1f} ms, max {max(sub['submit_ms']):.1f} ms"
    )
    print(f"  listing  : queue_positions over {args.runs} queued runs: {sub['listing_ms']:.1f} ms")
    print(f"  finished : {runs_done}/{args.runs}; problems: {len(problems)}")
    for line in problems[:10]:
        print(f"    {line}")
    if runs_done:
        print(
            f"  wall     : {wall:.1f} s from worker start to the last worker exit "
            f"({runs_done / wall * 60:.1f} runs/min); first run start to last run end "
            f"{res['last_end'] - res['first_start']:.1f} s"
        )
        busy = sum(train_s)
        print(
            f"  per run  : train() median {statistics.median(train_s):.2f} s "
            f"(min {min(train_s):.2f}, max {max(train_s):.2f}), of which the training loop "
            f"{statistics.median(fit_s):.2f} s (the rest: data generation, model, set-up)"
        )
        print(
            f"  overhead : {max(0.0, 1 - busy / (wall * args.workers)):.0%} of worker time "
            f"outside train() (process start, torch import, queue, claiming)"
        )


# ---------------------------------------------------------------------------------------------
# the sweep over workers per device
# ---------------------------------------------------------------------------------------------


def covered_seconds(spans: list[tuple[float, float]], t0: float, t1: float) -> float:
    """Seconds of [t0, t1] inside at least one of ``spans`` (the union, not the sum)."""
    total, reach = 0.0, t0
    for a, b in sorted(spans):
        a, b = max(a, reach), min(b, t1)
        if b > a:
            total += b - a
            reach = b
    return total


def _device_count(device: str) -> int:
    """Devices a sweep's ``--devices`` entry gives the pool (cpu: 1; auto: every GPU)."""
    if device == "cpu":
        return 1
    from samon_core.service.pool import detect_gpus

    return max(1, len(detect_gpus()))


def _pool_row(args: argparse.Namespace, root: Path, per_device: int) -> dict[str, Any]:
    """Submit the runs to a fresh store and database, train them with one pool of
    ``per_device`` workers per device, and return the table row (the runs' own checks
    included)."""
    with database(args.engine) as url:
        return _pool_row_on(args, root, per_device, url)


def _pool_row_on(args: argparse.Namespace, root: Path, per_device: int,
                 url: str | None) -> dict[str, Any]:
    env_settings = bench_env(url)
    root.parent.mkdir(parents=True, exist_ok=True)  # the worker logs go there
    store = RunStore(root, database_url=url)
    submitted = _submit_all(args, store, load_settings(environ=env_settings))
    load_before = os.getloadavg()[0]
    cmd = _worker_cmd(root, _WORKER_DEVICES[args.device], "--workers-per-device",
                      str(per_device), "--log-level", "warning")
    t0, t1, timed_out = _run_until_exit([cmd], _worker_env(env_settings, None), root.parent,
                                        args.timeout, f"pool-{per_device}")
    res = _check_runs(submitted["ids"], store, args.epochs)
    if timed_out:
        res["problems"].insert(0, f"timed out after {args.timeout:.0f} s (--timeout)")
    wall, done = t1 - t0, len(res["train_s"])
    workers = per_device * _device_count(args.device)
    threads = (str(cpu_threads_per_worker(per_device, os.cpu_count()))
               if args.device == "cpu" else "-")
    return {
        "per_device": per_device, "workers": workers, "threads": threads, "done": done,
        "problems": res["problems"], "wall": wall,
        "runs_per_hour": done / wall * 3600 if wall > 0 else 0.0,
        "mean_run": statistics.fmean(res["train_s"]) if done else float("nan"),
        "idle": 1 - covered_seconds(res["spans"], t0, t1) / wall if wall > 0 else 0.0,
        "outside": max(0.0, 1 - sum(res["train_s"]) / (wall * workers)) if wall > 0 else 0.0,
        "load": (load_before, os.getloadavg()[0]), "database": database_text(store),
    }


def _print_header(args: argparse.Namespace) -> None:
    print("queue load: workers per device")
    for line in _environment():
        print(line)
    print(f"  setup    : {_runs_text(args)}, worker devices "
          f"'{_WORKER_DEVICES[args.device]}', database {args.engine}; the values measured one "
          "after another in this one invocation, each on a fresh run store and database with "
          "the same runs")
    print()
    print("| workers/device | workers x threads | finished | wall s | runs/hour | mean run s "
          "| wall with no run training | worker time outside train() | load avg before/after |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |", flush=True)


def _print_row(args: argparse.Namespace, r: dict[str, Any]) -> None:
    """One row as soon as it is measured (a sweep cut short by a time limit keeps its rows)."""
    print(f"| {r['per_device']} | {r['workers']} x {r['threads']} | {r['done']}/{args.runs} "
          f"| {r['wall']:.1f} | {r['runs_per_hour']:.0f} | {r['mean_run']:.2f} "
          f"| {r['idle']:.0%} | {r['outside']:.0%} | {r['load'][0]:.2f} / "
          f"{r['load'][1]:.2f} |", flush=True)


def sweep(args: argparse.Namespace) -> int:
    """One pool per ``--workers-per-device`` value, one after another; prints one table."""
    base = Path(tempfile.mkdtemp(prefix="samon-queue-sweep-"))
    _print_header(args)
    rows = []
    for n in args.workers_per_device:
        rows.append(_pool_row(args, base / f"w{n}" / "runs", n))
        _print_row(args, rows[-1])
    for r in rows:
        for line in r["problems"][:5]:
            print(f"  problem ({r['per_device']}/device): {line}")
    if args.keep:
        print(f"  run stores: {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if any(r["problems"] or r["done"] != args.runs for r in rows) else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.workers_per_device:
        return sweep(args)
    root = Path(tempfile.mkdtemp(prefix="samon-queue-load-")) / "runs"
    with database(args.engine) as url:
        env_settings = bench_env(url)
        store = RunStore(root, database_url=url)
        submitted = _submit_all(args, store, load_settings(environ=env_settings))
        wall = _run_workers(args, root, env_settings)
        result = _check_runs(submitted["ids"], store, args.epochs)
        _report(args, submitted, wall, result, database_text(store))
    if args.keep:
        print(f"  run store: {root}")
    else:
        shutil.rmtree(root.parent, ignore_errors=True)
    return 1 if result["problems"] or len(result["train_s"]) != args.runs else 0


if __name__ == "__main__":
    sys.exit(main())
