"""Landscape slices for finished runs, computed by a worker (the Compare page's button).

The app never imports torch, so it cannot compute a finished run's loss slices itself. It asks a
worker: ``request_slices`` adds a row to the database's ``requests`` table
(``admission.request_slices``: the points and radius wanted, who asked; one pending request per
run). A worker takes the oldest request between runs (``scheduler.take_request``), computes the
slices from the run's checkpoint (``samon_core.train.slice_run``) and appends them to its
metrics. Only the run's requesters (proven by their owner key) or the teacher (the teacher
token) may ask; ``samon landscape RUN``, which computes the slices in its own process, asks the
same (``check_slices_allowed``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr

from samon_core.runs.database import reading, requests
from samon_core.runs.owners import TEACHER_OWNER
from samon_core.runs.states import RunState
from samon_core.runs.store import CHECKPOINT_FILE, RunStore, store_or_default
from samon_core.service import admission
from samon_core.service.identity import Identity, identify, require_someone
from samon_core.service.settings import Settings, load_settings


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
    """Ask a worker for the slices of a finished run (``plane``: a 2D slice too), for one of
    its requesters (``owner_key``) or the teacher (``teacher_token``); returns "queued" or
    "pending" (already asked). ``NotAllowed`` for anyone else."""
    store = store_or_default(store)
    settings = settings or load_settings()
    ident = check_slices_allowed(run_id, owner_key=owner_key, teacher_token=teacher_token,
                                 store=store, settings=settings)
    if not 2 <= int(points) <= 101 or not 0 < float(radius) <= 10:
        raise ValueError("slices need 2..101 points and a radius in (0, 10]")
    if store.read_status(run_id).get("state") != RunState.FINISHED:
        raise ValueError(f"run {run_id} has not finished: slices are taken at the final weights")
    if not (store.run_dir(run_id) / CHECKPOINT_FILE).is_file():
        raise ValueError(f"run {run_id} has no checkpoint with its final weights")
    if pending_slices(store, run_id) is not None:
        return "pending"
    payload = {"points": int(points), "radius": float(radius), "plane": bool(plane),
               "owner": ident.owner if ident.owner is not None else TEACHER_OWNER,
               "time": time.time()}
    try:
        admission.request_slices(store.engine, run_id, payload)
    except ValueError:
        if pending_slices(store, run_id) is not None:  # asked at the same moment by another
            return "pending"
        raise
    return "queued"


def pending_slices(store: RunStore, run_id: str) -> dict[str, Any] | None:
    """The request of ``run_id`` waiting for a worker (its payload), or None."""
    with reading(store.engine) as conn:
        payload = conn.scalar(sa.select(requests.c.payload).where(
            requests.c.run_id == run_id, requests.c.done.is_(False)).order_by(requests.c.id))
    return None if payload is None else json.loads(payload)
