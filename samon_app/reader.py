"""Reading runs for the charts: one shared, incremental, throttled reader, and runs as shown.

* ``RunReader``: a thread-safe reader of run metrics shared by all browser sessions of one
  server: each poll reads only the bytes appended since the last one, and at most once per
  ``min_interval_s`` however many browsers ask; frames are rebuilt only when records arrived.
* ``RunData``: what the charts need from one run's records (memoised series, lazy frames).
* ``RunInfo`` / ``run_infos``: runs with unique display labels and method colours;
  ``chart_signature``: what a chart of some runs depends on, to cache figures under.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from samon_app.formatting import finite
from samon_core.catalog.datasets import is_synthetic
from samon_core.catalog.methods import method_color, method_key, method_sort_key
from samon_core.runs.config import RunConfig
from samon_core.runs.files import METRICS_FILE
from samon_core.runs.listing import records_or_damaged
from samon_core.runs.metrics import (
    epochs_frame,
    norm_stats_records,
    resolve_resumes,
    sharpness_frame,
    steps_frame,
)
from samon_core.runs.states import UNKNOWN_STATE
from samon_core.runs.store import RunStore

if TYPE_CHECKING:  # pandas is imported lazily, by the frames' builders in the store
    import pandas as pd


@dataclass
class RunData:
    """Everything the charts need from one run's metrics (read-only; shared between sessions).

    ``version`` changes whenever new records arrived (it is the byte offset read so far). The
    DataFrames (``steps``, ``epochs``, ``sharpness``) are built on first use only; charts use
    the cheaper, memoised ``series``."""

    run_id: str
    version: int
    records: list[dict[str, Any]]
    gamma: list[dict[str, Any]]
    beta: list[dict[str, Any]]
    counts: dict[str, int] = field(default_factory=dict)  # records per kind
    # what was wrong with the records read (skipped or cleaned: ``fieldcheck``), for the pages
    problems: tuple[str, ...] = ()
    _series: dict[tuple[str, str, str], tuple[list[float], list[float]]] = field(
        default_factory=dict, repr=False
    )

    def series(self, kind: str, x: str, y: str) -> tuple[list[float], list[float]]:
        """(xs, ys) of the ``kind`` records with finite numeric ``x`` and ``y``, sorted by x
        (stable). Memoised: RunData never changes, so charts of many sessions share the work."""
        key = (kind, x, y)
        hit = self._series.get(key)
        if hit is not None:
            return hit
        pairs = []
        for rec in self.records:
            if rec.get("kind") != kind:
                continue
            a, b = rec.get(x), rec.get(y)
            if finite(a) and finite(b):
                pairs.append((float(a), float(b)))
        pairs.sort(key=lambda p: p[0])
        out = ([p[0] for p in pairs], [p[1] for p in pairs])
        self._series[key] = out
        return out

    @functools.cached_property
    def steps(self) -> pd.DataFrame:
        return steps_frame(self.records)

    @functools.cached_property
    def epochs(self) -> pd.DataFrame:
        return epochs_frame(self.records)

    @functools.cached_property
    def sharpness(self) -> pd.DataFrame:
        return sharpness_frame(self.records)


def build_run_data(run_id: str, records: list[dict[str, Any]], version: int = 0,
                   problems: Iterable[str] = ()) -> RunData:
    """``RunData`` of a run's raw records (resumed runs' repeated epochs resolved)."""
    resolved = resolve_resumes(records)
    counts: dict[str, int] = {}
    for rec in resolved:
        kind = str(rec.get("kind"))
        counts[kind] = counts.get(kind, 0) + 1
    return RunData(
        run_id=run_id,
        version=version,
        records=resolved,
        gamma=norm_stats_records(resolved, "gamma"),
        beta=norm_stats_records(resolved, "beta"),
        counts=counts,
        problems=tuple(problems),
    )


MAX_PROBLEMS = 10  # problems of one run's records kept (a run of bad lines names a few)


@dataclass
class _Entry:
    lock: threading.Lock
    raw: list[dict[str, Any]] = field(default_factory=list)
    problems: dict[str, None] = field(default_factory=dict)  # ordered, each once
    offset: int = 0
    checked: float = 0.0
    data: RunData | None = None


class RunReader:
    """Shared reader of run metrics for all sessions of one app server.

    ``get(run_id)`` returns the run's ``RunData``. The metrics file is read incrementally (only
    the bytes appended since the last read) and at most once per ``min_interval_s`` per run,
    however many sessions ask; frames are rebuilt only when records were added. Holds at most
    ``max_runs`` runs (least recently used dropped). Thread-safe."""

    def __init__(self, store: RunStore, *, min_interval_s: float = 0.4, max_runs: int = 256):
        self.store = store
        self.min_interval_s = min_interval_s
        self.max_runs = max_runs
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.reads = 0  # number of file reads done (for tests and benchmarks)

    def _entry(self, run_id: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(run_id)
            if entry is None:
                entry = self._entries[run_id] = _Entry(lock=threading.Lock())
                while len(self._entries) > self.max_runs:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(run_id)
            return entry

    def get(self, run_id: str, *, max_age_s: float | None = None) -> RunData:
        """The run's data, at most ``max_age_s`` (default ``min_interval_s``) seconds old."""
        max_age = self.min_interval_s if max_age_s is None else max_age_s
        entry = self._entry(run_id)
        with entry.lock:
            now = time.monotonic()
            if entry.data is not None and now - entry.checked < max_age:
                return entry.data
            try:
                records, offset, problems = records_or_damaged(
                    self.store.metrics_path(run_id), entry.offset)
            except (OSError, ValueError) as exc:  # a metrics file no reader can open: said
                records, offset, problems = [], entry.offset, [f"{METRICS_FILE}: {exc}"]
            self.reads += 1
            entry.checked = now
            if offset < entry.offset:  # the file was replaced: start again
                entry.raw, entry.problems = [], {}
            new_problems = [p for p in problems if p not in entry.problems
                            ][: max(0, MAX_PROBLEMS - len(entry.problems))]
            entry.problems.update(dict.fromkeys(new_problems))
            if entry.data is None or records or offset != entry.offset or new_problems:
                entry.raw.extend(records)
                entry.offset = offset
                entry.data = build_run_data(run_id, entry.raw, offset, entry.problems)
            return entry.data

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._entries.pop(run_id, None)


