"""The job queue: the app enqueues runs, worker processes (``samon_core.service.worker``) train them.

No torch and no streamlit are imported here: the Streamlit pages import this module on every
rerun. The app never trains; it only calls ``submit`` / ``cancel`` / ``resume`` and reads the run
store. Everything a page shows comes from the run folders (``samon_core.runs.store``), never from the
queue, so the UI works the same with either backend.

Design
------
* **Queue = huey, used as a library.** ``SqliteHuey`` on ``<runs_dir>/.queue/huey.db`` by default
  (embedded, durable, strict FIFO), ``RedisHuey`` with ``SAMON_QUEUE=redis`` /
  ``SAMON_REDIS_URL`` (settings.py) for several machines. A queue message holds only the run id;
  the run's folder holds everything else. Messages are JSON (``JsonSerializer``), not pickle, so
  whoever can write to the Redis server cannot make a worker run code.
* **The run store is the source of truth, the queue only says "look at run X".** Run states
  (``queued`` -> ``running`` -> ``finished`` / ``failed`` / ``diverged`` / ``cancelled`` /
  ``interrupted``) live in ``status.json``. A worker that takes a message claims the run first:
  an exclusive ``flock`` on ``<run>/.claim.lock``, held for the whole training, and then trains
  only if the state is still ``queued``. So a duplicate or stale message (a cancelled run, a run
  re-queued twice) is harmless, and ``cancel`` / ``resume`` / ``recover`` change a run's state
  only while holding (or after trying) the same lock, which rules out races with a claiming worker.
* **Cancel.** A queued run is marked ``cancelled`` (and its message revoked in huey); a worker
  skips it. For a running run ``cancel`` creates ``<run>/cancel_requested`` (and sets a key in the
  queue's key-value store, which a worker on another host sees at once even where NFS caches the
  file's absence); the worker's ``should_stop`` checks the file at every step (one ``stat``) and
  the key at most once a second, so the trainer stops within one step and marks the run
  ``cancelled``. ``cancel`` then returns ``CANCELLING``.
* **Crash recovery** (``recover``; called by every worker at start and every
  ``recover_every_s``, and by the app when it lists runs, throttled). A ``running`` run is dead when
  its process (``pid`` in status.json) no longer exists on this host, or, for a run trained on
  another host, when its heartbeat is older than ``heartbeat_timeout_s`` (the worker's heartbeat
  thread refreshes the run's heartbeat every ``heartbeat_every_s``, even during a long evaluation).
  A dead run becomes ``interrupted`` (or ``cancelled`` if a cancel was pending); with
  ``auto_resume`` it is re-queued (at most ``max_auto_resumes`` times) and the next worker
  continues it from its last checkpoint; ``resume(run_id)`` does the same by hand. The trainer
  appends a resume marker, so no epoch appears twice to readers of the store.
  A ``queued`` run that has no message in the queue for a while (its message was lost, e.g. a
  Redis server restarted without persistence) is enqueued again.
* **Reuse.** With ``reuse=True`` (the default) a request whose config (seed included) equals that
  of a finished run returns that run instead of training it again. With the ``share_active``
  setting (default on), an identical request also shares a run that is queued or running, so
  thirty students clicking the same preset at once queue it once. Every requester is recorded in
  ``meta.json["requesters"]`` (``requested_runs(owner)`` lists them), and ``cancel(run_id,
  owner=...)`` only detaches that owner while others still wait for the run.
* **Limits** (settings.py) are checked before anything is created; a request over a limit raises
  ``LimitExceeded`` naming the limit and its value, and nothing is queued. Submissions of one run
  store are serialised by a lock file, so concurrent students cannot overshoot a queue limit or
  queue two copies of one config.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import json
import logging
import os
import platform
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.registry import Message
from huey.serializer import Serializer

from samon_core.runs.config import DATASET_SIZES, RunConfig, estimate_seconds
from samon_core.runs.io import atomic_write_text
from samon_core.runs.store import CHECKPOINT_FILE, META_FILE, STATUS_FILE, RunStore
from samon_core.service.settings import (
    DevicePolicy,
    QueueBackend,
    Settings,
    env_name,
    load_settings,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process locks, single-user use only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("samon.jobs")

QUEUE_DIR = ".queue"  # inside the run store: huey.db (SQLite backend) and the submit lock
WORKERS_DIR = ".workers"  # inside the run store: one heartbeat file per worker, pool logs
CANCEL_FILE = "cancel_requested"  # inside a run folder: the running trainer stops at its sight
CLAIM_FILE = ".claim.lock"  # inside a run folder: flock'ed by the worker training the run
TASK_NAME = "samon_train_run"
# What ``cancel`` returns for a running run: the request is out; the trainer marks the run
# 'cancelled' within one step.
CANCELLING = "cancelling"
ACTIVE_STATES = frozenset({"queued", "running"})


class LimitExceeded(ValueError):
    """A request over a server limit. ``limit`` is the setting's name, ``value`` its value; the
    message names both (and the environment variable that sets it)."""

    def __init__(self, limit: str, value: Any, detail: str):
        self.limit = limit
        self.value = value
        super().__init__(
            f"limit {limit} = {value} (setting {limit!r}, ${env_name(limit)}): {detail}; nothing "
            "was queued"
        )


class QueueUnavailable(RuntimeError):
    """The queue backend cannot be reached (e.g. the Redis server is down)."""


class Requeue(enum.Enum):
    """Why a run goes back into the queue (decides the message and the counters)."""

    MANUAL = "resumed by hand"
    AUTO = "resumed automatically after its worker died"
    SHUTDOWN = "put back in the queue because its worker stopped"
    LOST_MESSAGE = "queued again: its queue message was lost"


# ---------------------------------------------------------------------------------------------
# huey plumbing
# ---------------------------------------------------------------------------------------------


class JsonSerializer(Serializer):
    """huey messages as JSON instead of pickle.

    huey stores two kinds of data through its serializer: task messages (a ``Message``
    namedtuple) and revocation flags (a ``(revoke_until, revoke_once)`` tuple). Ours only ever
    hold strings, numbers and None (no eta, no chains), which JSON carries; anything else raises
    ``TypeError`` at enqueue time rather than being pickled.
    """

    def _serialize(self, data: Any) -> bytes:
        if isinstance(data, Message):
            payload: dict[str, Any] = {"message": list(data)}
        else:
            payload = {"value": data}
        return json.dumps(payload, separators=(",", ":")).encode("utf-8")

    def _deserialize(self, data: bytes) -> Any:
        obj = json.loads(data)
        if "message" in obj:
            fields = obj["message"]
            msg = Message(*fields)
            return msg._replace(args=tuple(msg.args or ()), kwargs=dict(msg.kwargs or {}))
        return obj["value"]


class Queue:
    """One huey instance and our single task type, ``samon_train_run(run_id)``.

    Workers set ``handler`` (a callable taking the run id) and call ``dequeue`` / ``execute``;
    everyone else only enqueues, revokes and lists.
    """

    def __init__(self, huey: Any, backend: QueueBackend, where: str):
        self.huey = huey
        self.backend = backend
        self.where = where
        self.handler: Any = None
        self._task = huey.task(name=TASK_NAME)(self._dispatch)

    def __repr__(self) -> str:
        return f"Queue({self.backend.value}: {self.where})"

    def _dispatch(self, run_id: str) -> None:
        if self.handler is None:
            raise RuntimeError("this process is not a worker: no handler for queued runs")
        self.handler(run_id)

    @property
    def blocking(self) -> bool:
        """Whether ``dequeue`` waits for a message (Redis: up to 1 s) or returns at once."""
        return self.backend is QueueBackend.REDIS

    def new_task(self, run_id: str) -> Any:
        """A task message for ``run_id`` (its ``id`` is known before it is enqueued)."""
        return self._task.s(run_id)

    def enqueue(self, task: Any) -> None:
        try:
            self.huey.enqueue(task)
        except Exception as exc:  # redis.ConnectionError, sqlite3.OperationalError, ...
            raise QueueUnavailable(f"cannot reach the {self!r} queue: {exc}") from exc

    def dequeue(self) -> Any:
        return self.huey.dequeue()

    def execute(self, task: Any) -> None:
        self.huey.execute(task)

    def revoke(self, task_id: str) -> None:
        self.huey.revoke_by_id(task_id, revoke_once=True)

    # Cancel requests also go through the queue's key-value store: on a network file system a
    # worker on another host may see the flag file late (NFS caches "file does not exist").
    def set_cancel(self, run_id: str) -> None:
        self.huey.put(f"cancel:{run_id}", time.time())

    def clear_cancel(self, run_id: str) -> None:
        self.huey.delete(f"cancel:{run_id}")

    def cancel_requested(self, run_id: str) -> bool:
        return self.huey.get(f"cancel:{run_id}", peek=True) is not None

    def pending_run_ids(self) -> list[str]:
        """Run ids of the waiting messages, next first."""
        return [str(t.args[0]) for t in self.huey.pending() if t.args]

    def size(self) -> int:
        return int(self.huey.pending_count())


_QUEUES: dict[tuple[str, str, str], Queue] = {}
_QUEUES_LOCK = threading.Lock()


def get_queue(store: RunStore | None = None, settings: Settings | None = None) -> Queue:
    """The queue of ``store`` under ``settings`` (one instance per backend location and name per
    process)."""
    store = _store(store)
    s = settings or load_settings()
    if s.queue is QueueBackend.SQLITE:
        where = str(store.root / QUEUE_DIR / "huey.db")
    else:
        where = s.redis_url
    key = (s.queue.value, where, s.queue_name)
    with _QUEUES_LOCK:
        queue = _QUEUES.get(key)
        if queue is None:
            if s.queue is QueueBackend.SQLITE:
                (store.root / QUEUE_DIR).mkdir(parents=True, exist_ok=True)
                # strict_fifo: without AUTOINCREMENT SQLite may reuse row ids and break the order.
                huey = SqliteHuey(s.queue_name, filename=where, results=False,
                                  serializer=JsonSerializer(), strict_fifo=True)
            else:
                huey = RedisHuey(s.queue_name, url=where, results=False,
                                 serializer=JsonSerializer(), blocking=True, read_timeout=1)
            queue = _QUEUES[key] = Queue(huey, s.queue, where)
        return queue


# ---------------------------------------------------------------------------------------------
# small helpers: store, locks, processes
# ---------------------------------------------------------------------------------------------


def _store(store: RunStore | None) -> RunStore:
    return store if store is not None else RunStore()


def this_host() -> str:
    return platform.node() or "localhost"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie (a killed child that its
    parent has not reaped yet still answers ``kill(pid, 0)``)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"
    except OSError:
        return True  # no /proc (macOS): trust kill()


def cancel_path(store: RunStore, run_id: str) -> Path:
    return store.run_dir(run_id) / CANCEL_FILE


@contextlib.contextmanager
def claim_lock(run_dir: Path) -> Iterator[bool]:
    """Try to take the run's claim lock without waiting; yields whether it was taken.

    The worker training a run holds this lock from before it checks the state until the run
    ends; the kernel drops it when the process dies, even by SIGKILL.
    """
    if fcntl is None:  # pragma: no cover
        yield True
        return
    try:
        fd = os.open(run_dir / CLAIM_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # the run was deleted
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextlib.contextmanager
def _submit_lock(store: RunStore) -> Iterator[None]:
    """Serialises submissions (and requester changes) of one run store across processes."""
    folder = store.root / QUEUE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(folder / "submit.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_dict(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


@dataclass
class _Row:
    """meta.json and status.json of one run, read once."""

    run_id: str
    meta: dict[str, Any]
    status: dict[str, Any]

    @property
    def state(self) -> str:
        return str(self.status.get("state", "unknown"))

    @property
    def owner(self) -> str:
        return str(self.meta.get("owner") or "")

    @property
    def config_hash(self) -> str | None:
        return self.meta.get("config_hash")

    @property
    def queued_at(self) -> float:
        for key in ("queued_at", "created"):
            value = self.status.get(key)
            if isinstance(value, (int, float)):
                return float(value)
        created = self.meta.get("created")
        return float(created) if isinstance(created, (int, float)) else 0.0


def _scan(store: RunStore) -> list[_Row]:
    """meta and status of every run (runs being created or deleted are skipped)."""
    rows = []
    for run_id in store.run_ids():
        folder = store.root / run_id
        meta = _read_dict(folder / META_FILE)
        status = _read_dict(folder / STATUS_FILE)
        if meta is not None and status is not None:
            rows.append(_Row(run_id, meta, status))
    return rows


# ---------------------------------------------------------------------------------------------
# limits
# ---------------------------------------------------------------------------------------------


def train_images(config: RunConfig) -> int:
    """Training images a run uses (``train_subset=0`` = the whole set)."""
    full = DATASET_SIZES[config.dataset][0]
    return min(config.train_subset, full) if config.train_subset else full


def check_config_limits(config: RunConfig, settings: Settings | None = None) -> None:
    """Raise ``LimitExceeded`` if ``config`` asks for more than this server allows (epochs,
    training images, model, model size, device). Queue limits are checked by ``submit``."""
    s = settings or load_settings()
    if s.max_epochs and config.epochs > s.max_epochs:
        raise LimitExceeded("max_epochs", s.max_epochs,
                            f"this run asks for {config.epochs} epochs")
    if s.max_train_subset:
        n = train_images(config)
        if n > s.max_train_subset:
            whole = "" if config.train_subset else " (train_subset=0 means the whole training set)"
            raise LimitExceeded("max_train_subset", s.max_train_subset,
                                f"this run asks for {n} training images{whole}")
    if s.allowed_models and config.model not in s.allowed_models:
        raise LimitExceeded("allowed_models", ",".join(s.allowed_models),
                            f"model {config.model!r} is not among the allowed models")
    if s.max_model_params:
        from samon_core.models import model_info  # imports torch: only when this limit is set

        n_params = int(model_info(config.model)["num_params"])
        if n_params > s.max_model_params:
            raise LimitExceeded("max_model_params", s.max_model_params,
                                f"model {config.model!r} has {n_params:,} parameters")
    device = config.device
    if s.device_policy is DevicePolicy.CPU_ONLY and device not in ("auto", "cpu"):
        raise LimitExceeded("device_policy", s.device_policy.value,
                            f"device {device!r} is not allowed here; use 'auto' or 'cpu'")
    if s.device_policy is DevicePolicy.GPU_ONLY and device in ("cpu", "mps"):
        raise LimitExceeded("device_policy", s.device_policy.value,
                            f"device {device!r} is not allowed here; use 'auto' or 'cuda'")


def _check_queue_limits(rows: list[_Row], owner: str, n_new: int, s: Settings) -> None:
    if n_new <= 0:
        return
    if s.max_queue:
        waiting = sum(r.state == "queued" for r in rows)
        if waiting + n_new > s.max_queue:
            raise LimitExceeded("max_queue", s.max_queue,
                                f"{waiting} runs are waiting and this request adds {n_new}")
    if s.max_queued_per_owner:
        active = sum(r.owner == owner and r.state in ACTIVE_STATES for r in rows)
        if active + n_new > s.max_queued_per_owner:
            raise LimitExceeded("max_queued_per_owner", s.max_queued_per_owner,
                                f"{owner!r} has {active} runs queued or running and this request "
                                f"adds {n_new}")


# ---------------------------------------------------------------------------------------------
# submitting
# ---------------------------------------------------------------------------------------------


@dataclass
class _Request:
    config: RunConfig
    label: str
    group: str


def new_group_id() -> str:
    return f"g{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _reusable(rows: list[_Row], config_hash: str, store: RunStore, s: Settings) -> _Row | None:
    """The run an identical request can use: the newest finished one, else (``share_active``) a
    running one, else the longest-waiting queued one; never one with a pending cancel."""
    same = [r for r in rows if r.config_hash == config_hash]
    finished = [r for r in same if r.state == "finished"]
    if finished:
        return max(finished, key=lambda r: (r.meta.get("created") or 0, r.run_id))
    if not s.share_active:
        return None
    active = [r for r in same if r.state in ACTIVE_STATES
              and not cancel_pending(store, r.run_id, s)]
    if not active:
        return None
    return min(active, key=lambda r: (r.state != "running", r.queued_at, r.run_id))


def _add_requester(store: RunStore, run_id: str, owner: str, group: str) -> None:
    meta = store.read_meta(run_id)
    requesters = list(meta.get("requesters") or [])
    requesters.append({"owner": owner, "group": group, "time": time.time()})
    store.update_meta(run_id, requesters=requesters)


def _enqueue_new(store: RunStore, queue: Queue, run_id: str) -> None:
    task = queue.new_task(run_id)
    store.write_status(run_id, "queued", queued_at=time.time(), task_id=task.id)
    queue.enqueue(task)


def _submit_many(requests: list[_Request], *, owner: str, preset: str | None, reuse: bool,
                 store: RunStore | None, settings: Settings | None) -> list[dict[str, Any]]:
    if not isinstance(owner, str):
        raise TypeError(f"owner must be a string, got {type(owner).__name__}")
    for req in requests:
        if not isinstance(req.config, RunConfig):
            raise TypeError(f"config must be a RunConfig, got {type(req.config).__name__}")
    store = _store(store)
    s = settings or load_settings()
    for req in requests:  # every request is checked before anything is created
        check_config_limits(req.config, s)
    queue = get_queue(store, s)
    results: list[dict[str, Any]] = []
    with _submit_lock(store):
        rows = _scan(store)
        plan: list[tuple[_Request, _Row | None, int | None]] = []  # (request, reused row, dup-of)
        first_of_hash: dict[str, int] = {}
        n_new = 0
        for i, req in enumerate(requests):
            h = req.config.config_hash()
            row = _reusable(rows, h, store, s) if reuse else None
            dup = first_of_hash.get(h) if reuse and row is None else None
            if row is None and dup is None:
                n_new += 1
                first_of_hash.setdefault(h, i)
            plan.append((req, row, dup))
        _check_queue_limits(rows, owner, n_new, s)
        created: list[str] = []
        try:
            for req, row, dup in plan:
                if row is not None:
                    _add_requester(store, row.run_id, owner, req.group)
                    results.append({"run_id": row.run_id, "reused": True,
                                    "reused_state": row.state})
                elif dup is not None:
                    rid = results[dup]["run_id"]
                    results.append({"run_id": rid, "reused": True, "reused_state": "queued"})
                else:
                    now = time.time()
                    meta = {"owner": owner, "group": req.group, "label": req.label,
                            "preset": preset,
                            "requesters": [{"owner": owner, "group": req.group, "time": now}]}
                    rid = store.create_run(req.config, meta)
                    created.append(rid)
                    _enqueue_new(store, queue, rid)
                    results.append({"run_id": rid, "reused": False, "reused_state": None})
        except QueueUnavailable:
            # All or nothing: the runs of this request disappear again. A message that did get
            # into the queue is skipped by the worker (its run no longer exists).
            for rid in created:
                with contextlib.suppress(Exception):
                    store.delete_run(rid, force=True)
            raise
    return results


def submit_info(config: RunConfig, *, owner: str, group: str = "", label: str = "",
                preset: str | None = None, store: RunStore | None = None, reuse: bool = True,
                settings: Settings | None = None) -> dict[str, Any]:
    """Queue one run; returns ``{"run_id", "reused", "reused_state"}`` at once.

    ``reused`` is True when an identical run (same config, seed included) was found instead:
    ``reused_state`` is then 'finished', 'running' or 'queued'. Raises ``LimitExceeded`` (nothing
    queued) or ``QueueUnavailable``.
    """
    req = _Request(config, label or config.method_label(), group)
    return _submit_many([req], owner=owner, preset=preset, reuse=reuse, store=store,
                        settings=settings)[0]


def submit(config: RunConfig, *, owner: str, group: str = "", label: str = "",
           preset: str | None = None, store: RunStore | None = None, reuse: bool = True,
           settings: Settings | None = None) -> str:
    """Queue one run and return its id at once (state 'queued'), or, with ``reuse``, the id of an
    identical finished (or queued / running, see ``share_active``) run. See ``submit_info``."""
    return submit_info(config, owner=owner, group=group, label=label, preset=preset, store=store,
                       reuse=reuse, settings=settings)["run_id"]


def submit_group(configs: Mapping[str, RunConfig], *, owner: str, preset: str | None = None,
                 seeds: int = 1, store: RunStore | None = None, reuse: bool = True,
                 settings: Settings | None = None) -> tuple[str, list[str]]:
    """Queue a comparison: every config (label -> config, e.g. a preset's) with ``seeds`` seeds
    (``seed``, ``seed + 1``, ...). Returns the group id and the run ids (configs in order, seeds
    inner). All or nothing: if any run is over a limit, none is queued."""
    if not configs:
        raise ValueError("submit_group needs at least one config")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer; got {seeds!r}")
    group = new_group_id()
    requests = []
    for label, config in configs.items():
        if not isinstance(config, RunConfig):
            raise TypeError(f"config {label!r} must be a RunConfig, got {type(config).__name__}")
        for i in range(seeds):
            cfg = config if i == 0 else config.replace(seed=config.seed + i)
            name = label if seeds == 1 else f"{label} (seed {cfg.seed})"
            requests.append(_Request(cfg, name, group))
    results = _submit_many(requests, owner=owner, preset=preset, reuse=reuse, store=store,
                           settings=settings)
    return group, [r["run_id"] for r in results]


# ---------------------------------------------------------------------------------------------
# cancel, resume, re-queue
# ---------------------------------------------------------------------------------------------


def _touch(path: Path) -> None:
    atomic_write_text(path, f"{time.time()}\n", fsync=False)


def cancel_pending(store: RunStore, run_id: str, settings: Settings | None = None) -> bool:
    """Whether a cancel of ``run_id`` was requested (the flag file or the queue's key)."""
    if cancel_path(store, run_id).exists():
        return True
    try:
        return get_queue(store, settings).cancel_requested(run_id)
    except Exception:  # queue unreachable: the file is what counts
        return False


def _cancel_queued(store: RunStore, queue: Queue, run_id: str, message: str) -> None:
    status = store.read_status(run_id)
    store.write_status(run_id, "cancelled", message=message)
    with contextlib.suppress(Exception):  # the worker skips it anyway
        task_id = status.get("task_id")
        if task_id:
            queue.revoke(task_id)
        queue.clear_cancel(run_id)  # the state says it all now


def cancel(run_id: str, *, owner: str | None = None, store: RunStore | None = None,
           settings: Settings | None = None) -> str:
    """Cancel a run; returns its new state.

    * queued or interrupted: 'cancelled' (a queued run never starts);
    * running: ``CANCELLING`` ('cancelling'); the trainer stops within one step and marks it
      'cancelled' (if it did so before ``cancel`` read the state back, 'cancelled' is returned);
    * already finished / failed / diverged / cancelled: that state, unchanged.

    With ``owner``: if the run was also requested by others (shared identical request), only
    ``owner`` is removed from its requesters and the run goes on (its state is returned).
    """
    store = _store(store)
    s = settings or load_settings()
    state = store.read_status(run_id).get("state")
    if state not in ("queued", "running", "interrupted"):
        return str(state)
    if owner is not None:
        with _submit_lock(store):
            requesters = list(store.read_meta(run_id).get("requesters") or [])
            mine = [r for r in requesters if r.get("owner") == owner]
            others = [r for r in requesters if r.get("owner") != owner]
            if mine and others:
                store.update_meta(run_id, requesters=others)
                return str(state)
    # The flag first: a worker that is claiming the run right now, or training it, sees it.
    _touch(cancel_path(store, run_id))
    with contextlib.suppress(Exception):  # the file is the primary signal; this one is faster
        get_queue(store, s).set_cancel(run_id)  # on NFS
    with claim_lock(store.run_dir(run_id)) as free:
        state = store.read_status(run_id).get("state")
        if free and state in ("queued", "interrupted"):
            _cancel_queued(store, get_queue(store, s), run_id,
                           "cancelled before it started" if state == "queued" else "cancelled")
            return "cancelled"
    if state in ACTIVE_STATES:  # a worker holds it: it stops (or skips it) on seeing the flag
        with contextlib.suppress(FileNotFoundError):
            store.heartbeat(run_id, cancel_requested=time.time())
        return CANCELLING
    return str(state)


def requeue(store: RunStore, run_id: str, why: Requeue, *, settings: Settings | None = None,
            detail: str = "") -> None:
    """Put a run back in the queue (state 'queued'); the worker that takes it continues from its
    checkpoint. The caller holds the run's claim lock or owns the run."""
    s = settings or load_settings()
    queue = get_queue(store, s)
    with contextlib.suppress(FileNotFoundError):
        cancel_path(store, run_id).unlink()
    with contextlib.suppress(Exception):  # if the queue is down, enqueue() below says so
        queue.clear_cancel(run_id)
    status = store.read_status(run_id)
    task = queue.new_task(run_id)
    has_ckpt = (store.run_dir(run_id) / CHECKPOINT_FILE).is_file()
    where = "from its last checkpoint" if has_ckpt else "from the start (no checkpoint yet)"
    message = f"{why.value}{': ' + detail if detail else ''}; it continues {where}"
    fields: dict[str, Any] = {"queued_at": time.time(), "ended": None, "task_id": task.id,
                              "message": message, "cancel_requested": None}
    if why is Requeue.AUTO:
        fields["auto_resumes"] = int(status.get("auto_resumes") or 0) + 1
    if why is Requeue.MANUAL:
        fields["manual_resumes"] = int(status.get("manual_resumes") or 0) + 1
    store.write_status(run_id, "queued", **fields)
    queue.enqueue(task)


RESUMABLE_STATES = frozenset({"interrupted", "cancelled"})


def resume(run_id: str, *, store: RunStore | None = None, settings: Settings | None = None) -> None:
    """Re-queue an interrupted (or cancelled) run; it continues from its last checkpoint (or
    from the start if it has none). Not subject to the queue limits: the run was admitted
    before. Raises ``ValueError`` for runs in other states, ``QueueUnavailable`` if the queue is
    down (the run is then 'queued' in the store and the crash recovery enqueues it later)."""
    store = _store(store)
    with claim_lock(store.run_dir(run_id)) as free:
        state = store.read_status(run_id).get("state")
        if not free or state not in RESUMABLE_STATES:
            raise ValueError(f"run {run_id!r} is {state if free else 'being trained'}; only "
                             f"{' or '.join(sorted(RESUMABLE_STATES))} runs can be resumed")
        requeue(store, run_id, Requeue.MANUAL, settings=settings)


# ---------------------------------------------------------------------------------------------
# crash recovery
# ---------------------------------------------------------------------------------------------

_LAST_RECOVER: dict[str, float] = {}
_RECOVER_LOCK = threading.Lock()


def _dead_reason(status: Mapping[str, Any], now: float, s: Settings, host: str) -> str | None:
    """Why the process of a 'running' run is dead, or None if it may be alive. Called while
    holding the run's claim lock, i.e. no process on this host trains the run."""
    pid, run_host = status.get("pid"), status.get("host")
    if run_host == host:
        if status.get("worker"):
            # A worker holds the claim lock for as long as the run is 'running'; the lock being
            # free settles it, even if the pid now belongs to another process.
            gone = "is gone" if not pid_alive(pid) else "no longer holds it"
            return f"its worker process (pid {pid}) on {host} {gone}"
        if isinstance(pid, int):  # a run trained outside a worker (e.g. `samon run`)
            return None if pid_alive(pid) else f"its process (pid {pid}) on {host} is gone"
    heartbeat = status.get("heartbeat")
    if not isinstance(heartbeat, (int, float)):
        return "it has no heartbeat"
    age = now - heartbeat
    if age > s.heartbeat_timeout_s:
        return f"no heartbeat from {run_host or 'its host'} for {age:.0f} s"
    return None


def recover(store: RunStore | None = None, *, force: bool = False,
            settings: Settings | None = None) -> dict[str, list[str]]:
    """Find runs whose worker died and runs whose queue message was lost; fix them.

    Returns ``{"interrupted": [...], "requeued": [...], "cancelled": [...], "lost": [...]}``
    (run ids). Throttled to once per ``recover_every_s`` per run store and process unless
    ``force``. Cheap enough for the app to call whenever it lists runs, and it never raises
    because the queue is unreachable (a run it cannot re-queue stays 'queued' in the store and
    is re-queued by a later sweep).
    """
    store = _store(store)
    s = settings or load_settings()
    report: dict[str, list[str]] = {"interrupted": [], "requeued": [], "cancelled": [],
                                    "lost": []}
    now = time.time()
    with _RECOVER_LOCK:
        last = _LAST_RECOVER.get(str(store.root), 0.0)
        if not force and now - last < s.recover_every_s:
            return report
        _LAST_RECOVER[str(store.root)] = now
    host = this_host()
    lost_candidates = []
    # A queued run whose message is not in the queue after this long lost it (submit writes the
    # state a moment before it enqueues; a worker takes a message a moment before it claims).
    grace = 2 * s.heartbeat_timeout_s
    for row in _scan(store):
        if row.state == "running":
            _recover_running(store, row.run_id, now, s, host, report)
        elif row.state == "queued" and now - row.queued_at > grace:
            lost_candidates.append(row.run_id)
    if lost_candidates:
        try:
            pending: set[str] | None = set(get_queue(store, s).pending_run_ids())
        except Exception as exc:  # a Redis outage must not break the app's listing
            log.warning("recover: cannot list the queue: %s", exc)
            pending = None
        for run_id in lost_candidates:
            if pending is None or run_id in pending:
                continue
            with claim_lock(store.run_dir(run_id)) as free:
                still_queued = free and store.read_status(run_id).get("state") == "queued"
                if still_queued and _requeue_quietly(store, run_id, Requeue.LOST_MESSAGE, s):
                    report["lost"].append(run_id)
    _prune_worker_records(store, s, now, host)
    for key, ids in report.items():
        if ids:
            log.info("recover: %s %s", key, ", ".join(ids))
    return report


def _requeue_quietly(store: RunStore, run_id: str, why: Requeue, s: Settings,
                     detail: str = "") -> bool:
    try:
        requeue(store, run_id, why, settings=s, detail=detail)
        return True
    except QueueUnavailable as exc:  # the state says 'queued': a later sweep enqueues it
        log.warning("recover: cannot re-queue %s now: %s", run_id, exc)
        return False


def _recover_running(store: RunStore, run_id: str, now: float, s: Settings, host: str,
                     report: dict[str, list[str]]) -> None:
    try:
        with claim_lock(store.run_dir(run_id)) as free:
            if not free:  # a live worker on this host trains it
                return
            status = store.read_status(run_id)
            if status.get("state") != "running":
                return
            reason = _dead_reason(status, now, s, host)
            if reason is None:
                return
            if cancel_pending(store, run_id, s):
                store.write_status(run_id, "cancelled", message=f"cancelled ({reason})")
                report["cancelled"].append(run_id)
                return
            epoch = status.get("epoch")
            store.write_status(
                run_id, "interrupted",
                message=f"interrupted: {reason}" + (f" (after epoch {epoch})" if epoch else ""),
                interrupted_at=time.time(),
                interruptions=int(status.get("interruptions") or 0) + 1,
            )
            report["interrupted"].append(run_id)
            may_resume = s.auto_resume and int(status.get("auto_resumes") or 0) < s.max_auto_resumes
            if may_resume and _requeue_quietly(store, run_id, Requeue.AUTO, s, detail=reason):
                report["requeued"].append(run_id)
    except FileNotFoundError:  # deleted meanwhile
        return


# ---------------------------------------------------------------------------------------------
# queue positions and waits
# ---------------------------------------------------------------------------------------------


def queue_positions(store: RunStore | None = None) -> dict[str, int]:
    """1-based position of every queued run (first queued = 1): the order the workers take them
    (huey is FIFO; ``queued_at`` is written just before the message is enqueued)."""
    rows = [r for r in _scan(_store(store)) if r.state == "queued"]
    rows.sort(key=lambda r: (r.queued_at, r.run_id))
    return {r.run_id: i + 1 for i, r in enumerate(rows)}


def queue_position(run_id: str, *, store: RunStore | None = None) -> int | None:
    """1-based position of ``run_id`` among the queued runs; None if it is not queued."""
    return queue_positions(store).get(run_id)


def estimate_wait_seconds(run_id: str, *, store: RunStore | None = None,
                          settings: Settings | None = None) -> float | None:
    """ROUGH seconds until ``run_id`` starts: the estimated time of the runs ahead of it plus
    what is left of the running ones, shared among the live workers. None if the run is not
    queued or no worker is alive. Good for "about 5 minutes", not for scheduling."""
    store = _store(store)
    rows = _scan(store)
    queued = sorted((r for r in rows if r.state == "queued"), key=lambda r: (r.queued_at, r.run_id))
    ids = [r.run_id for r in queued]
    if run_id not in ids:
        return None
    workers = workers_status(store=store, settings=settings)
    if not workers:
        return None
    kind = "cuda" if any(str(w.get("device", "")).startswith("cuda") for w in workers) else "cpu"
    total = 0.0
    for r in queued[: ids.index(run_id)]:
        with contextlib.suppress(Exception):
            total += estimate_seconds(store.read_config(r.run_id), kind)
    for r in rows:
        if r.state != "running":
            continue
        eta = r.status.get("eta_s")
        if isinstance(eta, (int, float)):
            total += float(eta)
            continue
        with contextlib.suppress(Exception):
            progress = float(r.status.get("progress") or 0.0)
            total += estimate_seconds(store.read_config(r.run_id), kind) * (1.0 - progress)
    return total / len(workers)


def requested_runs(owner: str, *, store: RunStore | None = None) -> list[str]:
    """Ids of the runs ``owner`` created or shares (identical requests), newest first."""
    rows = []
    for r in _scan(_store(store)):
        owners = {q.get("owner") for q in r.meta.get("requesters") or [] if isinstance(q, dict)}
        if r.owner == owner or owner in owners:
            rows.append(r)
    rows.sort(key=lambda r: (r.meta.get("created") or 0, r.run_id), reverse=True)
    return [r.run_id for r in rows]


# ---------------------------------------------------------------------------------------------
# workers: heartbeat records, status, the app's local pool
# ---------------------------------------------------------------------------------------------


def workers_dir(store: RunStore) -> Path:
    return store.root / WORKERS_DIR


def read_worker_records(store: RunStore | None = None) -> list[dict[str, Any]]:
    """Every worker heartbeat file (live and dead), with ``heartbeat_age_s`` added."""
    store = _store(store)
    now = time.time()
    out = []
    try:
        paths = sorted(workers_dir(store).glob("*.json"))
    except OSError:
        return []
    for path in paths:
        rec = _read_dict(path)
        if rec is None:
            continue
        hb = rec.get("heartbeat")
        rec["heartbeat_age_s"] = now - hb if isinstance(hb, (int, float)) else None
        rec["_path"] = str(path)
        out.append(rec)
    return out


def worker_alive(rec: Mapping[str, Any], s: Settings, host: str | None = None) -> bool:
    """A worker is alive when its heartbeat is fresh and, on this host, its pid exists."""
    age = rec.get("heartbeat_age_s")
    if age is None or age > s.heartbeat_timeout_s:
        return False
    if rec.get("host") == (host or this_host()):
        return pid_alive(rec.get("pid"))  # type: ignore[arg-type]
    return True


def workers_status(*, store: RunStore | None = None,
                   settings: Settings | None = None) -> list[dict[str, Any]]:
    """The live workers: ``id``, ``pid``, ``host``, ``device``, ``state`` ('idle' | 'training' |
    'stopping'), ``run_id`` (current run or None), ``heartbeat_age_s``, ``started``,
    ``runs_done``, ``queue``."""
    s = settings or load_settings()
    host = this_host()
    keys = ("id", "pid", "host", "device", "state", "run_id", "heartbeat_age_s", "started",
            "runs_done", "queue")
    return [{k: rec.get(k) for k in keys} for rec in read_worker_records(store)
            if worker_alive(rec, s, host)]


def _prune_worker_records(store: RunStore, s: Settings, now: float, host: str) -> None:
    """Delete heartbeat files of dead workers: at once on this host (pid gone), after a day
    for other hosts (their files also tell an admin when a machine dropped out)."""
    for rec in read_worker_records(store):
        age = rec.get("heartbeat_age_s")
        same = rec.get("host") == host
        dead = (same and not pid_alive(rec.get("pid"))) or age is None or age > 86400.0
        if dead:
            with contextlib.suppress(OSError):
                os.unlink(rec["_path"])


_POOL: Any = None
_POOL_LOCK = threading.Lock()


def ensure_workers(*, store: RunStore | None = None,
                   settings: Settings | None = None) -> dict[str, Any]:
    """Start a local worker pool if no worker is alive (the app calls this at start; cheap and
    idempotent, so calling it on every rerun is fine).

    One worker process per GPU pinned with ``CUDA_VISIBLE_DEVICES`` (else one CPU worker; see
    ``worker_devices`` / ``device_policy``), in its own process group, stopped at this process's
    exit (atexit) and stopping by itself if this process dies. ``start_workers = false``
    (``SAMON_START_WORKERS=0``) disables it for deployments whose workers run as services.
    Returns ``{"enabled", "started", "alive", "pids", "message"}``.
    """
    global _POOL
    store = _store(store)
    s = settings or load_settings()
    if not s.start_workers:
        alive = workers_status(store=store, settings=s)
        return {"enabled": False, "started": 0, "alive": len(alive), "pids": [],
                "message": f"local workers are disabled ({env_name('start_workers')}=0); "
                           f"{len(alive)} worker(s) alive"}
    with _POOL_LOCK:
        if _POOL is not None and _POOL.root == store.root and _POOL.running():
            alive = workers_status(store=store, settings=s)
            return {"enabled": True, "started": 0, "alive": len(alive), "pids": _POOL.pids(),
                    "message": "the local worker pool is running"}
        # Workers that are stopping (e.g. those of an app that was just restarted) do not count.
        alive = [w for w in workers_status(store=store, settings=s) if w["state"] != "stopping"]
        if alive:
            return {"enabled": True, "started": 0, "alive": len(alive), "pids": [],
                    "message": f"{len(alive)} worker(s) already alive"}
        from samon_core.service.worker import WorkerPool, resolve_devices  # no torch there either

        try:
            devices = resolve_devices(s.worker_devices, s)
        except ValueError as exc:
            return {"enabled": True, "started": 0, "alive": 0, "pids": [], "message": str(exc)}
        if _POOL is not None:  # a pool of another run store, or one whose workers all ended
            _POOL.stop()
            _POOL = None
        pool = WorkerPool(store.root, devices, settings=s, exit_with_parent=True)
        if not pool.acquire_pool_lock():
            return {"enabled": True, "started": 0, "alive": 0, "pids": [],
                    "message": "another process is starting a worker pool for this run store"}
        pool.start()
        _POOL = pool
        atexit.register(pool.stop)
        return {"enabled": True, "started": len(devices), "alive": 0, "pids": pool.pids(),
                "message": f"started {len(devices)} local worker(s): {', '.join(devices)}"}


def stop_workers(timeout: float | None = None) -> None:
    """Stop the pool started by ``ensure_workers`` in this process (running runs go back to the
    queue and resume from their checkpoints later)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.stop(timeout)
            _POOL = None
