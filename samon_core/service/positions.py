"""Where runs stand in the queue, as the app shows it ("waiting in the queue (position 3)").

The answer comes from the run store (scan.py), never from the queue backend, so it is the same
with SQLite and Redis.
"""

from __future__ import annotations

import time

from samon_core.runs.store import RunStore, store_or_default
from samon_core.service.fairness import expected_order
from samon_core.service.scan import queued_in_order, scan_runs
from samon_core.service.settings import Settings, load_settings


def queue_positions(store: RunStore | None = None,
                    settings: Settings | None = None) -> dict[str, int]:
    """1-based position of every queued run: with the fair queue the expected order (owners
    take turns, fairness.py), else the order huey hands them out (first queued = 1;
    ``queued_at`` is written just before the message is enqueued)."""
    s = settings or load_settings()
    rows = scan_runs(store_or_default(store))
    if s.fair_queue:
        ids = expected_order(rows, time.time(), s.fair_window_s)
    else:
        ids = [r.run_id for r in queued_in_order(rows)]
    return {rid: i + 1 for i, rid in enumerate(ids)}


def queue_position(run_id: str, *, store: RunStore | None = None,
                   settings: Settings | None = None) -> int | None:
    """1-based position of ``run_id`` among the queued runs; None if it is not queued."""
    return queue_positions(store, settings).get(run_id)
