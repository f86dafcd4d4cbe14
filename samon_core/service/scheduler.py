"""Who trains what: the claim, heartbeats, ends of runs, cancel, dead workers (issue 24).

* **The claim** (``claim_next``) takes the next queued run in the fair-share order, computed in
  SQL (``fair_order_query``): owners by device seconds used in the window (a run trained in a
  lockstep group of k counts 1/k of its time), then runs started in the window, then who waits
  longest; each owner's runs oldest first: the files-era fair queue's order (a test compares
  them). The run's lockstep group mates (same group and device, queued) are claimed in the same
  transaction, so a comparison trains together.
* **A dead worker is a stale heartbeat** (``reclaim_dead``): its runs go back to queued and
  resume from their checkpoint; a late write of the dead worker (``finish``) changes nothing,
  because every write of a worker names it and matches only the runs it holds. Its trainer's
  writes carry its claim (``claims_of``; the row's ``attempt``, +1 at each claim: runs/fence.py)
  and are refused once another holds the run.
* **Queue positions** (``queue_positions``) are the same order, for the pages.
* **Cancel is a column** (``cancel_requested``) the trainer's stop check reads (``should_stop``).
* **A worker that stops** (SIGTERM) gives its run back (``release``): queued again, resumed
  from its checkpoint by the next worker.
* **Workers** (``live_workers``): the workers table, with the runs each one trains.
* **Slices**: ``take_request`` hands a worker the oldest waiting request, which is that
  worker's until ``complete_request`` ends it; a dead worker's goes back to waiting
  (``reclaim_dead``), so another worker computes it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from samon_core.runs.database import reading, requests, runs, workers, writing
from samon_core.runs.fence import NotHeld, WorkerClaim
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore, store_or_default
from samon_core.service.settings import Settings, load_settings


def _span() -> Any:
    """Seconds each run held a device within the window [since, now], times its share."""
    now, since = sa.bindparam("now"), sa.bindparam("since")
    end = sa.case((runs.c.state == RunState.RUNNING, now),
                  else_=sa.func.coalesce(runs.c.ended, runs.c.updated, runs.c.started))
    lo = sa.case((runs.c.started > since, runs.c.started), else_=since)
    hi = sa.case((end < now, end), else_=now)
    return sa.case((hi > lo, (hi - lo) * runs.c.share), else_=0.0)


def fair_order_query(devices: Sequence[str] | None) -> sa.Select:
    """The queued runs a worker on ``devices`` (None: any) may take, the one to train next
    first."""
    span = _span()
    usage = (sa.select(runs.c.owner, sa.func.sum(span).label("used"),
                       sa.func.count().label("n_started"))
             .where(runs.c.started.is_not(None),
                    sa.or_(span > 0, runs.c.started >= sa.bindparam("since")))
             .group_by(runs.c.owner).cte("usage"))
    waiting = (sa.select(runs.c.owner, sa.func.min(runs.c.queued_at).label("first_wait"))
               .where(runs.c.state == RunState.QUEUED).group_by(runs.c.owner).cte("waiting"))
    wanted = [runs.c.state == RunState.QUEUED, runs.c.cancel_requested.is_(False)]
    if devices is not None:
        wanted.append(runs.c.device.in_(list(devices)))
    return (sa.select(runs.c.run_id, runs.c.run_group, runs.c.device, runs.c.owner)
            .join(waiting, waiting.c.owner == runs.c.owner)
            .outerjoin(usage, usage.c.owner == runs.c.owner)
            .where(*wanted)
            .order_by(sa.func.coalesce(usage.c.used, 0.0), sa.func.coalesce(usage.c.n_started, 0),
                      waiting.c.first_wait, runs.c.owner, runs.c.queued_at, runs.c.run_id))


def fair_order(engine: Engine, devices: Sequence[str] | None, *, window_s: float,
               now: float | None = None) -> list[str]:
    """The queued runs (of ``devices``; None: all) in the order ``claim_next`` would take
    them."""
    now = time.time() if now is None else now
    with reading(engine) as conn:
        return list(conn.scalars(fair_order_query(devices),
                                 {"now": now, "since": now - window_s}))


def owner_usage(engine: Engine, *, window_s: float, now: float | None = None
                ) -> dict[str, float]:
    """Device seconds each owner used in the window, as the fair order counts them (``_span``:
    a lockstep group's runs their share): the Room page's table. Owners with none: absent."""
    now = time.time() if now is None else now
    span = _span()
    query = (sa.select(runs.c.owner, sa.func.sum(span).label("used"))
             .where(runs.c.started.is_not(None)).group_by(runs.c.owner))
    with reading(engine) as conn:
        return {owner: float(used) for owner, used in
                conn.execute(query, {"now": now, "since": now - window_s}) if used and used > 0}


def claim_next(engine: Engine, worker_id: str, devices: Sequence[str], *, window_s: float,
               group_max: int = 1, now: float | None = None) -> list[str]:
    """WorkerClaim the next run for ``worker_id`` (and up to ``group_max - 1`` queued mates of its
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
            attempt=runs.c.attempt + 1,
            started=sa.func.coalesce(runs.c.started, now), ended=None, updated=now))
    return claimed


