"""The run store: a database row per run (its state) and a folder per run (its files). No torch.

**The database** (``database.py``; SQLite in ``<root>/samon.db``, or PostgreSQL with
``SAMON_DATABASE_URL``) holds what several processes change: each run's state, times, worker,
progress and the rest of what its trainer reports (``write_status`` / ``read_status``), its
requesters, the registered owners' key digests (ownerkeys.py). Every change is one transaction.

**The folder** ``<root>/<run_id>/`` holds what is big or streamed, written by the one process
that trains the run (see ARCHITECTURE.md): ``config.json`` and ``meta.json`` (written once, at
creation: label, preset, owner, group), ``metrics.jsonl`` (append-only, one JSON record per line;
``samon_core.runs.metrics``), ``summary.json`` (atomically, at the end) and ``checkpoint.pt``.
JSON files are only ever replaced atomically, so a reader sees the old or the new file; readers
ignore a last metrics line without its newline (a record being written) and skip malformed
lines, so they never fail on a live run.

A store of the files era (``status.json`` in each folder, ``.owner_keys.json``, ``.room.json``)
is imported into the database the first time a process opens it (importer.py); a run folder
with a ``status.json`` but no row (copied in by hand) is adopted the same way when read.
Damage (ARCHITECTURE.md, "What the store promises"): a damaged ``meta.json`` or ``config.json``
never hides a run: ``list_runs`` shows it with a ``problem``. Who may cancel or delete a run:
owners.py.

This module is longer than 500 lines because it is the one door to a run for every reader and
writer (pages, service, trainer, command line): each method is short and hands the work to
rows.py (the row as a status dict), listing.py, metrics.py, ownerkeys.py or importer.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from samon_core.runs import database as db
from samon_core.runs import importer, ownerkeys, owners, rows
from samon_core.runs.config import RunConfig
from samon_core.runs.fence import NotHeld, WorkerClaim
from samon_core.runs.files import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    META_FILE,
    METRICS_FILE,
    STATUS_FILE,
    SUMMARY_FILE,
)
from samon_core.runs.freetext import check_meta_text, check_text
from samon_core.runs.io import read_json_dict, write_json
from samon_core.runs.listing import checked_file, listing_frame, listing_row, records_or_damaged
from samon_core.runs.messages import clip
from samon_core.runs.metrics import (
    MetricsWriter,
    epochs_frame,
    norm_stats_records,
    resolve_resumes,
    sharpness_frame,
    steps_frame,
)
from samon_core.runs.states import TERMINAL_STATES, RunState

if TYPE_CHECKING:  # pandas is imported lazily (list_runs)
    import pandas as pd


RUNS_DIR_ENV = "SAMON_RUNS_DIR"

# A folder without a database row younger than this is a submit between its folders and its
# admission (not listed); an older one is a leftover, listed with its problem so it can go.
_UNADMITTED_GRACE_S = 60.0

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


# ---------------------------------------------------------------------------------------------
# ids and roots
# ---------------------------------------------------------------------------------------------


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe folder name (``^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$``, no
    '..'); raise ``ValueError`` otherwise."""
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id) or ".." in run_id:
        raise ValueError(f"invalid run id {clip(run_id)} (letters, digits, '_', '.', '-'; at "
                         "most 80 characters)")
    return run_id


