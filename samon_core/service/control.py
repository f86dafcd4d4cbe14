"""Changing a run on request: ``cancel``, ``resume``, and ``requeue`` (shared with the workers
and the crash recovery).

* **Cancel.** A queued run is marked 'cancelled' (and its message revoked in huey); a worker
  skips it. For a running run ``cancel`` raises the cancel request (claims.py); the worker's
  ``should_stop`` sees it within one step and the trainer marks the run 'cancelled'. ``cancel``
  then returns ``CANCELLING``.
* **Who.** Cancel, delete and resume act for a requester of the run only, proven by their owner
  key (``owner_key=...``), or for the teacher (``teacher_token=...``); identity.py resolves
  them. Anyone else gets ``NotAllowed``. On a run shared by identical requests cancel and delete
  only detach the caller (``DETACHED``); the run is cancelled or deleted when no requester is
  left (runs/owners.py). The teacher acts on the whole run, even one whose meta.json is damaged.
* **Resume / requeue.** The run goes back to the queue (state 'queued'); the worker that takes it
  continues from its last checkpoint, or from the start if it has none. ``resume`` is a new
  admission: the run's config is checked against the server's limits and (for a student) the
  room's locks as they are *now*, so a 5-epoch run cannot come back after the teacher set
  ``max_epochs=1``.
* **Faults.** A run that does not exist is ``FileNotFoundError`` before anything is touched (no
  folder is created for a store that is not there); a store that cannot be written (read-only,
  full, permissions) is one ``StoreUnavailable`` line, never a raw ``OSError``.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Iterator
from typing import Any

from pydantic import SecretStr

from samon_core.runs.io import store_error
from samon_core.runs.owners import DETACHED
from samon_core.runs.states import ACTIVE_STATES, RESUMABLE_STATES, RunState
from samon_core.runs.store import CHECKPOINT_FILE, RunStore, store_or_default
from samon_core.service.backend import Queue, get_queue
from samon_core.service.claims import cancel_path, claim_lock, request_cancel_flag
from samon_core.service.identity import Identity, identify, require_someone
from samon_core.service.limits import check_config_limits
from samon_core.service.room import check_room, read_room
from samon_core.service.settings import Settings, load_settings
from samon_core.service.submit import submit_lock

# What ``cancel`` returns for a running run: the request is out; the trainer marks the run
# 'cancelled' within one step.
CANCELLING = "cancelling"
# States ``cancel`` acts on (the others are returned unchanged).
_CANCELLABLE = frozenset({RunState.QUEUED, RunState.RUNNING, RunState.INTERRUPTED})
_NOT_STARTED = frozenset({RunState.QUEUED, RunState.INTERRUPTED})


@contextlib.contextmanager
def store_errors(action: str) -> Iterator[None]:
    """An ``OSError`` of the store (read-only, full disk, permissions) as one
    ``StoreUnavailable`` line; ``FileNotFoundError`` (no such run) passes as it is."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise store_error(exc, action) from exc


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
    LOST_MESSAGE = "queued again: its queue message was lost"


def _cancel_queued(store: RunStore, queue: Queue, run_id: str, message: str) -> None:
    status = store.read_status(run_id)
    store.write_status(run_id, RunState.CANCELLED, message=message)
    with contextlib.suppress(Exception):  # the worker skips it anyway
        task_id = status.get("task_id")
        if task_id:
            queue.revoke(task_id)
        queue.clear_cancel(run_id)  # the state says it all now


def _release_and_flag(store: RunStore, run_id: str, owner: str | None, is_teacher: bool,
                      s: Settings) -> str | None:
    """Under the submit lock (so that no identical request joins the run meanwhile): check the
    caller, detach them from a shared run, or raise the cancel request. Returns the answer for
    the caller when there is nothing more to do (the state, or ``DETACHED``), else None."""
    with submit_lock(store):
        state = store.read_status(run_id).get("state")
        if state not in _CANCELLABLE:
            store.check_requester(run_id, owner, is_teacher=is_teacher, action="cancel")
            return str(state)
        if not store.release_request(run_id, owner, is_teacher=is_teacher, action="cancel"):
            return DETACHED
        # The flag first: a worker that is claiming the run right now, or training it, sees it.
        request_cancel_flag(store, run_id)
    with contextlib.suppress(Exception):  # the file is the primary signal; this one is faster
        get_queue(store, s).set_cancel(run_id)  # on NFS
    return None


