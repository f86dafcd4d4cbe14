"""Runs, queue and control in one database (SQLAlchemy Core): SQLite or PostgreSQL.

One source of truth for the job service (issue 24): which runs exist, who asked for them, their
state, which worker trains them, cancel requests, the owners' key digests, the room, the
workers' heartbeats, requests for slices. The run folder keeps what is big or streamed
(config.json, metrics.jsonl, summary.json, checkpoints), written only by the worker that trains
the run. This module holds the tables and the transactions; ``admission`` (what gets in) and
``scheduler`` (who trains what) change the rows.

* **Engines.** SQLite in ``<runs>/samon.db`` by default (nothing to set up; WAL, so readers
  never wait for the writer), PostgreSQL with ``SAMON_DATABASE_URL`` for a room of machines.
  SQLAlchemy Core is the one library for both: the same tables and statements, the engine's
  dialect renders the few differences (``FOR UPDATE SKIP LOCKED`` is dropped on SQLite).
* **Every state change is one transaction** (``writing``). On SQLite a writing transaction
  starts with ``BEGIN IMMEDIATE`` (it takes the write lock first, so two writers never deadlock
  upgrading a read lock; a waiter waits ``busy_timeout``). On PostgreSQL the claim locks its rows
  with ``FOR UPDATE SKIP LOCKED``, and transactions that count before they insert (admissions,
  registrations, the import, creating the tables) call ``serialize``: one advisory lock, held for
  milliseconds.
* **Outages** (``retrying``): an operation that cannot reach the database waits and tries again;
  each operation is one transaction, so a retry never applies half of one twice.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from samon_core.runs.io import LockTimeout
from samon_core.runs.redact import display_url, redact

DB_FILE = "samon.db"
BUSY_TIMEOUT_MS = 10_000  # a waiter for SQLite's write lock gives up after 10 s (LOCK_TIMEOUT_S)
_SERIAL_LOCK = 0x5A40_0001  # PostgreSQL advisory lock id of ``serialize`` (any fixed number)

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
    # the claim's number: +1 each time a worker (or ``samon run``) claims the run; with the
    # worker, the fence of every write of its trainer (runs/fence.py)
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("progress", sa.Float),
    sa.Column("reason", sa.Text),
    sa.Column("auto_resumes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    # what else the trainer reports (epoch, accuracy, eta, host, ...) as JSON: shown, never queried
    sa.Column("status", sa.Text, nullable=False, server_default="{}"),
)
requesters = sa.Table(
    "requesters", metadata,
    sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("owner", sa.String(64), primary_key=True),
    # the comparison this owner put the run in ('' for none): a shared run is in several
    sa.Column("run_group", sa.String(200), primary_key=True, server_default=""),
    sa.Column("time", sa.Float),  # when this owner asked (meta's requesters list is in this order)
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
    sa.Column("state", sa.String(16), nullable=False, server_default="idle"),  # or "stopping"
    sa.Column("started", sa.Float),  # when the worker process started
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
    # the worker computing it (None: waiting); a dead worker's is given back (reclaim_dead)
    sa.Column("worker", sa.String(200)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),  # times taken
)
settings_kv = sa.Table(  # facts about the database itself, e.g. when a run store was imported
    "samon", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


DATABASE_URL_ENV = "SAMON_DATABASE_URL"


def database_url(runs_dir: Path, configured: str | None = None) -> str:
    """The configured URL (``SAMON_DATABASE_URL``), else SQLite in ``<runs_dir>/samon.db``."""
    configured = configured or os.environ.get(DATABASE_URL_ENV) or None
    return configured or f"sqlite:///{Path(runs_dir).resolve() / DB_FILE}"


def _engine(url: str) -> Engine:
    """The engine, or ``ValueError`` naming the URL without its password (SQLAlchemy's own
    message for an unparsable URL quotes all of it)."""
    try:
        if url.startswith("sqlite"):
            # NullPool: a connection per transaction (SQLite opens one in ~0.1 ms), so a process
            # that opens many stores (tests, the replay of a class) keeps no file handles.
            engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
                                      poolclass=sa.pool.NullPool)
            _sqlite_transactions(engine)
            _TURNS[engine] = threading.Lock()
            return engine
        # lock_timeout: a PostgreSQL lock waited for longer than LOCK_TIMEOUT_S is an error
        # (retried like an outage by ``retrying``), never a wait for ever.
        # connect_timeout: a server that drops packets (rather than refusing) is an outage after
        # 10 s, not a page or command hanging for the whole TCP timeout.
        return sa.create_engine(url, pool_pre_ping=True, connect_args={
            "options": f"-c lock_timeout={int(BUSY_TIMEOUT_MS)}",
            "connect_timeout": BUSY_TIMEOUT_MS // 1000})
    except (sa.exc.ArgumentError, ValueError, ImportError) as exc:
        raise ValueError(f"cannot use the database URL {display_url(url)}: "
                         f"{redact(str(exc).splitlines()[0], url)}") from None


def open_database(url: str) -> Engine:
    """An engine for ``url`` with the tables created (idempotent, safe from several processes:
    ``serialize`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite)."""
    engine = _engine(url)
    with writing(engine) as conn:
        serialize(conn)
        metadata.create_all(conn)
        _add_new_columns(conn)
    return engine


# Columns added to a table after databases with it were made (``create_all`` makes only missing
# tables): added when a process opens such a database. Each is nullable or has a default, so the
# rows already there read as before.
_NEW_COLUMNS = {"requests": ("worker", "attempts"), "runs": ("attempt",)}


def _add_new_columns(conn: Connection) -> None:
    for table, names in _NEW_COLUMNS.items():
        have = {column["name"] for column in sa.inspect(conn).get_columns(table)}
        for name in names:
            if name not in have:
                ddl = sa.schema.CreateColumn(metadata.tables[table].c[name])
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN "
                                     f"{ddl.compile(dialect=conn.dialect)}")


_OPEN: dict[str, Engine] = {}
_OPEN_LOCK = threading.Lock()


def shared_engine(url: str, on_create: Callable[[Engine], None] | None = None) -> Engine:
    """One engine per URL in this process (its pool and, on SQLite, its writers' turn lock are
    shared by every store of that URL); ``on_create(engine)`` runs once, when it is made (the
    run store's one-time import of a files-era store)."""
    with _OPEN_LOCK:
        engine = _OPEN.get(url)
        if engine is None:
            engine = open_database(url)
            if on_create is not None:
                on_create(engine)
            _OPEN[url] = engine
        return engine


def _wal(dbapi_conn: Any) -> None:
    """WAL mode, waiting for a turn: processes that open a new database file at once (the app
    and its workers starting, ten racing students) may find it locked while another one switches
    it to WAL, and that answer does not always go through the busy handler."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _sqlite_transactions(engine: Engine) -> None:
    """SQLite: WAL, a busy timeout, and our own BEGIN (the driver's would start transactions
    late and deferred): ``BEGIN IMMEDIATE`` for writers (``writing``), plain BEGIN for readers."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver leaves BEGIN/COMMIT to us
        dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _wal(dbapi_conn)
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("samon_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# SQLite: the writers of one process (the app's sessions are its threads) take turns on a
# thread lock before BEGIN IMMEDIATE. Without it they would all poll SQLite's busy handler, which
# sleeps up to 100 ms between tries and serves nobody in order: a burst of 30 submits then had a
# p95 several times its median (bench/db_admission.py).
_TURNS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """One writing transaction: committed at the end, rolled back on an exception. A writer
    that waits ``BUSY_TIMEOUT_MS`` for its turn gives up with ``LockTimeout``."""
    turn = _TURNS.get(engine)
    if turn is not None and not turn.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
        raise LockTimeout(f"the database's write lock stayed taken for "
                          f"{BUSY_TIMEOUT_MS / 1000:g} s in this process; nothing was written")
    try:
        with engine.connect().execution_options(samon_write=True) as conn, conn.begin():
            yield conn
    finally:
        if turn is not None:
            turn.release()


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """One reading transaction (a consistent snapshot; never blocks a writer on SQLite WAL).
    A SQLite file on a file system that became read-only (or full) is read without its WAL
    index (``_read_only``): the app still lists the runs of a store nobody can write."""
    try:
        conn = _begun(engine)
    except sa.exc.OperationalError:
        if engine.dialect.name != "sqlite" or not engine.url.database:
            raise
        conn = _begun(_read_only(engine.url.database))
    with conn:
        yield conn
        conn.commit()


def _begun(engine: Engine) -> Connection:
    conn = engine.connect()
    try:
        conn.begin()
    except BaseException:
        conn.close()
        raise
    return conn


_READ_ONLY: dict[str, Engine] = {}


def _read_only(path: str) -> Engine:
    """An engine that reads the SQLite file at ``path`` as immutable: SQLite opens a WAL
    database only if it can create its ``-shm`` index or the file is immutable (sqlite.org,
    "Read-Only Databases"). Used only when the normal open failed; nobody can write then."""
    with _OPEN_LOCK:
        engine = _READ_ONLY.get(path)
        if engine is None:
            uri = f"file:{Path(path).resolve().as_posix()}?mode=ro&immutable=1"
            engine = sa.create_engine(
                "sqlite://", poolclass=sa.pool.NullPool,
                creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))
            _READ_ONLY[path] = engine
        return engine


def _is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def serialize(conn: Connection) -> None:
    """Make this writing transaction wait for every other one that calls this (admissions, the
    import, creating the tables): SQLite's ``BEGIN IMMEDIATE`` already does; on PostgreSQL a
    transaction advisory lock, released at commit or rollback."""
    if _is_postgres(conn):
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SERIAL_LOCK)))


T = TypeVar("T")


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached for ``give_up_s``: one line, its URL without password."""


# SQLite's errors that no wait repairs: a full disk, a read-only or damaged file
_NOT_OUTAGES = re.compile(r"disk is full|disk I/O error|readonly database|not a database|"
                          r"unable to open database file", re.I)


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
            if _NOT_OUTAGES.search(str(exc.orig or exc)):  # waiting would not help
                raise
            if time.monotonic() >= deadline:
                plain = url.render_as_string(hide_password=False) if isinstance(url, sa.URL) \
                    else str(url)
                why = redact(str(exc.orig or exc).splitlines()[0], plain)
                raise DatabaseUnavailable(
                    f"database {display_url(plain)} cannot be reached after {give_up_s:g} s: "
                    f"{why}") from None
            sleep(wait_s)
            wait_s = min(wait_s * 2, 5.0)


# --- the room, owners, reads ----------------------------------------------------------------


def fact(conn: Connection, key: str) -> str | None:
    """A fact about the database itself (the ``samon`` table), or None."""
    return conn.scalar(sa.select(settings_kv.c.value).where(settings_kv.c.key == key))


def set_fact(conn: Connection, key: str, value: str) -> None:
    conn.execute(settings_kv.delete().where(settings_kv.c.key == key))
    conn.execute(settings_kv.insert().values(key=key, value=value))


def room_body(conn: Connection) -> Any:
    """The stored room's JSON value (None when never set; the text itself when it is not JSON,
    e.g. edited by hand: room.py's ``room_from_body`` reads anything but a room as no locks)."""
    text = conn.scalar(sa.select(room.c.body).where(room.c.id == 1))
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def read_room_body(engine: Engine) -> Any:
    """The stored room (the teacher's message and locks) as a dict, None when never set."""
    with reading(engine) as conn:
        return room_body(conn)


def write_room_body(engine: Engine, body: Mapping[str, Any], *, now: float | None = None) -> None:
    """Replace the stored room (the caller has checked the teacher's token and the body)."""
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
