"""The metrics of a run: ``metrics.jsonl``, one JSON record per line, append-only.

Writing: ``MetricsWriter`` appends whole lines (the trainer, while pages read). Reading: pure
functions on records (``parse_lines`` for the live page's incremental reader), the resume de-dup
(``resolve_resumes``) and the DataFrames the charts draw from. No torch; pandas only when a frame
is built.

Resumed runs: the metrics file is never rewritten. A trainer that resumes from the checkpoint
taken after epoch E appends ``{"kind": "resume", "epoch": E, ...}``; readers then drop every
earlier record of an epoch > E (that part of the run was lost and is trained again), so the later
records win (``resolve_resumes``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samon_core.runs.files import METRICS_FILE
from samon_core.runs.io import DamagedFile, dumps, open_regular

if TYPE_CHECKING:  # pandas is imported lazily: the trainer needs the writer, not DataFrames
    import pandas as pd

log = logging.getLogger("samon.store")

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


# ---------------------------------------------------------------------------------------------
# metrics: writing
# ---------------------------------------------------------------------------------------------


class MetricsWriter:
    """Appends one JSON record per line to ``<run_dir>/metrics.jsonl``.

    Each ``write`` issues the whole line in one ``os.write`` on an ``O_APPEND`` descriptor (no user
    space buffer), so the record is visible to readers at once. ``fsync_every_s``: at most this
    many seconds between ``os.fsync`` calls (None: never; ``close`` always syncs). The file is
    never truncated or rewritten. A metrics file that is not a regular file (a FIFO, which would
    block the trainer for ever while its worker's heartbeat keeps the run alive; a folder)
    raises ``DamagedFile`` at once: the run fails with that reason.
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, fsync_every_s: float | None = 10.0):
        self.path = Path(run_dir) / METRICS_FILE
        self.fsync_every_s = fsync_every_s
        self._fd: int | None = open_regular(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        self._last_sync = time.monotonic()
        self._lock = threading.Lock()
        # A writer that crashed mid-line leaves a torn last line: end it, so that it becomes one
        # malformed (skipped) line instead of corrupting the first record written now.
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
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
        except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records, end + 1


def read_records_since(
    path: str | os.PathLike[str], offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Records of the complete lines of the metrics file ``path`` after byte ``offset``, and the
    offset to pass next time (see ``RunStore.read_records_since``). A missing file gives
    ``([], 0)``; an offset beyond the end (the file was replaced) reads from the start."""
    # open_regular: a FIFO, a device or a folder put in place of the file must not hang or
    # break a page; a damaged file reads as no records (logged), never as an error.
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return [], 0
    except (DamagedFile, OSError) as exc:
        log.warning("no records read: %s", exc)
        return [], 0
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fd).st_size
        if offset < 0 or offset > size:
            offset = 0
        fh.seek(offset)
        try:
            data = fh.read(size - offset)
        except OSError as exc:  # an I/O error of the disk
            log.warning("no records read from %s: %s", path, exc)
            return [], 0
    records, consumed = parse_lines(data)
    return records, offset + consumed


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
    record whose epoch is > E (earlier markers included). Then, as a safety net, of several
    ``epoch`` records of one epoch (``sharpness`` records of one epoch/steps/rho,
    ``norm_stats`` of one epoch/param) only the last is kept. The markers themselves are kept.
    Order is otherwise preserved.

    One pass from the end, linear in the number of records (a run resumed 20,000 times must
    not make every page quadratic): a record survives the markers after it when its epoch is
    at most the smallest of their epochs (a NaN marker epoch removes every numbered record)."""
    smallest = math.inf  # the smallest epoch of the markers after the current record
    any_marker = nan_marker = False
    seen: set[tuple[Any, ...]] = set()
    kept: list[dict[str, Any]] = []
    for rec in reversed(list(records)):
        epoch = _epoch_of(rec)
        dropped = epoch is not None and any_marker and (nan_marker or not epoch <= smallest)
        if rec.get("kind") == "resume" and epoch is not None:
            any_marker = True
            if epoch != epoch:
                nan_marker = True
            elif epoch < smallest:
                smallest = epoch
        if dropped:
            continue
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