def _cancel_as(run_id: str, ident: Identity, store: RunStore, s: Settings) -> str:
    """``cancel`` for a caller already identified."""
    require_someone(ident, run_id, "cancel")
    owner, is_teacher = ident.owner, ident.is_teacher
    answer = _release_and_flag(store, run_id, owner, is_teacher, s)
    if answer is not None:
        return answer
    with claim_lock(store.run_dir(run_id)) as free:
        state = store.read_status(run_id).get("state")
        if free and state in _NOT_STARTED:
            _cancel_queued(store, get_queue(store, s), run_id,
                           "cancelled before it started" if state == RunState.QUEUED
                           else "cancelled")
            return RunState.CANCELLED.value
    if state in ACTIVE_STATES:  # a worker holds it: it stops (or skips it) on seeing the flag
        with contextlib.suppress(FileNotFoundError):
            store.heartbeat(run_id, cancel_requested=time.time())
        return CANCELLING
    return str(state)


def cancel(run_id: str, *, owner_key: str | None = None,
           teacher_token: str | SecretStr | None = None, store: RunStore | None = None,
           settings: Settings | None = None) -> str:
    """Cancel a run for one of its requesters (``owner_key``) or the teacher
    (``teacher_token``); returns what happened:

    * ``DETACHED`` ('detached'): others also requested the run; only the key's owner was removed
      from its requesters and the run goes on for them;
    * queued or interrupted: 'cancelled' (a queued run never starts);
    * running: ``CANCELLING`` ('cancelling'); the trainer stops within one step and marks it
      'cancelled' (if it did so before ``cancel`` read the state back, 'cancelled' is returned);
    * already finished / failed / diverged / cancelled: that state, unchanged.

    ``NotAllowed`` (a ``ValueError``) for an unknown key, a wrong token, no credential at all, or
    a key whose owner did not request the run.
    """
    store = store_or_default(store)
    s = settings or load_settings()
    existing_run(store, run_id)  # a bad run id is refused before anything else
    ident = identify(owner_key, teacher_token, store=store, settings=s)
    with store_errors("cancel the run"):
        return _cancel_as(run_id, ident, store, s)


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
    ident = identify(owner_key, teacher_token, store=store, settings=s)
    with store_errors("delete the run"):
        answer = _cancel_as(run_id, ident, store, s)
        if answer in (DETACHED, CANCELLING):
            return answer
        return store.delete_run(run_id, owner=ident.owner, is_teacher=ident.is_teacher)


def requeue(store: RunStore, run_id: str, why: Requeue, *, settings: Settings | None = None,
            detail: str = "") -> None:
    """Put a run back in the queue (state 'queued'); the worker that takes it continues from its
    checkpoint. The caller holds the run's claim lock or owns the run."""
    s = settings or load_settings()
    queue = get_queue(store, s)
    with contextlib.suppress(FileNotFoundError):
        cancel_path(store, run_id).unlink()
    with contextlib.suppress(Exception):  # if the queue is down, enqueue() below says so
        queue.clear_cancel(run_id)
    status = store.read_status(run_id)
    task = queue.new_task(run_id)
    has_ckpt = (store.run_dir(run_id) / CHECKPOINT_FILE).is_file()
    where = "from its last checkpoint" if has_ckpt else "from the start (no checkpoint yet)"
    message = f"{why.value}{': ' + detail if detail else ''}; it continues {where}"
    fields: dict[str, Any] = {"queued_at": time.time(), "ended": None, "task_id": task.id,
                              "message": message, "cancel_requested": None}
    if why is Requeue.AUTO:
        fields["auto_resumes"] = int(status.get("auto_resumes") or 0) + 1
    if why is Requeue.MANUAL:
        fields["manual_resumes"] = int(status.get("manual_resumes") or 0) + 1
    store.write_status(run_id, RunState.QUEUED, **fields)
    queue.enqueue(task)


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
    ``QueueUnavailable`` if the queue is down (the run is then 'queued' in the store and the
    crash recovery enqueues it later), ``StoreUnavailable`` if the store cannot be written."""
    store = store_or_default(store)
    s = settings or load_settings()
    existing_run(store, run_id)
    ident = identify(owner_key, teacher_token, store=store, settings=s)
    require_someone(ident, run_id, "resume")
    store.check_requester(run_id, ident.owner, is_teacher=ident.is_teacher, action="resume")
    _check_admission(store, run_id, ident, s)
    with store_errors("resume the run"), claim_lock(store.run_dir(run_id)) as free:
        state = store.read_status(run_id).get("state")
        if not free or state not in RESUMABLE_STATES:
            allowed = " or ".join(sorted(s.value for s in RESUMABLE_STATES))
            raise ValueError(f"run {run_id!r} is {state if free else 'being trained'}; only "
                             f"{allowed} runs can be resumed")
        requeue(store, run_id, Requeue.MANUAL, settings=s)
