"""Worker pools: which devices, how many workers each holds, and the worker processes.

* **Devices** (found without torch): a device entry is ``"cpu"`` or a ``CUDA_VISIBLE_DEVICES``
  entry (GPU index or UUID); the pool pins each worker process to its entry before torch is
  imported there. ``worker_slots`` repeats each entry ``workers_per_device`` times (one slot =
  one worker process).
* **Capacity**: "auto" starts as many workers on a GPU as its free memory (``nvidia-smi``) holds
  for the largest model the server allows (``worker_memory_bytes``); one on a CPU, whose cores
  the pool splits between the workers of a CPU device (``cpu_threads_per_worker``).
* **The pool** (``WorkerPool``): child ``python -m samon_core.service.worker`` processes (started
  by module name: this module imports no worker code and no torch), restarted if they die.
  ``ensure_workers`` (the app, on every rerun: cheap and idempotent) starts a local pool when no
  worker is alive (the database's ``workers`` table); ``python -m samon_core worker --devices
  0,1`` supervises a pool the same way.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from samon_core.catalog import MODELS
from samon_core.runs.config import RunConfig
from samon_core.runs.io import file_lock
from samon_core.runs.store import RUNS_DIR_ENV, RunStore, store_or_default
from samon_core.service import scheduler
from samon_core.service.settings import DevicePolicy, Settings, env_name, load_settings

log = logging.getLogger("samon.pool")

WORKERS_DIR = ".workers"  # inside the run store: the pool's lock and the workers' logs

# --- how many workers one device holds -------------------------------------------------------

GiB = 1 << 30
MiB = 1 << 20
# "auto" never starts more workers on one device than this: beyond it the runs only share the
# device's compute thinner, and each process costs its own CUDA context.
AUTO_CAP = 4
# Share of the free memory "auto" plans with: the allocator fragments, other processes grow.
MEMORY_MARGIN = 0.9
# Assumptions of worker_memory_bytes (see its docstring for where they come from).
CONTEXT_BYTES = 512 * MiB
RUN_FIXED_BYTES = 256 * MiB
STATE_COPIES = 5
ACT_FLOATS_PER_SQRT_PARAM = 2000
ACT_KEEP_FACTOR = 2
FLOAT_BYTES = 4


def worker_memory_bytes(num_params: int, batch_size: int, runs_together: int = 1) -> int:
    """Device memory one worker process may need, in bytes (a deliberately high estimate)::

        CONTEXT + runs_together * (RUN_FIXED + 4 B * STATE_COPIES * P)
                + 4 B * ACT_KEEP_FACTOR * ACT_FLOATS_PER_SQRT_PARAM * sqrt(P) * batch_size

    with P the model's parameter count. Assumptions:

    * CONTEXT = 512 MiB: the process's CUDA context, torch's kernels and cuDNN's workspaces;
    * RUN_FIXED = 256 MiB per run: the dataset split kept on the device as uint8 (CIFAR's
      50k + 10k images: 184 MB) and small buffers;
    * STATE_COPIES = 5 fp32 copies of the parameters per run: weights, gradients, up to two
      optimizer moments (AdamW; SGD keeps one), SAM's saved weights;
    * activations of one batch, once per worker: the runs of a lockstep group take their steps
      one after another, so the allocator reuses one run's blocks for the next. Per 32x32 image
      the zoo's module outputs measure 1.2e5 floats (tiny_resnet, P = 2.3e4) to 8.4e6
      (WRN-28-10, P = 3.7e7), all below 2000 * sqrt(P); autograd keeps about as much again
      (saved inputs, the backward's gradients): factor 2. fp32, although CUDA runs use bf16
      autocast by default (halving this term): the estimate errs high, never low.

    At batch 128 with 6 runs in lockstep: WRN-28-10 about 17.6 GiB, ResNet-20 about 3.0 GiB
    (an 80 GiB GPU: 4 workers, the cap, for either; a 24 GiB one: 1 for WRN-28-10).
    """
    if num_params <= 0 or batch_size <= 0 or runs_together <= 0:
        raise ValueError("num_params, batch_size and runs_together must be positive; got "
                         f"{num_params}, {batch_size}, {runs_together}")
    per_run = RUN_FIXED_BYTES + FLOAT_BYTES * STATE_COPIES * num_params
    activations = (FLOAT_BYTES * ACT_KEEP_FACTOR * ACT_FLOATS_PER_SQRT_PARAM
                   * math.sqrt(num_params) * batch_size)
    return int(CONTEXT_BYTES + runs_together * per_run + activations)


def workers_for_device(kind: str, free_bytes: int | None, per_run_bytes: int,
                       cap: int = AUTO_CAP) -> int:
    """Workers "auto" starts on one device: 1 on a CPU (``kind == "cpu"``); on a GPU as many as
    ``MEMORY_MARGIN`` of its free memory holds at ``per_run_bytes`` each (the memory one worker
    needs, ``worker_memory_bytes``), at most ``cap`` and at least 1 (also when the free memory
    is unknown: one worker is what the pool started before there was a choice)."""
    if per_run_bytes <= 0 or cap < 1:
        raise ValueError(f"per_run_bytes and cap must be positive; got {per_run_bytes}, {cap}")
    if kind == "cpu" or free_bytes is None:
        return 1
    fits = int(MEMORY_MARGIN * free_bytes // per_run_bytes)
    return max(1, min(cap, fits))


def largest_allowed_params(settings: Settings) -> int:
    """Parameter count of the largest model runs may ask for here: the catalog's models, kept to
    ``allowed_models`` and ``max_model_params`` when those are set (all of them if the limits
    leave none, so that the estimate stays on the safe side)."""
    sizes = [spec.num_params for name, spec in MODELS.items()
             if (not settings.allowed_models or name in settings.allowed_models)
             and (not settings.max_model_params or spec.num_params <= settings.max_model_params)]
    return max(sizes or [spec.num_params for spec in MODELS.values()])


def default_batch_size() -> int:
    """The batch size runs use unless they ask otherwise (RunConfig's default)."""
    return int(RunConfig.model_fields["batch_size"].default)


def auto_worker_bytes(settings: Settings) -> int:
    """``worker_memory_bytes`` of the largest allowed model at the default batch size, with a
    full lockstep group (``lockstep_max_runs``) held by one worker."""
    return worker_memory_bytes(largest_allowed_params(settings), default_batch_size(),
                               settings.lockstep_max_runs)


def cpu_threads_per_worker(n_cpu_workers: int, cores: int | None) -> int:
    """Threads each of ``n_cpu_workers`` CPU workers gets so that together they do not use more
    than ``cores`` (at least 1; an unknown core count counts as 1)."""
    return max(1, (cores or 1) // max(1, n_cpu_workers))


# --- devices --------------------------------------------------------------------------------

_GPU_ID_RE = re.compile(r"^([0-9]{1,3}|(GPU|MIG)-[A-Za-z0-9/-]{1,80})$")


def detect_gpus() -> list[str]:
    """CUDA devices of this machine as ``CUDA_VISIBLE_DEVICES`` entries, without importing torch:
    the entries of ``CUDA_VISIBLE_DEVICES`` if it is set, else the GPU indices that
    ``nvidia-smi -L`` lists, else none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = []
        for entry in (e.strip() for e in visible.split(",")):
            if not entry or entry.startswith("-"):  # CUDA stops at the first invalid entry
                break
            entries.append(entry)
        return entries
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [m.group(1) for m in re.finditer(r"^GPU (\d+):", out, flags=re.MULTILINE)]


def _auto_devices(policy: DevicePolicy) -> list[str]:
    gpus = [] if policy is DevicePolicy.CPU_ONLY else detect_gpus()
    if gpus:
        return gpus
    if policy is DevicePolicy.GPU_ONLY:
        raise ValueError("device_policy is gpu-only but no GPU was found (nvidia-smi, "
                         "CUDA_VISIBLE_DEVICES); no worker started")
    return ["cpu"]


def resolve_devices(spec: str | None, settings: Settings) -> list[str]:
    """One entry per worker: ``"cpu"`` or a ``CUDA_VISIBLE_DEVICES`` entry (GPU index or UUID).

    ``auto``: one worker per GPU, else one CPU worker; ``cpu``; ``0,1`` (GPU indices); entries may
    repeat (``cpu,cpu`` = two CPU workers). Checked against ``device_policy``."""
    text = (spec or "auto").strip()
    policy = settings.device_policy
    if text.lower() == "auto":
        return _auto_devices(policy)
    devices = []
    for entry in (e.strip() for e in text.split(",")):
        if entry.lower() == "cpu":
            devices.append("cpu")
        elif _GPU_ID_RE.fullmatch(entry):
            devices.append(entry)
        else:
            raise ValueError(f"--devices: {entry!r} is neither 'cpu' nor a GPU index/UUID "
                             "(e.g. auto, cpu, 0,1)")
    if not devices:
        raise ValueError("--devices: no device given")
    if policy is DevicePolicy.CPU_ONLY and any(d != "cpu" for d in devices):
        raise ValueError("device_policy is cpu-only: GPU workers are not allowed")
    if policy is DevicePolicy.GPU_ONLY and "cpu" in devices:
        raise ValueError("device_policy is gpu-only: CPU workers are not allowed")
    return devices


def device_label(device: str) -> str:
    """How a worker names its device in its record: 'cpu' or 'cuda:<entry>'."""
    return "cpu" if device == "cpu" else f"cuda:{device}"


def gpu_free_bytes(entry: str) -> int | None:
    """Free memory of one GPU (a ``CUDA_VISIBLE_DEVICES`` entry: index or UUID) in bytes, as
    ``nvidia-smi`` reports it; None when it cannot tell (no nvidia-smi, a MIG slice, an error).
    nvidia-smi numbers GPUs in PCI bus order: set ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` on machines
    with mixed GPUs so that an index names the same card for both."""
    smi = shutil.which("nvidia-smi")
    if smi is None or entry.startswith("MIG-"):
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=memory.free", "--format=csv,noheader,nounits",
                              "-i", entry], capture_output=True, text=True, timeout=15,
                             check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return int(out) << 20 if out.isdecimal() else None  # MiB


def worker_slots(devices: Sequence[str], settings: Settings,
                 free_bytes: Callable[[str], int | None] | None = None) -> list[str]:
    """One entry per worker process: each device entry ``settings.workers_per_device`` times.

    "auto": 1 for the CPU; for a GPU ``workers_for_device`` from its free memory
    (``free_bytes``, default ``gpu_free_bytes``) and the largest allowed model's need, shared
    among the entries that name the same GPU (``0,0`` asks for two workers' worth already)."""
    per_device = settings.workers_per_device
    if per_device != "auto":
        return [d for d in devices for _ in range(per_device)]
    measure = free_bytes or gpu_free_bytes
    need = auto_worker_bytes(settings)
    repeats = Counter(devices)
    counts: dict[str, int] = {}
    for device in repeats:
        free = None if device == "cpu" else measure(device)
        n = workers_for_device("cpu" if device == "cpu" else "cuda", free, need)
        counts[device] = max(1, n // repeats[device])
        if device != "cpu":
            known = "unknown" if free is None else f"{free / GiB:.1f} GiB"
            log.info("workers_per_device auto: %d on GPU %s (free memory %s, up to %.1f GiB "
                     "per worker)", n, device, known, need / GiB)
    return [d for d in devices for _ in range(counts[d])]


# --- the pool -------------------------------------------------------------------------------

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
        cmd = [sys.executable, "-m", "samon_core.service.worker", "--devices", device,
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


# --- the app's local pool and the workers alive -------------------------------------------


def workers_status(*, store: RunStore | None = None, settings: Settings | None = None,
                   now: float | None = None) -> list[dict[str, Any]]:
    """The live workers (a heartbeat within ``heartbeat_timeout_s`` in the database): ``id``,
    ``pid``, ``host``, ``device``, ``state`` ('idle' | 'training' | 'stopping'), ``run_id``
    (the first run it trains, or None), ``run_ids``, ``heartbeat_age_s``, ``started``."""
    s = settings or load_settings()
    return scheduler.live_workers(store_or_default(store).engine,
                                  stale_s=s.heartbeat_timeout_s, now=now)

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
