"""A worker's claim on a run: the fence of every write its trainer makes.

``scheduler.claim_next`` (and ``claim_runs``, ``samon run``) hands a run out by setting the
row's ``worker`` and adding one to its ``attempt``: ``WorkerClaim(worker, attempt)`` names that
one hand-out. (Not a paper's claim, ``samon_core.claims``: a worker's claim on a queued run.)
A worker thought dead (it stalled, or lost the database for a while) has its runs taken back by
``reclaim_dead``, and another worker may claim them (``attempt`` + 1) while the old trainer still
runs. So each status write, heartbeat and end of a worker's trainer carries its claim, and the
database applies it only ``WHERE`` the row still holds that claim (``RunStore.write_status``):
a write that matches no row raises ``NotHeld`` and changes nothing; the trainer then stops
without an end (``Released``, train/stopping.py), and the new holder's row stays as it wrote it.

A write without a claim (None) is not fenced: ``samon run`` training its own runs, the store's
own callers (tests, the command line) and stand-in trainers write that way, as before.

No torch, no service: the store (runs/) raises ``NotHeld``; the trainer and the worker turn it
into ``Released``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from samon_core.runs import database as db


@dataclass(frozen=True)
class WorkerClaim:
    """One hand-out of a run: the worker that holds it and the row's ``attempt`` then."""

    worker: str
    attempt: int

    def holds(self) -> Any:
        """The SQL condition "the row still holds this claim" (for a ``WHERE``)."""
        return sa.and_(db.runs.c.worker == self.worker, db.runs.c.attempt == self.attempt)

    def __str__(self) -> str:
        return f"worker {self.worker} (claim {self.attempt})"


class NotHeld(Exception):
    """A write under a claim the run's row no longer holds: nothing was written."""

    def __init__(self, run_id: str, claim: WorkerClaim):
        super().__init__(f"run {run_id} is no longer held by {claim}: it was taken back and "
                         "may be another worker's; nothing written")
        self.run_id, self.claim = run_id, claim