def queue_positions(store: RunStore | None = None,
                    settings: Settings | None = None) -> dict[str, int]:
    """1-based position of every queued run, as the app shows it ("waiting in the queue
    (position 3)"): the order the runs are expected to start in. Owners take turns (each claim
    counts as a run started for its owner), in the fair order of now, each owner's runs oldest
    first: an estimate, as usage changes while runs train."""
    s = settings or load_settings()
    now = time.time()
    with reading(store_or_default(store).engine) as conn:
        rows = conn.execute(fair_order_query(None), {"now": now, "since": now - s.fair_window_s})
        per_owner: dict[str, list[str]] = {}
        for row in rows:  # owners in the fair order, each one's runs oldest first
            per_owner.setdefault(row.owner, []).append(row.run_id)
    order = [ids[turn] for turn in range(max(map(len, per_owner.values()), default=0))
             for ids in per_owner.values() if turn < len(ids)]
    return {run_id: i + 1 for i, run_id in enumerate(order)}


def queue_position(run_id: str, *, store: RunStore | None = None,
                   settings: Settings | None = None) -> int | None:
    """1-based position of ``run_id`` among the queued runs; None if it is not queued."""
    return queue_positions(store, settings).get(run_id)


def claim_runs(engine: Engine, run_ids: Sequence[str], worker_id: str, *,
               now: float | None = None) -> list[str]:
    """WorkerClaim the given queued runs for ``worker_id`` (a process that trains runs it created
    itself: ``samon run``, ``claim run``), in one transaction; returns those claimed (a run a
    worker took first is not)."""
    now = time.time() if now is None else now
    with writing(engine) as conn:
        mine = list(conn.scalars(sa.select(runs.c.run_id).where(
            runs.c.run_id.in_(list(run_ids)), runs.c.state == RunState.QUEUED)
            .with_for_update(skip_locked=True)))
        if mine:
            conn.execute(runs.update().where(runs.c.run_id.in_(mine)).values(
                state=RunState.RUNNING.value, worker=worker_id, share=1.0 / len(mine),
                attempt=runs.c.attempt + 1,
                started=sa.func.coalesce(runs.c.started, now), ended=None, updated=now))
    return [run_id for run_id in run_ids if run_id in mine]


def claims_of(engine: Engine, worker_id: str, run_ids: Sequence[str]) -> dict[str, WorkerClaim]:
    """The claims ``worker_id`` holds on ``run_ids`` (those it claimed and still holds), by
    run id: what its trainer's writes carry (runs/fence.py). A run missing was taken back."""
    with reading(engine) as conn:
        return {row.run_id: WorkerClaim(worker_id, row.attempt) for row in conn.execute(
            sa.select(runs.c.run_id, runs.c.attempt).where(
                runs.c.worker == worker_id, runs.c.state == RunState.RUNNING,
                runs.c.run_id.in_(list(run_ids))))}


# --- what a worker writes while and after it trains ----------------------------------------


