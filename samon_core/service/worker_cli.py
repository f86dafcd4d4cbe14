"""The worker's command line: ``python -m samon_core.service.worker_cli [--devices ...]``.

``python -m samon_core worker`` calls ``worker_main``. With one worker slot (one device, one
worker per device) this process is the worker (worker.py); with several it supervises one worker
process per slot (pool.py): ``workers_per_device`` for each device.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from samon_core.runs.io import StoreUnavailable, describe_os_error
from samon_core.runs.messages import ClippingArgumentParser, clip, clip_message
from samon_core.runs.store import RunStore
from samon_core.service.backend import QueueUnavailable
from samon_core.service.devices import resolve_devices, worker_slots
from samon_core.service.pool import WorkerPool
from samon_core.service.settings import QueueBackend, load_settings
from samon_core.service.worker import Worker, log


def build_parser() -> argparse.ArgumentParser:
    ap = ClippingArgumentParser(
        prog="samon worker",
        description="Train queued runs. One worker: this process is the worker; several "
                    "(devices x workers per device): one worker process each, pinned to its "
                    "device. SIGTERM/Ctrl+C puts a run in progress back in the queue (it resumes "
                    "from its checkpoint).")
    ap.add_argument("--devices", default=None,
                    help="auto (every GPU, else the CPU), cpu, or GPU indices like 0,1; entries "
                         "may repeat (cpu,cpu = two CPU workers). Default: setting "
                         "worker_devices ($SAMON_WORKER_DEVICES, 'auto')")
    ap.add_argument("--workers-per-device", default=None, metavar="N|auto",
                    help="worker processes per device entry, 1-8, each training its own runs "
                         "(several small runs share a GPU that one leaves idle; the workers of "
                         "the CPU share its cores). auto: 1 on the CPU, on a GPU as many as its "
                         "free memory holds for the largest allowed model, at most 4. Default: "
                         "setting workers_per_device ($SAMON_WORKERS_PER_DEVICE, 'auto')")
    ap.add_argument("--runs-dir", default=None,
                    help="run store folder (default: $SAMON_RUNS_DIR or ./runs)")
    ap.add_argument("--queue", choices=[b.value for b in QueueBackend], default=None,
                    help="queue backend (default: setting queue, $SAMON_QUEUE, 'sqlite')")
    ap.add_argument("--redis-url", default=None,
                    help="Redis server for --queue redis (default: $SAMON_REDIS_URL); prefer the "
                         "variable when the URL holds a password")
    ap.add_argument("--data-dir", default=None,
                    help="dataset folder (default: $SAMON_DATA_DIR or ./data)")
    ap.add_argument("--max-runs", type=int, default=0,
                    help="exit (code 0) after this many runs; 0 = never")
    ap.add_argument("--exit-when-idle", action="store_true",
                    help="exit (code 0) as soon as the queue is empty")
    ap.add_argument("--exit-with-parent", action="store_true",
                    help="stop when the parent process exits (used by the app's worker pool)")
    ap.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    return ap


def worker_main(argv: Sequence[str] | None = None) -> int:
    """``python -m samon_core worker ...``; returns the exit code: 2 for bad options or settings,
    1 when the run store or the queue cannot be used (disk full, read-only, queue unreachable at
    start), each with one line on stderr and no traceback."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return _worker_main(args)
    except ValueError as exc:
        print(f"samon worker: error: {clip_message(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"samon worker: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except (QueueUnavailable, StoreUnavailable) as exc:
        print(f"samon worker: error: {clip_message(str(exc))}", file=sys.stderr)
        return 1


def _check_runs_dir(store: RunStore) -> None:
    """A run store folder that exists as something else, or cannot be written, is a bad option
    (before any worker record or queue file is made)."""
    root = store.root
    if root.exists() and not root.is_dir():
        raise ValueError(f"--runs-dir {clip(str(root))} is not a folder")


def _worker_main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s[%(process)d] %(levelname)s: %(message)s")
    if args.log_level != "debug":  # huey logs every task at INFO; ours says more, once
        logging.getLogger("huey").setLevel(logging.WARNING)
    overrides: dict[str, Any] = {}
    if args.queue:
        overrides["queue"] = QueueBackend(args.queue)
    if args.redis_url:
        overrides["redis_url"] = args.redis_url
    if args.workers_per_device is not None:
        overrides["workers_per_device"] = args.workers_per_device  # the setting checks it
    try:
        if args.max_runs < 0:
            raise ValueError("--max-runs must be >= 0")
        settings = load_settings(**overrides)
        devices = worker_slots(resolve_devices(args.devices or settings.worker_devices,
                                               settings), settings)
        store = RunStore(args.runs_dir)
        _check_runs_dir(store)
    except ValueError as exc:
        print(f"samon worker: error: {clip_message(str(exc))}", file=sys.stderr)
        return 2
    if len(devices) == 1:
        device = devices[0]
        if device == "cpu":
            if args.devices and args.devices.strip().lower() == "cpu":
                os.environ["CUDA_VISIBLE_DEVICES"] = ""  # asked for the CPU: hide any GPU
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = device  # before torch is imported
        worker = Worker(store, settings, device=device, data_dir=args.data_dir,
                        exit_with_parent=args.exit_with_parent, max_runs=args.max_runs,
                        exit_when_idle=args.exit_when_idle)
        return worker.run()
    extra = []
    if args.max_runs:
        extra += ["--max-runs", str(args.max_runs)]
    if args.exit_when_idle:
        extra.append("--exit-when-idle")
    extra += ["--log-level", args.log_level]
    pool = WorkerPool(store.root, devices, settings=settings, data_dir=args.data_dir,
                      exit_with_parent=True, extra_args=extra)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    log.info("supervising %d workers (%s) for %s", len(devices), ", ".join(devices), store.root)
    pool.start()
    try:
        pool.wait(stop)
    finally:
        pool.stop()
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
