"""File helpers of the run store and the job service: atomic writes, JSON, and one lock helper.

Every file a reader may open while it is being written (``status.json``, ``summary.json``,
``config.json``, checkpoints) is written to a temporary file in the same folder and moved into
place with ``os.replace``, so a reader sees the old or the new content, never a mix.

Cross-process locks (a run's status, a run's claim by a worker, submissions, the app's worker
pool) all go through ``file_lock``: an exclusive ``flock`` (via ``filelock``) that the kernel
drops when its process dies, even by SIGKILL; that is what lets a free claim lock mean "no live
worker trains this run".
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

# A blocking ``file_lock`` polls (filelock retries a non-blocking flock); our locks are held for
# milliseconds, so a waiter should look again soon rather than after filelock's default 50 ms.
_LOCK_POLL_S = 0.002


def atomic_write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = True) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, then
    ``os.replace``. Readers see the old or the new content, never a mix."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; raises FileNotFoundError when missing, ValueError when malformed."""
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ValueError(f"malformed JSON in {path}: {exc}") from exc


def read_json_dict(
    path: str | os.PathLike[str], default: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A JSON object from ``path``; a copy of ``default`` if the file is missing and a default is
    given (else FileNotFoundError); ValueError if it is malformed or not an object."""
    try:
        obj = read_json(path)
    except FileNotFoundError:
        if default is None:
            raise
        return dict(default)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return obj


def read_json_dict_or_none(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None if it is missing, unreadable or not an object (for
    scans over many runs, where a run being created or deleted is simply skipped)."""
    try:
        return read_json_dict(path)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on the file ``path`` (created if missing) while the block runs.

    Yields True when the lock is held. With ``blocking=False`` it makes one attempt and yields
    False if another holder has it (the block then runs without the lock). The folder must
    exist: ``FileNotFoundError`` otherwise, because filelock would create it, and a lock must not
    bring back a run folder that was just deleted. Not re-entrant: taking a lock this thread
    already holds raises ``RuntimeError`` (it would wait for itself).
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"no folder {target.parent} for the lock {target.name}")
    # thread_local=False: a lock may be released by another thread than the one that took it
    # (the app's pool lock is taken on a page's thread and released at exit).
    lock = FileLock(target, thread_local=False)
    try:
        lock.acquire(blocking=blocking, poll_interval=_LOCK_POLL_S)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
