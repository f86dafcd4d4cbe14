"""The run store: one folder per run under a root folder, plain files only. No torch.

Layout of ``<root>/<run_id>/`` (see ARCHITECTURE.md): ``config.json`` and ``meta.json`` (written
once, at creation), ``status.json`` (atomically replaced, with a heartbeat), ``metrics.jsonl``
(append-only, one JSON record per line; ``samon_core.runs.metrics``), ``summary.json``
(atomically, at the end) and the trainer's ``checkpoint.pt``.

Concurrency: the trainer writes while Streamlit pages read. JSON files are only ever replaced
atomically (temporary file + ``os.replace``), so a reader sees the old or the new file; a
read-modify-write of status.json or meta.json holds the run's ``.status.lock``. The metrics file
is only appended to, a whole line per ``write()``; readers ignore a last line without its newline
(a record being written) and skip malformed lines, so they never fail on a live run.

Damage (see ARCHITECTURE.md, "What the store promises"): a missing, empty or malformed
``status.json`` reads as 'interrupted' with ``damaged: true`` (resumable); a damaged ``meta.json``
or ``config.json`` never hides a run: ``list_runs`` shows it with a ``problem``. Who may cancel or
delete a run: owners.py; the owners' registered keys (``.owner_keys.json``): keyfile.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samon_core.runs import keyfile, owners
from samon_core.runs.config import RunConfig
from samon_core.runs.freetext import check_meta_text, check_text
from samon_core.runs.io import (
    disk_full,
    dumps,
    file_lock,
    overwrite_in_place,
    read_json_dict,
    write_json,
)
from samon_core.runs.listing import (  # noqa: F401 - file names re-exported
    CONFIG_FILE,
    LIST_COLUMNS,
    META_FILE,
    STATUS_FILE,
    SUMMARY_FILE,
    checked_file,
    listing_row,
    records_or_damaged,
    status_or_damaged,
)
from samon_core.runs.messages import clip
from samon_core.runs.metrics import (
    METRICS_FILE,
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

CHECKPOINT_FILE = "checkpoint.pt"
_STATUS_LOCK_FILE = ".status.lock"

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
    ``ended`` (tests pass a fake one instead of sleeping).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.root = Path(root if root is not None else default_root()).expanduser().resolve()
        self.clock = clock
        # Threads of this process that share the store take turns before the file lock.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

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
    ) -> str:
        """Create a run folder (config.json, meta.json, status.json with state 'queued') and
        return its id. The folder is assembled under a hidden name and renamed into place, so
        readers never see a half-created run. ``meta`` adds to / overrides owner, group, label
        (default ``config.method_label()``), preset, created; ``config_hash`` is always the
        config's. ``run_id`` (optional) must be new."""
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
                write_json(
                    tmp / STATUS_FILE,
                    {"state": RunState.QUEUED.value, "created": now, "updated": now,
                     "heartbeat": now},
                )
                os.rename(tmp, final)  # fails if ``final`` appeared meanwhile (non-empty)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                if final.exists() and run_id is None:
                    continue
                raise
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return rid
        raise RuntimeError("could not find a free run id")  # pragma: no cover

    # --- status -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _status_lock(self, run_dir: Path) -> Iterator[None]:
        """Serialises read-modify-writes of status.json and meta.json across processes."""
        with self._lock, file_lock(run_dir / _STATUS_LOCK_FILE):
            yield

    def write_status(self, run_id: str, state: RunState | str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json and set ``state``, ``updated`` and ``heartbeat`` (unix
        time). Also sets ``started`` the first time the state is 'running' and ``ended`` when a
        terminal state is written. Returns the new status."""
        state = _as_state(state)
        path = self._existing_dir(run_id)
        with self._status_lock(path):
            status = self._status_or_damaged(path)
            if status.pop("damaged", None):
                status.pop("message", None)
            status.update(fields)
            now = self.clock()
            status["state"] = state.value
            status["updated"] = now
            status["heartbeat"] = now
            if state is RunState.RUNNING:
                status.setdefault("started", now)
            if state not in TERMINAL_STATES:
                status.pop("ended", None)
            elif "ended" not in fields:
                status["ended"] = now
            try:
                write_json(path / STATUS_FILE, status, fsync=False)
            except OSError as exc:
                # A run's last word (failed, cancelled, ...) must land even on a full disk: over
                # the old file, in place and compact (no new block needed), without a traceback.
                if state not in TERMINAL_STATES or not disk_full(exc):
                    raise
                last_word = {k: v for k, v in status.items() if k != "traceback"}
                overwrite_in_place(path / STATUS_FILE, dumps(last_word) + "\n")
        return status

    def heartbeat(self, run_id: str, **fields: Any) -> dict[str, Any]:
        """Refresh ``heartbeat`` (and merge ``fields``, e.g. progress) without changing the
        state."""
        path = self._existing_dir(run_id)
        with self._status_lock(path):
            status = self._status_or_damaged(path)
            status.update(fields)
            status["heartbeat"] = self.clock()
            write_json(path / STATUS_FILE, status, fsync=False)
        return status

    @staticmethod
    def _status_or_damaged(run_dir: Path) -> dict[str, Any]:
        return status_or_damaged(run_dir / STATUS_FILE)

    def read_status(self, run_id: str) -> dict[str, Any]:
        """status.json as a dict (``FileNotFoundError`` if the run does not exist). A missing,
        empty or malformed file reads as 'interrupted' with ``damaged: True``: it can be resumed."""
        return self._status_or_damaged(self._existing_dir(run_id))

    # --- config, meta, summary ----------------------------------------------------------------

    def read_config(self, run_id: str) -> RunConfig:
        return RunConfig.from_dict(read_json_dict(self._existing_dir(run_id) / CONFIG_FILE))

    def read_config_dict(self, run_id: str) -> dict[str, Any]:
        """config.json as stored (no validation): what ``show`` prints when ``read_config``
        refuses it (e.g. a key of another version)."""
        return read_json_dict(self._existing_dir(run_id) / CONFIG_FILE)

    def read_meta(self, run_id: str) -> dict[str, Any]:
        """meta.json without its fields of the wrong type (``listing.checked_file``)."""
        return checked_file(self._existing_dir(run_id) / META_FILE)

    def update_meta(self, run_id: str, **fields: Any) -> dict[str, Any]:
        """Change meta fields (e.g. the label); ``config_hash`` and ``run_id`` are fixed."""
        for key in ("config_hash", "run_id"):
            if key in fields:
                raise ValueError(f"meta field {key!r} cannot be changed")
        path = self._existing_dir(run_id)
        with self._status_lock(path):
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
        """One row per run folder (columns ``LIST_COLUMNS``), newest first, optionally filtered
        by owner, group and state(s). Reads only the small JSON files, never the metrics.

        ``last_epoch`` / ``final_test_acc`` / ``best_test_acc`` come from summary.json
        (``epochs_done``, ``final_test_acc``, ``best_test_acc``) or, while the run has no summary,
        from status.json (``epoch``, ``test_acc``, ``best_test_acc``). A damaged run is listed
        too, with what could be read and its ``problem`` (never hidden, so it can be deleted)."""
        import pandas as pd

        states = {status} if isinstance(status, str) else set(status) if status else None
        now = self.clock()
        rows = []
        for run_id in self.run_ids():
            row = listing_row(self.root / run_id, now)
            if row is None:
                continue
            if owner is not None and row["owner"] != owner:
                continue
            if group is not None and row["group"] != group:
                continue
            if states is not None and row["state"] not in states:
                continue
            rows.append(row)
        rows.sort(
            key=lambda r: (
                r["created"] if isinstance(r["created"], (int, float)) else 0.0,
                r["run_id"],
            ),
            reverse=True,
        )
        return pd.DataFrame(rows, columns=list(LIST_COLUMNS))

    # --- requesters -----------------------------------------------------------------------------

    def _meta_or_none(self, path: Path) -> dict[str, Any] | None:
        try:
            return read_json_dict(path / META_FILE)
        except (FileNotFoundError, ValueError):
            return None

    def add_requester(self, run_id: str, owner: str, group: str = "") -> None:
        """Record ``owner`` as one more requester of a shared or reused run."""
        if group:
            check_text("group", group)
        owner = owners.owner_name_or_raw(owner) or ""
        path = self._existing_dir(run_id)
        with self._status_lock(path):
            meta = read_json_dict(path / META_FILE)
            entries = list(meta.get("requesters") or [])
            entries.append({"owner": owner, "group": group, "time": self.clock()})
            meta["requesters"] = entries
            write_json(path / META_FILE, meta)

    def check_requester(self, run_id: str, owner: str | None, *, is_teacher: bool = False,
                        action: str = "change") -> None:
        """``NotAllowed`` unless ``owner`` requested the run (or ``is_teacher``); no change."""
        path = self._existing_dir(run_id)
        owners.check(self._meta_or_none(path), run_id, owner, is_teacher, action)

    def release_request(self, run_id: str, owner: str | None, *, is_teacher: bool = False,
                        action: str = "cancel") -> bool:
        """``owner`` gives up the run (see owners.py): True when the caller may now act on the
        whole run (a teacher, or its last requester); False when only ``owner`` was detached
        because others still want it. ``NotAllowed`` for anyone else."""
        path = self._existing_dir(run_id)
        with self._status_lock(path):
            new_meta = owners.release(self._meta_or_none(path), run_id, owner, is_teacher,
                                      action)
            if new_meta is None:
                return True
            write_json(path / META_FILE, new_meta)
            return False

    # --- owner keys (keyfile.py) ---------------------------------------------------------------

    def register_owner(self, name: str, *, max_per_hour: int = 0) -> str:
        """A new owner key for ``name``, returned this once (only its digest is kept).
        ``NameTaken`` when the name has a key already, is reserved or owns runs already;
        ``keyfile.TooManyNewNames`` past ``max_per_hour`` new names (keyfile.py)."""
        return keyfile.register(self.root, name, self.clock, has_runs=self.owns_runs,
                                max_per_hour=max_per_hour)

    def owns_runs(self, name: str) -> bool:
        """Whether ``name`` (normal form) requested any run of the store (damaged meta skipped)."""
        return any(name in owners.requesters(meta) for rid in self.run_ids()
                   if (meta := self._meta_or_none(self.root / rid)) is not None)

    def unregister_owner(self, key: str) -> str | None:
        """Give back the name ``key`` proves unless it owns runs (``keyfile.unregister``)."""
        return keyfile.unregister(self.root, key, has_runs=self.owns_runs)

    def owner_of_key(self, key: str) -> str | None:
        """The registered owner of ``key``, or None (``BadKey`` for text that is no key)."""
        return keyfile.owner_of_key(self.root, key)

    def is_registered(self, name: str) -> bool:
        return keyfile.is_registered(self.root, name)

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
            if self._status_or_damaged(path).get("state") == RunState.RUNNING:
                raise ValueError(f"run {run_id!r} is running; cancel it before deleting it")
        if not self.release_request(run_id, owner, is_teacher=is_teacher, action="delete"):
            return owners.DETACHED
        trash = self.root / f".deleting-{run_id}-{secrets.token_hex(4)}"
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return "deleted"
