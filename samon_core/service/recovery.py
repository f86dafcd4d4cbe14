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
server restarted without persistence) is enqueued again; so is a finished run's request for
landscape slices (slices.py) made while the queue was down, at most ``_MAX_SLICE_SENDS`` times
(a request whose worker keeps dying is then dropped, with a log line).

One damaged run never stops a sweep: a run whose files cannot be handled (a status.json that
is a folder, counters that are not numbers) is skipped and reported (``skipped``), and the
others are recovered as usual.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from samon_core.runs.io import atomic_write_text
from samon_core.runs.messages import clip
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore, store_or_default
from samon_core.service.backend import QueueUnavailable, get_queue
from samon_core.service.claims import cancel_pending, claim_lock
from samon_core.service.control import Requeue, requeue
from samon_core.service.hosts import pid_alive, this_host
from samon_core.runs.redact import redact
from samon_core.service.scan import scan_runs, time_stamp
from samon_core.service.settings import Settings, load_settings
from samon_core.service.slices import SLICES_FILE, clear_request, pending_slices
from samon_core.service.worker_records import prune_worker_records

log = logging.getLogger("samon.recovery")

_LAST_RECOVER: dict[str, float] = {}  # run store root -> time of its last sweep in this process
_RECOVER_LOCK = threading.Lock()
_MAX_SLICE_SENDS = 3  # messages sent for one slices request (its first included)
# status.json's counters; a value that is not a small whole number (hand-edited, damaged) is
# repaired as 0 when the run is marked interrupted, so that later steps can count on it.
_COUNTERS = ("interruptions", "auto_resumes", "manual_resumes")


def _count(status: Mapping[str, Any], key: str) -> int:
    value = status.get(key)
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1_000_000
    return value if ok else 0


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
    heartbeat = time_stamp(status.get("heartbeat"))
    if heartbeat is None:
        return "it has no heartbeat"
    age = now - heartbeat
    if age > s.heartbeat_timeout_s:
        return f"no heartbeat from {str(run_host or 'its host')[:80]} for {age:.0f} s"
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
            epoch = _count(status, "epoch")
            counters = {k: _count(status, k) for k in _COUNTERS if k in status}
            counters["interruptions"] = _count(status, "interruptions") + 1
            store.write_status(
                run_id, RunState.INTERRUPTED,
                message=f"interrupted: {reason}" + (f" (after epoch {epoch})" if epoch else ""),
                interrupted_at=now, **counters,
            )
            report["interrupted"].append(run_id)
            may_resume = s.auto_resume and _count(status, "auto_resumes") < s.max_auto_resumes
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


def _pending(store: RunStore, s: Settings) -> set[str] | None:
    """The run ids with a message in the queue, or None if the queue cannot be listed."""
    try:
        return set(get_queue(store, s).pending_run_ids())
    except Exception as exc:  # a Redis outage must not break the app's listing
        log.warning("recover: cannot list the queue: %s", redact(str(exc), s.redis_url))
        return None


def _requeue_lost(store: RunStore, run_id: str, s: Settings,
                  report: dict[str, list[str]]) -> None:
    """Enqueue again a queued run that has no message in the queue."""
    with claim_lock(store.run_dir(run_id)) as free:
        still_queued = free and store.read_status(run_id).get("state") == RunState.QUEUED
        if still_queued and _requeue_quietly(store, run_id, Requeue.LOST_MESSAGE, s):
            report["lost"].append(run_id)


