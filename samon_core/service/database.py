"""Runs, queue and control in one database (SQLAlchemy Core): SQLite or PostgreSQL.

One source of truth for the job service (issue 24): which runs exist, who asked for them, their
state, which worker trains them, cancel requests, the owners' key digests, the room, the
workers' heartbeats. The run folder keeps what is big or streamed (config.json, metrics.jsonl,
summary.json, checkpoints), written only by the worker that trains the run.

* **Engines.** SQLite in ``<runs>/samon.db`` by default (nothing to set up; WAL, so readers
  never wait for the writer), PostgreSQL with ``SAMON_DATABASE_URL`` for a room of machines.
  SQLAlchemy Core is the one library for both: the same tables and statements, the engine's
  dialect renders the few differences (``FOR UPDATE SKIP LOCKED`` is dropped on SQLite).
* **Every state change is one transaction.** On SQLite a writing transaction starts with
  ``BEGIN IMMEDIATE`` (it takes the write lock first, so two writers never deadlock upgrading a
  read lock; a waiter waits ``busy_timeout``); on PostgreSQL a claim locks its rows with
  ``FOR UPDATE SKIP LOCKED`` and an admission takes a transaction advisory lock, so limits are
  counted and runs inserted under one lock, held for milliseconds.
* **The claim** (``claim_next``) takes the next queued run in the fair-share order, computed in
  SQL: owners by device seconds used in the window (a run trained in a lockstep group of k
  counts 1/k of its time), then runs started in the window, then who waits longest; each owner's
  runs oldest first. The run's lockstep group mates (same group and device, queued) are claimed
  in the same transaction.
* **A dead worker is a stale heartbeat** (``reclaim_dead``): its runs go back to queued and
  resume from their checkpoint; a late write of the dead worker (``finish``) changes nothing,
  because every write of a worker names it and matches only the runs it holds.
* **Cancel is a column** (``cancel_requested``) the trainer's stop check reads (``should_stop``).
* **Outages** (``retrying``): an operation that cannot reach the database waits and tries again;
  each operation is one transaction, so a retry never applies half of one twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from samon_core.runs.states import ACTIVE_STATES, RunState
from samon_core.service.limits import LimitExceeded
from samon_core.service.redact import display_url, redact

DB_FILE = "samon.db"
BUSY_TIMEOUT_MS = 10_000  # a waiter for SQLite's write lock gives up after 10 s (LOCK_TIMEOUT_S)
_ADMISSION_LOCK = 0x5A40_0001  # PostgreSQL advisory lock id of admissions (any fixed number)

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("config_hash", sa.String(64), index=True),
    sa.Column("owner", sa.String(64), nullable=False, index=True),  # first requester: fair queue
    sa.Column("run_group", sa.String(200)),  # a comparison's runs train together (lockstep)
    sa.Column("device", sa.String(40), nullable=False, server_default="auto"),  # config.device
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("queued_at", sa.Float),
    sa.Column("started", sa.Float),  # first start: a resumed run counts its pause (favours others)
    sa.Column("ended", sa.Float),
    sa.Column("updated", sa.Float),
    sa.Column("share", sa.Float, nullable=False, server_default="1"),  # 1/k in a group of k
    sa.Column("worker", sa.String(200)),
    sa.Column("progress", sa.Float),
    sa.Column("reason", sa.Text),
    sa.Column("auto_resumes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
)
requesters = sa.Table(
    "requesters", metadata,
    sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("owner", sa.String(64), primary_key=True),
    # the comparison this owner put the run in ('' for none): a shared run is in several
    sa.Column("run_group", sa.String(200), primary_key=True, server_default=""),
)
owners = sa.Table(
    "owners", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),  # SHA-256 of the key, never the key
    sa.Column("created", sa.Float, nullable=False),
)
room = sa.Table(
    "room", metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # one row: id 1
    sa.Column("body", sa.Text, nullable=False),  # the Room model as JSON (room.py validates it)
    sa.Column("updated", sa.Float, nullable=False),
)
workers = sa.Table(
    "workers", metadata,
    sa.Column("worker_id", sa.String(200), primary_key=True),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("device", sa.String(40), nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
)
requests = sa.Table(
    "requests", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # 'slices' (cancel is runs' column)
    sa.Column("payload", sa.Text, nullable=False, server_default="{}"),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("done", sa.Boolean, nullable=False, server_default=sa.false()),
)
settings_kv = sa.Table(  # facts about the database itself, e.g. when a run store was imported
    "samon", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def database_url(runs_dir: Path, configured: str | None = None) -> str:
    """The configured URL (``SAMON_DATABASE_URL``), else SQLite in ``<runs_dir>/samon.db``."""
    return configured or f"sqlite:///{Path(runs_dir).resolve() / DB_FILE}"


def open_database(url: str) -> Engine:
    """An engine for ``url`` with the tables created (idempotent, safe from several processes:
    on PostgreSQL under the admission lock, on SQLite inside ``BEGIN IMMEDIATE``)."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        _sqlite_transactions(engine)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    with writing(engine) as conn:
        serialize(conn)
        metadata.create_all(conn)
    return engine