def heartbeat(engine: Engine, worker_id: str, *, host: str, pid: int, device: str,
              progress: Mapping[str, float] | None = None, state: str = "idle",
              started: float | None = None, watch: Sequence[str] = (),
              now: float | None = None) -> list[str]:
    """The worker is alive (``state``: 'idle', 'training' or 'stopping'; and, optionally, its
    runs' progress, 0..1). Returns those of ``watch`` (the runs it trains) that it still holds,
    whatever their state: a run missing from it was taken back (the worker was thought dead),
    and its trainer must stop."""
    now = time.time() if now is None else now
    with writing(engine) as conn:
        done = conn.execute(workers.update().where(workers.c.worker_id == worker_id).values(
            heartbeat=now, host=host, pid=pid, device=device, state=state)).rowcount
        if not done:
            conn.execute(workers.insert().values(worker_id=worker_id, host=host, pid=pid,
                                                 device=device, heartbeat=now, state=state,
                                                 started=now if started is None else started))
        for run_id, value in (progress or {}).items():
            conn.execute(runs.update().where(runs.c.run_id == run_id,
                                             runs.c.worker == worker_id).values(
                progress=value, updated=now))
        if not watch:
            return []
        return list(conn.scalars(sa.select(runs.c.run_id).where(
            runs.c.worker == worker_id, runs.c.run_id.in_(list(watch)))))


def leave(engine: Engine, worker_id: str) -> None:
    """A worker that exits removes its row (its runs were ended or released before)."""
    with writing(engine) as conn:
        conn.execute(workers.delete().where(workers.c.worker_id == worker_id))


def live_workers(engine: Engine, *, stale_s: float, now: float | None = None
                 ) -> list[dict[str, Any]]:
    """The workers with a heartbeat within ``stale_s``, each with the runs it trains
    (``run_ids``, ``run_id`` the first) and ``heartbeat_age_s``; not the processes that train
    their own runs (state ``PROCESS``: ``samon run``), which serve no queue."""
    now = time.time() if now is None else now
    with reading(engine) as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            sa.select(workers).where(workers.c.heartbeat >= now - stale_s,
                                     workers.c.state != PROCESS)
            .order_by(workers.c.started, workers.c.worker_id))]
        held: dict[str, list[str]] = {}
        for run_id, worker in conn.execute(
                sa.select(runs.c.run_id, runs.c.worker)
                .where(runs.c.state == RunState.RUNNING, runs.c.worker.is_not(None))
                .order_by(runs.c.run_id)):
            held.setdefault(worker, []).append(run_id)
    for row in rows:
        row["id"] = row.pop("worker_id")
        row["run_ids"] = held.get(row["id"], [])
        row["run_id"] = row["run_ids"][0] if row["run_ids"] else None
        row["heartbeat_age_s"] = now - row["heartbeat"]
        if row["state"] != "stopping":
            row["state"] = "training" if row["run_ids"] else "idle"
    return rows


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


def release(engine: Engine, run_id: str, worker_id: str, *, reason: str,
            now: float | None = None) -> str | None:
    """Put ``run_id`` back in the queue (it resumes from its checkpoint) when ``worker_id``
    stops before the run ends (SIGTERM, the app exiting), in one transaction: 'running' ->
    'queued', never through 'cancelled' (its trainer wrote no end: ``Released``,
    train/stopping.py). A run whose cancel was asked meanwhile ends 'cancelled' instead. Returns
    the state written; None (nothing changed) when the worker no longer holds the run."""
    now = time.time() if now is None else now
    with writing(engine) as conn:
        asked = conn.scalar(sa.select(runs.c.cancel_requested).where(
            runs.c.run_id == run_id, runs.c.worker == worker_id,
            runs.c.state == RunState.RUNNING).with_for_update())
        if asked is None:
            return None
        if asked:
            values = {"state": RunState.CANCELLED.value, "ended": now, "reason": "cancelled"}
        else:
            values = {"state": RunState.QUEUED.value, "queued_at": now, "ended": None,
                      "reason": reason}
        conn.execute(runs.update().where(runs.c.run_id == run_id).values(
            worker=None, updated=now, **values))
        return values["state"]


