"""The fair queue: which queued run a free worker takes next.

huey hands out messages first in, first out, so one student's nine-run sweep would make everyone
who queues after it wait for all nine. With ``settings.fair_queue`` (the default) a worker that
gets a message takes instead the oldest queued run of the owner who has used the least device
time in the last ``fair_window_s`` seconds (ties: fewer runs started in the window, then the
oldest waiting run). Owners therefore take turns, whatever the order of the messages.

Device time is read from the run store, like everything the service decides (scan.py): each
run's ``started`` and ``ended`` in status.json, clipped to the window; a run still training
counts up to now. A run resumed after an interruption counts from its first start, the pause
included: a small over-estimate that only ever favours the others. Runs one worker trains
together (a lockstep group, status ``worker``) share that worker's time: each counts its share
(``device_shares``), so a three-run comparison that held the worker 40 minutes counts 40 minutes,
not three times 40.

How the worker keeps every queued run's message (worker.py, ``Worker._handle``): the message of
run X makes the worker try the runs ranked before X (claim lock, still queued); when it claims
another run F, it puts a new message for X back in the queue before training F, and F's own
message is skipped later because F is no longer queued. So each queued run keeps exactly one
message, nothing trains twice (the claim lock), and the lost-message recovery sees nothing new.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore
from samon_core.service.scan import RunRow, queued_in_order, scan_runs
from samon_core.service.settings import Settings


@dataclass(frozen=True)
class Usage:
    """What one owner used in the window: device seconds and runs started."""

    seconds: float = 0.0
    runs: int = 0


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def device_seconds(row: RunRow, now: float, window_s: float) -> float:
    """Seconds ``row``'s run trained within ``[now - window_s, now]`` (0 if it never started)."""
    started = _number(row.status.get("started"))
    if started is None:
        return 0.0
    ended = _number(row.status.get("ended"))
    if row.state == RunState.RUNNING:
        ended = now  # it holds a device right now
    elif ended is None:
        # Interrupted, or queued again after a stop: it last held a device when its status was
        # last written (the interruption or the re-queue).
        ended = _number(row.status.get("updated")) or started
    begin = max(started, now - window_s)
    return max(0.0, min(ended, now) - begin)


def _span(row: RunRow, now: float, window_s: float) -> tuple[float, float] | None:
    """(begin, end) of ``row``'s device time within the window (``device_seconds``'s bounds),
    or None when it has none."""
    used = device_seconds(row, now, window_s)
    if used <= 0.0:
        return None
    started = _number(row.status.get("started")) or 0.0
    begin = max(started, now - window_s)
    return begin, begin + used


def device_shares(rows: list[RunRow], now: float, window_s: float) -> dict[str, float]:
    """Each run's share of device seconds within the window: ``device_seconds``, except that
    while one worker (status ``worker``) trains several runs at once (a lockstep group,
    interleaved step by step) each of them counts 1/k of that time, k being how many it trained
    then. The shares of a group add up to the time the worker was held. Runs without a worker
    (older records) count alone."""
    out: dict[str, float] = {}
    by_worker: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for row in rows:
        span = _span(row, now, window_s)
        if span is None:
            continue
        worker = row.status.get("worker")
        if isinstance(worker, str) and worker:
            by_worker[worker].append((row.run_id, *span))
        else:
            out[row.run_id] = span[1] - span[0]
    for spans in by_worker.values():
        cuts = sorted({t for _rid, a, b in spans for t in (a, b)})
        for left, right in zip(cuts, cuts[1:], strict=False):  # pieces with a fixed set of runs
            inside = [rid for rid, a, b in spans if a <= left and b >= right]
            for rid in inside:
                out[rid] = out.get(rid, 0.0) + (right - left) / len(inside)
        for rid, _a, _b in spans:
            out.setdefault(rid, 0.0)
    return out


def owner_usage(rows: list[RunRow], now: float, window_s: float) -> dict[str, Usage]:
    """Device time (each run's share, ``device_shares``) and runs started per owner
    (``meta.json``'s owner) within the window."""
    seconds: dict[str, float] = defaultdict(float)
    runs: dict[str, int] = defaultdict(int)
    shares = device_shares(rows, now, window_s)
    for row in rows:
        used = shares.get(row.run_id, 0.0)
        started = _number(row.status.get("started"))
        if started is not None and (used > 0.0 or started >= now - window_s):
            seconds[row.owner] += used
            runs[row.owner] += 1
    return {owner: Usage(seconds[owner], runs[owner]) for owner in seconds}


def fair_order(rows: list[RunRow], now: float, window_s: float) -> list[str]:
    """The queued runs of ``rows``, the one to train next first: owners by (device seconds, runs
    started) in the window, each owner's runs oldest first. Only the head matters for fairness
    (it is recomputed at every message); the rest is the fallback when the head is claimed by
    another worker meanwhile."""
    usage = owner_usage(rows, now, window_s)
    queued = queued_in_order(rows)  # oldest first
    first_wait = {}
    for row in queued:
        first_wait.setdefault(row.owner, row.queued_at)

    def key(row: RunRow) -> tuple:
        used = usage.get(row.owner, Usage())
        return (used.seconds, used.runs, first_wait[row.owner], row.owner, row.queued_at,
                row.run_id)

    return [row.run_id for row in sorted(queued, key=key)]


def expected_order(rows: list[RunRow], now: float, window_s: float) -> list[str]:
    """The order the queued runs are expected to start in under the fair queue: owners take
    turns (round robin), the owner who used least first, each owner's runs oldest first. An
    estimate for the app's "position in the queue": usage changes as runs train."""
    usage = owner_usage(rows, now, window_s)
    per_owner: dict[str, list[RunRow]] = defaultdict(list)
    for row in queued_in_order(rows):  # oldest first
        per_owner[row.owner].append(row)

    def owner_key(owner: str) -> tuple:
        used = usage.get(owner, Usage())
        return (used.seconds, used.runs, per_owner[owner][0].queued_at, owner)

    owners = sorted(per_owner, key=owner_key)
    order: list[str] = []
    for turn in range(max((len(v) for v in per_owner.values()), default=0)):
        order.extend(per_owner[o][turn].run_id for o in owners if turn < len(per_owner[o]))
    return order


def fair_candidates(store: RunStore, run_id: str, settings: Settings,
                    now: float | None = None) -> list[str]:
    """The runs the worker holding ``run_id``'s message tries, in order: the fair order up to
    and including ``run_id``. Just ``[run_id]`` with ``fair_queue`` off, or when ``run_id`` is
    not queued (a stale message: the worker skips it, as it always did)."""
    if not settings.fair_queue:
        return [run_id]
    now = time.time() if now is None else now
    order = fair_order(scan_runs(store), now, settings.fair_window_s)
    if run_id not in order:
        return [run_id]
    return order[: order.index(run_id) + 1]
