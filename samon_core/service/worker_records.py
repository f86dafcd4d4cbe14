"""The workers' heartbeat files: ``<runs_dir>/.workers/<worker id>.json``, one per worker.

Each worker rewrites its file every ``heartbeat_every_s`` (id, pid, host, device, state, current
run, runs done). From them the app learns which workers are alive (``workers_status``), and the
crash recovery deletes the files of dead workers.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from samon_core.runs.io import read_json_dict_or_none
from samon_core.runs.store import RunStore, store_or_default
from samon_core.service.hosts import pid_alive, this_host
from samon_core.service.settings import Settings, load_settings

WORKERS_DIR = ".workers"  # inside the run store: one heartbeat file per worker, pool logs
# Keys of a record as ``workers_status`` returns them.
STATUS_KEYS = ("id", "pid", "host", "device", "state", "run_id", "heartbeat_age_s", "started",
               "runs_done", "queue")
# Records of workers on other hosts are kept this long after their last heartbeat: they also
# tell an admin when a machine dropped out.
_KEEP_REMOTE_S = 86400.0


def workers_dir(store: RunStore) -> Path:
    return store.root / WORKERS_DIR


def read_worker_records(store: RunStore | None = None, *,
                        now: float | None = None) -> list[dict[str, Any]]:
    """Every worker heartbeat file (live and dead), with ``heartbeat_age_s`` (as of ``now``,
    default: the current time) and ``_path`` added."""
    store = store_or_default(store)
    now = time.time() if now is None else now
    try:
        paths = sorted(workers_dir(store).glob("*.json"))
    except OSError:
        return []
    out = []
    for path in paths:
        rec = read_json_dict_or_none(path)
        if rec is None:
            continue
        hb = rec.get("heartbeat")
        rec["heartbeat_age_s"] = now - hb if isinstance(hb, (int, float)) else None
        rec["_path"] = str(path)
        out.append(rec)
    return out


def worker_alive(rec: Mapping[str, Any], s: Settings, host: str | None = None) -> bool:
    """A worker is alive when its heartbeat is fresh and, on this host, its pid exists."""
    age = rec.get("heartbeat_age_s")
    if age is None or age > s.heartbeat_timeout_s:
        return False
    if rec.get("host") == (host or this_host()):
        return pid_alive(rec.get("pid"))  # type: ignore[arg-type]
    return True


def workers_status(*, store: RunStore | None = None, settings: Settings | None = None,
                   now: float | None = None) -> list[dict[str, Any]]:
    """The live workers: ``id``, ``pid``, ``host``, ``device``, ``state`` ('idle' | 'training' |
    'stopping'), ``run_id`` (current run or None), ``heartbeat_age_s``, ``started``,
    ``runs_done``, ``queue``."""
    s = settings or load_settings()
    host = this_host()
    return [{k: rec.get(k) for k in STATUS_KEYS} for rec in read_worker_records(store, now=now)
            if worker_alive(rec, s, host)]


def prune_worker_records(store: RunStore, now: float, host: str) -> None:
    """Delete heartbeat files of dead workers: at once on this host (pid gone), after a day
    for other hosts."""
    for rec in read_worker_records(store, now=now):
        age = rec.get("heartbeat_age_s")
        same = rec.get("host") == host
        dead = (same and not pid_alive(rec.get("pid"))) or age is None or age > _KEEP_REMOTE_S
        if dead:
            with contextlib.suppress(OSError):
                os.unlink(rec["_path"])
