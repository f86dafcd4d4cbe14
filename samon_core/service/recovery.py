"""Crash recovery: runs of dead workers go back to the queue; leftovers of killed writers go.

* **Dead workers** (``recover``): a worker is dead when its heartbeat in the database's
  ``workers`` table is older than ``heartbeat_timeout_s``, or, on this host, at once when its
  process is gone (``pid_alive``). Its runs go back to ``queued`` in one transaction
  (``scheduler.reclaim_dead``) and the next worker resumes each from its last checkpoint; the
  trainer appends a resume marker, so no epoch appears twice to readers. A run whose cancel was
  asked ends ``cancelled``; with ``auto_resume`` off, or after ``max_auto_resumes`` resumes, it
  ends ``interrupted`` (resumed by hand). Every worker calls ``recover`` at start and every
  ``recover_every_s``; the app calls it when it lists runs (throttled).
* **Leftovers** (``sweep_leftovers``, once when a worker starts): a process killed in the middle
  of a write leaves what it had not finished: a temporary file (``.<name>.<host>~<pid>~<random>
  .tmp`` of an atomic write or a checkpoint, runs/io.py), a run folder being assembled
  (``.creating-*``) or one being deleted (``.deleting-*``). A checkpoint's temporary file can be
  as large as the model, and a classroom's store fills up. Never a file someone still writes: one
  whose name names a process of this host goes as soon as that process is gone (a live pid keeps
  it, even if the pid was reused); any other one only once it has not changed for ``STALE_S``.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import stat
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from samon_core.runs.database import reading, retrying, workers
from samon_core.runs.io import THIS_HOST_TAG, temp_owner
from samon_core.runs.store import RunStore, store_or_default
from samon_core.service import scheduler
from samon_core.service.settings import Settings, load_settings

log = logging.getLogger("samon.recovery")

STALE_S = 3600.0  # a leftover unchanged for an hour: no write takes that long
_FOLDER_PREFIXES = (".creating-", ".deleting-")
_LAST_RECOVER: dict[str, float] = {}  # run store root -> time of its last sweep in this process
_RECOVER_LOCK = threading.Lock()


# --- this host's processes --------------------------------------------------------------------


def this_host() -> str:
    """The host name that worker rows carry."""
    return platform.node() or "localhost"


def pid_alive(pid: object) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie (a killed child that its
    parent has not reaped yet still answers ``kill(pid, 0)``)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read()
        return text[text.rfind(b")") + 2 : text.rfind(b")") + 3] != b"Z"
    except OSError:
        return True  # no /proc (macOS): trust kill()


# --- dead workers -----------------------------------------------------------------------------


def dead_here(store: RunStore, host: str | None = None) -> list[str]:
    """Workers of this host whose process is gone (known dead without waiting for their
    heartbeat to age)."""
    host = host or this_host()
    with reading(store.engine) as conn:
        rows = conn.execute(sa.select(workers.c.worker_id, workers.c.pid)
                            .where(workers.c.host == host)).all()
    return [row.worker_id for row in rows if not pid_alive(row.pid)]


def _due(store: RunStore, now: float, s: Settings, force: bool) -> bool:
    """Whether a sweep of ``store`` is due in this process (and if so, record it)."""
    with _RECOVER_LOCK:
        last = _LAST_RECOVER.get(str(store.root), 0.0)
        if not force and now - last < s.recover_every_s:
            return False
        _LAST_RECOVER[str(store.root)] = now
        return True


def recover(store: RunStore | None = None, *, force: bool = False,
            settings: Settings | None = None, now: float | None = None) -> dict[str, list[str]]:
    """Put the runs of dead workers back in the queue (module doc). Returns ``{"reclaimed":
    [run ids]}``. Throttled to once per ``recover_every_s`` per run store and process unless
    ``force``; ``now`` (default: the current time) is the time heartbeats are aged against.
    Waits out a database outage (``database.retrying``, ``DatabaseUnavailable`` after
    ``give_up_s``)."""
    store = store_or_default(store)
    s = settings or load_settings()
    now = time.time() if now is None else now
    report: dict[str, list[str]] = {"reclaimed": []}
    if not _due(store, now, s, force):
        return report
    limit = s.max_auto_resumes if s.auto_resume else 0

    def sweep() -> list[str]:
        return scheduler.reclaim_dead(store.engine, stale_s=s.heartbeat_timeout_s,
                                      dead_workers=dead_here(store), max_resumes=limit, now=now)

    report["reclaimed"] = retrying(sweep, url=store.database_url)
    if report["reclaimed"]:
        log.info("recover: runs of dead workers taken back: %s", ", ".join(report["reclaimed"]))
    return report


# --- leftovers of killed writers --------------------------------------------------------------


def _is_garbage(entry: os.DirEntry, now: float, stale_s: float) -> bool:
    """Whether ``entry`` is a temporary file or folder nobody writes any more."""
    is_temp = entry.name.startswith(".") and entry.name.endswith(".tmp")
    if not (is_temp or entry.name.startswith(_FOLDER_PREFIXES)):
        return False
    st = entry.stat(follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):  # not something a writer of the store makes
        return False
    owner = temp_owner(entry.name) if is_temp else None
    if owner is not None and owner[0] == THIS_HOST_TAG:
        return not pid_alive(owner[1])
    return now - st.st_mtime > stale_s


def _remove(entry: os.DirEntry) -> None:
    if entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path, ignore_errors=True)
    else:
        os.unlink(entry.path)


def sweep_leftovers(store: RunStore, *, now: float | None = None,
                    stale_s: float = STALE_S) -> list[str]:
    """Remove the leftovers in the store's folder and in each folder directly inside it (the
    runs, ``.workers``); returns their paths relative to the store. Errors on one entry
    (permissions, removed meanwhile) skip it."""
    now = time.time() if now is None else now
    root = store.root
    removed: list[str] = []
    folders = [root]
    try:
        with os.scandir(root) as it:
            folders += [Path(e.path) for e in it
                        if e.is_dir(follow_symlinks=False) and not e.name.startswith(
                            _FOLDER_PREFIXES)]
    except OSError:  # no store yet
        return removed
    for folder in folders:
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            try:
                if _is_garbage(entry, now, stale_s):
                    _remove(entry)
                    removed.append(os.path.relpath(entry.path, root))
            except OSError:
                continue
    if removed:
        log.info("swept %d leftover(s) of killed writers: %s", len(removed),
                 ", ".join(removed[:20]) + (" ..." if len(removed) > 20 else ""))
    return removed
