"""Queue load test: many tiny runs through the real queue, real worker processes, real trainer.

Submits ``--runs`` distinct tiny runs (as if ``--owners`` students clicked at once), then starts
``--workers`` worker processes (``python -m samon_core.service.worker_cli --devices cpu
--exit-when-idle``, one thread each) and waits until every run has ended. Checks that nothing
was lost: every run finished, with epochs 1..E exactly once, increasing steps and a summary.
Prints the figures: submit latency, queue-listing latency, total wall time, runs per minute,
per-run training time and the share of the wall time spent outside training (queue, process
start, data generation), with the hardware and the versions.

Usage: python bench/queue_load.py [--runs 50] [--workers 2] [--queue sqlite|redis]
       [--redis-url URL] [--epochs 1] [--train-subset 128] [--keep]
Not part of the test suite (it takes minutes).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from samon_core import service
from samon_core.runs.config import RunConfig
from samon_core.runs.store import RunStore
from samon_core.service.settings import QueueBackend, load_settings
from samon_core.train.hardware import cpu_model


def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--owners", type=int, default=30, help="distinct owners submitting")
    ap.add_argument("--queue", choices=[b.value for b in QueueBackend], default="sqlite")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
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
        model="tiny_resnet",
        dataset="synthetic",
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        sharpness_samples=0,
        stats_bins=10,
        log_every_s=0.5,
        device="cpu",
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


def _run_workers(args: argparse.Namespace, root: Path, env_settings: dict[str, str]) -> float:
    """Start the worker processes, wait until all have exited; returns the wall time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMON_")}
    env.update(env_settings, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    logs = [open(root.parent / f"worker-{i}.log", "wb") for i in range(args.workers)]  # noqa: SIM115
    t_start = time.time()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "samon_core.service.worker_cli",
                "--devices",
                "cpu",
                "--runs-dir",
                str(root),
                "--exit-when-idle",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for log in logs
    ]
    deadline = time.monotonic() + args.timeout
    try:
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out; worker logs in {root.parent}")
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for log in logs:
            log.close()
    return time.time() - t_start


def _check_runs(ids: list[str], store: RunStore, epochs: int) -> dict[str, Any]:
    """Nothing lost? Every run finished, epochs 1..E once, increasing steps, a summary."""
    problems = []
    train_s, fit_s, first_start, last_end = [], [], float("inf"), 0.0
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
        first_start = min(first_start, status["started"])
        last_end = max(last_end, status["ended"])
    return {"problems": problems, "train_s": train_s, "fit_s": fit_s,
            "first_start": first_start, "last_end": last_end}


def _report(args: argparse.Namespace, sub: dict[str, Any], wall: float,
            res: dict[str, Any]) -> None:
    problems, train_s, fit_s = res["problems"], res["train_s"], res["fit_s"]
    runs_done = len(train_s)
    print("queue load test")
    print(
        f"  hardware : {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} "
        f"{platform.release()}; load average at end {os.getloadavg()[0]:.2f}"
    )
    print(
        f"  versions : Python {platform.python_version()}, torch {_version('torch')}, "
        f"huey {_version('huey')}, redis-py {_version('redis')}"
    )
    print(
        f"  setup    : {args.runs} runs (tiny_resnet, synthetic, {args.train_subset} train / "
        f"{args.test_subset} test images, {args.epochs} epoch(s), batch {args.batch_size}), "
        f"{args.workers} CPU workers x 1 thread, queue {args.queue}"
    )
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="samon-queue-load-")) / "runs"
    env_settings = {
        "SAMON_QUEUE": args.queue,
        "SAMON_REDIS_URL": args.redis_url,
        "SAMON_QUEUE_NAME": f"bench{os.getpid()}",
        "SAMON_AUTO_RESUME": "0",
    }
    store = RunStore(root)
    submitted = _submit_all(args, store, load_settings(environ=env_settings))
    wall = _run_workers(args, root, env_settings)
    result = _check_runs(submitted["ids"], store, args.epochs)
    _report(args, submitted, wall, result)
    if args.keep:
        print(f"  run store: {root}")
    else:
        shutil.rmtree(root.parent, ignore_errors=True)
    return 1 if result["problems"] or len(result["train_s"]) != args.runs else 0


if __name__ == "__main__":
    sys.exit(main())
