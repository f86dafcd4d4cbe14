"""Queue workers: processes that claim queued runs in the database and train them.

A worker polls the database every ``poll_s`` (sub-second) and claims the next run in one
transaction (``scheduler.claim_next``: the fair-share order, owners taking turns; a run of a
comparison comes with its queued group mates, trained together step by step by
``samon_core.train.lockstep``). It re-checks the server's limits and the run's preflight before
training (the run may have been queued under laxer settings), trains, and the trainer writes the
run's end (finished, failed, diverged, cancelled); a run that fails before its trainer starts is
ended here (``scheduler.finish``). Between runs it computes landscape slices asked for finished
runs (the ``requests`` table; a request taken is the worker's until it is done, so one whose
worker dies goes to the next). The command line is ``worker_main`` (``python -m samon_core
worker [--devices auto|cpu|0,1] ...``); with several devices it supervises one worker process
per slot (pool.py), each pinned with ``CUDA_VISIBLE_DEVICES`` and restarted if it dies.

A heartbeat thread writes the worker's row (``scheduler.heartbeat``) every ``heartbeat_every_s``,
even during a long step or evaluation, and runs the crash recovery (recovery.py) every
``recover_every_s``: a worker whose heartbeat went stale is dead, and its runs go back to the
queue. The heartbeat answers which runs this worker still holds; a run taken back from it (it
was thought dead, e.g. after a long database outage) is stopped at once, so two workers never
train one run.

The trainer's ``should_stop`` is the worker's stop event (checked every step) or the run's
``cancel_requested`` column (read at most once a second, with the worker's claim: a run taken
over by another worker stops its trainer with ``Released``). The trainer writes under the
claim (runs/fence.py): a write after the run was taken back is refused and stops it too.
Stopping: SIGTERM or SIGINT asks the worker to stop: the run in progress stops within one step
without an end (``should_stop`` raises ``Released``, train/stopping.py) and goes from 'running'
to 'queued' in one transaction (``scheduler.release``; never 'cancelled' on the way),
continuing from its last checkpoint on the next worker; a second signal exits at once (the run
is then reclaimed as a dead worker's). A worker started with ``--exit-with-parent`` (the app's
pool) stops the same way when its parent dies.

Database outages (a PostgreSQL server restarting, a locked SQLite file) are waited out
(``database.retrying``): the worker logs once that the database is away and once that it is
back, and loses nothing (each change is one transaction). A full disk ends the run 'failed' with
its reason: the worker holds a small reserve of disk space and frees it to write that end. No
torch at import time; the trainer (and torch) is imported in a background thread as soon as the
worker starts.

This module is longer than 500 lines because it is one process's life: its loop, heartbeat, the
handling of one run and its command line share the worker's state; split, each part would
import the others.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import inspect
import logging
import os
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from samon_core.runs.database import DatabaseUnavailable, retrying
from samon_core.runs.fence import NotHeld, WorkerClaim
from samon_core.runs.files import CHECKPOINT_FILE
from samon_core.runs.io import StoreUnavailable, describe_os_error, temp_prefix
from samon_core.runs.messages import ClippingArgumentParser, clip, clip_message
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore
from samon_core.service import scheduler
from samon_core.service.admission import check_config_limits
from samon_core.service.pool import WorkerPool, device_label, resolve_devices, worker_slots
from samon_core.service.preflight import check_runnable
from samon_core.service.recovery import recover, sweep_leftovers, this_host
from samon_core.service.settings import Settings, load_settings
from samon_core.train.stopping import RELEASED, Released

log = logging.getLogger("samon.worker")
T = TypeVar("T")
# Disk space a worker keeps in reserve (a file it frees when the disk is full), so that a run
# whose trainer fails on a full disk can still be ended 'failed' with its reason: SQLite's
# database lives on the same disk as the run folders.
RESERVE_BYTES = 1 << 20
Trainer = Callable[..., dict]


def claimable_devices(device: str) -> tuple[str, ...]:
    """The ``RunConfig.device`` values a worker on ``device`` (a slot: 'cpu' or a GPU entry,
    seen inside the worker as its only GPU) trains."""
    if device == "cpu":
        return ("auto", "cpu", "mps")
    return tuple(dict.fromkeys(("auto", "cuda", "cuda:0",
                                *([f"cuda:{device}"] if device.isdecimal() else []))))


class Worker:
    """One worker: claims runs from the database and trains them in this process, one run (or
    one lockstep group) at a time.

    ``device`` is the slot ('cpu' or a CUDA_VISIBLE_DEVICES entry); pinning happens in the
    environment before torch is imported (``worker_main`` / ``WorkerPool``). ``max_runs`` > 0
    exits after that many runs; ``exit_when_idle`` exits when nothing is queued for it.
    ``trainer`` stands in for ``samon_core.train.trainer.train`` (tests; the runs of a group then
    train one after another); ``monotonic`` is the clock of the cancel check (tests).
    """

    def __init__(self, store: RunStore, settings: Settings, *, device: str = "cpu",
                 data_dir: str | os.PathLike[str] | None = None, exit_with_parent: bool = False,
                 max_runs: int = 0, exit_when_idle: bool = False, trainer: Trainer | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.store = store
        self.settings = settings
        self.slot = device
        self.device = device_label(device)
        self.devices = claimable_devices(device)
        self.data_dir = data_dir
        self.exit_with_parent = exit_with_parent
        self.max_runs = max_runs
        self.exit_when_idle = exit_when_idle
        self.monotonic = monotonic
        self.host = this_host()
        host = re.sub(r"[^A-Za-z0-9_.-]", "_", self.host)[:40]
        self.id = f"{host}-{os.getpid()}-{secrets.token_hex(2)}"
        self.url = store.database_url  # what its engine opens (named, masked, in outages)
        self.runs_done = 0
        self.started = time.time()
        self._trainer = trainer
        self._parent = os.getppid()
        self._stop = threading.Event()  # stop taking runs; the current run stops within a step
        self._stop_reason = ""
        self._done = threading.Event()  # ends the heartbeat thread
        self._group: tuple[str, ...] = ()  # the runs training now (more than one in lockstep)
        self._lost: set[str] = set()  # runs taken back from this worker: their trainer stops
        self._claims: dict[str, WorkerClaim] = {}  # the claims on the runs training now (the fence)
        self._outage: float | None = None
        self._reserve: Path | None = None
        self._beat_failed: float | None = None  # when the heartbeat's outage began
        self._beat_lock = threading.Lock()
        self._left = False

    def __repr__(self) -> str:
        return f"Worker({self.id!r}, {self.device})"

    # --- lifecycle ------------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()
            log.info("worker %s: stopping (%s)", self.id, reason)
            threading.Thread(target=self._beat, daemon=True).start()  # 'stopping' at once

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: Any) -> None:
            if self._stop.is_set():  # second signal: leave now; the recovery takes the run back
                os._exit(128 + signum)
            self.request_stop(f"signal {signal.Signals(signum).name}")

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)

    def run(self) -> int:
        """Serve the queue until asked to stop; returns the exit code."""
        self._install_signals()
        # a database unreachable at start: exit (1, one line) after a minute; the pool retries
        self._db(self._beat_now, give_up_s=60.0)
        self._keep_reserve()
        log.info("worker %s: serving %s on %s (device %s)", self.id, self.store.root,
                 self.url.partition(":")[0], self.device)
        beat = threading.Thread(target=self._heartbeat_loop, name="samon-heartbeat", daemon=True)
        beat.start()
        if self._trainer is None:
            # Import torch and the trainer while idle (seconds): the app starts its pool long
            # before the first click, so the first run does not wait for the import.
            threading.Thread(target=self._preload, name="samon-preload", daemon=True).start()
        try:
            self._guard("sweep leftovers", lambda: sweep_leftovers(self.store))
            self._recover()
            self._serve()
        finally:
            self._done.set()
            beat.join(timeout=10)
            self._guard("leave", self._leave)
            if self._reserve is not None:
                self._reserve.unlink(missing_ok=True)
            log.info("worker %s: exited after %d run(s)", self.id, self.runs_done)
        return 0

    def _serve(self) -> None:
        while not self._stop.is_set():
            if self.max_runs and self.runs_done >= self.max_runs:
                break
            try:
                if self._slices():
                    continue
                claimed = self._db(lambda: scheduler.claim_next(
                    self.store.engine, self.id, self.devices,
                    window_s=self.settings.fair_window_s,
                    group_max=self.settings.lockstep_max_runs))
                if claimed:
                    self._train_claimed(claimed)
                    continue
            except DatabaseUnavailable as exc:  # logged by _db; keep waiting
                log.debug("worker %s: %s", self.id, exc)
                continue
            if self.exit_when_idle:
                break
            self._stop.wait(self.settings.poll_s)

    def _db(self, operation: Callable[[], T], give_up_s: float = 300.0) -> T:
        """``operation()`` (one transaction), waiting out a database outage: one log line when
        it starts, one when it ends; ``DatabaseUnavailable`` after ``give_up_s``."""

        def wait(seconds: float) -> None:
            if self._outage is None:
                self._outage = time.monotonic()
                log.warning("worker %s: the database %s cannot be reached; waiting for it",
                            self.id, _shown(self.url))
            time.sleep(seconds)

        result = retrying(operation, url=self.url, sleep=wait, give_up_s=give_up_s)
        if self._outage is not None:
            log.warning("worker %s: the database is back after %.0f s", self.id,
                        time.monotonic() - self._outage)
            self._outage = None
        return result

    def _guard(self, what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception:  # housekeeping must never take a worker down
            log.exception("worker %s: %s failed", self.id, what)

    def _recover(self) -> None:
        self._guard("the recovery sweep",
                    lambda: recover(self.store, force=True, settings=self.settings))

    # --- heartbeat ------------------------------------------------------------------------------

    def _beat_now(self) -> None:
        state = "stopping" if self._stop.is_set() else "training" if self._group else "idle"
        group = self._group
        held = scheduler.heartbeat(self.store.engine, self.id, host=self.host, pid=os.getpid(),
                                   device=self.device, state=state, started=self.started,
                                   watch=group)
        lost = set(group) - set(held)
        if lost - self._lost:
            log.warning("worker %s: run(s) %s were taken back from this worker; stopping them",
                        self.id, ", ".join(sorted(lost - self._lost)))
        self._lost |= lost

    def _beat(self) -> None:
        with self._beat_lock:  # never after the worker left (it would be listed for ever)
            if not self._left:
                self._beat_once()

    def _leave(self) -> None:
        with self._beat_lock:
            self._left = True
            self._db(lambda: scheduler.leave(self.store.engine, self.id))

    def _beat_once(self) -> None:
        try:
            self._beat_now()
        except Exception as exc:  # an outage: the next beat tries again; said once
            if self._beat_failed is None:
                self._beat_failed = time.monotonic()
                log.warning("worker %s: the database %s cannot be reached (%s); the heartbeat "
                            "waits for it", self.id, _shown(self.url), type(exc).__name__)
            return
        if self._beat_failed is not None:
            log.warning("worker %s: the database is back after %.0f s", self.id,
                        time.monotonic() - self._beat_failed)
            self._beat_failed = None

    def _heartbeat_loop(self) -> None:
        last_recover = time.monotonic()
        while not self._done.wait(self.settings.heartbeat_every_s):
            self._beat()
            if self.exit_with_parent and os.getppid() != self._parent:
                self.request_stop("its parent process exited")
            if time.monotonic() - last_recover >= self.settings.recover_every_s:
                last_recover = time.monotonic()
                self._recover()

    # --- slices of finished runs ----------------------------------------------------------------

    def _slices(self) -> bool:
        """Compute the oldest waiting slices request, if any (taken in one transaction, so one
        worker computes it; this worker's until it is done: if it dies first, the recovery gives
        the request to another); False when there is none."""
        taken = self._db(lambda: scheduler.take_request(self.store.engine, self.id))
        if taken is None:
            return False
        request_id, run_id, request = taken
        try:
            from samon_core.train.slice_run import slice_finished_run  # torch: loaded here

            n = slice_finished_run(self.store, run_id, points=int(request.get("points", 21)),
                                   radius=float(request.get("radius", 1.0)),
                                   data_dir=self.data_dir or "data",
                                   two_d=bool(request.get("plane")))
            log.info("worker %s: run %s: %d landscape slices", self.id, run_id, n)
        except Exception:  # the run stays finished; the request is done, the reason logged
            log.exception("worker %s: landscape slices of run %s failed", self.id, run_id)
        self._db(lambda: scheduler.complete_request(self.store.engine, request_id, self.id))
        return True

    # --- runs -----------------------------------------------------------------------------------

    def _train_claimed(self, run_ids: list[str]) -> None:
        self._lost -= set(run_ids)  # a late heartbeat may have marked an earlier attempt's
        self._group = tuple(run_ids)
        self._beat()
        t0 = time.monotonic()
        try:
            self._claims = self._db(lambda: scheduler.claims_of(self.store.engine, self.id,
                                                                run_ids))
            jobs = [job for job in map(self._start, run_ids) if job is not None]
            states = self._run_trainer(jobs) if jobs else []
            for (run_id, *_), state in zip(jobs, states, strict=True):
                self._settle(run_id, state, t0)
        finally:
            self.runs_done += len(run_ids)
            self._lost -= set(run_ids)
            self._claims = {}
            self._group = ()
            self._beat()
            _free_accelerator_memory()

    def _fail(self, run_id: str, reason: str) -> None:
        """End ``run_id`` 'failed' (if this worker still holds it); on a full disk, with the
        space of the reserve."""

        def finish() -> bool:
            return self._db(lambda: scheduler.finish(self.store.engine, run_id, self.id,
                                                     RunState.FAILED, reason=reason))

        try:
            finish()
        except Exception as exc:
            if not self._free_reserve(exc):
                log.warning("worker %s: cannot end run %s: %s", self.id, run_id,
                            clip_message(str(exc)))
                return
            with contextlib.suppress(Exception):
                finish()

    def _keep_reserve(self) -> None:
        """Hold ``RESERVE_BYTES`` of disk in a file named like a temporary file of this
        process (a sweep removes it once the process is gone)."""
        self._reserve = self.store.root / f"{temp_prefix('reserve')}{secrets.token_hex(2)}.tmp"
        try:
            with open(self._reserve, "wb") as fh:
                fh.write(b"\0" * RESERVE_BYTES)
        except OSError:  # a full disk already: no reserve
            self._reserve.unlink(missing_ok=True)

    def _free_reserve(self, exc: BaseException) -> bool:
        """Free the reserve when ``exc`` (or what caused it) says the disk is full."""
        full = False
        while exc is not None and not full:
            full = ((isinstance(exc, OSError) and exc.errno == errno.ENOSPC)
                    or "disk is full" in str(exc) or "disk I/O error" in str(exc))
            exc = exc.__cause__ or exc.__context__
        if full and self._reserve is not None and self._reserve.exists():
            log.warning("worker %s: the disk is full: freeing the reserve to end the run",
                        self.id)
            self._reserve.unlink(missing_ok=True)
            return True
        return False

    def _start(self, run_id: str) -> tuple[str, Any, bool] | None:
        """The run's config and whether it resumes from a checkpoint, after the limits and the
        preflight of submit, again: this run may have been queued under laxer settings. None
        (the run ended 'failed' with one line) if any of it fails, or (nothing written) if the
        run was taken back from this worker already."""
        claim = self._claims.get(run_id)
        if claim is None:  # taken back between the claim and now
            log.warning("worker %s: run %s was taken back before it started", self.id, run_id)
            return None
        try:
            self._db(lambda: self.store.write_status(
                run_id, RunState.RUNNING, claim=claim, worker=self.id, pid=os.getpid(),
                host=self.host, device=self.device, message=f"starting on worker {self.id}"))
            config = self.store.read_config(run_id)
            check_config_limits(config, self.settings, outcome="the run was not started")
            check_runnable(config, here=True, data_dir=self.data_dir)
            resume = (self.store.run_dir(run_id) / CHECKPOINT_FILE).is_file()
            if not resume:
                self._restart_marker(run_id)
            return run_id, config, resume
        except NotHeld:
            log.warning("worker %s: run %s was taken back before it started", self.id, run_id)
        except ValueError as exc:  # over a limit, not runnable here, a damaged config: one line
            log.warning("worker %s: run %s not started: %s", self.id, run_id, exc)
            self._fail(run_id, clip(str(exc), 2000)[1:-1])
        except Exception as exc:
            log.exception("worker %s: cannot start run %s", self.id, run_id)
            self._fail(run_id, f"{type(exc).__name__}: {clip_message(str(exc))}")
        return None

    def _restart_marker(self, run_id: str) -> None:
        """A run restarted without a checkpoint trains from epoch 0 again: a resume marker at
        epoch 0 makes readers drop what the lost attempt wrote after initialisation."""
        records, _ = self.store.read_records_since(run_id, 0)
        if records:
            with self.store.metrics_writer(run_id) as writer:
                writer.write({"kind": "resume", "epoch": 0, "step": 0, "time": 0.0,
                              "reason": "restarted from the start: no checkpoint"})

    def _should_stop(self, run_id: str) -> Callable[[], bool]:
        """The trainer's ``should_stop`` for ``run_id``: True when a user cancels it (the
        column, read at most once a second): the run ends 'cancelled'. ``Released`` when the
        run was taken back from this worker or this worker stops: the trainer writes no end
        (another worker holds the run, or ``_settle`` puts it back in the queue)."""
        cancelled = scheduler.cancel_check(self.store.engine, run_id, clock=self.monotonic,
                                           claim=self._claims.get(run_id))

        def check() -> bool:
            if run_id in self._lost:
                raise Released(f"run {run_id} was taken back from worker {self.id}")
            try:
                if cancelled():  # also the fence: NotHeld once another holds the run
                    return True
            except NotHeld as exc:
                raise Released(str(exc)) from exc
            if self._stop.is_set():
                raise Released(f"worker {self.id} stops ({self._stop_reason})")
            return False

        return check

    def _preload(self) -> None:
        try:
            importlib.import_module("samon_core.train.trainer")
        except Exception as exc:  # reported again, per run, when a run needs the trainer
            log.warning("worker %s: cannot import the trainer: %s", self.id, exc)

    def _run_trainer(self, jobs: list[tuple[str, Any, bool]]) -> list[str | None]:
        """The trainer's final state per job: ``train`` for one run, ``train_group`` for more
        (a stand-in trainer trains them one after another)."""
        for run_id, _, resume in jobs:
            log.info("worker %s: run %s %s%s", self.id, run_id,
                     "resumes from its checkpoint" if resume else "starts",
                     f" (lockstep group of {len(jobs)})" if len(jobs) > 1 else "")
        try:
            if self._trainer is not None or len(jobs) == 1:
                if self._trainer is None:
                    from samon_core.train.trainer import train  # torch: imported here
                else:
                    train = self._trainer
                return [train(config, self.store.run_dir(run_id), data_dir=self.data_dir,
                              should_stop=self._should_stop(run_id), resume=resume,
                              **self._claim_for(train, run_id)).get("state")
                        for run_id, config, resume in jobs]
            from samon_core.train.lockstep import GroupJob, train_group  # torch: imported here

            return [summary.get("state") for summary in train_group([
                GroupJob(config, self.store.run_dir(run_id), data_dir=self.data_dir,
                         should_stop=self._should_stop(run_id), resume=resume,
                         claim=self._claims.get(run_id))
                for run_id, config, resume in jobs])]
        except (Released, NotHeld):  # a stand-in trainer let the stop (or a refused write)
            # through: the runs are given back (or left to their new holder)
            return [RELEASED] * len(jobs)
        except Exception as exc:  # the trainer marks its run failed; make sure of it
            log.exception("worker %s: run(s) %s failed", self.id,
                          ", ".join(job[0] for job in jobs))
            cause = _root_cause(exc)
            for run_id, *_ in jobs:
                self._fail(run_id, f"{type(cause).__name__}: {clip_message(str(cause))}")
            return [RunState.FAILED.value] * len(jobs)

    def _claim_for(self, train: Trainer, run_id: str) -> dict[str, WorkerClaim | None]:
        """``{"claim": ...}`` for the trainer (its writes are fenced by it: runs/fence.py);
        {} for a stand-in trainer that takes no ``claim`` (its writes are not fenced)."""
        try:
            params = inspect.signature(train).parameters.values()
        except (TypeError, ValueError):  # no signature to read: pass none
            params = []
        takes = any(p.name == "claim" or p.kind is p.VAR_KEYWORD for p in params)
        return {"claim": self._claims.get(run_id)} if takes else {}

    def _settle(self, run_id: str, state: str | None, t0: float) -> None:
        """After training: a run released by its trainer (this worker stops) goes from
        'running' back to 'queued' in one transaction ('cancelled' if a user asked meanwhile);
        one taken back from this worker is left to its new holder."""
        if state == RELEASED:
            reason = (f"queued again: worker {self.id} stopped ({self._stop_reason}); it "
                      "resumes from its checkpoint")
            after = None if run_id in self._lost else self._db(
                lambda: scheduler.release(self.store.engine, run_id, self.id, reason=reason))
            state = {RunState.QUEUED: "queued again", None: "left to its new holder"}.get(
                after, after)
        elif state is None or state == RunState.RUNNING:  # the trainer did not end the run
            self._fail(run_id, f"the trainer returned without ending the run ({clip(state)})")
        log.info("worker %s: run %s %s after %.1f s", self.id, run_id, state,
                 time.monotonic() - t0)


@contextlib.contextmanager
def train_here(store: RunStore, run_ids: Sequence[str],
               settings: Settings | None = None) -> Iterator[dict[str, Callable[[], bool]]]:
    """For a process that trains runs it created itself (``samon run``, ``claim run``): claims
    them (a worker may have taken one first: it is left out), keeps a heartbeat while they
    train (if the process dies, the recovery puts them back in the queue and a worker resumes
    them) and yields each claimed run's ``should_stop``: a cancel from the app or ``samon
    cancel`` stops it as it stops a worker's run."""
    s = settings or load_settings()
    engine, me = store.engine, f"{this_host()}-{os.getpid()}-{secrets.token_hex(2)}"
    mine = scheduler.claim_runs(engine, run_ids, me)
    done = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # an outage: the next beat tries again
                scheduler.heartbeat(engine, me, host=this_host(), pid=os.getpid(),
                                    device="cli", state=scheduler.PROCESS)
            if done.wait(s.heartbeat_every_s):
                return

    beat_thread = threading.Thread(target=beat, name="samon-heartbeat", daemon=True)
    beat_thread.start()
    try:
        yield {run_id: scheduler.cancel_check(engine, run_id) for run_id in mine}
    finally:
        done.set()
        beat_thread.join(timeout=10)
        with contextlib.suppress(Exception):
            scheduler.leave(engine, me)


