"""The queue backend: huey, used as a library, on SQLite (default) or Redis.

``SqliteHuey`` on ``<runs_dir>/.queue/huey.db`` (embedded, durable, strict FIFO), ``RedisHuey``
with ``SAMON_QUEUE=redis`` / ``SAMON_REDIS_URL`` (settings.py) for several machines. A queue
message holds only the run id; the run's folder holds everything else. Messages are JSON
(``JsonSerializer``), not pickle, so whoever can write to the Redis server cannot make a worker run
code. The run store is the source of truth; the queue only says "look at run X".

Faults: a queue that cannot be opened or reached raises ``QueueUnavailable`` with one line, which
names the server without its password (``redact.display_url``: redis://:***@host:6379/0) and
has the password taken out of the client library's own message, because students see it. A
SQLite queue file that is not a database (or is malformed) is moved aside as
``huey.db.damaged-<time>`` and a new one is made: nothing is lost, because the crash recovery
queues again every 'queued' run whose message is missing (recovery.py).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.registry import Message
from huey.serializer import Serializer
from pydantic import SecretStr

from samon_core.runs.io import describe_os_error
from samon_core.runs.messages import clip
from samon_core.runs.store import RunStore, store_or_default
from samon_core.runs.redact import display_url, redact
from samon_core.service.settings import QueueBackend, Settings, load_settings

log = logging.getLogger("samon.queue")

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
    everyone else only enqueues, revokes and lists. ``where`` is the queue's location for
    humans (a URL without its password); only huey holds the URL itself.
    """

    def __init__(self, huey: Any, backend: QueueBackend, where: str | SecretStr):
        self.huey = huey
        self.backend = backend
        self.where = display_url(where)
        self._url = where if isinstance(where, SecretStr) else SecretStr(where)
        self.handler: Any = None
        self._task = huey.task(name=TASK_NAME)(self._dispatch)

    def __repr__(self) -> str:
        return f"Queue({self.backend.value}: {self.where})"

    def redact(self, text: str) -> str:
        """``text`` (e.g. a client library's error message) without this queue's secrets."""
        return redact(text, self._url)

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
            raise QueueUnavailable(f"cannot reach the {self!r} queue: "
                                   f"{clip(self.redact(str(exc)), 300)}") from exc

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


def _new_huey(s: Settings, where: str | SecretStr) -> Any:
    if isinstance(where, SecretStr):
        return RedisHuey(s.queue_name, url=where.get_secret_value(), results=False,
                         serializer=JsonSerializer(), blocking=True, read_timeout=1)
    # strict_fifo: without AUTOINCREMENT SQLite may reuse row ids and break the order.
    return SqliteHuey(s.queue_name, filename=where, results=False,
                      serializer=JsonSerializer(), strict_fifo=True)


def _damaged_db(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text
                                                      or "malformed" in text)


def _open_sqlite(s: Settings, where: str) -> Any:
    """SqliteHuey on ``where``; a damaged file is moved aside once and a new queue made."""
    try:
        return _new_huey(s, where)
    except sqlite3.DatabaseError as exc:
        if not _damaged_db(exc):
            raise
        aside = f"{where}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        for suffix in ("", "-wal", "-shm"):  # a WAL of the old file must not meet the new one
            if os.path.exists(where + suffix):
                os.replace(where + suffix, aside + suffix)
        log.warning("queue file %s is damaged (%s); moved to %s and started a new one (the "
                    "recovery queues the waiting runs again)", where, exc, aside)
        return _new_huey(s, where)


def _open_queue(store: RunStore, s: Settings, where: str | SecretStr) -> Queue:
    try:
        if isinstance(where, SecretStr):
            return Queue(_new_huey(s, where), s.queue, where)
        (store.root / QUEUE_DIR).mkdir(parents=True, exist_ok=True)
        return Queue(_open_sqlite(s, where), s.queue, where)
    except OSError as exc:
        raise QueueUnavailable(redact(describe_os_error(
            exc, f"open the queue in {clip(display_url(where))}"), where)) from exc
    except Exception as exc:  # sqlite3.Error, a bad Redis URL (redis-py may quote a piece), ...
        raise QueueUnavailable(f"cannot open the {s.queue.value} queue {clip(display_url(where))}"
                               f": {clip(redact(str(exc), where), 300)}") from exc


def get_queue(store: RunStore | None = None, settings: Settings | None = None) -> Queue:
    """The queue of ``store`` under ``settings`` (one instance per backend location and name per
    process). ``QueueUnavailable`` if it cannot be opened."""
    store = store_or_default(store)
    s = settings or load_settings()
    sqlite = s.queue is QueueBackend.SQLITE
    where = str(store.root / QUEUE_DIR / "huey.db") if sqlite else s.redis_url
    key = (s.queue.value, str(where) if sqlite else s.redis_url.get_secret_value(), s.queue_name)
    with _QUEUES_LOCK:
        queue = _QUEUES.get(key)
        if queue is None:
            queue = _QUEUES[key] = _open_queue(store, s, where)
        return queue
