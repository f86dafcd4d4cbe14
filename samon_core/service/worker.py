"""Queue workers: processes that take queued runs and train them.

A worker takes one run from the queue; when the run belongs to a comparison (``submit_group``) it
also claims the comparison's other queued runs and trains them all together, interleaved step by
step (lockstep.py, ``samon_core.train.lockstep``), so that they share the machine's load.
Which queued run a message makes it take is the fair queue's choice (fairness.py: owners take
turns by device time; ``fair_queue`` off: the message's own run). The
command line is in worker_cli.py (``python -m samon_core worker [--devices auto|cpu|0,1] ...``);
with several devices it supervises one worker process per device (pool.py), each pinned with
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

import contextlib
import enum
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from samon_core.runs.io import atomic_write_text
from samon_core.runs.messages import clip
from samon_core.runs.states import RunState
from samon_core.runs.store import CHECKPOINT_FILE, RunStore
from samon_core.service.backend import get_queue
from samon_core.service.claims import CANCEL_FILE, claim_lock
from samon_core.service.control import Requeue, requeue
from samon_core.service.devices import device_label
from samon_core.service.fairness import fair_candidates
from samon_core.service.hosts import this_host
from samon_core.service.leftovers import sweep_leftovers
from samon_core.service.limits import check_config_limits
from samon_core.service.lockstep import claim_group_mates
from samon_core.service.outage import QueueOutage
from samon_core.service.preflight import check_runnable
from samon_core.service.recovery import recover
from samon_core.service.settings import Settings
from samon_core.service.slices import clear_request, pending_slices
from samon_core.service.worker_records import workers_dir

log = logging.getLogger("samon.worker")

# A test seam: "module:function" of a stand-in with the trainer's signature (e.g. to measure the
# queue alone). Not a user setting.
TRAINER_ENV = "SAMON_WORKER_TRAINER"


class _Taken(enum.Enum):
    """What ``Worker._take`` did with a run."""

    SKIPPED = "held by another worker or no longer queued"
    CANCELLED = "cancelled before it started"
    STOPPED = "claimed while this worker stops: left in the queue"
    TRAINED = "trained"


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
        self._group: tuple[str, ...] = ()  # the runs training now (more than one in lockstep)
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
            self._sweep()
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
        outage = QueueOutage(self.id, self._stop, self.max_backoff_s, redact=self.queue.redact)
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
            "run_id": self._current, "run_ids": list(self._group),
            "run_started": self._run_started, "started": self.started,
            "heartbeat": time.time(), "runs_done": self.runs_done,
            "queue": f"{self.settings.queue.value}:{self.settings.queue_name}",
        }
        with contextlib.suppress(OSError):
            atomic_write_text(self._record_path, json.dumps(record) + "\n", fsync=False)

    def _sweep(self) -> None:  # once at start: what killed writers left (leftovers.py)
        try:
            sweep_leftovers(self.store)
        except Exception:  # a sweep must never take a worker down
            log.exception("worker %s: sweeping leftovers failed", self.id)

    def _recover(self) -> None:
        try:
            recover(self.store, force=True, settings=self.settings)
        except Exception:  # recovery must never take a worker down
            log.exception("worker %s: recovery sweep failed", self.id)

    def _heartbeat_loop(self) -> None:
        last_recover = self.monotonic()
        while not self._done.wait(self.settings.heartbeat_every_s):
            self._write_record()
            for run_id in self._group:
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
        """The huey task for ``run_id``: train the run the fair queue puts first (fairness.py),
        trying the runs ranked before ``run_id`` and then ``run_id`` itself, unless it is no longer
        queued (a stale message: skipped)."""
        try:
            self.store.run_dir(run_id)
        except ValueError:
            log.warning("worker %s: ignoring a message with a bad run id %r", self.id, run_id)
            return
        if not self.store.exists(run_id):
            log.info("worker %s: run %s no longer exists; skipped", self.id, run_id)
            return
        if pending_slices(self.store, run_id) is not None and self._slice(run_id):
            return
        for candidate in self._candidates(run_id):
            if candidate == run_id:
                self._take(run_id)
                return
            if self._take(candidate, message_of=run_id) in (_Taken.TRAINED, _Taken.STOPPED):
                return
            # SKIPPED (held by another worker, no longer queued) or CANCELLED: the next one

    def _slice(self, run_id: str) -> bool:
        """Landscape slices asked for a finished run (slices.py); False if it is not finished."""
        if self.store.read_status(run_id).get("state") != RunState.FINISHED:
            return False
        with claim_lock(self.store.run_dir(run_id)) as mine:
            request = pending_slices(self.store, run_id) if mine else None
            if request is None:
                return True  # another worker has it, or it is done
            try:
                from samon_core.train.slice_run import slice_finished_run  # torch: loaded here

                n = slice_finished_run(self.store, run_id, points=request["points"],
                                       radius=request["radius"], data_dir=self.data_dir or "data",
                                       two_d=bool(request.get("plane")))
                log.info("worker %s: run %s: %d landscape slices", self.id, run_id, n)
            except Exception:  # the run stays finished; the request goes, with the reason logged
                log.exception("worker %s: landscape slices of run %s failed", self.id, run_id)
            finally:
                clear_request(self.store, run_id)
        return True

    def _candidates(self, run_id: str) -> list[str]:
        if self._stop.is_set():  # stopping: only give this message's run back
            return [run_id]
        try:
            return fair_candidates(self.store, run_id, self.settings)
        except Exception:  # a damaged store must not stop the queue: first in, first out
            log.exception("worker %s: cannot rank the queued runs; taking %s", self.id, run_id)
            return [run_id]

    def _hand_back(self, run_id: str, instead: str) -> None:
        """A new message for ``run_id``, whose message this worker used to take ``instead``
        (the fair queue's choice): ``run_id`` keeps its place in the store's order."""
        log.debug("worker %s: fair queue: run %s goes before %s", self.id, instead, run_id)
        try:
            self.queue.enqueue(self.queue.new_task(run_id))
        except Exception as exc:  # the recovery enqueues a queued run without a message
            log.warning("worker %s: cannot give the message of run %s back: %s", self.id,
                        run_id, exc)

    def _take(self, run_id: str, message_of: str | None = None) -> _Taken:
        """Claim ``run_id`` and train it, unless it is held, no longer queued or cancelled.
        ``message_of``: the run whose message this worker holds, if another (its message goes
        back to the queue once ``run_id`` is claimed)."""
        store = self.store
        run_dir = store.run_dir(run_id)
        with claim_lock(run_dir) as mine:
            if not mine:
                log.info("worker %s: run %s is held by another worker; skipped", self.id, run_id)
                return _Taken.SKIPPED
            state = store.read_status(run_id).get("state")
            if state != RunState.QUEUED:
                log.info("worker %s: run %s is %s; skipped", self.id, run_id, state)
                return _Taken.SKIPPED
            if (run_dir / CANCEL_FILE).exists() or self._queue_cancel(run_id):
                store.write_status(run_id, RunState.CANCELLED,
                                   message="cancelled before it started")
                with contextlib.suppress(Exception):
                    self.queue.clear_cancel(run_id)
                return _Taken.CANCELLED
            if message_of is not None:
                self._hand_back(message_of, instead=run_id)
            if self._stop.is_set():  # took the message while stopping: give it back
                if message_of is None:  # (a run of another message keeps its own)
                    requeue(store, run_id, Requeue.SHUTDOWN, settings=self.settings,
                            detail=f"worker {self.id}: {self._stop_reason}")
                return _Taken.STOPPED
            self._train_claimed(run_id)
            return _Taken.TRAINED

    def _train_claimed(self, run_id: str) -> None:
        """Train ``run_id`` (claimed) with its lockstep mates, keeping the worker record."""
        with contextlib.ExitStack() as mates_held:
            mates = self._claim_mates(run_id, mates_held)
            self._current, self._run_started = run_id, time.time()
            self._group = (run_id, *mates)
            self._write_record()
            try:
                self._train([run_id, *mates])
            finally:
                self.runs_done += len(self._group)
                self._current = self._run_started = None
                self._group = ()
                self._write_record()
                _free_accelerator_memory()

    def _claim_mates(self, run_id: str, held: contextlib.ExitStack) -> list[str]:
        """The other queued runs of ``run_id``'s comparison, to train in lockstep (lockstep.py);
        none with a trainer given by a test or ``$SAMON_TRAINER`` (they train one run)."""
        if self._trainer is not None or os.environ.get(TRAINER_ENV):
            return []
        try:
            return claim_group_mates(self.store, run_id, self.settings, held)
        except Exception:  # a damaged neighbour must not stop this run
            log.exception("worker %s: cannot look for the group of run %s", self.id, run_id)
            return []

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

    def _train(self, run_ids: list[str]) -> None:
        """Train ``run_ids`` (claimed; one, or a lockstep group) and settle each one's outcome."""
        t0 = time.monotonic()
        jobs = []  # (run_id, cancel flag, config, resume, trainer)
        for run_id in run_ids:
            run_dir = self.store.run_dir(run_id)
            started = self._start(run_id, run_dir)
            if started is not None:
                jobs.append((run_id, str(run_dir / CANCEL_FILE), *started))
        if not jobs:
            return
        for run_id, _, _, resume, _ in jobs:
            log.info("worker %s: run %s %s%s", self.id, run_id,
                     "resumes from its checkpoint" if resume else "starts",
                     f" (lockstep group of {len(jobs)})" if len(jobs) > 1 else "")
        try:
            states = self._run_trainer(jobs)
        except Exception as exc:  # the trainer has marked the run failed; make sure of it
            log.exception("worker %s: run(s) %s failed", self.id, ", ".join(run_ids))
            for run_id, *_ in jobs:
                with contextlib.suppress(Exception):
                    if self.store.read_status(run_id).get("state") == RunState.RUNNING:
                        self.store.write_status(run_id, RunState.FAILED,
                                                message=f"{type(exc).__name__}: {exc}")
            return
        for (run_id, cancel_flag, *_), state in zip(jobs, states, strict=True):
            self._settle(run_id, cancel_flag, state, t0)

    def _run_trainer(self, jobs: list[tuple]) -> list[str | None]:
        """The trainer's final state per job: ``train`` for one run, ``train_group`` for more."""
        if len(jobs) == 1:
            run_id, cancel_flag, config, resume, train = jobs[0]
            summary = train(config, self.store.run_dir(run_id), data_dir=self.data_dir,
                            should_stop=self._should_stop(run_id, cancel_flag), resume=resume)
            return [summary.get("state")]
        from samon_core.train.lockstep import GroupJob, train_group  # torch: already loaded

        group = [GroupJob(config, self.store.run_dir(run_id), data_dir=self.data_dir,
                          should_stop=self._should_stop(run_id, cancel_flag), resume=resume)
                 for run_id, cancel_flag, config, resume, _ in jobs]
        return [s.get("state") for s in train_group(group)]

    def _settle(self, run_id: str, cancel_flag: str, state: str | None, t0: float) -> None:
        """After training: a run stopped by this worker's shutdown goes back to the queue."""
        user_cancel = os.path.exists(cancel_flag) or self._queue_cancel(run_id)
        if state == RunState.CANCELLED and self._stop.is_set() and not user_cancel:
            # Stopped because this worker stops, not because a user cancelled: back in the queue.
            requeue(self.store, run_id, Requeue.SHUTDOWN, settings=self.settings,
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