def _root_cause(exc: BaseException) -> BaseException:
    """What made the run fail: a trainer whose 'failed' status could not be written (a full
    disk) raises the database's error, with the disk's own (the reason) as its context."""
    def database_error(e: BaseException) -> bool:  # SQLAlchemy's, or its driver's under it
        return (isinstance(e, sa.exc.SQLAlchemyError)
                or type(e).__module__.split(".")[0] in ("sqlite3", "psycopg"))

    while database_error(exc) and exc.__context__ is not None:
        exc = exc.__context__
    return exc


def _shown(url: str) -> str:
    from samon_core.runs.redact import display_url

    return display_url(url)


def _free_accelerator_memory() -> None:
    torch = sys.modules.get("torch")  # only if a run imported it
    if torch is not None:
        with contextlib.suppress(Exception):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


# --- the command line -------------------------------------------------------------------------


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
    ap.add_argument("--data-dir", default=None,
                    help="dataset folder (default: $SAMON_DATA_DIR or ./data)")
    ap.add_argument("--max-runs", type=int, default=0,
                    help="exit (code 0) after this many runs; 0 = never")
    ap.add_argument("--exit-when-idle", action="store_true",
                    help="exit (code 0) as soon as nothing is queued for this worker")
    ap.add_argument("--exit-with-parent", action="store_true",
                    help="stop when the parent process exits (used by the app's worker pool)")
    ap.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    return ap