@dataclass
class RunInfo:
    """One run as the pages show it: identity, display label, colour and its state."""

    run_id: str
    label: str  # unique within the charted set
    method_label: str
    key: str  # method family ('base', 'all', 'norm', 'no-norm', 'random')
    color: str
    state: str
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def synthetic(self) -> bool:
        return is_synthetic(str(self.config.get("dataset")))


def run_infos(rows: Iterable[Mapping[str, Any]]) -> list[RunInfo]:
    """``RunInfo`` for rows with keys run_id, state, config, meta, status, summary (as the app
    reads them), sorted by method family then seed, with unique labels: a method's label gets
    ' · seed N' when several seeds of it are shown, and ' · <run id>' when still ambiguous."""
    infos: list[RunInfo] = []
    for row in rows:
        config = dict(row.get("config") or {})
        meta = dict(row.get("meta") or {})
        try:
            label = RunConfig.from_dict(config).method_label()
        except ValueError:
            label = str(meta.get("label") or row["run_id"])
        key = method_key(config)
        infos.append(
            RunInfo(
                run_id=str(row["run_id"]),
                label=label,
                method_label=label,
                key=key,
                color=method_color(key),
                state=str((row.get("status") or {}).get("state") or row.get("state")
                          or UNKNOWN_STATE),
                config=config,
                meta=meta,
                status=dict(row.get("status") or {}),
                summary=row.get("summary"),
            )
        )
    infos.sort(key=lambda r: (*method_sort_key(r.method_label, r.key), str(r.seed), r.run_id))
    _tell_apart(infos, lambda i: f"seed {i.seed}")
    _tell_apart(infos, lambda i: i.run_id)  # same label and seed: the run id decides
    return infos


def _tell_apart(infos: list[RunInfo], suffix: Callable[[RunInfo], str]) -> None:
    """Labels shared by several runs get `` · suffix(run)`` appended."""
    counts = Counter(i.label for i in infos)
    for info in infos:
        if counts[info.label] > 1:
            info.label = f"{info.label} · {suffix(info)}"


def chart_signature(infos: Sequence[RunInfo], data: Mapping[str, RunData],
                    kinds: Sequence[str]) -> tuple:
    """What a chart of these runs depends on: each run's id, label, colour and number of
    records of ``kinds``. Equal signatures give equal charts, so a figure can be cached under
    it and shared by every session that shows the same runs."""
    out = []
    for info in infos:
        d = data.get(info.run_id)
        counts = tuple(d.counts.get(k, 0) for k in kinds) if d is not None else None
        out.append((info.run_id, info.label, info.color, counts))
    return tuple(out)

