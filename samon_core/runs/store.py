"""The run store: one folder per run under a root folder, plain files only. No torch.

Layout of ``<root>/<run_id>/`` (see ARCHITECTURE.md): ``config.json`` and ``meta.json`` (written
once, at creation), ``status.json`` (atomically replaced, with a heartbeat), ``metrics.jsonl``
(append-only, one JSON record per line), ``summary.json`` (atomically, at the end) and the
trainer's ``checkpoint.pt``.

Concurrency: the trainer writes while Streamlit pages read. JSON files are only ever replaced
atomically (temporary file + ``os.replace``), so a reader sees the old or the new file. The
metrics file is only appended to, a whole line per ``write()``; readers ignore a last line without
its newline (a record being written) and skip malformed lines, so they never fail on a live run.

Resumed runs: the metrics file is never rewritten. A trainer that resumes from the checkpoint
taken after epoch E appends ``{"kind": "resume", "epoch": E, ...}``; readers then drop every
earlier record of an epoch > E (that part of the run was lost and is trained again), so the later
records win (``resolve_resumes``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samon_core.runs.config import RunConfig
from samon_core.runs.io import atomic_write_text

if TYPE_CHECKING:  # pandas is imported lazily: the trainer needs the writer, not DataFrames
    import pandas as pd

try:  # POSIX advisory locks for status read-modify-write across processes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

RUNS_DIR_ENV = "SAMON_RUNS_DIR"

CONFIG_FILE = "config.json"
META_FILE = "meta.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
_STATUS_LOCK_FILE = ".status.lock"

STATES: tuple[str, ...] = (
    "queued",
    "running",
    "finished",
    "failed",
    "diverged",
    "cancelled",
    "interrupted",
)
# States in which no process works on the run any more (an interrupted run may be resumed by
# queueing it again).
TERMINAL_STATES: frozenset[str] = frozenset(
    {"finished", "failed", "diverged", "cancelled", "interrupted"}
)

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")

# Columns of the frames built from metric records (further keys found in records are appended).
STEP_COLUMNS = ("epoch", "step", "time", "loss", "acc", "lr", "step_time", "images_per_s")
EPOCH_COLUMNS = (
    "epoch",
    "step",
    "time",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "epoch_time",
    "eta_s",
)
SHARPNESS_COLUMNS = ("epoch", "step", "time", "steps", "rho", "value", "m", "n")

LIST_COLUMNS = (
    "run_id",
    "state",
    "label",
    "method",
    "method_label",
    "scope",
    "model",
    "dataset",
    "preset",
    "owner",
    "group",
    "seed",
    "created",
    "epochs",
    "last_epoch",
    "final_test_acc",
    "best_test_acc",
    "heartbeat_age_s",
    "updated",
    "config_hash",
)


# ---------------------------------------------------------------------------------------------
# ids and JSON helpers
# ---------------------------------------------------------------------------------------------


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe folder name (``^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$``, no
    '..'); raise ``ValueError`` otherwise."""
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id) or ".." in run_id:
        raise ValueError(f"invalid run id {run_id!r}")
    return run_id