PROCESS = "process"  # a workers row of a process training its own runs (``samon run``)


def should_stop(engine: Engine, run_id: str, claim: WorkerClaim | None = None) -> bool:
    """The trainer's stop check: cancel was requested for the run. With ``claim``, in the same
    read: ``NotHeld`` when the row no longer holds it (the run was taken back)."""
    with reading(engine) as conn:
        row = conn.execute(sa.select(runs.c.cancel_requested, runs.c.worker, runs.c.attempt)
                           .where(runs.c.run_id == run_id)).first()
    if claim is not None and (row is None or (row.worker, row.attempt)
                              != (claim.worker, claim.attempt)):
        raise NotHeld(run_id, claim)
    return bool(row is not None and row.cancel_requested)


def cancel_check(engine: Engine, run_id: str, *, every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 claim: WorkerClaim | None = None) -> Callable[[], bool]:
    """A trainer's ``should_stop`` for ``run_id``: its cancel column, read at most every
    ``every_s`` (the trainer polls it each step); an unreachable database reads as "go on".
    With ``claim``, the same read is the fence: ``NotHeld`` once the run was taken back (the
    worker's check turns it into ``Released``)."""
    next_read, cancelled = [clock()], [False]

    def check() -> bool:
        now = clock()
        if not cancelled[0] and now >= next_read[0]:
            next_read[0] = now + every_s
            with contextlib.suppress(sa.exc.OperationalError):
                cancelled[0] = should_stop(engine, run_id, claim)
        return cancelled[0]

    return check


def cancel_row(conn: Connection, run_id: str, state: str, now: float) -> str:
    """Cancel ``run_id`` (in ``state``) in the caller's transaction: a running run gets the
    column its trainer's stop check reads (returns 'running'); any other is ``cancelled`` now."""
    this = runs.c.run_id == run_id
    if state == RunState.RUNNING:
        conn.execute(runs.update().where(this).values(cancel_requested=True, updated=now))
        return RunState.RUNNING.value
    why = "cancelled before it started" if state == RunState.QUEUED else "cancelled"
    conn.execute(runs.update().where(this).values(
        state=RunState.CANCELLED.value, cancel_requested=True, ended=now, updated=now,
        reason=why, worker=None))
    return RunState.CANCELLED.value


def request_cancel(engine: Engine, run_id: str, *, now: float | None = None) -> str | None:
    """Cancel ``run_id``: a queued run is ``cancelled`` at once, a running one gets the flag its
    trainer's stop check reads. Returns the state after, None for an unknown run."""
    now = time.time() if now is None else now
    with writing(engine) as conn:
        state = conn.scalar(sa.select(runs.c.state).where(runs.c.run_id == run_id))
        if state in (RunState.QUEUED, RunState.RUNNING):
            return cancel_row(conn, run_id, state, now)
        return state


