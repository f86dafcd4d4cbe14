"""Worker pools: child worker processes, ``workers_per_device`` per device, and the app's pool.

``ensure_workers`` (the app, on every rerun: cheap and idempotent) starts a local pool when no
worker is alive; ``python -m samon_core worker --devices 0,1`` supervises a pool the same way.
The children are ``python -m samon_core.service.worker_cli`` processes (started by module name: this
module imports no worker code, and no torch).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from samon_core.runs.io import file_lock
from samon_core.runs.store import RUNS_DIR_ENV, RunStore, store_or_default
from samon_core.service.capacity import cpu_threads_per_worker
from samon_core.service.devices import resolve_devices, worker_slots
from samon_core.service.settings import Settings, env_name, load_settings
from samon_core.service.worker_records import WORKERS_DIR, workers_status

log = logging.getLogger("samon.pool")

# A slot whose worker died this often within the window is not restarted again.
_MAX_RESTARTS = 5
_RESTART_WINDOW_S = 300.0


class WorkerPool:
    """Child worker processes, one per entry of ``devices`` (the slots of ``worker_slots``: an
    entry repeats once per worker of its device), each in its own process group.

    Used by ``ensure_workers`` (the app) and by ``worker_main`` with several slots. The children
    get the pool's settings as ``SAMON_*`` variables, ``--workers-per-device 1`` (each child is one
    worker, never a pool of its own), ``CUDA_VISIBLE_DEVICES`` (empty for CPU workers, which also
    share the cores evenly as ``OMP_NUM_THREADS`` unless it is set), and write their logs to
    ``<runs_dir>/.workers/logs/``. A child that dies is restarted
    (at most 5 times in 5 minutes per slot); one that exits with code 0 (``--exit-when-idle``,
    ``--max-runs``) is not.
    """

    def __init__(self, root: str | os.PathLike[str], devices: Sequence[str], *,
                 settings: Settings, data_dir: str | os.PathLike[str] | None = None,
                 exit_with_parent: bool = True, extra_args: Sequence[str] = (),
                 log_dir: str | os.PathLike[str] | None = None):
        self.root = Path(root).resolve()
        self.devices = list(devices)
        self.settings = settings
        self.data_dir = data_dir
        self.exit_with_parent = exit_with_parent
        self.extra_args = list(extra_args)
        self.log_dir = Path(log_dir) if log_dir else self.root / WORKERS_DIR / "logs"
        self._procs: list[subprocess.Popen | None] = [None] * len(self.devices)
        self._finished: list[bool] = [False] * len(self.devices)
        self._restarts: list[list[float]] = [[] for _ in self.devices]
        self._logs: list[IO[bytes] | None] = [None] * len(self.devices)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._monitor: threading.Thread | None = None
        self._pool_lock = contextlib.ExitStack()  # holds the pool lock file while the pool lives

    def acquire_pool_lock(self) -> bool:
        """Take ``<runs_dir>/.workers/pool.lock`` (held while this pool lives) so that two app
        processes starting at once do not both start a pool. False if another process holds
        it."""
        folder = self.root / WORKERS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        taken = self._pool_lock.enter_context(file_lock(folder / "pool.lock", blocking=False))
        if not taken:
            self._pool_lock.close()
        return taken

    def _env(self, device: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.to_environ())
        env[RUNS_DIR_ENV] = str(self.root)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU worker never grabs a GPU, even with 'auto'
            if "OMP_NUM_THREADS" not in os.environ:  # a value set by hand wins
                n_cpu = sum(d == "cpu" for d in self.devices)
                env["OMP_NUM_THREADS"] = str(cpu_threads_per_worker(n_cpu, os.cpu_count()))
        else:
            env["CUDA_VISIBLE_DEVICES"] = device
        return env

    def _spawn(self, i: int) -> None:
        device = self.devices[i]
        cmd = [sys.executable, "-m", "samon_core.service.worker_cli", "--devices", device,
               "--workers-per-device", "1", "--runs-dir", str(self.root)]
        if self.data_dir:
            cmd += ["--data-dir", str(self.data_dir)]
        if self.exit_with_parent:
            cmd.append("--exit-with-parent")
        cmd += self.extra_args
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self._logs[i] is None:
            name = f"worker-{i}-{re.sub(r'[^A-Za-z0-9_.-]', '_', device)}.log"
            self._logs[i] = open(self.log_dir / name, "ab")  # noqa: SIM115 - closed in stop()
        # Own session = own process group: a Ctrl+C in the app's terminal does not reach the
        # workers (the pool stops them in order), and stop() can signal a worker's whole group.
        self._procs[i] = subprocess.Popen(cmd, env=self._env(device), stdin=subprocess.DEVNULL,
                                          stdout=self._logs[i], stderr=subprocess.STDOUT,
                                          start_new_session=True)
        log.info("pool: started worker %d (%s), pid %d", i, device, self._procs[i].pid)

    def start(self) -> WorkerPool:
        with self._lock:
            for i in range(len(self.devices)):
                self._spawn(i)
        self._monitor = threading.Thread(target=self._watch, name="samon-pool", daemon=True)
        self._monitor.start()
        return self

    def _restart_if_died(self, i: int, proc: subprocess.Popen) -> None:
        if proc.returncode == 0:
            self._finished[i] = True
            return
        now = time.monotonic()
        recent = [t for t in self._restarts[i] if now - t < _RESTART_WINDOW_S]
        if len(recent) >= _MAX_RESTARTS:
            log.error("pool: worker %d (%s) keeps dying (exit %s); not restarted",
                      i, self.devices[i], proc.returncode)
            self._finished[i] = True
            return
        self._restarts[i] = recent + [now]
        log.warning("pool: worker %d (%s) exited with %s; restarting", i, self.devices[i],
                    proc.returncode)
        self._spawn(i)

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            with self._lock:
                if self._stopping.is_set():
                    return
                for i, proc in enumerate(self._procs):
                    if proc is None or self._finished[i] or proc.poll() is None:
                        continue
                    self._restart_if_died(i, proc)

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p is not None and p.poll() is None]

    def running(self) -> bool:
        """Whether any worker is alive or will be restarted."""
        return any(p is not None and (p.poll() is None or not self._finished[i])
                   for i, p in enumerate(self._procs)) and not self._stopping.is_set()

    def wait(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set or every worker has exited for good."""
        while not stop.wait(0.5):
            with self._lock:
                if all(p is None or (p.poll() is not None and self._finished[i])
                       for i, p in enumerate(self._procs)):
                    return

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM every worker's process group (their runs go back to the queue), wait up to
        ``timeout`` (default ``stop_grace_s``), then SIGKILL the rest. Idempotent."""
        self._stopping.set()
        with self._lock:
            procs = [p for p in self._procs if p is not None]
            for proc in procs:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + (self.settings.stop_grace_s if timeout is None
                                           else timeout)
            for proc in procs:
                try:
                    proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("pool: worker pid %d did not stop in time; killing it", proc.pid)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            for i, fh in enumerate(self._logs):
                if fh is not None:
                    fh.close()
                    self._logs[i] = None
            self._pool_lock.close()


# ---------------------------------------------------------------------------------------------
# the app's local pool
# ---------------------------------------------------------------------------------------------

_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()


def _answer(enabled: bool, started: int, alive: int, pids: list[int],
            message: str) -> dict[str, Any]:
    return {"enabled": enabled, "started": started, "alive": alive, "pids": pids,
            "message": message}


def ensure_workers(*, store: RunStore | None = None,
                   settings: Settings | None = None) -> dict[str, Any]:
    """Start a local worker pool if no worker is alive (the app calls this at start; cheap and
    idempotent, so calling it on every rerun is fine).

    ``workers_per_device`` worker processes per GPU pinned with ``CUDA_VISIBLE_DEVICES`` (else
    CPU workers; see ``worker_devices`` / ``device_policy``), each in its own process group,
    stopped at this process's exit (atexit) and stopping by itself if this process dies.
    ``start_workers = false`` (``SAMON_START_WORKERS=0``) disables it for deployments whose
    workers run as services.
    Returns ``{"enabled", "started", "alive", "pids", "message"}``.
    """
    global _POOL
    store = store_or_default(store)
    s = settings or load_settings()
    if not s.start_workers:
        alive = workers_status(store=store, settings=s)
        return _answer(False, 0, len(alive), [],
                       f"local workers are disabled ({env_name('start_workers')}=0); "
                       f"{len(alive)} worker(s) alive")
    with _POOL_LOCK:
        if _POOL is not None and _POOL.root == store.root and _POOL.running():
            alive = workers_status(store=store, settings=s)
            return _answer(True, 0, len(alive), _POOL.pids(), "the local worker pool is running")
        # Workers that are stopping (e.g. those of an app that was just restarted) do not count.
        alive = [w for w in workers_status(store=store, settings=s) if w["state"] != "stopping"]
        if alive:
            return _answer(True, 0, len(alive), [], f"{len(alive)} worker(s) already alive")
        try:
            devices = worker_slots(resolve_devices(s.worker_devices, s), s)
        except ValueError as exc:
            return _answer(True, 0, 0, [], str(exc))
        if _POOL is not None:  # a pool of another run store, or one whose workers all ended
            _POOL.stop()
            _POOL = None
        pool = WorkerPool(store.root, devices, settings=s, exit_with_parent=True)
        if not pool.acquire_pool_lock():
            return _answer(True, 0, 0, [],
                           "another process is starting a worker pool for this run store")
        pool.start()
        _POOL = pool
        atexit.register(pool.stop)
        return _answer(True, len(devices), 0, pool.pids(),
                       f"started {len(devices)} local worker(s): {', '.join(devices)}")


def stop_workers(timeout: float | None = None) -> None:
    """Stop the pool started by ``ensure_workers`` in this process (running runs go back to the
    queue and resume from their checkpoints later)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.stop(timeout)
            _POOL = None
