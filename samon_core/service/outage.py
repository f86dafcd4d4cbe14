"""How a worker rides out a queue outage (a Redis server restarting, a locked SQLite file).

The worker must neither exit nor spin nor flood its log: it waits with a bounded exponential
backoff, says once that the queue is away and once that it is back, and tries again; the client
libraries reconnect by themselves on the next call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from samon_core.runs.messages import clip

log = logging.getLogger("samon.worker")


class QueueOutage:
    """Waits while the queue backend is away: exponential backoff from 0.5 s up to
    ``max_backoff_s``, one log line when the outage starts and one when it ends (not one per
    attempt, and no traceback). redis-py and sqlite3 reconnect on the next call by themselves.
    ``redact`` takes the queue's secrets out of an error message before it is logged
    (``Queue.redact``)."""

    def __init__(self, worker_id: str, stop: threading.Event, max_backoff_s: float = 30.0,
                 redact: Callable[[str], str] = str):
        self.worker_id = worker_id
        self.redact = redact
        self.stop = stop
        self.max_backoff_s = max_backoff_s
        self.since: float | None = None
        self.backoff = 0.5

    def failed(self, action: str, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning("worker %s: cannot %s (%s: %s); retrying with backoff up to %.0f s",
                        self.worker_id, action, type(exc).__name__,
                        clip(self.redact(str(exc)), 200),
                        self.max_backoff_s)
        self.stop.wait(self.backoff)
        self.backoff = min(self.backoff * 2, self.max_backoff_s)

    def ok(self) -> None:
        if self.since is not None:
            log.warning("worker %s: the queue is back after %.0f s", self.worker_id,
                        time.monotonic() - self.since)
        self.since, self.backoff = None, 0.5
