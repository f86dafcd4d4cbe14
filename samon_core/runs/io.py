"""File helpers of the run store and the job service: atomic writes, JSON, and one lock helper.

Every file a reader may open while it is being written (``status.json``, ``summary.json``,
``config.json``, checkpoints) is written to a temporary file in the same folder and moved into
place with ``os.replace``, so a reader sees the old or the new content, never a mix. A temporary
file's name says who writes it (``.status.json.<host>~<pid>~<random>.tmp``, ``temp_prefix``): one
left behind by a killed writer is removed by the next worker on that host at once when its
process is gone (service/recovery.py), and never while it lives.

Reading is defensive: a file that is not a regular file (a FIFO, a device, a folder), larger than
``MAX_JSON_BYTES`` or unreadable raises ``DamagedFile`` (a ``ValueError``) at once instead of
hanging or filling the memory; a scan over many runs skips it and reports it.

Writing on a full or read-only disk: the temporary file is removed, and the error becomes a
``StoreUnavailable`` with one clear line (``describe_os_error``). A run's final status is then
written over the existing file in place, which
needs no new disk block for a file of a few hundred bytes (``overwrite_in_place``), so a run still
ends 'failed' with its reason on a full disk.

Cross-process locks (a run's status, a run's claim by a worker, submissions, the app's worker
pool) all go through ``file_lock``: an exclusive ``flock`` (via ``filelock``) that the kernel
drops when its process dies, even by SIGKILL; that is what lets a free claim lock mean "no live
worker trains this run". A waiting ``file_lock`` gives up after ``LOCK_TIMEOUT_S`` with
``LockTimeout``: every lock is held for milliseconds, so a holder that keeps one for seconds is
stuck (stopped, hung on a network file system), and it must not block every submission forever.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import platform
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from samon_core.runs.messages import clip

# A blocking ``file_lock`` polls (filelock retries a non-blocking flock); our locks are held for
# milliseconds, so a waiter should look again soon rather than after filelock's default 50 ms.
_LOCK_POLL_S = 0.002
# How long a blocking ``file_lock`` waits by default (read at each call: tests may lower it).
LOCK_TIMEOUT_S = 10.0
# The store's JSON files hold a few kilobytes; anything this large is not one of them.
MAX_JSON_BYTES = 8 * 1024 * 1024
# This host in temporary file names: no '.' or '~', which separate the name's parts.
THIS_HOST_TAG = re.sub(r"[^A-Za-z0-9_-]", "_", platform.node() or "localhost")[:40]
# errno values that mean "the store cannot be written here", not "a bug".
_STORE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                 errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                 errno.EDQUOT: "the disk quota is exceeded", errno.EIO: "input/output error"}


class DamagedFile(ValueError):
    """A store file that cannot be read as what it should be (not a regular file, too large,
    unreadable, malformed)."""


class StoreUnavailable(RuntimeError):
    """The run store cannot be written (disk full, read-only, permissions): one clear line."""


class LockTimeout(StoreUnavailable):
    """A lock of the store stayed taken by another process for longer than the caller waits."""


def describe_os_error(exc: OSError, action: str = "write to the run store") -> str:
    """One line for an ``OSError``: ``cannot <action>: <why> (<file>)``."""
    why = _STORE_ERRNOS.get(exc.errno or 0) or exc.strerror or type(exc).__name__
    name = exc.filename
    where = f" ({clip(str(name))})" if isinstance(name, (str, bytes, os.PathLike)) else ""
    return f"cannot {action}: {why}{where}"


def store_error(exc: OSError, action: str = "write to the run store") -> StoreUnavailable:
    """``StoreUnavailable`` for ``exc`` (raise it ``from exc``)."""
    return StoreUnavailable(describe_os_error(exc, action))


def temp_prefix(target: str | os.PathLike[str]) -> str:
    """The start of a temporary file name for ``target``, naming its writer:
    ``.<name>.<host>~<pid>~`` (a random part and ``.tmp`` follow)."""
    return f".{Path(target).name}.{THIS_HOST_TAG}~{os.getpid()}~"


def temp_owner(name: str) -> tuple[str, int] | None:
    """``(host tag, pid)`` of the writer of a temporary file named by ``temp_prefix``; None
    for any other name (those of older versions included)."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None
    parts = name[:-4].rpartition(".")[2].split("~")
    if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdecimal()):
        return None
    return parts[0], int(parts[1])


def atomic_write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = True) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, then
    ``os.replace``. Readers see the old or the new content, never a mix."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=temp_prefix(target), suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:  # ENOSPC, EROFS, ...: no temporary file stays behind
        with contextlib.suppress(OSError):
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


