"""Changing a run on request: ``cancel``, ``delete_run``, ``resume``, and ``requeue`` (shared
with the workers); landscape slices of a finished run (``request_slices``). Each is a change of
the run's row in the database (issue 24): no flag file, no queue message.

* **Cancel.** A queued (or interrupted) run becomes 'cancelled' at once; no worker claims it
  any more. A running run gets its ``cancel_requested`` column set: the worker's stop check
  reads it within one step and the trainer marks the run 'cancelled'; ``cancel`` then returns
  ``CANCELLING``. Leaving, detaching and cancelling are one transaction, ordered with the
  admissions (``database.serialize``), so no identical request joins a run between its last
  requester leaving it and its cancel.
* **Who.** Cancel, delete and resume act for a requester of the run only, proven by their owner
  key (``owner_key=...``), or for the teacher (``teacher_token=...``); identity.py resolves
  them. Anyone else gets ``NotAllowed``. On a run shared by identical requests cancel and delete
  only detach the caller (``DETACHED``); the run is cancelled or deleted when no requester is
  left (runs/owners.py). The teacher acts on the whole run, even one whose meta.json is damaged.
* **Resume / requeue.** The run goes back to the queue (state 'queued', ``queued_at`` now); the
  worker that claims it continues from its last checkpoint, or from the start if it has none.
  ``resume`` is a new admission: the run's config is checked against the server's limits and
  (for a student) the room's locks as they are *now*, so a 5-epoch run cannot come back after
  the teacher set ``max_epochs=1``.
* **Slices.** The app never imports torch, so it asks a worker for a finished run's loss slices
  (Compare's button): ``request_slices`` adds a row to the ``requests`` table
  (``admission.request_slices``; one pending request per run); a worker takes the oldest between
  runs (``scheduler.take_request``) and appends the slices to the run's metrics. ``samon
  landscape RUN``, which computes them in its own process, asks the same
  (``check_slices_allowed``).
* **Faults.** A run that does not exist is ``FileNotFoundError`` before anything is touched (no
  folder is created for a store that is not there); a store that cannot be written (read-only,
  full, permissions) is one ``StoreUnavailable`` line, never a raw ``OSError``.
"""

from __future__ import annotations

import enum
import json
import time
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Connection

from samon_core.runs import database as db
from samon_core.runs import owners, rows
from samon_core.runs.files import CHECKPOINT_FILE
from samon_core.runs.owners import DETACHED, TEACHER_OWNER
from samon_core.runs.states import RESUMABLE_STATES, RunState
from samon_core.runs.store import RunStore, store_or_default
from samon_core.service import admission, scheduler
from samon_core.service.admission import check_config_limits, store_errors
from samon_core.service.room import Identity, check_room, identify, read_room, require_someone
from samon_core.service.settings import Settings, load_settings

# What ``cancel`` returns for a running run: the request is out; the trainer marks the run
# 'cancelled' within one step.
CANCELLING = "cancelling"
# States ``cancel`` acts on (the others are returned unchanged).
_CANCELLABLE = frozenset({RunState.QUEUED, RunState.RUNNING, RunState.INTERRUPTED})


def existing_run(store: RunStore, run_id: str) -> str:
    """``run_id`` if its folder exists: ``ValueError`` for a bad id, ``FileNotFoundError`` for
    no such run (checked first, so that nothing is created in a store that is not there)."""
    if not store.run_dir(run_id).is_dir():
        raise FileNotFoundError(f"no run {run_id!r} in {store.root}")
    return run_id


class Requeue(enum.Enum):
    """Why a run goes back into the queue (decides the message and the counters)."""

    MANUAL = "resumed by hand"
    AUTO = "resumed automatically after its worker died"
    SHUTDOWN = "put back in the queue because its worker stopped"


def _meta(store: RunStore, run_id: str, conn: Connection) -> dict[str, Any] | None:
    """meta.json with the requesters this transaction sees; None when it is damaged."""
    try:
        meta = store.read_meta(run_id)
    except (FileNotFoundError, ValueError):
        return None
    meta["requesters"] = [{"owner": who, "group": group} for who, group in conn.execute(
        sa.select(db.requesters.c.owner, db.requesters.c.run_group)
        .where(db.requesters.c.run_id == run_id))]
    return meta