def _sqlite_transactions(engine: Engine) -> None:
    """SQLite: WAL, a busy timeout, and our own BEGIN (the driver's would start transactions
    late and deferred): ``BEGIN IMMEDIATE`` for writers (``writing``), plain BEGIN for readers."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver leaves BEGIN/COMMIT to us
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("samon_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """One writing transaction: committed at the end, rolled back on an exception."""
    with engine.connect().execution_options(samon_write=True) as conn, conn.begin():
        yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """One reading transaction (a consistent snapshot; never blocks a writer on SQLite WAL)."""
    with engine.connect() as conn, conn.begin():
        yield conn


def _is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def serialize(conn: Connection) -> None:
    """Make this writing transaction wait for every other one that calls this (admissions, the
    import, creating the tables): SQLite's ``BEGIN IMMEDIATE`` already does; on PostgreSQL a
    transaction advisory lock, released at commit or rollback."""
    if _is_postgres(conn):
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADMISSION_LOCK)))


T = TypeVar("T")


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached for ``give_up_s``: one line, its URL without password."""


def retrying(operation: Callable[[], T], *, url: str | Any = "", wait_s: float = 0.5,
             give_up_s: float = 300.0, sleep: Callable[[float], None] = time.sleep) -> T:
    """``operation()``, tried again while the database cannot be reached (an outage: a server
    restarting, a network cut) for up to ``give_up_s``; then ``DatabaseUnavailable``, naming
    ``url`` as ``redact.display_url`` shows it (the driver's message too is redacted). Each
    operation is one transaction, so a failed try changed nothing and the retry loses nothing."""
    deadline = time.monotonic() + give_up_s
    while True:
        try:
            return operation()
        except sa.exc.OperationalError as exc:
            if time.monotonic() >= deadline:
                plain = url.render_as_string(hide_password=False) if isinstance(url, sa.URL) \
                    else str(url)
                why = redact(str(exc.orig or exc).splitlines()[0], plain)
                raise DatabaseUnavailable(
                    f"database {display_url(plain)} cannot be reached after {give_up_s:g} s: "
                    f"{why}") from None
            sleep(wait_s)
            wait_s = min(wait_s * 2, 5.0)


# --- admission: limits checked in the transaction that inserts the runs --------------------


@dataclass(frozen=True)
class NewRun:
    """A run to insert: its id, the config's hash and device, the comparison it belongs to."""

    run_id: str
    config_hash: str
    device: str = "auto"
    group: str | None = None


@dataclass(frozen=True)
class QueueLimits:
    """The queue limits of ``settings`` (0 = no limit)."""

    max_queue: int = 0
    max_queued_per_owner: int = 0


@dataclass
class Admission:
    """What ``admit`` did: the runs inserted, the identical runs reused (joined as requester)."""

    inserted: list[str] = field(default_factory=list)
    reused: dict[str, str] = field(default_factory=dict)  # new run id -> existing run id


def _check_queue(conn: Connection, owner: str, n_new: int, limits: QueueLimits) -> None:
    if n_new <= 0:
        return
    if limits.max_queue:
        waiting = conn.scalar(sa.select(sa.func.count()).where(runs.c.state == RunState.QUEUED))
        if waiting + n_new > limits.max_queue:
            raise LimitExceeded("max_queue", limits.max_queue,
                                f"{waiting} runs are waiting and this request adds {n_new}")
    if limits.max_queued_per_owner:
        active = conn.scalar(sa.select(sa.func.count()).select_from(
            runs.join(requesters, requesters.c.run_id == runs.c.run_id)).where(
            requesters.c.owner == owner, runs.c.state.in_([s.value for s in ACTIVE_STATES])))
        if active + n_new > limits.max_queued_per_owner:
            raise LimitExceeded("max_queued_per_owner", limits.max_queued_per_owner,
                                f"{owner} has {active} runs queued or running and this request "
                                f"adds {n_new}")