def new_run_id() -> str:
    """``YYYYmmdd-HHMMSS-<6 hex>`` (local time)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def default_root() -> Path:
    """``$SAMON_RUNS_DIR`` or ``./runs``."""
    return Path(os.environ.get(RUNS_DIR_ENV) or "runs")


def store_or_default(store: RunStore | None) -> RunStore:
    """``store``, or the default run store when None (the job API's ``store=None``)."""
    return store if store is not None else RunStore()


def _as_state(state: RunState | str) -> RunState:
    try:
        return RunState(state)
    except ValueError:
        allowed = ", ".join(s.value for s in RunState)
        raise ValueError(f"state must be one of {allowed}; got {clip(state)}") from None


# ---------------------------------------------------------------------------------------------
# the store
# ---------------------------------------------------------------------------------------------


class RunStore:
    """All runs under ``root`` (default: ``$SAMON_RUNS_DIR`` or ``./runs``).

    ``clock`` gives the unix time written as ``created``, ``updated``, ``heartbeat`` and
    ``ended`` (tests pass a fake one instead of sleeping). ``database_url``: the database of
    its runs' state (default: ``SAMON_DATABASE_URL``, else SQLite in ``<root>/samon.db``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        database_url: str | None = None,
    ):
        self.root = Path(root if root is not None else default_root()).expanduser().resolve()
        self.clock = clock
        self._url = database_url
        self._engine: Engine | None = None

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    @property
    def database_url(self) -> str:
        """The URL of this store's database (shown only through ``redact.display_url``)."""
        return db.database_url(self.root, self._url)

    @property
    def engine(self) -> Engine:
        """The database of this store (opened on first use: tables created, a files-era store
        imported once; ``database.shared_engine``)."""
        if self._engine is None:
            url = db.database_url(self.root, self._url)
            if url.startswith("sqlite"):
                self.root.mkdir(parents=True, exist_ok=True)
            root = self.root
            self._engine = db.shared_engine(
                url, on_create=lambda engine: importer.import_store(engine, root,
                                                                    self.run_ids()))
        return self._engine

    # --- paths --------------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        """Folder of ``run_id``; ``ValueError`` for an unsafe id or a path outside the root."""
        validate_run_id(run_id)
        path = (self.root / run_id).resolve()
        if path.parent != self.root:
            raise ValueError(f"run id {run_id!r} resolves outside the run store")
        return path

    def exists(self, run_id: str) -> bool:
        return (self.run_dir(run_id) / CONFIG_FILE).is_file()

    def checkpoint_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / CHECKPOINT_FILE

    def metrics_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / METRICS_FILE

    def _existing_dir(self, run_id: str) -> Path:
        path = self.run_dir(run_id)
        if not path.is_dir():
            raise FileNotFoundError(f"no run {run_id!r} in {self.root}")
        return path

    def run_ids(self) -> list[str]:
        """Ids of all run folders (unordered); folders being created or deleted are skipped."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        ids = []
        for entry in entries:
            name = entry.name
            if RUN_ID_RE.fullmatch(name) and ".." not in name:
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        ids.append(name)
        return ids

    # --- creation -----------------------------------------------------------------------------

    def create_run(
        self,
        config: RunConfig,
        meta: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        admit: bool = True,
    ) -> str:
        """Create a run folder (config.json, meta.json) and its database row (state 'queued',
        its owner as requester) and return its id. The folder is assembled under a hidden name
        and renamed into place, so readers never see a half-created run. ``meta`` adds to /
        overrides owner, group, label (default ``config.method_label()``), preset, created;
        ``config_hash`` is always the config's. ``run_id`` (optional) must be new. ``admit=False``
        makes the folder only: the job service's admission inserts the rows of a request in one
        transaction with its limits (service/admission.py)."""
        if not isinstance(config, RunConfig):
            raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
        self.root.mkdir(parents=True, exist_ok=True)
        now = self.clock()
        info: dict[str, Any] = {
            "owner": "",
            "group": "",
            "label": config.method_label(),
            "preset": None,
            "created": now,
        }
        info.update(meta or {})
        if not info.get("label"):
            info["label"] = config.method_label()
        info["owner"] = owners.owner_name_or_raw(info["owner"])  # one name is one person
        check_meta_text(info)  # a huge label would make this very file unreadable
        info["config_hash"] = config.config_hash()
        for _attempt in range(50):
            rid = run_id if run_id is not None else new_run_id()
            final = self.run_dir(rid)
            if final.exists():
                if run_id is not None:
                    raise ValueError(f"run {run_id!r} already exists")
                continue
            tmp = self.root / f".creating-{rid}-{secrets.token_hex(4)}"
            tmp.mkdir()
            try:
                config.save(tmp / CONFIG_FILE)
                write_json(tmp / META_FILE, {"run_id": rid, **info})
                os.rename(tmp, final)  # fails if ``final`` appeared meanwhile (non-empty)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                if final.exists() and run_id is None:
                    continue
                raise
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if admit:
                try:
                    self._insert_row(rid, config, info, now)
                except BaseException:
                    shutil.rmtree(final, ignore_errors=True)
                    raise
            return rid
        raise RuntimeError("could not find a free run id")  # pragma: no cover

    def _insert_row(self, run_id: str, config: RunConfig, info: Mapping[str, Any],
                    now: float) -> None:
        with db.writing(self.engine) as conn:
            importer.insert_run(conn, *rows.new_row(run_id, config.device, info, now))

    # --- status (the database's row) -----------------------------------------------------------

    def _row(self, conn: Connection, run_id: str, *, lock: bool = False) -> Any:
        """The run's row; a folder without one that holds a files-era status.json is adopted
        (imported) now. ``FileNotFoundError`` for a run that is in neither."""
        query = sa.select(db.runs).where(db.runs.c.run_id == run_id)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is not None:
            return row
        path = self._existing_dir(run_id)
        if not (path / STATUS_FILE).exists():
            raise FileNotFoundError(f"run {run_id!r} has a folder but is not in the database "
                                    "(a submit that did not finish); delete it")
        importer.insert_run(conn, *importer.run_row(path))
        return conn.execute(query).first()

    def write_status(self, run_id: str, state: RunState | str, *, claim: WorkerClaim | None = None,
                     **fields: Any) -> dict[str, Any]:
        """Set ``state`` and merge ``fields`` into the run's status, in one transaction; sets
        ``updated`` (= ``heartbeat``), ``started`` the first time the state is 'running' and
        ``ended`` when a terminal state is written. Returns the new status. A database outage
        is waited out (``database.retrying``): the trainer goes on after it, nothing lost.
        With ``claim`` (a worker's trainer) the row changes only if it still holds that claim;
        ``NotHeld`` (nothing written) if not (claims.py). None: no fence (``samon run``)."""
        state = _as_state(state)
        validate_run_id(run_id)
        return db.retrying(lambda: self._write_status(run_id, state, fields, claim),
                           url=db.database_url(self.root, self._url))

    def _update_held(self, conn: Connection, run_id: str, claim: WorkerClaim | None,
                     values: Mapping[str, Any]) -> dict[str, Any]:
        """Update the run's row (``WHERE`` it holds ``claim``, if any) and read it back."""
        this = db.runs.c.run_id == run_id
        where = this if claim is None else sa.and_(this, claim.holds())
        done = conn.execute(db.runs.update().where(where).values(**values)).rowcount
        if not done and claim is not None:
            raise NotHeld(run_id, claim)  # the transaction is rolled back: nothing changed
        return rows.status_of(conn.execute(sa.select(db.runs).where(this)).first())

    def _write_status(self, run_id: str, state: RunState, fields: Mapping[str, Any],
                      claim: WorkerClaim | None) -> dict[str, Any]:
        now = self.clock()
        with db.writing(self.engine) as conn:
            row = self._row(conn, run_id, lock=True)
            values = rows.column_values(row, fields)
            values.update(state=state.value, updated=now)
            if state is RunState.RUNNING and row.started is None:
                values.setdefault("started", now)
            if state not in TERMINAL_STATES:
                values["ended"] = None
            elif "ended" not in fields:
                values["ended"] = now
            return self._update_held(conn, run_id, claim, values)

    def heartbeat(self, run_id: str, *, claim: WorkerClaim | None = None,
                  **fields: Any) -> dict[str, Any]:
        """Refresh ``heartbeat`` (and merge ``fields``, e.g. progress) without changing the
        state; waits out a database outage and is fenced by ``claim`` like ``write_status``."""
        validate_run_id(run_id)
        return db.retrying(lambda: self._heartbeat(run_id, fields, claim),
                           url=db.database_url(self.root, self._url))

    def _heartbeat(self, run_id: str, fields: Mapping[str, Any],
                   claim: WorkerClaim | None) -> dict[str, Any]:
        with db.writing(self.engine) as conn:
            row = self._row(conn, run_id, lock=True)
            values = rows.column_values(row, fields)
            values["updated"] = self.clock()
            return self._update_held(conn, run_id, claim, values)

    def check_held(self, run_id: str, claim: WorkerClaim | None) -> None:
        """``NotHeld`` unless the run's row holds ``claim`` (None: nothing to check): what a
        trainer asks before it appends a record or writes its summary (a read, no change)."""
        if claim is None:
            return
        with db.reading(self.engine) as conn:
            held = conn.scalar(sa.select(db.runs.c.run_id).where(
                db.runs.c.run_id == run_id, claim.holds()))
        if held is None:
            raise NotHeld(run_id, claim)

    def read_status(self, run_id: str) -> dict[str, Any]:
        """The run's status as a dict: ``state``, its times (``heartbeat`` is ``updated``),
        ``worker``, ``message``, ``progress``, ``cancel_requested`` and whatever else its trainer
        reported. ``FileNotFoundError`` if the run does not exist."""
        validate_run_id(run_id)
        with db.reading(self.engine) as conn:
            row = conn.execute(sa.select(db.runs).where(db.runs.c.run_id == run_id)).first()
        if row is None:
            with db.writing(self.engine) as conn:  # a files-era folder: adopted
                row = self._row(conn, run_id)
        return rows.status_of(row)

    def read_statuses(self) -> dict[str, dict[str, Any]]:
        """Every run's status (``read_status``) by run id, in one read."""
        with db.reading(self.engine) as conn:
            return {row.run_id: rows.status_of(row) for row in conn.execute(sa.select(db.runs))}

    # --- config, meta, summary ----------------------------------------------------------------

    def read_config(self, run_id: str) -> RunConfig:
        return RunConfig.from_dict(read_json_dict(self._existing_dir(run_id) / CONFIG_FILE))

    def read_config_dict(self, run_id: str) -> dict[str, Any]:
        """config.json as stored (no validation): what ``show`` prints when ``read_config``
        refuses it (e.g. a key of another version)."""
        return read_json_dict(self._existing_dir(run_id) / CONFIG_FILE)

    def read_meta(self, run_id: str) -> dict[str, Any]:
        """meta.json without its fields of the wrong type (``listing.checked_file``), with
        ``requesters`` (owner, group, time) from the database."""
        meta = checked_file(self._existing_dir(run_id) / META_FILE)
        with db.reading(self.engine) as conn:
            asked = rows.requesters_of(conn, [run_id]).get(run_id)
            owner = conn.scalar(sa.select(db.runs.c.owner).where(db.runs.c.run_id == run_id))
        if asked is not None:
            meta["requesters"] = asked
        if owner:  # the first requester who still wants the run (``release_request``)
            meta["owner"] = owner
        return meta

    def requesters_by_run(self) -> dict[str, list[dict[str, Any]]]:
        """Every run's requesters as ``read_meta`` gives them (owner, group, time), in one read
        (the pages' comparison groups, every second, without a read per run)."""
        with db.reading(self.engine) as conn:
            return rows.requesters_of(conn, None)

    def update_meta(self, run_id: str, **fields: Any) -> dict[str, Any]:
        """Change meta fields (e.g. the label); ``config_hash`` and ``run_id`` are fixed."""
        for key in ("config_hash", "run_id"):
            if key in fields:
                raise ValueError(f"meta field {key!r} cannot be changed")
        path = self._existing_dir(run_id)
        meta = read_json_dict(path / META_FILE)
        meta.update(fields)
        write_json(path / META_FILE, meta)
        return meta

    def write_summary(self, run_id: str, summary: Mapping[str, Any]) -> None:
        write_json(self._existing_dir(run_id) / SUMMARY_FILE, dict(summary))

    def read_summary(self, run_id: str) -> dict[str, Any] | None:
        """summary.json (without fields of the wrong type), or None while the run has none."""
        try:
            return checked_file(self._existing_dir(run_id) / SUMMARY_FILE)
        except FileNotFoundError:
            return None

    # --- metrics ------------------------------------------------------------------------------

    def metrics_writer(self, run_id: str, *, fsync_every_s: float | None = 10.0) -> MetricsWriter:
        return MetricsWriter(self._existing_dir(run_id), fsync_every_s=fsync_every_s)

    def read_records_since(self, run_id: str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Records of the complete lines after byte ``offset`` and the offset to pass next time.

        Raw records: resume markers are NOT applied; keep the records you have and pass them all
        to ``resolve_resumes`` (cheap). A returned offset smaller than the one given means that the
        file was replaced: start again from the records returned. A missing file gives
        ``([], 0)``. Damaged records are skipped or cleaned (``listing.records_or_damaged``)."""
        return records_or_damaged(self.run_dir(run_id) / METRICS_FILE, offset)[:2]

    def read_records(self, run_id: str, *, resolve: bool = True) -> list[dict[str, Any]]:
        """All complete records of metrics.jsonl (a trailing line without newline is ignored),
        with resume markers applied unless ``resolve`` is False."""
        records, _ = self.read_records_since(run_id, 0)
        return resolve_resumes(records) if resolve else records

    def steps_df(self, run_id: str) -> pd.DataFrame:
        return steps_frame(self.read_records(run_id))

    def epochs_df(self, run_id: str) -> pd.DataFrame:
        return epochs_frame(self.read_records(run_id))

    def sharpness_df(self, run_id: str) -> pd.DataFrame:
        return sharpness_frame(self.read_records(run_id))

    def norm_stats(self, run_id: str, param: str = "gamma") -> list[dict[str, Any]]:
        """``norm_stats`` records of ``param`` by epoch: each has ``epoch``, ``bin_edges``,
        ``counts`` and ``layers``."""
        return norm_stats_records(self.read_records(run_id), param)

    # --- listing ------------------------------------------------------------------------------

    def list_runs(
        self,
        owner: str | None = None,
        group: str | None = None,
        status: str | Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """One row per run folder (columns ``listing.LIST_COLUMNS``), newest first, optionally
        filtered by owner, group and state(s). Reads only the small JSON files, never the metrics.

        ``last_epoch`` / ``final_test_acc`` / ``best_test_acc`` come from summary.json
        (``epochs_done``, ``final_test_acc``, ``best_test_acc``) or, while the run has no summary,
        from status.json (``epoch``, ``test_acc``, ``best_test_acc``). A damaged run is listed
        too, with what could be read and its ``problem`` (never hidden, so it can be deleted)."""
        now = self.clock()
        statuses = self.read_statuses()
        found = []
        for run_id in self.run_ids():
            path = self.root / run_id
            run_status = statuses.get(run_id)
            if run_status is None and (path / STATUS_FILE).exists():
                with contextlib.suppress(Exception):  # a files-era folder: adopted
                    run_status = self.read_status(run_id)
            if run_status is None and _age(path, now) < _UNADMITTED_GRACE_S:
                continue  # a submit between its folders and its admission
            row = listing_row(path, now, run_status)
            if row is None:
                continue
            if run_status is not None and run_status.get("owner"):
                row["owner"] = run_status["owner"]  # the database's (release_request moves it)
            found.append(row)
        return listing_frame(found, owner=owner, group=group, status=status)

    # --- requesters (the database's ``requesters``) ----------------------------------------------

    def add_requester(self, run_id: str, owner: str, group: str = "") -> None:
        """Record ``owner`` as one more requester of a shared or reused run."""
        if group:
            check_text("group", group)
        owner = owners.owner_name_or_raw(owner) or ""
        validate_run_id(run_id)
        with db.writing(self.engine) as conn:
            self._row(conn, run_id)
            rows.add_requester(conn, run_id, owner, group, self.clock())

    def _meta_or_none(self, run_id: str) -> dict[str, Any] | None:
        try:
            return self.read_meta(run_id)
        except (FileNotFoundError, ValueError):
            return None

    def check_requester(self, run_id: str, owner: str | None, *, is_teacher: bool = False,
                        action: str = "change") -> None:
        """``NotAllowed`` unless ``owner`` requested the run (or ``is_teacher``); no change."""
        self._existing_dir(run_id)
        owners.check(self._meta_or_none(run_id), run_id, owner, is_teacher, action)

    def release_request(self, run_id: str, owner: str | None, *, is_teacher: bool = False,
                        action: str = "cancel") -> bool:
        """``owner`` gives up the run (see owners.py): True when the caller may now act on the
        whole run (a teacher, or its last requester); False when only ``owner`` was detached
        because others still want it. ``NotAllowed`` for anyone else."""
        self._existing_dir(run_id)
        with db.writing(self.engine) as conn:
            meta = self._meta_or_none(run_id)
            if meta is not None:
                meta["requesters"] = rows.requesters_of(conn, [run_id]).get(run_id,
                                                                     meta.get("requesters"))
            new_meta = owners.release(meta, run_id, owner, is_teacher, action)
            if new_meta is None:
                return True
            rows.keep_requesters(conn, run_id, new_meta)
            return False

    # --- owner keys (ownerkeys.py) --------------------------------------------------------------

    def register_owner(self, name: str, *, max_per_hour: int = 0) -> str:
        """A new owner key for ``name``, returned this once (only its digest is kept).
        ``NameTaken`` when the name has a key already, is reserved or owns runs already;
        ``ownerkeys.TooManyNewNames`` past ``max_per_hour`` new names."""
        return ownerkeys.register(self.engine, name, self.clock(), max_per_hour=max_per_hour)

    def owns_runs(self, name: str) -> bool:
        """Whether ``name`` (normal form) requested any run of the store."""
        with db.reading(self.engine) as conn:
            return ownerkeys.owns_runs(conn, name)

    def unregister_owner(self, key: str) -> str | None:
        """Give back the name ``key`` proves unless it owns runs (``ownerkeys.unregister``)."""
        return ownerkeys.unregister(self.engine, key)

    def owner_of_key(self, key: str) -> str | None:
        """The registered owner of ``key``, or None (``BadKey`` for text that is no key)."""
        return ownerkeys.owner_of_key(self.engine, key)

    def is_registered(self, name: str) -> bool:
        return ownerkeys.is_registered(self.engine, name)

    # --- deletion -----------------------------------------------------------------------------

    def delete_run(self, run_id: str, *, owner: str | None = None, is_teacher: bool = False,
                   force: bool = False) -> str:
        """Delete a run for ``owner`` (or a teacher): returns 'deleted', or ``owners.DETACHED``
        when others also requested the run (they keep it; only ``owner`` is removed).
        ``NotAllowed`` for a caller who is not a requester. Refuses (``ValueError``) a run whose
        state is 'running' unless ``force`` (e.g. for a run whose worker died). The folder is
        first renamed to a hidden name, so it disappears from listings at once."""
        path = self._existing_dir(run_id)
        if not force:
            self.check_requester(run_id, owner, is_teacher=is_teacher, action="delete")
            with contextlib.suppress(FileNotFoundError):
                if self.read_status(run_id).get("state") == RunState.RUNNING:
                    raise ValueError(f"run {run_id!r} is running; cancel it before deleting it")
        if not self.release_request(run_id, owner, is_teacher=is_teacher, action="delete"):
            return owners.DETACHED
        with db.writing(self.engine) as conn:  # the row first: the run is gone for every reader
            conn.execute(db.runs.delete().where(db.runs.c.run_id == run_id))
            conn.execute(db.requesters.delete().where(db.requesters.c.run_id == run_id))
        trash = self.root / f".deleting-{run_id}-{secrets.token_hex(4)}"
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return "deleted"

def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return float("inf")
