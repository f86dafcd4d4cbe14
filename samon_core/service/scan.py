"""One pass over the run store for the job service: meta.json and status.json of every run.

Submitting (limits, reuse), queue positions and crash recovery all decide from these two small
files; they never read configs or metrics in a scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from samon_core.runs.io import read_json_dict_or_none
from samon_core.runs.listing import is_run_folder
from samon_core.runs.owners import owner_name_or_raw
from samon_core.runs.states import UNKNOWN_STATE, RunState
from samon_core.runs.store import META_FILE, STATUS_FILE, RunStore, status_or_damaged


@dataclass
class RunRow:
    """meta.json and status.json of one run, read once."""

    run_id: str
    meta: dict[str, Any]
    status: dict[str, Any]

    @property
    def state(self) -> str:
        return str(self.status.get("state", UNKNOWN_STATE))

    @property
    def damaged(self) -> bool:
        """status.json was missing, empty or malformed (read as 'interrupted')."""
        return bool(self.status.get("damaged"))

    @property
    def owner(self) -> str:
        """In normal form (``Lim`` stored before names were normalised is ``lim``), so limits
        and the fair queue count one name once."""
        return owner_name_or_raw(self.meta.get("owner")) or ""

    @property
    def config_hash(self) -> str | None:
        return self.meta.get("config_hash")

    @property
    def created(self) -> float:
        return time_stamp(self.meta.get("created")) or 0.0

    @property
    def queued_at(self) -> float:
        for key in ("queued_at", "created"):
            value = time_stamp(self.status.get(key))
            if value is not None:
                return value
        return self.created


def time_stamp(value: Any) -> float | None:
    """A time stamp of meta.json or status.json as a finite float, or None: missing, text,
    ``true``, a 4,000-digit integer (``float()`` of it raises), NaN or infinity never reach
    the arithmetic of the limits, the queue order or the recovery."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def scan_runs(store: RunStore) -> list[RunRow]:
    """meta and status of every run (a damaged meta.json reads as {}, a damaged status.json as
    'interrupted' with ``damaged``; runs deleted meanwhile are skipped)."""
    rows = []
    for run_id in store.run_ids():
        folder = store.root / run_id
        meta = read_json_dict_or_none(folder / META_FILE)
        status = status_or_damaged(folder / STATUS_FILE)
        if (meta is None or status.get("damaged")) and not is_run_folder(folder):
            continue  # renamed away by a delete while we read, or not a run
        rows.append(RunRow(run_id, meta or {}, status))
    return rows


def queued_in_order(rows: list[RunRow]) -> list[RunRow]:
    """The queued runs in the order the workers take them (huey is FIFO; ``queued_at`` is
    written just before the message is enqueued)."""
    queued = [r for r in rows if r.state == RunState.QUEUED]
    queued.sort(key=lambda r: (r.queued_at, r.run_id))
    return queued