def _reusable(conn: Connection, config_hash: str) -> str | None:
    """An existing run of this config that is queued, running or finished (reused, not copied)."""
    return conn.scalar(sa.select(runs.c.run_id).where(
        runs.c.config_hash == config_hash,
        runs.c.state.in_([RunState.QUEUED, RunState.RUNNING, RunState.FINISHED]),
    ).order_by(runs.c.created).limit(1))


def admit(engine: Engine, owner: str, new: Sequence[NewRun], limits: QueueLimits, *,
          check_room: Callable[[dict[str, Any] | None], None] | None = None,
          reuse: bool = True, now: float | None = None) -> Admission:
    """Queue ``new`` runs for ``owner`` in ONE transaction: the room's locks (``check_room``
    gets the stored room body, raises to refuse) and the queue limits are checked against the
    rows this transaction sees, identical runs are reused, the rest inserted. Concurrent
    admissions are serialised (SQLite's write lock; PostgreSQL's advisory lock), so ten racing
    submitters can never overfill a limit. A refusal raises and inserts nothing."""
    now = time.time() if now is None else now
    out = Admission()
    with writing(engine) as conn:
        serialize(conn)
        if check_room is not None:
            check_room(_room_body(conn))
        fresh: list[NewRun] = []
        for run in new:
            existing = _reusable(conn, run.config_hash) if reuse else None
            if existing is None:
                fresh.append(run)
            else:
                out.reused[run.run_id] = existing
        _check_queue(conn, owner, len(fresh), limits)
        for run in fresh:
            conn.execute(runs.insert().values(
                run_id=run.run_id, config_hash=run.config_hash, owner=owner, run_group=run.group,
                device=run.device, state=RunState.QUEUED.value, created=now, queued_at=now,
                updated=now))
            out.inserted.append(run.run_id)
        _join(conn, owner, [(run.run_id if run.run_id in out.inserted
                             else out.reused[run.run_id], run.group or "") for run in new])
    return out


def _join(conn: Connection, owner: str, wanted: list[tuple[str, str]]) -> None:
    """Record ``owner`` as a requester of each (run, group) it does not hold yet."""
    ids = {rid for rid, _ in wanted}
    have = set(conn.execute(sa.select(requesters.c.run_id, requesters.c.run_group).where(
        requesters.c.owner == owner, requesters.c.run_id.in_(ids))).all())
    for run_id, group in sorted(set(wanted) - have):
        conn.execute(requesters.insert().values(run_id=run_id, owner=owner, run_group=group))


# --- the claim: the next run in the fair-share order, its lockstep group with it -----------


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


# --- the room, owners, reads ----------------------------------------------------------------


def _room_body(conn: Connection) -> dict[str, Any] | None:
    text = conn.scalar(sa.select(room.c.body).where(room.c.id == 1))
    return json.loads(text) if text else None


def read_room_body(engine: Engine) -> dict[str, Any] | None:
    """The stored room (the teacher's message and locks) as a dict, None when never set."""
    with reading(engine) as conn:
        return _room_body(conn)


def write_room_body(engine: Engine, body: Mapping[str, Any], *, now: float | None = None) -> None:
    now = time.time() if now is None else now
    text = json.dumps(dict(body), sort_keys=True)
    with writing(engine) as conn:
        if not conn.execute(room.update().where(room.c.id == 1).values(body=text,
                                                                        updated=now)).rowcount:
            conn.execute(room.insert().values(id=1, body=text, updated=now))


def owner_digests(engine: Engine) -> dict[str, str]:
    """Registered owner name -> key digest."""
    with reading(engine) as conn:
        return {row.name: row.digest for row in conn.execute(sa.select(owners))}


def run_rows(engine: Engine, run_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The runs (all, or ``run_ids``) as dicts, with ``requesters`` (sorted)."""
    query = sa.select(runs)
    if run_ids is not None:
        query = query.where(runs.c.run_id.in_(list(run_ids)))
    with reading(engine) as conn:
        rows = [dict(row._mapping) for row in conn.execute(query.order_by(runs.c.created))]
        asked: dict[str, set[str]] = {}
        for rid, who in conn.execute(sa.select(requesters.c.run_id, requesters.c.owner)):
            asked.setdefault(rid, set()).add(who)
    for row in rows:
        row["requesters"] = sorted(asked.get(row["run_id"], ()))
    return rows