def new_run_id() -> str:
    """``YYYYmmdd-HHMMSS-<6 hex>`` (local time)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def default_root() -> Path:
    """``$SAMON_RUNS_DIR`` or ``./runs``."""
    return Path(os.environ.get(RUNS_DIR_ENV) or "runs")


def _json_default(obj: Any) -> Any:
    """Serialise numpy / torch scalars and arrays, tuples, sets and paths without importing them."""
    if hasattr(obj, "item") and getattr(obj, "ndim", 0) == 0:
        with contextlib.suppress(Exception):
            return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """JSON text as the store writes it (NaN/Infinity allowed: a diverged loss is data)."""
    separators = (",", ":") if indent is None else None
    return json.dumps(obj, default=_json_default, indent=indent, separators=separators)


def write_json(path: str | os.PathLike[str], obj: Any, *, fsync: bool = True) -> None:
    """Atomically write ``obj`` as JSON to ``path`` (``fsync``: flush it to disk first)."""
    atomic_write_text(path, dumps(obj, indent=2) + "\n", fsync=fsync)


def _read_json(path: Path) -> Any:
    """Read a JSON file; raises FileNotFoundError when missing, ValueError when malformed."""
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ValueError(f"malformed JSON in {path}: {exc}") from exc


def _read_json_dict(path: Path, default: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        obj = _read_json(path)
    except FileNotFoundError:
        if default is None:
            raise
        return dict(default)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return obj


# ---------------------------------------------------------------------------------------------
# metrics: writing
# ---------------------------------------------------------------------------------------------


class MetricsWriter:
    """Appends one JSON record per line to ``<run_dir>/metrics.jsonl``.

    Each ``write`` issues the whole line in one ``os.write`` on an ``O_APPEND`` descriptor (no user
    space buffer), so the record is visible to readers at once. ``fsync_every_s``: at most this
    many seconds between ``os.fsync`` calls (None: never; ``close`` always syncs). The file is
    never truncated or rewritten.
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, fsync_every_s: float | None = 10.0):
        self.path = Path(run_dir) / METRICS_FILE
        self.fsync_every_s = fsync_every_s
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._last_sync = time.monotonic()
        self._lock = threading.Lock()
        # A writer that crashed mid-line leaves a torn last line: end it, so that it becomes one
        # malformed (skipped) line instead of corrupting the first record written now.
        if os.fstat(self._fd).st_size:
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    self._write_bytes(b"\n")

    def _write_bytes(self, data: bytes) -> None:
        if self._fd is None:
            raise ValueError("MetricsWriter is closed")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (a mapping with at least ``kind``) as one line."""
        if not isinstance(record, Mapping) or "kind" not in record:
            raise ValueError("a metrics record must be a mapping with a 'kind'")
        line = (dumps(dict(record)) + "\n").encode("utf-8")
        with self._lock:
            self._write_bytes(line)
            if (
                self.fsync_every_s is not None
                and time.monotonic() - self._last_sync >= self.fsync_every_s
            ):
                self.sync()

    def sync(self) -> None:
        """Force the appended records to disk."""
        if self._fd is not None:
            os.fsync(self._fd)
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            if self._fd is not None:
                os.close(self._fd)


# ---------------------------------------------------------------------------------------------
# metrics: reading (pure functions on records, usable by the live page's incremental reader)
# ---------------------------------------------------------------------------------------------


def parse_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """Parse the complete lines of ``data``: returns the records (JSON objects; malformed lines
    skipped) and the number of bytes consumed (up to and including the last newline)."""
    end = data.rfind(b"\n")
    if end < 0:
        return [], 0
    records: list[dict[str, Any]] = []
    for line in data[:end].split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records, end + 1


def _epoch_of(rec: Mapping[str, Any]) -> float | None:
    epoch = rec.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, (int, float)):
        return None
    return epoch


def _dedupe_key(rec: Mapping[str, Any]) -> tuple[Any, ...] | None:
    kind = rec.get("kind")
    if kind == "epoch":
        return ("epoch", rec.get("epoch"))
    if kind == "sharpness":
        return ("sharpness", rec.get("epoch"), rec.get("steps"), rec.get("rho"))
    if kind == "norm_stats":
        return ("norm_stats", rec.get("epoch"), rec.get("param"))
    return None


def resolve_resumes(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply resume markers: a ``{"kind": "resume", "epoch": E}`` record removes every earlier
    record whose epoch is > E. Then, as a safety net, of several ``epoch`` records of one epoch
    (``sharpness`` records of one epoch/steps/rho, ``norm_stats`` of one epoch/param) only the
    last is kept. The markers themselves are kept. Order is otherwise preserved."""
    out: list[dict[str, Any]] = []
    for rec in records:
        if rec.get("kind") == "resume":
            resume_epoch = _epoch_of(rec)
            if resume_epoch is not None:
                out = [r for r in out if (e := _epoch_of(r)) is None or e <= resume_epoch]
        out.append(rec)
    seen: set[tuple[Any, ...]] = set()
    kept: list[dict[str, Any]] = []
    for rec in reversed(out):
        key = _dedupe_key(rec)
        if key is not None:
            try:
                if key in seen:
                    continue
                seen.add(key)
            except TypeError:  # unhashable field values: keep the record
                pass
        kept.append(rec)
    kept.reverse()
    return kept


def records_frame(
    records: Iterable[Mapping[str, Any]], kind: str, columns: Iterable[str] = ()
) -> pd.DataFrame:
    """DataFrame of the records of ``kind`` (without the ``kind`` column), in record order, with
    at least ``columns`` (missing ones filled with NaN)."""
    import pandas as pd

    columns = list(columns)
    rows = [{k: v for k, v in r.items() if k != "kind"} for r in records if r.get("kind") == kind]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    df = pd.DataFrame.from_records(rows)
    for c in columns:
        if c not in df.columns:
            df[c] = float("nan")
    extras = [c for c in df.columns if c not in columns]
    return df[columns + extras].reset_index(drop=True)


def steps_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    return records_frame(records, "step", STEP_COLUMNS)


