"""Landscape slices for finished runs, computed by a worker (the Compare page's button).

The app never imports torch, so it cannot compute a finished run's loss slices itself. It asks a
worker: ``request_slices`` writes ``<run>/landscape_requested`` (the points and radius wanted,
who asked) and puts the run id in the queue. A worker that gets a message for a *finished* run
with that file (``worker.py``) computes the slices from the run's checkpoint
(``samon_core.train.slice_run``), appends them to its metrics, and removes the file. Only the
run's requesters (proven by their owner key) or the teacher (the teacher token) may ask; one
request at a time per run. ``samon landscape RUN``, which computes the slices in its own process,
asks the same (``check_slices_allowed``).
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from pydantic import SecretStr

from samon_core.runs.io import atomic_write_text, read_json_dict, store_error
from samon_core.runs.owners import TEACHER_OWNER
from samon_core.runs.states import RunState
from samon_core.runs.store import CHECKPOINT_FILE, RunStore, store_or_default
from samon_core.service.backend import get_queue
from samon_core.service.identity import Identity, identify, require_someone
from samon_core.service.settings import Settings, load_settings

SLICES_FILE = "landscape_requested"


def check_slices_allowed(run_id: str, *, owner_key: str | None,
                         teacher_token: str | SecretStr | None, store: RunStore,
                         settings: Settings) -> Identity:
    """The caller, if they may add slices to the run: one of its requesters (``owner_key``) or
    the teacher; ``NotAllowed`` otherwise (``ValueError`` for a bad run id)."""
    store.run_dir(run_id)
    ident = identify(owner_key, teacher_token, store=store, settings=settings)
    require_someone(ident, run_id, "adding slices")
    store.check_requester(run_id, ident.owner, is_teacher=ident.is_teacher,
                          action="add slices to")
    return ident


def request_slices(run_id: str, *, owner_key: str | None = None,
                   teacher_token: str | SecretStr | None = None, points: int = 21,
                   radius: float = 1.0, plane: bool = False, store: RunStore | None = None,
                   settings: Settings | None = None) -> str:
    """Queue the slices of a finished run (``plane``: a 2D slice too) for one of its requesters
    (``owner_key``) or the teacher (``teacher_token``); returns "queued" or "pending" (already
    asked). ``NotAllowed`` for anyone else; ``StoreUnavailable`` (one line) when the request
    cannot be written."""
    store = store_or_default(store)
    settings = settings or load_settings()
    ident = check_slices_allowed(run_id, owner_key=owner_key, teacher_token=teacher_token,
                                 store=store, settings=settings)
    if not 2 <= int(points) <= 101 or not 0 < float(radius) <= 10:
        raise ValueError("slices need 2..101 points and a radius in (0, 10]")
    if store.read_status(run_id).get("state") != RunState.FINISHED:
        raise ValueError(f"run {run_id} has not finished: slices are taken at the final weights")
    run_dir = store.run_dir(run_id)
    if not (run_dir / CHECKPOINT_FILE).is_file():
        raise ValueError(f"run {run_id} has no checkpoint with its final weights")
    if (run_dir / SLICES_FILE).exists():
        return "pending"
    request = {"points": int(points), "radius": float(radius), "plane": bool(plane),
               "owner": ident.owner if ident.owner is not None else TEACHER_OWNER,
               "time": time.time()}
    try:
        atomic_write_text(run_dir / SLICES_FILE, json.dumps(request) + "\n")
    except FileNotFoundError:  # deleted meanwhile: "no run"
        raise
    except OSError as exc:  # read-only, full disk: one line for the page
        raise store_error(exc, "ask for the slices") from exc
    queue = get_queue(store, settings)
    queue.enqueue(queue.new_task(run_id))
    return "queued"


def pending_slices(store: RunStore, run_id: str) -> dict[str, Any] | None:
    """The request waiting for a worker, or None (none, or a file that is not one: read with
    ``read_json_dict``, so a FIFO put there never blocks the worker that reads it). The crash
    recovery sends a request again whose message was lost (recovery.py)."""
    try:
        return read_json_dict(store.run_dir(run_id) / SLICES_FILE)
    except (OSError, ValueError):
        return None


def clear_request(store: RunStore, run_id: str) -> None:
    with contextlib.suppress(OSError):
        (store.run_dir(run_id) / SLICES_FILE).unlink()
