"""The states of a run, as the database's ``runs`` table stores them (its ``state`` column,
samon_core/runs/database.py), and the groups of states the code asks about (active, terminal,
stopped, resumable).

``RunState`` is a ``str`` enum: a member equals, hashes and prints like its value, so states read
back from the database or from JSON (plain strings) compare with the members and sets below
directly.

Life of a run: ``queued`` -> ``running`` -> ``finished`` / ``failed`` / ``diverged`` /
``cancelled``; a run whose worker died is ``interrupted`` and may be queued again (``resume``).
"""

from __future__ import annotations

import enum


class RunState(str, enum.Enum):
    """One state of a run (the ``runs`` table's ``state`` column; ``read_status()["state"]``)."""

    QUEUED = "queued"  # waiting for a worker
    RUNNING = "running"  # a worker (or ``samon run``) trains it
    FINISHED = "finished"  # trained to the last epoch
    FAILED = "failed"  # the trainer raised
    DIVERGED = "diverged"  # the loss became nan/inf
    CANCELLED = "cancelled"  # stopped (or never started) on request
    INTERRUPTED = "interrupted"  # its process died; may be resumed from its checkpoint

    def __str__(self) -> str:  # "queued", not "RunState.QUEUED", in messages and f-strings
        return self.value


# The state of a status dict without one (a default for readers). A files-era status.json that
# is missing or unreadable reads as 'interrupted' with ``damaged: True`` (runs/listing.py), not as
# this.
UNKNOWN_STATE = "unknown"

# Someone works on the run or will: a worker trains it, or it waits in the queue.
ACTIVE_STATES: frozenset[RunState] = frozenset({RunState.QUEUED, RunState.RUNNING})
# No process works on the run any more (an interrupted run may be queued again).
TERMINAL_STATES: frozenset[RunState] = frozenset(
    {
        RunState.FINISHED,
        RunState.FAILED,
        RunState.DIVERGED,
        RunState.CANCELLED,
        RunState.INTERRUPTED,
    }
)
# Ended without reaching the last epoch (terminal, but not finished): a page greys such a run's
# bar and says why its charts stay empty (samon_app/progress.py). One set, since the pages asked
# for it several times, each with its own tuple of words.
STOPPED_STATES: frozenset[RunState] = TERMINAL_STATES - {RunState.FINISHED}
# States ``resume`` accepts: the run stopped before its end and may continue.
RESUMABLE_STATES: frozenset[RunState] = frozenset({RunState.INTERRUPTED, RunState.CANCELLED})