def overwrite_in_place(path: str | os.PathLike[str], text: str) -> None:
    """Overwrite an existing small file from its start, then cut it to the new length (not
    atomic: only for a last word on a full disk, where a new temporary file cannot be made)."""
    data = text.encode("utf-8")
    fd = open_regular(path, os.O_WRONLY)  # a FIFO put there must not block a run's last word
    try:
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            offset += os.pwrite(fd, view[offset:], offset)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike[str], obj: Any, *, fsync: bool = True) -> None:
    """Atomically write ``obj`` as JSON to ``path`` (``fsync``: flush it to disk first)."""
    atomic_write_text(path, dumps(obj, indent=2) + "\n", fsync=fsync)


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def open_regular(path: str | os.PathLike[str], flags: int = os.O_RDONLY, mode: int = 0o644
                 ) -> int:
    """A descriptor of the regular file ``path`` opened with ``flags``. Opened non-blocking
    and checked with ``fstat`` before anything is read or written, so a FIFO (which blocks an
    ``open`` for writing until a reader comes, and a read until a writer does) or a device never
    hangs the caller; the descriptor is blocking again when returned. ``FileNotFoundError``
    when missing (without ``O_CREAT``), ``DamagedFile`` for a folder, a FIFO, a device or a file
    that cannot be opened."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK, mode)
    except FileNotFoundError:
        raise
    except OSError as exc:  # a folder opened for writing, a FIFO without reader, permissions
        if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
            raise  # the disk, not the file: callers say so (describe_os_error)
        if exc.errno in (errno.EISDIR, errno.ENXIO):  # a folder; a FIFO without a reader
            raise DamagedFile(f"{clip(os.fspath(path))} is not a regular file") from None
        raise DamagedFile(f"cannot open {clip(os.fspath(path))}: "
                          f"{exc.strerror or type(exc).__name__}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a FIFO, a device (/dev/zero)
            raise DamagedFile(f"{clip(os.fspath(path))} is not a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes_safely(path: str | os.PathLike[str], max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` (``open_regular``: a FIFO
    or a device never hangs the reader). Raises ``FileNotFoundError`` when missing,
    ``DamagedFile`` for anything else that is wrong."""
    fd = open_regular(path)
    try:
        st = os.fstat(fd)
        if st.st_size > max_bytes:
            raise DamagedFile(f"{clip(os.fspath(path))} is too large ({st.st_size:,} bytes; "
                              f"at most {max_bytes:,})")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise DamagedFile(f"cannot read {clip(os.fspath(path))}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise DamagedFile(f"{clip(os.fspath(path))} is larger than {max_bytes:,} bytes")
    return data


def read_text_safely(path: str | os.PathLike[str], max_bytes: int, what: str) -> str:
    """The UTF-8 text of the small file ``path`` (``read_bytes_safely``), for a file the user
    names (a config, a token file). Every problem is one ``ValueError`` that starts with
    ``what`` and never quotes the file's content (a token file's would be a secret)."""
    name = clip(os.fspath(path))
    try:
        data = read_bytes_safely(path, max_bytes)
    except FileNotFoundError:
        raise ValueError(f"{what} {name} does not exist") from None
    except DamagedFile as exc:
        raise ValueError(f"{what}: {exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what} {name} is not UTF-8 text") from None


def read_json(path: str | os.PathLike[str], max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Read a JSON file; raises FileNotFoundError when missing, ``DamagedFile`` (a ValueError)
    when malformed, empty, not a regular file, too large or unreadable."""
    data = read_bytes_safely(path, max_bytes)
    try:
        return json.loads(data)
    except ValueError as exc:
        what = "empty file" if not data.strip() else f"malformed JSON: {exc}"
        raise DamagedFile(f"{clip(os.fspath(path))}: {what}") from None
    except RecursionError:
        raise DamagedFile(f"{clip(os.fspath(path))}: JSON nested too deeply") from None


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
        raise DamagedFile(f"{clip(os.fspath(path))} does not hold a JSON object")
    return obj


def read_json_dict_or_none(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None if it is missing, unreadable or not an object (for
    scans over many runs, where a run being created or deleted is simply skipped)."""
    try:
        return read_json_dict(path)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], *, blocking: bool = True,
              timeout: float | None = None) -> Iterator[bool]:
    """Hold an exclusive lock on the file ``path`` (created if missing) while the block runs.

    Yields True when the lock is held. With ``blocking=False`` it makes one attempt and yields
    False if another holder has it (the block then runs without the lock). A blocking lock
    waits at most ``timeout`` seconds (default ``LOCK_TIMEOUT_S``; ``math.inf``: for ever),
    then raises ``LockTimeout`` naming the lock. The folder must
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
    wait = LOCK_TIMEOUT_S if timeout is None else timeout
    try:
        lock.acquire(blocking=blocking, poll_interval=_LOCK_POLL_S,
                     timeout=-1 if wait == float("inf") else wait)
    except Timeout:
        if blocking:
            raise LockTimeout(
                f"the lock {clip(str(target))} has been taken by another process for over "
                f"{wait:g} s (a stuck process?); try again, and if it stays taken, stop the "
                f"process that holds it (`fuser {clip(str(target))}` names it)") from None
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