def epochs_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    return records_frame(records, "epoch", EPOCH_COLUMNS)


def sharpness_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    return records_frame(records, "sharpness", SHARPNESS_COLUMNS)


def norm_stats_records(
    records: Iterable[Mapping[str, Any]], param: str = "gamma"
) -> list[dict[str, Any]]:
    """The ``norm_stats`` records of ``param`` ('gamma' | 'beta'), sorted by epoch (stable)."""
    if param not in ("gamma", "beta"):
        raise ValueError(f"param must be 'gamma' or 'beta'; got {param!r}")
    picked = [dict(r) for r in records if r.get("kind") == "norm_stats" and r.get("param") == param]
    picked.sort(key=lambda r: (_epoch_of(r) is None, _epoch_of(r) or 0))
    return picked


def _first(*sources_and_keys: tuple[Mapping[str, Any] | None, str]) -> Any:
    for source, key in sources_and_keys:
        if source and source.get(key) is not None:
            return source[key]
    return None


# ---------------------------------------------------------------------------------------------
# the store
# ---------------------------------------------------------------------------------------------


class RunStore:
    """All runs under ``root`` (default: ``$SAMON_RUNS_DIR`` or ``./runs``)."""

    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = Path(root if root is not None else default_root()).expanduser().resolve()
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
            if RUN_ID_RE.match(name) and ".." not in name:
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
        now = time.time()
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
                    {"state": "queued", "created": now, "updated": now, "heartbeat": now},
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
        with self._lock:
            if fcntl is None:  # pragma: no cover
                yield
                return
            fd = os.open(run_dir / _STATUS_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock

    def write_status(self, run_id: str, state: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json and set ``state``, ``updated`` and ``heartbeat`` (unix
        time). Also sets ``started`` the first time the state is 'running' and ``ended`` when a
        terminal state is written. Returns the new status."""
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}; got {state!r}")
        path = self._existing_dir(run_id)
        with self._status_lock(path):
            status = self._status_or_unknown(path)
            if status.get("state") == "unknown":
                status.pop("error", None)
            status.update(fields)
            now = time.time()
            status["state"] = state
            status["updated"] = now
            status["heartbeat"] = now
            if state == "running":
                status.setdefault("started", now)
            if state not in TERMINAL_STATES:
                status.pop("ended", None)
            elif "ended" not in fields:
                status["ended"] = now
            write_json(path / STATUS_FILE, status, fsync=False)
        return status

    def heartbeat(self, run_id: str, **fields: Any) -> dict[str, Any]:
        """Refresh ``heartbeat`` (and merge ``fields``, e.g. progress) without changing the
        state."""
        path = self._existing_dir(run_id)
        with self._status_lock(path):
            status = self._status_or_unknown(path)
            status.update(fields)
            status["heartbeat"] = time.time()
            write_json(path / STATUS_FILE, status, fsync=False)
        return status

    @staticmethod
    def _status_or_unknown(run_dir: Path) -> dict[str, Any]:
        try:
            return _read_json_dict(run_dir / STATUS_FILE)
        except (FileNotFoundError, ValueError) as exc:
            # status.json is replaced without fsync (it changes every few seconds): after a
            # power loss it may be missing or empty
            return {"state": "unknown", "error": f"status.json unreadable: {exc}"}

    def read_status(self, run_id: str) -> dict[str, Any]:
        """status.json as a dict (``FileNotFoundError`` if the run does not exist; state
        'unknown' if the file is missing or unreadable)."""
        return self._status_or_unknown(self._existing_dir(run_id))

    # --- config, meta, summary ----------------------------------------------------------------

    def read_config(self, run_id: str) -> RunConfig:
        return RunConfig.from_dict(_read_json_dict(self._existing_dir(run_id) / CONFIG_FILE))

    def read_meta(self, run_id: str) -> dict[str, Any]:
        return _read_json_dict(self._existing_dir(run_id) / META_FILE)

    def update_meta(self, run_id: str, **fields: Any) -> dict[str, Any]:
        """Change meta fields (e.g. the label); ``config_hash`` and ``run_id`` are fixed."""
        for key in ("config_hash", "run_id"):
            if key in fields:
                raise ValueError(f"meta field {key!r} cannot be changed")
        path = self._existing_dir(run_id)
        with self._status_lock(path):
            meta = _read_json_dict(path / META_FILE)
            meta.update(fields)
            write_json(path / META_FILE, meta)
        return meta

    def write_summary(self, run_id: str, summary: Mapping[str, Any]) -> None:
        write_json(self._existing_dir(run_id) / SUMMARY_FILE, dict(summary))

    def read_summary(self, run_id: str) -> dict[str, Any] | None:
        """summary.json, or None while the run has none."""
        try:
            return _read_json_dict(self._existing_dir(run_id) / SUMMARY_FILE)
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
        ``([], 0)``."""
        path = self.run_dir(run_id) / METRICS_FILE
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return [], 0
        with fh:
            size = os.fstat(fh.fileno()).st_size
            if offset < 0 or offset > size:
                offset = 0
            fh.seek(offset)
            data = fh.read(size - offset)
        records, consumed = parse_lines(data)
        return records, offset + consumed

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

    def _row(self, run_id: str, now: float) -> dict[str, Any] | None:
        path = self.root / run_id
        try:
            config = _read_json_dict(path / CONFIG_FILE)
            meta = _read_json_dict(path / META_FILE)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None  # being deleted, or not a run folder
        status = self._status_or_unknown(path)
        try:
            summary: dict[str, Any] | None = _read_json_dict(path / SUMMARY_FILE)
        except (FileNotFoundError, ValueError):
            summary = None
        try:
            method_label = RunConfig.from_dict(config).method_label()
        except ValueError:  # a config from another version of RunConfig
            method_label = meta.get("label")
        heartbeat = status.get("heartbeat")
        return {
            "run_id": run_id,
            "state": status.get("state", "unknown"),
            "label": meta.get("label") or method_label,
            "method": config.get("method"),
            "method_label": method_label,
            "scope": config.get("scope"),
            "model": config.get("model"),
            "dataset": config.get("dataset"),
            "preset": meta.get("preset"),
            "owner": meta.get("owner"),
            "group": meta.get("group"),
            "seed": config.get("seed"),
            "created": meta.get("created"),
            "epochs": config.get("epochs"),
            "last_epoch": _first((summary, "epochs_done"), (status, "epoch")),
            "final_test_acc": _first((summary, "final_test_acc"), (status, "test_acc")),
            "best_test_acc": _first((summary, "best_test_acc"), (status, "best_test_acc")),
            "heartbeat_age_s": now - heartbeat if isinstance(heartbeat, (int, float)) else None,
            "updated": status.get("updated"),
            "config_hash": meta.get("config_hash"),
        }

    def list_runs(
        self,
        owner: str | None = None,
        group: str | None = None,
        status: str | Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """One row per run (columns ``LIST_COLUMNS``), newest first, optionally filtered by owner,
        group and state(s). Reads only the small JSON files, never the metrics.

        ``last_epoch`` / ``final_test_acc`` / ``best_test_acc`` come from summary.json
        (``epochs_done``, ``final_test_acc``, ``best_test_acc``) or, while the run has no summary,
        from status.json (``epoch``, ``test_acc``, ``best_test_acc``)."""
        import pandas as pd

        states = {status} if isinstance(status, str) else set(status) if status else None
        now = time.time()
        rows = []
        for run_id in self.run_ids():
            row = self._row(run_id, now)
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

    def find_finished(self, config_hash: str | RunConfig) -> str | None:
        """Newest finished run whose config hash (as stored in meta.json at creation) equals
        ``config_hash`` (or that of the given RunConfig); None if there is none."""
        if isinstance(config_hash, RunConfig):
            config_hash = config_hash.config_hash()
        best: tuple[float, str] | None = None
        for run_id in self.run_ids():
            path = self.root / run_id
            try:
                meta = _read_json_dict(path / META_FILE)
                if meta.get("config_hash") != config_hash:
                    continue
                if _read_json_dict(path / STATUS_FILE).get("state") != "finished":
                    continue
            except (FileNotFoundError, NotADirectoryError, ValueError):
                continue
            created = meta.get("created")
            key = (float(created) if isinstance(created, (int, float)) else 0.0, run_id)
            if best is None or key > best:
                best = key
        return best[1] if best else None

    # --- deletion -----------------------------------------------------------------------------

    def delete_run(self, run_id: str, *, force: bool = False) -> None:
        """Delete a run folder. Refuses (``ValueError``) a run whose state is 'running' unless
        ``force`` (e.g. for a run whose worker died). The folder is first renamed to a hidden name,
        so it disappears from listings at once."""
        path = self._existing_dir(run_id)
        if not force:
            try:
                state = _read_json_dict(path / STATUS_FILE).get("state")
            except (FileNotFoundError, ValueError):
                state = None
            if state == "running":
                raise ValueError(f"run {run_id!r} is running; cancel it before deleting it")
        trash = self.root / f".deleting-{run_id}-{secrets.token_hex(4)}"
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