def _resend_slices(store: RunStore, run_id: str, now: float, grace: float, s: Settings,
                   report: dict[str, list[str]]) -> None:
    """Send again the message of a finished run's slices request that has none in the queue
    (it was asked while the queue was down, or its worker died): at most ``_MAX_SLICE_SENDS``
    messages per request; an unreadable request is dropped (it would read as pending for
    ever)."""
    with claim_lock(store.run_dir(run_id)) as free:
        if not free:  # a worker on this host computes it now
            return
        request = pending_slices(store, run_id)
        if request is None:
            if (store.run_dir(run_id) / SLICES_FILE).exists():
                log.warning("recover: run %s: unreadable slices request dropped", run_id)
                clear_request(store, run_id)
                report["slices_dropped"].append(run_id)
            return
        sent_at = time_stamp(request.get("sent_at", request.get("time")))
        if sent_at is not None and now - sent_at < grace:
            return  # its message may be on its way to a worker
        sends = _count(request, "sends") or 1
        if sends >= _MAX_SLICE_SENDS:
            log.warning("recover: run %s: slices request dropped after %d messages (its worker "
                        "died each time?)", run_id, sends)
            clear_request(store, run_id)
            report["slices_dropped"].append(run_id)
            return
        queue = get_queue(store, s)
        try:
            queue.enqueue(queue.new_task(run_id))
        except QueueUnavailable as exc:  # the request stays; a later sweep sends it
            log.warning("recover: cannot send the slices request of %s now: %s", run_id, exc)
            return
        request.update(sends=sends + 1, sent_at=now)
        atomic_write_text(store.run_dir(run_id) / SLICES_FILE, json.dumps(request) + "\n",
                          fsync=False)
        report["slices"].append(run_id)


def _skip(run_id: str, exc: BaseException, report: dict[str, list[str]]) -> None:
    log.warning("recover: run %s skipped (%s: %s)", run_id, type(exc).__name__,
                clip(str(exc), 300))
    report["skipped"].append(run_id)


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

    Returns ``{"interrupted", "requeued", "cancelled", "lost", "slices", "slices_dropped",
    "skipped"}``, each a list of run ids (``slices``: slices requests sent again; ``skipped``:
    runs that could not be handled, logged with the reason). Throttled to once per
    ``recover_every_s`` per run store and process unless ``force``. ``now`` (default: the
    current time) is the time heartbeats and queue waits are aged against. Cheap enough for the
    app to call whenever it lists runs, and it never raises because the queue is unreachable (a
    run it cannot re-queue stays 'queued' in the store and is re-queued by a later sweep) or a
    run is damaged.
    """
    store = store_or_default(store)
    s = settings or load_settings()
    now = time.time() if now is None else now
    report: dict[str, list[str]] = {"interrupted": [], "requeued": [], "cancelled": [],
                                    "lost": [], "slices": [], "slices_dropped": [],
                                    "skipped": []}
    if not _due(store, now, s, force):
        return report
    host = this_host()
    waiting = []  # (run id, what to do if it has no message in the queue)
    # A queued run whose message is not in the queue after this long lost it (submit writes the
    # state a moment before it enqueues; a worker takes a message a moment before it claims).
    grace = 2 * s.heartbeat_timeout_s
    for row in scan_runs(store):
        try:
            if row.damaged:
                _recover_damaged(store, row.run_id, now, s, report)
            elif row.state == RunState.RUNNING:
                _recover_running(store, row.run_id, now, s, host, report)
            elif row.state == RunState.QUEUED and now - row.queued_at > grace:
                waiting.append((row.run_id, _requeue_lost))
            elif (row.state == RunState.FINISHED
                  and (store.root / row.run_id / SLICES_FILE).exists()):
                waiting.append((row.run_id, _resend_slices))
        except Exception as exc:  # one damaged run must not stop the sweep for the others
            _skip(row.run_id, exc, report)
    pending = _pending(store, s) if waiting else None
    for run_id, fix in waiting if pending is not None else ():
        if run_id in pending:
            continue
        try:
            if fix is _requeue_lost:
                _requeue_lost(store, run_id, s, report)
            else:
                _resend_slices(store, run_id, now, grace, s, report)
        except FileNotFoundError:  # deleted meanwhile
            continue
        except Exception as exc:
            _skip(run_id, exc, report)
    try:
        prune_worker_records(store, now, host)
    except Exception:  # a damaged .workers folder must not stop the recovery either
        log.exception("recover: cannot prune the worker records")
    for key, ids in report.items():
        if ids:
            log.info("recover: %s %s", key, ", ".join(ids))
    return report

