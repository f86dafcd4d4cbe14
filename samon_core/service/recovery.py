"""Crash recovery: runs whose worker died, and queued runs whose queue message was lost.

``recover`` is called by every worker at start and every ``recover_every_s``, and by the app when
it lists runs (throttled). A 'running' run is dead when its process (``pid`` in status.json) no
longer exists on this host, or, for a run trained on another host, when its heartbeat is older
than ``heartbeat_timeout_s`` (the worker's heartbeat thread refreshes it every
``heartbeat_every_s``, even during a long evaluation). A dead run becomes 'interrupted' (or
'cancelled' if a cancel was pending); with ``auto_resume`` it is re-queued (at most
``max_auto_resumes`` times) and the next worker continues it from its last checkpoint. The
trainer appends a resume marker, so no epoch appears twice to readers of the store.

A run whose ``status.json`` is damaged (empty after a power loss: it is written without fsync)
reads as 'interrupted'; the sweep writes that state for good and, like a dead worker's run,
re-queues it under ``auto_resume``.

A 'queued' run that has no message in the queue for a while (its message was lost, e.g. a Redis
server restarted without persistence) is enqueued again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore, store_or_default
from samon_core.service.backend import QueueUnavailable, get_queue
from samon_core.service.claims import cancel_pending, claim_lock
from samon_core.service.control import Requeue, requeue
from samon_core.service.hosts import pid_alive, this_host
from samon_core.service.redact import redact
from samon_core.service.scan import scan_runs
from samon_core.service.settings import Settings, load_settings
from samon_core.service.worker_records import prune_worker_records

log = logging.getLogger("samon.recovery")

_LAST_RECOVER: dict[str, float] = {}  # run store root -> time of its last sweep in this process
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
            if status.get("state") != RunState.RUNNING:
                return
            reason = _dead_reason(status, now, s, host)
            if reason is None:
                return
            if cancel_pending(store, run_id, s):
                store.write_status(run_id, RunState.CANCELLED, message=f"cancelled ({reason})")
                report["cancelled"].append(run_id)
                return
            epoch = status.get("epoch")
            store.write_status(
                run_id, RunState.INTERRUPTED,
                message=f"interrupted: {reason}" + (f" (after epoch {epoch})" if epoch else ""),
                interrupted_at=now,
                interruptions=int(status.get("interruptions") or 0) + 1,
            )
            report["interrupted"].append(run_id)
            may_resume = s.auto_resume and int(status.get("auto_resumes") or 0) < s.max_auto_resumes
            if may_resume and _requeue_quietly(store, run_id, Requeue.AUTO, s, detail=reason):
                report["requeued"].append(run_id)
    except FileNotFoundError:  # deleted meanwhile
        return


def _recover_damaged(store: RunStore, run_id: str, now: float, s: Settings,
                     report: dict[str, list[str]]) -> None:
    """A run whose status.json is unreadable: 'interrupted' for good, re-queued if allowed."""
    try:
        with claim_lock(store.run_dir(run_id)) as free:
            if not free:  # a live worker on this host trains it; its next write repairs it
                return
            status = store.read_status(run_id)
            if not status.get("damaged"):
                return
            store.write_status(run_id, RunState.INTERRUPTED, message=status.get("message"),
                               interrupted_at=now, interruptions=1)
            report["interrupted"].append(run_id)
            if s.auto_resume and s.max_auto_resumes > 0 and _requeue_quietly(
                    store, run_id, Requeue.AUTO, s, detail="its status.json was damaged"):
                report["requeued"].append(run_id)
    except FileNotFoundError:  # deleted meanwhile
        return


def _requeue_lost(store: RunStore, candidates: list[str], s: Settings,
                  report: dict[str, list[str]]) -> None:
    """Enqueue again the queued runs among ``candidates`` that have no message in the queue."""
    try:
        pending = set(get_queue(store, s).pending_run_ids())
    except Exception as exc:  # a Redis outage must not break the app's listing
        log.warning("recover: cannot list the queue: %s", redact(str(exc), s.redis_url))
        return
    for run_id in candidates:
        if run_id in pending:
            continue
        with claim_lock(store.run_dir(run_id)) as free:
            still_queued = free and store.read_status(run_id).get("state") == RunState.QUEUED
            if still_queued and _requeue_quietly(store, run_id, Requeue.LOST_MESSAGE, s):
                report["lost"].append(run_id)


def _due(store: RunStore, now: float, s: Settings, force: bool) -> bool:
    """Whether a sweep of ``store`` is due in this process (and if so, record it)."""
    with _RECOVER_LOCK:
        last = _LAST_RECOVER.get(str(store.root), 0.0)
        if not force and now - last < s.recover_every_s:
            return False
        _LAST_RECOVER[str(store.root)] = now
        return True


def recover(store: RunStore | None = None, *, force: bool = False,
            settings: Settings | None = None, now: float | None = None) -> dict[str, list[str]]:
    """Find runs whose worker died and runs whose queue message was lost; fix them.

    Returns ``{"interrupted": [...], "requeued": [...], "cancelled": [...], "lost": [...]}``
    (run ids). Throttled to once per ``recover_every_s`` per run store and process unless
    ``force``. ``now`` (default: the current time) is the time heartbeats and queue waits are
    aged against. Cheap enough for the app to call whenever it lists runs, and it never raises
    because the queue is unreachable (a run it cannot re-queue stays 'queued' in the store and
    is re-queued by a later sweep).
    """
    store = store_or_default(store)
    s = settings or load_settings()
    now = time.time() if now is None else now
    report: dict[str, list[str]] = {"interrupted": [], "requeued": [], "cancelled": [],
                                    "lost": []}
    if not _due(store, now, s, force):
        return report
    host = this_host()
    lost_candidates = []
    # A queued run whose message is not in the queue after this long lost it (submit writes the
    # state a moment before it enqueues; a worker takes a message a moment before it claims).
    grace = 2 * s.heartbeat_timeout_s
    for row in scan_runs(store):
        if row.damaged:
            _recover_damaged(store, row.run_id, now, s, report)
        elif row.state == RunState.RUNNING:
            _recover_running(store, row.run_id, now, s, host, report)
        elif row.state == RunState.QUEUED and now - row.queued_at > grace:
            lost_candidates.append(row.run_id)
    if lost_candidates:
        _requeue_lost(store, lost_candidates, s, report)
    prune_worker_records(store, now, host)
    for key, ids in report.items():
        if ids:
            log.info("recover: %s %s", key, ", ".join(ids))
    return report

