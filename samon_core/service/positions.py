"""Where runs stand in the queue, as the app shows it ("waiting in the queue (position 3)").

The answer comes from the run store (scan.py), never from the queue backend, so it is the same
with SQLite and Redis.
"""

from __future__ import annotations

from samon_core.runs.store import RunStore, store_or_default
from samon_core.service.scan import queued_in_order, scan_runs


def queue_positions(store: RunStore | None = None) -> dict[str, int]:
    """1-based position of every queued run (first queued = 1): the order the workers take them
    (huey is FIFO; ``queued_at`` is written just before the message is enqueued)."""
    rows = queued_in_order(scan_runs(store_or_default(store)))
    return {r.run_id: i + 1 for i, r in enumerate(rows)}


def queue_position(run_id: str, *, store: RunStore | None = None) -> int | None:
    """1-based position of ``run_id`` among the queued runs; None if it is not queued."""
    return queue_positions(store).get(run_id)
