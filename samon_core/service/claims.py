"""Who may change a run: the claim lock of the worker training it, and the cancel request.

A worker that takes a queue message claims the run first: it holds ``<run>/.claim.lock`` from
before it checks the state until the run ends, and trains only if the state is still 'queued'.
The kernel drops the lock when the worker dies, even by SIGKILL, so a free lock on a 'running'
run means a dead worker. ``cancel`` / ``resume`` / ``recover`` change a run's state only while
holding (or after trying) the same lock, which rules out races with a claiming worker.

A cancel request is the file ``<run>/cancel_requested`` plus a key in the queue's key-value store
(seen at once by a worker on another host, even where NFS caches the file's absence).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from samon_core.runs.io import atomic_write_text, file_lock
from samon_core.runs.store import RunStore
from samon_core.service.backend import get_queue
from samon_core.service.settings import Settings

CANCEL_FILE = "cancel_requested"  # inside a run folder: the running trainer stops at its sight
CLAIM_FILE = ".claim.lock"  # inside a run folder: locked by the worker training the run


def cancel_flag_check(run_dir: str | Path):
    """``should_stop`` for a run trained outside a worker (``samon run``, ``claim run``): true
    once someone cancels it (the flag file; one stat per step), so a cancel from the app or
    ``samon cancel`` stops it as it stops a worker's run."""
    flag = Path(run_dir) / CANCEL_FILE
    return flag.exists


@contextlib.contextmanager
def claim_lock(run_dir: Path) -> Iterator[bool]:
    """Try to take the run's claim lock without waiting; yields whether it was taken (False
    also when the run folder no longer exists)."""
    with contextlib.ExitStack() as held:
        try:
            taken = held.enter_context(file_lock(run_dir / CLAIM_FILE, blocking=False))
        except FileNotFoundError:  # the run was deleted
            taken = False
        yield taken


def cancel_path(store: RunStore, run_id: str) -> Path:
    return store.run_dir(run_id) / CANCEL_FILE


def request_cancel_flag(store: RunStore, run_id: str) -> None:
    """Create the cancel flag file of ``run_id`` (its content: when)."""
    atomic_write_text(cancel_path(store, run_id), f"{time.time()}\n", fsync=False)


def cancel_pending(store: RunStore, run_id: str, settings: Settings | None = None) -> bool:
    """Whether a cancel of ``run_id`` was requested (the flag file or the queue's key)."""
    if cancel_path(store, run_id).exists():
        return True
    try:
        return get_queue(store, settings).cancel_requested(run_id)
    except Exception:  # queue unreachable: the file is what counts
        return False