def worker_main(argv: Sequence[str] | None = None, *, trainer: Trainer | None = None) -> int:
    """``python -m samon_core worker ...``; returns the exit code: 2 for bad options or settings,
    1 when the run store or the database cannot be used (disk full, read-only, database
    unreachable), each with one line on stderr and no traceback. ``trainer``: a stand-in for
    the trainer (tests), for a single worker."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return _worker_main(args, trainer)
    except ValueError as exc:
        print(f"samon worker: error: {clip_message(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"samon worker: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except (DatabaseUnavailable, StoreUnavailable) as exc:
        print(f"samon worker: error: {clip_message(str(exc))}", file=sys.stderr)
        return 1
    except sa.exc.DatabaseError as exc:  # e.g. a damaged SQLite file: "file is not a database"
        why = str(exc.orig or exc).splitlines()[0]  # the driver's words, never the URL
        print(f"samon worker: error: the run store's database cannot be used: "
              f"{clip_message(why)}", file=sys.stderr)
        return 1


def _worker_main(args: argparse.Namespace, trainer: Trainer | None) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s[%(process)d] %(levelname)s: %(message)s")
    overrides: dict[str, Any] = {}
    if args.workers_per_device is not None:
        overrides["workers_per_device"] = args.workers_per_device  # the setting checks it
    if args.max_runs < 0:
        raise ValueError("--max-runs must be >= 0")
    settings = load_settings(**overrides)
    devices = worker_slots(resolve_devices(args.devices or settings.worker_devices, settings),
                           settings)
    store = RunStore(args.runs_dir, database_url=settings.database)
    if store.root.exists() and not store.root.is_dir():
        raise ValueError(f"--runs-dir {clip(str(store.root))} is not a folder")
    store.root.mkdir(parents=True, exist_ok=True)
    probe = store.root / f"{temp_prefix('probe')}{secrets.token_hex(2)}.tmp"
    probe.touch()  # a read-only or full store: OSError, one line (a worker writes run folders)
    probe.unlink()
    if settings.database:  # the trainer opens its own store of the run folder: same database
        os.environ["SAMON_DATABASE_URL"] = settings.database
    if len(devices) == 1:
        device = devices[0]
        if device == "cpu":
            if args.devices and args.devices.strip().lower() == "cpu":
                os.environ["CUDA_VISIBLE_DEVICES"] = ""  # asked for the CPU: hide any GPU
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = device  # before torch is imported
        worker = Worker(store, settings, device=device, data_dir=args.data_dir,
                        exit_with_parent=args.exit_with_parent, max_runs=args.max_runs,
                        exit_when_idle=args.exit_when_idle, trainer=trainer)
        return worker.run()
    extra = ["--log-level", args.log_level]
    if args.max_runs:
        extra += ["--max-runs", str(args.max_runs)]
    if args.exit_when_idle:
        extra.append("--exit-when-idle")
    pool = WorkerPool(store.root, devices, settings=settings, data_dir=args.data_dir,
                      exit_with_parent=True, extra_args=extra)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    log.info("supervising %d workers (%s) for %s", len(devices), ", ".join(devices), store.root)
    pool.start()
    try:
        pool.wait(stop)
    finally:
        pool.stop()
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
