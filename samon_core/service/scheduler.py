"""Who trains what: the claim, heartbeats, ends of runs, cancel, dead workers (issue 24).

* **The claim** (``claim_next``) takes the next queued run in the fair-share order, computed in
  SQL (``fair_order_query``): owners by device seconds used in the window (a run trained in a
  lockstep group of k counts 1/k of its time), then runs started in the window, then who waits
  longest; each owner's runs oldest first: the files-era fair queue's order (a test compares
  them). The run's lockstep group mates (same group and device, queued) are claimed in the same
  transaction, so a comparison trains together.
* **A dead worker is a stale heartbeat** (``reclaim_dead``): its runs go back to queued and
  resume from their checkpoint; a late write of the dead worker (``finish``) changes nothing,
  because every write of a worker names it and matches only the runs it holds.
* **Cancel is a column** (``cancel_requested``) the trainer's stop check reads (``should_stop``).
* **Slices**: ``next_request`` hands a worker the oldest pending request, ``complete_request``
  ends it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from samon_core.runs.states import RunState
from samon_core.runs.database import reading, requests, runs, workers, writing


def _span() -> Any:
    """Seconds each run held a device within the window [since, now], times its share."""
    now, since = sa.bindparam("now"), sa.bindparam("since")
    end = sa.case((runs.c.state == RunState.RUNNING, now),
                  else_=sa.func.coalesce(runs.c.ended, runs.c.updated, runs.c.started))
    lo = sa.case((runs.c.started > since, runs.c.started), else_=since)
    hi = sa.case((end < now, end), else_=now)
    return sa.case((hi > lo, (hi - lo) * runs.c.share), else_=0.0)


def fair_order_query(devices: Sequence[str]) -> sa.Select:
    """The queued runs a worker on ``devices`` may take, the one to train next first."""
    span = _span()
    usage = (sa.select(runs.c.owner, sa.func.sum(span).label("used"),
                       sa.func.count().label("n_started"))
             .where(runs.c.started.is_not(None),
                    sa.or_(span > 0, runs.c.started >= sa.bindparam("since")))
             .group_by(runs.c.owner).cte("usage"))
    waiting = (sa.select(runs.c.owner, sa.func.min(runs.c.queued_at).label("first_wait"))
               .where(runs.c.state == RunState.QUEUED).group_by(runs.c.owner).cte("waiting"))
    return (sa.select(runs.c.run_id, runs.c.run_group, runs.c.device)
            .join(waiting, waiting.c.owner == runs.c.owner)
            .outerjoin(usage, usage.c.owner == runs.c.owner)
            .where(runs.c.state == RunState.QUEUED, runs.c.cancel_requested.is_(False),
                   runs.c.device.in_(list(devices)))
            .order_by(sa.func.coalesce(usage.c.used, 0.0), sa.func.coalesce(usage.c.n_started, 0),
                      waiting.c.first_wait, runs.c.owner, runs.c.queued_at, runs.c.run_id))


def fair_order(engine: Engine, devices: Sequence[str], *, window_s: float,
               now: float | None = None) -> list[str]:
    """The queued runs in the order ``claim_next`` would take them (queue positions)."""
    now = time.time() if now is None else now
    with reading(engine) as conn:
        return list(conn.scalars(fair_order_query(devices),
                                 {"now": now, "since": now - window_s}))


def claim_next(engine: Engine, worker_id: str, devices: Sequence[str], *, window_s: float,
               group_max: int = 1, now: float | None = None) -> list[str]:
    """Claim the next run for ``worker_id`` (and up to ``group_max - 1`` queued mates of its
    lockstep group) in one transaction; [] when nothing is queued for ``devices``. The claimed
    runs are ``running`` with this worker: no other worker can claim them (SQLite: the write
    lock; PostgreSQL: the rows are locked, a concurrent claim skips them)."""
    now = time.time() if now is None else now
    params = {"now": now, "since": now - window_s}
    with writing(engine) as conn:
        head = conn.execute(fair_order_query(devices).limit(1)
                            .with_for_update(of=runs, skip_locked=True), params).first()
        if head is None:
            return []
        claimed = [head.run_id]
        if head.run_group and group_max > 1:
            mates = (sa.select(runs.c.run_id)
                     .where(runs.c.run_group == head.run_group, runs.c.device == head.device,
                            runs.c.state == RunState.QUEUED, runs.c.cancel_requested.is_(False),
                            runs.c.run_id != head.run_id)
                     .order_by(runs.c.created, runs.c.run_id).limit(group_max - 1)
                     .with_for_update(skip_locked=True))
            claimed += list(conn.scalars(mates))
        conn.execute(runs.update().where(runs.c.run_id.in_(claimed)).values(
            state=RunState.RUNNING.value, worker=worker_id, share=1.0 / len(claimed),
            started=sa.func.coalesce(runs.c.started, now), ended=None, updated=now))
    return claimed


# --- what a worker writes while and after it trains ----------------------------------------


def heartbeat(engine: Engine, worker_id: str, *, host: str, pid: int, device: str,
              progress: Mapping[str, float] | None = None, now: float | None = None) -> None:
    """The worker is alive (and, optionally, its runs' progress, 0..1)."""
    now = time.time() if now is None else now
    with writing(engine) as conn:
        done = conn.execute(workers.update().where(workers.c.worker_id == worker_id).values(
            heartbeat=now, host=host, pid=pid, device=device)).rowcount
        if not done:
            conn.execute(workers.insert().values(worker_id=worker_id, host=host, pid=pid,
                                                 device=device, heartbeat=now))
        for run_id, value in (progress or {}).items():
            conn.execute(runs.update().where(runs.c.run_id == run_id,
                                             runs.c.worker == worker_id).values(
                progress=value, updated=now))


def finish(engine: Engine, run_id: str, worker_id: str, state: RunState, *,
           reason: str | None = None, now: float | None = None) -> bool:
    """End ``run_id`` as ``state`` if ``worker_id`` still holds it; False (nothing written) when
    it does not: the run was reclaimed from a worker thought dead, which must not overwrite."""
    now = time.time() if now is None else now
    with writing(engine) as conn:
        return bool(conn.execute(runs.update().where(
            runs.c.run_id == run_id, runs.c.worker == worker_id,
            runs.c.state == RunState.RUNNING).values(
            state=RunState(state).value, ended=now, updated=now, reason=reason,
            worker=None)).rowcount)


def should_stop(engine: Engine, run_id: str) -> bool:
    """The trainer's stop check: cancel was requested for the run."""
    with reading(engine) as conn:
        return bool(conn.scalar(sa.select(runs.c.cancel_requested)
                                .where(runs.c.run_id == run_id)))


def request_cancel(engine: Engine, run_id: str, *, now: float | None = None) -> str | None:
    """Cancel ``run_id``: a queued run is ``cancelled`` at once, a running one gets the flag its
    trainer's stop check reads. Returns the state after, None for an unknown run."""
    now = time.time() if now is None else now
    with writing(engine) as conn:
        state = conn.scalar(sa.select(runs.c.state).where(runs.c.run_id == run_id))
        if state == RunState.QUEUED:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(
                state=RunState.CANCELLED.value, ended=now, updated=now, cancel_requested=True))
            return RunState.CANCELLED.value
        if state == RunState.RUNNING:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(
                cancel_requested=True, updated=now))
        return state