def reclaim_dead(engine: Engine, *, stale_s: float, dead_workers: Sequence[str] = (),
                 max_resumes: int | None = None, now: float | None = None) -> list[str]:
    """Runs held by a worker whose heartbeat is older than ``stale_s`` (or that has none), or
    by one of ``dead_workers`` (known dead: a vanished process of this host), go back to
    ``queued`` (they resume from their checkpoint), in one transaction; the dead workers' rows
    go. A run claimed or updated within ``stale_s`` stays unless its worker is known dead: it
    may not have sent a heartbeat yet. A run whose cancel was asked ends ``cancelled``; one
    resumed ``max_resumes`` times already (None: no limit) ends ``interrupted``. The slices
    requests the dead workers took wait again for a worker (``_give_back_requests``). Returns
    every run taken back."""
    now = time.time() if now is None else now
    dead = list(dead_workers)
    with writing(engine) as conn:
        alive = sa.select(workers.c.worker_id).where(workers.c.heartbeat >= now - stale_s,
                                                     workers.c.worker_id.not_in(dead))
        stale = sa.and_(sa.or_(runs.c.worker.is_(None), runs.c.worker.not_in(alive)),
                        sa.func.coalesce(runs.c.updated, 0.0) < now - stale_s)
        orphaned = conn.execute(
            sa.select(runs.c.run_id, runs.c.worker, runs.c.auto_resumes,
                      runs.c.cancel_requested)
            .where(runs.c.state == RunState.RUNNING,
                   sa.or_(stale, runs.c.worker.in_(dead)) if dead else stale)
            .order_by(runs.c.run_id).with_for_update(skip_locked=True)).all()
        for row in orphaned:
            why = f"its worker {row.worker or '?'} died"
            if row.cancel_requested:
                values = {"state": RunState.CANCELLED.value, "ended": now,
                          "reason": f"cancelled ({why})"}
            elif max_resumes is not None and row.auto_resumes >= max_resumes:
                values = {"state": RunState.INTERRUPTED.value, "ended": now,
                          "reason": f"interrupted: {why} (resume it by hand)"}
            else:
                values = {"state": RunState.QUEUED.value, "queued_at": now,
                          "reason": f"queued again: {why}; it resumes from its checkpoint",
                          "auto_resumes": runs.c.auto_resumes + 1}
            conn.execute(runs.update().where(runs.c.run_id == row.run_id).values(
                worker=None, updated=now, **values))
        _give_back_requests(conn, alive, dead)
        conn.execute(workers.delete().where(sa.or_(workers.c.heartbeat < now - stale_s,
                                                   workers.c.worker_id.in_(dead))))
    return [row.run_id for row in orphaned]


# A slices request taken this many times by workers that died is given up (done): one that kills
# its worker (out of memory) must not take every worker down in turn.
MAX_REQUEST_TAKES = 3


def next_request(engine: Engine) -> tuple[int, str, dict[str, Any]] | None:
    """(id, run id, payload) of the oldest slices request no worker has taken, or None."""
    with reading(engine) as conn:
        row = conn.execute(sa.select(requests.c.id, requests.c.run_id, requests.c.payload)
                           .where(requests.c.done.is_(False), requests.c.worker.is_(None))
                           .order_by(requests.c.id).limit(1)).first()
    return None if row is None else (row.id, row.run_id, json.loads(row.payload))


def take_request(engine: Engine, worker_id: str) -> tuple[int, str, dict[str, Any]] | None:
    """Take the oldest waiting slices request (id, run id, payload) for ``worker_id`` in one
    transaction: it is that worker's (no other takes it) until ``complete_request``; if the
    worker dies first, ``reclaim_dead`` gives it back. None when there is none."""
    with writing(engine) as conn:
        row = conn.execute(sa.select(requests.c.id, requests.c.run_id, requests.c.payload)
                           .where(requests.c.done.is_(False), requests.c.worker.is_(None))
                           .order_by(requests.c.id).limit(1)
                           .with_for_update(skip_locked=True)).first()
        if row is None:
            return None
        conn.execute(requests.update().where(requests.c.id == row.id).values(
            worker=worker_id, attempts=requests.c.attempts + 1))
    return row.id, row.run_id, json.loads(row.payload)


def complete_request(engine: Engine, request_id: int, worker_id: str | None = None) -> bool:
    """The request is done (its slices are in the run's metrics, or it failed and said so);
    with ``worker_id``, only if that worker still holds it (a worker thought dead, whose request
    went to another, changes nothing). False: nothing changed."""
    this = [requests.c.id == request_id, requests.c.done.is_(False)]
    if worker_id is not None:
        this.append(requests.c.worker == worker_id)
    with writing(engine) as conn:
        return bool(conn.execute(requests.update().where(*this).values(done=True)).rowcount)


def _give_back_requests(conn: Connection, alive: Any, dead: Sequence[str]) -> None:
    """In ``reclaim_dead``'s transaction: the requests taken by workers not ``alive`` (or
    ``dead``) wait again, or are given up after ``MAX_REQUEST_TAKES`` takes."""
    orphaned = sa.and_(requests.c.done.is_(False), requests.c.worker.is_not(None),
                       sa.or_(requests.c.worker.not_in(alive), requests.c.worker.in_(dead)))
    conn.execute(requests.update().where(orphaned).values(
        worker=None, done=requests.c.attempts >= MAX_REQUEST_TAKES))