def _leave_or_cancel(conn: Connection, store: RunStore, run_id: str, ident: Identity,
                     now: float) -> str:
    """In one transaction: check the caller, detach them from a shared run (``DETACHED``), or
    cancel it: queued / interrupted -> 'cancelled', running -> ``CANCELLING`` (the column its
    trainer's stop check reads). Any other state is returned unchanged."""
    db.serialize(conn)  # ordered with admissions: nobody joins the run meanwhile
    row = conn.execute(sa.select(db.runs.c.state, db.runs.c.owner)
                       .where(db.runs.c.run_id == run_id).with_for_update()).first()
    if row is None:
        raise FileNotFoundError(f"run {run_id!r} is not in the database (a submit that did not "
                                "finish); delete it")
    meta = _meta(store, run_id, conn)
    if row.state not in _CANCELLABLE:
        owners.check(meta, run_id, ident.owner, ident.is_teacher, "cancel")
        return str(row.state)
    left = owners.release(meta, run_id, ident.owner, ident.is_teacher, "cancel")
    if left is not None:  # others still want it: only the caller leaves; the next one owns it
        rows.keep_requesters(conn, run_id, left)
        return DETACHED
    after = scheduler.cancel_row(conn, run_id, row.state, now)
    return CANCELLING if after == RunState.RUNNING else after


def _cancel_as(run_id: str, ident: Identity, store: RunStore) -> str:
    """``cancel`` for a caller already identified."""
    require_someone(ident, run_id, "cancel")
    with db.writing(store.engine) as conn:
        return _leave_or_cancel(conn, store, run_id, ident, store.clock())


def _identify(owner_key: str | None, teacher_token: str | SecretStr | None, store: RunStore,
              s: Settings, action: str) -> Identity:
    with store_errors(action, store):
        return identify(owner_key, teacher_token, store=store, settings=s)


def cancel(run_id: str, *, owner_key: str | None = None,
           teacher_token: str | SecretStr | None = None, store: RunStore | None = None,
           settings: Settings | None = None) -> str:
    """Cancel a run for one of its requesters (``owner_key``) or the teacher
    (``teacher_token``); returns what happened:

    * ``DETACHED`` ('detached'): others also requested the run; only the key's owner was removed
      from its requesters and the run goes on for them;
    * queued or interrupted: 'cancelled' (a queued run never starts);
    * running: ``CANCELLING`` ('cancelling'); the trainer stops within one step and marks it
      'cancelled';
    * already finished / failed / diverged / cancelled: that state, unchanged.

    ``NotAllowed`` (a ``ValueError``) for an unknown key, a wrong token, no credential at all, or
    a key whose owner did not request the run.
    """
    store = store_or_default(store)
    s = settings or load_settings()
    existing_run(store, run_id)  # a bad run id is refused before anything else
    ident = _identify(owner_key, teacher_token, store, s, "cancel the run")
    with store_errors("cancel the run", store):
        return _cancel_as(run_id, ident, store)


def delete_run(run_id: str, *, owner_key: str | None = None,
               teacher_token: str | SecretStr | None = None, store: RunStore | None = None,
               settings: Settings | None = None) -> str:
    """Delete a run for one of its requesters (``owner_key``) or the teacher
    (``teacher_token``), cancelling it first if it waits or trains: 'deleted', ``DETACHED`` (a
    shared run: only the key's owner left it), or ``CANCELLING`` (it was training: it stops
    within a step; delete it again then). ``NotAllowed`` for anyone else."""
    store = store_or_default(store)
    s = settings or load_settings()
    existing_run(store, run_id)
    ident = _identify(owner_key, teacher_token, store, s, "delete the run")
    with store_errors("delete the run", store):
        try:
            answer = _cancel_as(run_id, ident, store)
        except FileNotFoundError:  # a folder without a row (a submit that did not finish):
            answer = None  # nothing to cancel; its meta.json says who may delete it
        if answer in (DETACHED, CANCELLING):
            return answer
        return store.delete_run(run_id, owner=ident.owner, is_teacher=ident.is_teacher)


