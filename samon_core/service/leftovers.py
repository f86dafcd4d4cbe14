"""Leftovers of killed writers in the run store, swept when a worker starts.

A process killed in the middle of a write leaves what it had not finished: a temporary file
(``.checkpoint.pt.<host>~<pid>~<random>.tmp`` of a checkpoint, the ``.<name>.*.tmp`` of any
atomic write, runs/io.py), a run folder being assembled (``.creating-*``) or one being deleted
(``.deleting-*``, store.py). Nothing reads them, but a checkpoint's temporary file can be as
large as the model, and a classroom's store fills up.

Never a file someone still writes: a temporary file whose name names a process of this host
goes as soon as that process is gone (a live pid keeps it, even if the pid was reused); any
other one (another host's, an older version's, a folder) only once it has not changed for
``STALE_S``, far longer than any write takes.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import time
from pathlib import Path

from samon_core.runs.io import THIS_HOST_TAG, temp_owner
from samon_core.runs.store import RunStore
from samon_core.service.hosts import pid_alive

log = logging.getLogger("samon.worker")

STALE_S = 3600.0  # an hour without a change: no write takes that long
_FOLDER_PREFIXES = (".creating-", ".deleting-")


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
    runs, ``.queue``, ``.workers``); returns their paths relative to the store. Errors on one
    entry (permissions, removed meanwhile) skip it."""
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
