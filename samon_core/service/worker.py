"""Queue workers: processes that take queued runs and train them, one at a time.

``python -m samon_core worker [--devices auto|cpu|0,1] [--runs-dir DIR] [--queue sqlite|redis]``
(or ``python -m samon_core.service.worker ...``). With one device this process is the worker; with
several it supervises one worker process per device (pool.py), each pinned with
``CUDA_VISIBLE_DEVICES`` and restarted if it dies. The app starts the same pool through
``service.ensure_workers``.

No torch at import time; a worker imports the trainer (``samon_core.train.trainer.train``), and
with it torch, in a background thread as soon as it starts.

Why a loop of ``huey.dequeue()`` + ``huey.execute(task)`` instead of huey's ``Consumer``: a
worker trains one run at a time in its main thread, and we want exact control over what happens
around it: claiming the run (``claims.claim_lock``), a ``should_stop`` that sees a cancel request
or a shutdown within one step, putting the run back in the queue on a graceful stop, and a
heartbeat thread that keeps both the worker's and the run's heartbeat fresh (and runs crash
recovery) while the main thread is busy in a long step or evaluation. The Consumer's scheduler,
periodic tasks, retries and its own signal handling would have to be worked around for all of
that. huey still does what it is good at: the durable queue (SQLite or Redis), serialisation,
the task registry and revocation.

Stopping: SIGTERM or SIGINT asks the worker to stop: the run in progress stops within one step,
goes back to the queue (state 'queued') and continues from its last checkpoint on the next
worker; a second signal exits at once (the run is then recovered as 'interrupted'). A worker
started with ``--exit-with-parent`` (the app's pool) stops the same way when its parent dies.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from samon_core.runs.io import StoreUnavailable, atomic_write_text, describe_os_error
from samon_core.runs.messages import ClippingArgumentParser, clip, clip_message
from samon_core.runs.states import RunState
from samon_core.runs.store import CHECKPOINT_FILE, RunStore
from samon_core.service.backend import QueueUnavailable, get_queue
from samon_core.service.claims import CANCEL_FILE, claim_lock
from samon_core.service.control import Requeue, requeue
from samon_core.service.devices import device_label, resolve_devices
from samon_core.service.hosts import this_host
from samon_core.service.limits import check_config_limits
from samon_core.service.outage import QueueOutage
from samon_core.service.pool import WorkerPool
from samon_core.service.preflight import check_runnable
from samon_core.service.recovery import recover
from samon_core.service.settings import QueueBackend, Settings, load_settings
from samon_core.service.worker_records import workers_dir

log = logging.getLogger("samon.worker")

# A test seam: "module:function" of a stand-in with the trainer's signature (e.g. to measure the
# queue alone). Not a user setting.
TRAINER_ENV = "SAMON_WORKER_TRAINER"


class Worker:
    """One worker: takes runs from the queue and trains them in this process, one at a time.

    ``device`` is only a label here ('cpu' or a CUDA_VISIBLE_DEVICES entry); pinning happens in
    the environment before torch is imported (``worker_main`` / ``WorkerPool``).
    ``max_runs`` > 0 exits after that many runs; ``exit_when_idle`` exits when the queue is empty.
    ``monotonic`` is the clock of the worker's intervals (how often the queue's cancel key is
    read, recovery sweeps); tests pass a fake one instead of sleeping.
    """

    def __init__(self, store: RunStore, settings: Settings, *, device: str = "cpu",
                 data_dir: str | os.PathLike[str] | None = None, exit_with_parent: bool = False,
                 max_runs: int = 0, exit_when_idle: bool = False,
                 trainer: Callable[..., dict] | None = None,
                 monotonic: Callable[[], float] = time.monotonic, max_backoff_s: float = 30.0):
        self.store = store
        self.monotonic = monotonic
        self.max_backoff_s = max_backoff_s
        self.settings = settings
        self.device = device_label(device)
        self.data_dir = data_dir
        self.exit_with_parent = exit_with_parent
        self.max_runs = max_runs
        self.exit_when_idle = exit_when_idle
        self.host = this_host()
        host = re.sub(r"[^A-Za-z0-9_.-]", "_", self.host)[:40]
        self.id = f"{host}-{os.getpid()}-{secrets.token_hex(2)}"
        self.queue = get_queue(store, settings)
        self.queue.handler = self._handle
        self.runs_done = 0
        self.started = time.time()
        self._trainer = trainer
        self._parent = os.getppid()
        self._stop = threading.Event()  # stop taking runs; the current run stops within a step
        self._stop_reason = ""
        self._done = threading.Event()  # ends the heartbeat thread
        self._current: str | None = None
        self._run_started: float | None = None
        self._record_path = workers_dir(store) / f"{self.id}.json"

    # --- lifecycle ------------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()
            self._write_record()  # 'stopping' at once: ensure_workers does not count on us
            log.info("worker %s: stopping (%s)", self.id, reason)

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: Any) -> None:
            if self._stop.is_set():  # second signal: leave now; recover() handles the run
                os._exit(128 + signum)
            self.request_stop(f"signal {signal.Signals(signum).name}")

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)

    def run(self) -> int:
        """Serve the queue until asked to stop; returns the exit code."""
        self._install_signals()
        self._record_path.parent.mkdir(parents=True, exist_ok=True)
        self._write_record()
        log.info("worker %s: serving %r for %s (device %s)", self.id, self.queue,
                 self.store.root, self.device)
        beat = threading.Thread(target=self._heartbeat_loop, name="samon-heartbeat", daemon=True)
        beat.start()
        if self._trainer is None and not os.environ.get(TRAINER_ENV):
            # Import torch and the trainer while idle (seconds): the app starts its pool long
            # before the first click, so the first run does not wait for the import.
            threading.Thread(target=self._preload, name="samon-preload", daemon=True).start()
        try:
            self._recover()
            self._serve()
        finally:
            self._done.set()
            beat.join(timeout=10)
            with contextlib.suppress(OSError):
                self._record_path.unlink()
            log.info("worker %s: exited after %d run(s)", self.id, self.runs_done)
        return 0

    def _serve(self) -> None:
        """Take and run tasks until asked to stop. Every queue call (the dequeue, and huey's
        bookkeeping around a task: the revocation check before, clearing its flag after) may
        fail while the backend is away; the worker then waits (``QueueOutage``) and goes on."""
        outage = QueueOutage(self.id, self._stop, self.max_backoff_s)
        while not self._stop.is_set():
            if self.max_runs and self.runs_done >= self.max_runs:
                break
            try:
                task = self.queue.dequeue()
            except Exception as exc:  # backend unreachable: wait, then try again
                outage.failed("read the queue", exc)
                continue
            outage.ok()
            if task is None:
                if self.exit_when_idle:
                    break
                if not self.queue.blocking:
                    self._stop.wait(self.settings.poll_s)
                continue
            try:
                self.queue.execute(task)  # -> self._handle(run_id), unless revoked
            except Exception as exc:
                # The run itself is safe: its state is in the store, and a queued run whose
                # message was lost is queued again by the recovery.
                outage.failed("finish a task in the queue", exc)

    # --- heartbeat ------------------------------------------------------------------------------

    def _write_record(self) -> None:
        state = "stopping" if self._stop.is_set() else "training" if self._current else "idle"
        record = {
            "id": self.id, "pid": os.getpid(), "host": self.host, "device": self.device,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "state": state,
            "run_id": self._current, "run_started": self._run_started, "started": self.started,
            "heartbeat": time.time(), "runs_done": self.runs_done,
            "queue": f"{self.settings.queue.value}:{self.settings.queue_name}",
        }
        with contextlib.suppress(OSError):
            atomic_write_text(self._record_path, json.dumps(record) + "\n", fsync=False)

    def _recover(self) -> None:
        try:
            recover(self.store, force=True, settings=self.settings)
        except Exception:  # recovery must never take a worker down
            log.exception("worker %s: recovery sweep failed", self.id)

    def _heartbeat_loop(self) -> None:
        last_recover = self.monotonic()
        while not self._done.wait(self.settings.heartbeat_every_s):
            self._write_record()
            run_id = self._current
            if run_id is not None:
                # Keeps the run alive for recover() on other hosts even during a long evaluation.
                with contextlib.suppress(Exception):
                    self.store.heartbeat(run_id, worker=self.id)
            if self.exit_with_parent and os.getppid() != self._parent:
                self.request_stop("its parent process exited")
            if self.monotonic() - last_recover >= self.settings.recover_every_s:
                last_recover = self.monotonic()
                self._recover()

    # --- one run --------------------------------------------------------------------------------

    def _handle(self, run_id: str) -> None:
        """The huey task: claim ``run_id`` and train it, unless it is no longer queued."""
        store = self.store
        try:
            run_dir = store.run_dir(run_id)
        except ValueError:
            log.warning("worker %s: ignoring a message with a bad run id %r", self.id, run_id)
            return
        if not store.exists(run_id):
            log.info("worker %s: run %s no longer exists; skipped", self.id, run_id)
            return
        with claim_lock(run_dir) as mine:
            if not mine:
                log.info("worker %s: run %s is held by another worker; skipped", self.id, run_id)
                return
            state = store.read_status(run_id).get("state")
            if state != RunState.QUEUED:
                log.info("worker %s: run %s is %s; skipped", self.id, run_id, state)
                return
            if (run_dir / CANCEL_FILE).exists() or self._queue_cancel(run_id):
                store.write_status(run_id, RunState.CANCELLED,
                                   message="cancelled before it started")
                with contextlib.suppress(Exception):
                    self.queue.clear_cancel(run_id)
                return
            if self._stop.is_set():  # took the message while stopping: give it back
                requeue(store, run_id, Requeue.SHUTDOWN, settings=self.settings,
                        detail=f"worker {self.id}: {self._stop_reason}")
                return
            self._current, self._run_started = run_id, time.time()
            self._write_record()
            try:
                self._train(run_id, run_dir)
            finally:
                self._current = self._run_started = None
                self.runs_done += 1
                self._write_record()
                _free_accelerator_memory()

    def _queue_cancel(self, run_id: str) -> bool:
        try:
            return self.queue.cancel_requested(run_id)
        except Exception:  # queue unreachable: the flag file still works
            return False

    def _preload(self) -> None:
        try:
            importlib.import_module("samon_core.train.trainer")
        except Exception as exc:  # reported again, per run, when a run needs the trainer
            log.warning("worker %s: cannot import the trainer: %s", self.id, exc)

    def _load_trainer(self) -> Callable[..., dict]:
        if self._trainer is not None:
            return self._trainer
        spec = os.environ.get(TRAINER_ENV)
        if spec:
            module, _, name = spec.partition(":")
            return getattr(importlib.import_module(module), name)
        from samon_core.train.trainer import train  # torch is imported here, on the first run

        return train

    def _restart_marker(self, run_id: str) -> None:
        """A run restarted without a checkpoint trains from epoch 0 again: a resume marker at
        epoch 0 makes readers drop what the lost attempt wrote after initialisation."""
        records, _ = self.store.read_records_since(run_id, 0)
        if records:
            with self.store.metrics_writer(run_id) as writer:
                writer.write({"kind": "resume", "epoch": 0, "step": 0, "time": 0.0,
                              "reason": "restarted from the start: no checkpoint"})

    def _start(self, run_id: str, run_dir: Path) -> tuple[Any, bool, Callable[..., dict]] | None:
        """Mark the run 'running' and get what training it needs: its config, whether it resumes
        from a checkpoint, the trainer. None (the run marked 'failed') if any of it fails."""
        store = self.store
        store.write_status(run_id, RunState.RUNNING, worker=self.id, pid=os.getpid(),
                           host=self.host, device=self.device,
                           message=f"starting on worker {self.id}", cancel_requested=None)
        try:
            config = store.read_config(run_id)
            # The limits and checks of submit, again: this run may have been queued by other
            # means (an old version, a hand-made folder) or under laxer settings.
            check_config_limits(config, self.settings, outcome="the run was not started")
            check_runnable(config, here=True, data_dir=self.data_dir)
            resume = (run_dir / CHECKPOINT_FILE).is_file()
            if not resume:
                self._restart_marker(run_id)
            return config, resume, self._load_trainer()
        except ValueError as exc:  # over a limit, not runnable here, a damaged config: one line
            log.warning("worker %s: run %s not started: %s", self.id, run_id, exc)
            store.write_status(run_id, RunState.FAILED, message=clip(str(exc), 2000)[1:-1])
            return None
        except Exception as exc:
            log.exception("worker %s: cannot start run %s", self.id, run_id)
            store.write_status(run_id, RunState.FAILED, message=f"{type(exc).__name__}: {exc}")
            return None

    def _should_stop(self, run_id: str, cancel_flag: str) -> Callable[[], bool]:
        """The trainer's ``should_stop`` for ``run_id``: this worker stops, or a user cancels."""
        stop_event = self._stop
        next_key_check = [self.monotonic() + 1.0]

        def should_stop() -> bool:
            # Polled every training step: an Event check and one stat(); the queue's cancel key
            # (a Redis or SQLite read) at most once a second.
            if stop_event.is_set() or os.path.exists(cancel_flag):
                return True
            now = self.monotonic()
            if now >= next_key_check[0]:
                next_key_check[0] = now + 1.0
                return self._queue_cancel(run_id)
            return False

        return should_stop

    def _train(self, run_id: str, run_dir: Path) -> None:
        store = self.store
        t0 = time.monotonic()
        started = self._start(run_id, run_dir)
        if started is None:
            return
        config, resume, train = started
        cancel_flag = str(run_dir / CANCEL_FILE)
        log.info("worker %s: run %s %s", self.id, run_id,
                 "resumes from its checkpoint" if resume else "starts")
        try:
            summary = train(config, run_dir, should_stop=self._should_stop(run_id, cancel_flag),
                            data_dir=self.data_dir, resume=resume)
        except Exception as exc:  # the trainer has marked the run failed; make sure of it
            log.exception("worker %s: run %s failed", self.id, run_id)
            with contextlib.suppress(Exception):
                if store.read_status(run_id).get("state") == RunState.RUNNING:
                    store.write_status(run_id, RunState.FAILED,
                                       message=f"{type(exc).__name__}: {exc}")
            return
        state = summary.get("state")
        user_cancel = os.path.exists(cancel_flag) or self._queue_cancel(run_id)
        if state == RunState.CANCELLED and self._stop.is_set() and not user_cancel:
            # Stopped because this worker stops, not because a user cancelled: back in the queue.
            requeue(store, run_id, Requeue.SHUTDOWN, settings=self.settings,
                    detail=f"worker {self.id}: {self._stop_reason}")
            state = "queued again"
        elif user_cancel:
            with contextlib.suppress(Exception):
                self.queue.clear_cancel(run_id)
        log.info("worker %s: run %s %s after %.1f s", self.id, run_id, state,
                 time.monotonic() - t0)


def _free_accelerator_memory() -> None:
    torch = sys.modules.get("torch")  # only if a run imported it
    if torch is not None:
        with contextlib.suppress(Exception):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    ap = ClippingArgumentParser(
        prog="samon worker",
        description="Train queued runs. One device: this process is the worker; several: one "
                    "worker process per device. SIGTERM/Ctrl+C puts a run in progress back in "
                    "the queue (it resumes from its checkpoint).")
    ap.add_argument("--devices", default=None,
                    help="auto (one worker per GPU, else one CPU worker), cpu, or GPU indices "
                         "like 0,1; entries may repeat (cpu,cpu = two CPU workers). Default: "
                         "setting worker_devices ($SAMON_WORKER_DEVICES, 'auto')")
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
    try:
        if args.max_runs < 0:
            raise ValueError("--max-runs must be >= 0")
        settings = load_settings(**overrides)
        devices = resolve_devices(args.devices or settings.worker_devices, settings)
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