def requeue(store: RunStore, run_id: str, why: Requeue, *, settings: Settings | None = None,
            detail: str = "") -> None:
    """Put a run back in the queue (state 'queued', ``queued_at`` now, its cancel request
    cleared); the worker that claims it continues from its checkpoint. The caller owns the run
    (``resume`` checked its requester) or holds it (a worker giving it back)."""
    del settings  # the queue is the database: nothing else to reach
    status = store.read_status(run_id)
    has_ckpt = (store.run_dir(run_id) / CHECKPOINT_FILE).is_file()
    where = "from its last checkpoint" if has_ckpt else "from the start (no checkpoint yet)"
    message = f"{why.value}{': ' + detail if detail else ''}; it continues {where}"
    fields: dict[str, Any] = {"queued_at": store.clock(), "message": message, "worker": None,
                              "cancel_requested": False}
    if why is Requeue.AUTO:
        fields["auto_resumes"] = _count(status.get("auto_resumes")) + 1
    if why is Requeue.MANUAL:
        fields["manual_resumes"] = _count(status.get("manual_resumes")) + 1
    store.write_status(run_id, RunState.QUEUED, **fields)


def _count(value: Any) -> int:
    """A counter of the status (0 for a damaged one: text, a bool, a negative number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return 0
    return max(0, int(value))


def _check_admission(store: RunStore, run_id: str, ident: Identity, s: Settings) -> None:
    """The limits and (for a student) the room's locks of today for the run's stored config,
    as at submit: ``LimitExceeded`` / ``RoomLocked`` saying that the run was not resumed."""
    outcome = "the run was not resumed"
    config = store.read_config(run_id)  # ValueError for a damaged config: not resumable
    check_config_limits(config, s, outcome=outcome)
    if not ident.is_teacher:
        try:
            preset = store.read_meta(run_id).get("preset")
        except ValueError:  # a damaged meta.json: no preset is proven
            preset = None
        check_room(read_room(store), [config], preset if isinstance(preset, str) else None,
                   outcome=outcome)


def resume(run_id: str, *, owner_key: str | None = None,
           teacher_token: str | SecretStr | None = None, store: RunStore | None = None,
           settings: Settings | None = None) -> None:
    """Re-queue an interrupted (or cancelled) run for one of its requesters (``owner_key``) or
    the teacher (``teacher_token``); it continues from its last checkpoint (or from the start if
    it has none). Not subject to the queue limits (the run was admitted before), but to the
    server's limits and the room's locks as they are now (``LimitExceeded``: a 5-epoch run is
    not resumed under ``max_epochs=1``; the teacher is exempt from the locks only). Raises
    ``NotAllowed`` for anyone else, ``ValueError`` for runs in other states,
    ``StoreUnavailable`` if the store cannot be written."""
    store = store_or_default(store)
    s = settings or load_settings()
    existing_run(store, run_id)
    ident = _identify(owner_key, teacher_token, store, s, "resume the run")
    require_someone(ident, run_id, "resume")
    with store_errors("resume the run", store):
        store.check_requester(run_id, ident.owner, is_teacher=ident.is_teacher, action="resume")
        _check_admission(store, run_id, ident, s)
        state = store.read_status(run_id).get("state")
        if state not in RESUMABLE_STATES:
            allowed = " or ".join(sorted(st.value for st in RESUMABLE_STATES))
            raise ValueError(f"run {run_id!r} is {state}; only {allowed} runs can be resumed")
        requeue(store, run_id, Requeue.MANUAL, settings=s)


# --- landscape slices of a finished run -----------------------------------------------------


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
        with store_errors("ask for the slices", store):  # read-only, full: one line
            admission.request_slices(store.engine, run_id, payload)
    except ValueError:
        if pending_slices(store, run_id) is not None:  # asked at the same moment by another
            return "pending"
        raise
    # the slice request's state ("queued" / "pending"), not a RunState: the run stays finished
    return "queued"


def pending_slices(store: RunStore, run_id: str) -> dict[str, Any] | None:
    """The request of ``run_id`` waiting for a worker (its payload), or None."""
    with db.reading(store.engine) as conn:
        payload = conn.scalar(sa.select(db.requests.c.payload).where(
            db.requests.c.run_id == run_id, db.requests.c.done.is_(False))
            .order_by(db.requests.c.id))
    return None if payload is None else json.loads(payload)