def reclaim_dead(engine: Engine, *, stale_s: float, now: float | None = None) -> list[str]:
    """Runs held by a worker whose heartbeat is older than ``stale_s`` (or that has none) go
    back to ``queued`` (they resume from their checkpoint); the dead workers' rows go. A run
    claimed or updated within ``stale_s`` stays: its worker may not have sent a heartbeat yet."""
    now = time.time() if now is None else now
    with writing(engine) as conn:
        alive = sa.select(workers.c.worker_id).where(workers.c.heartbeat >= now - stale_s)
        orphaned = list(conn.scalars(
            sa.select(runs.c.run_id).where(runs.c.state == RunState.RUNNING,
                                           sa.or_(runs.c.worker.is_(None),
                                                  runs.c.worker.not_in(alive)),
                                           sa.func.coalesce(runs.c.updated, 0.0)
                                           < now - stale_s)
            .with_for_update(skip_locked=True)))
        if orphaned:
            conn.execute(runs.update().where(runs.c.run_id.in_(orphaned)).values(
                state=RunState.QUEUED.value, worker=None, queued_at=now, updated=now,
                auto_resumes=runs.c.auto_resumes + 1))
        conn.execute(workers.delete().where(workers.c.heartbeat < now - stale_s))
    return orphaned


def next_request(engine: Engine) -> tuple[int, str, dict[str, Any]] | None:
    """(id, run id, payload) of the oldest pending slices request, or None."""
    with reading(engine) as conn:
        row = conn.execute(sa.select(requests.c.id, requests.c.run_id, requests.c.payload)
                           .where(requests.c.done.is_(False)).order_by(requests.c.id)
                           .limit(1)).first()
    return None if row is None else (row.id, row.run_id, json.loads(row.payload))


def complete_request(engine: Engine, request_id: int) -> None:
    """The request is done (its slices are in the run's metrics, or it failed and said so)."""
    with writing(engine) as conn:
        conn.execute(requests.update().where(requests.c.id == request_id).values(done=True))
