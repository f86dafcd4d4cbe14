"""The queue backend: huey, used as a library, on SQLite (default) or Redis.

``SqliteHuey`` on ``<runs_dir>/.queue/huey.db`` (embedded, durable, strict FIFO), ``RedisHuey``
with ``SAMON_QUEUE=redis`` / ``SAMON_REDIS_URL`` (settings.py) for several machines. A queue
message holds only the run id; the run's folder holds everything else. Messages are JSON
(``JsonSerializer``), not pickle, so whoever can write to the Redis server cannot make a worker run
code. The run store is the source of truth; the queue only says "look at run X".
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.registry import Message
from huey.serializer import Serializer

from samon_core.runs.store import RunStore, store_or_default
from samon_core.service.settings import QueueBackend, Settings, load_settings

QUEUE_DIR = ".queue"  # inside the run store: huey.db (SQLite backend) and the submit lock
TASK_NAME = "samon_train_run"


class QueueUnavailable(RuntimeError):
    """The queue backend cannot be reached (e.g. the Redis server is down)."""


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


def _new_huey(s: Settings, where: str) -> Any:
    if s.queue is QueueBackend.SQLITE:
        # strict_fifo: without AUTOINCREMENT SQLite may reuse row ids and break the order.
        return SqliteHuey(s.queue_name, filename=where, results=False,
                          serializer=JsonSerializer(), strict_fifo=True)
    return RedisHuey(s.queue_name, url=where, results=False, serializer=JsonSerializer(),
                     blocking=True, read_timeout=1)


def get_queue(store: RunStore | None = None, settings: Settings | None = None) -> Queue:
    """The queue of ``store`` under ``settings`` (one instance per backend location and name per
    process)."""
    store = store_or_default(store)
    s = settings or load_settings()
    sqlite = s.queue is QueueBackend.SQLITE
    where = str(store.root / QUEUE_DIR / "huey.db") if sqlite else s.redis_url
    key = (s.queue.value, where, s.queue_name)
    with _QUEUES_LOCK:
        queue = _QUEUES.get(key)
        if queue is None:
            if sqlite:
                (store.root / QUEUE_DIR).mkdir(parents=True, exist_ok=True)
            queue = _QUEUES[key] = Queue(_new_huey(s, where), s.queue, where)
        return queue
