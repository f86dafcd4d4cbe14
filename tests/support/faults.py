"""Fault helpers the hostile tests share: a call that must not block, and a tiny tmpfs (a full
or read-only disk on demand)."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def within(seconds: float, fn: Callable[[], Any], what: str = "") -> Any:
    """``fn()`` in a thread; fails (instead of hanging the suite) if it blocks."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), what or f"still blocked after {seconds} s"
    if "error" in result:
        raise result["error"]
    return result.get("value")


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (skips the test where mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root outside a locked-down container)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
