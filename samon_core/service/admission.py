"""What gets into the queue, decided in the transaction that inserts it (issue 24).

``admit`` checks the room's locks and the queue limits against the rows its own transaction
sees, reuses identical runs and inserts the rest, all in one transaction that ``serialize``
orders after every other admission and registration: ten students clicking at once can never
overfill a limit, and no submit lock or store scan is needed. ``register_owner`` does the same for
names: a name is taken once, not when it already owns runs, and at most ``max_per_hour`` new names
an hour. ``request_slices`` asks a worker for a finished run's landscape slices, once at a time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from samon_core.runs.keyfile import TooManyNewNames
from samon_core.runs.keys import check_key, digest, matches, new_key
from samon_core.runs.messages import clip
from samon_core.runs.owners import NameTaken, normalize_owner_name, why_reserved
from samon_core.runs.states import ACTIVE_STATES, RunState
from samon_core.runs.database import (
    owners,
    reading,
    requesters,
    requests,
    room_body,
    runs,
    serialize,
    writing,
)
from samon_core.service.limits import LimitExceeded

_HOUR_S = 3600.0


@dataclass(frozen=True)
class NewRun:
    """A run to insert: its id, the config's hash and device, the comparison it belongs to."""

    run_id: str
    config_hash: str
    device: str = "auto"
    group: str | None = None


@dataclass(frozen=True)
class QueueLimits:
    """The queue limits of ``settings`` (0 = no limit)."""

    max_queue: int = 0
    max_queued_per_owner: int = 0


@dataclass
class Admission:
    """What ``admit`` did: the runs inserted, the identical runs reused (joined as requester)."""

    inserted: list[str] = field(default_factory=list)
    reused: dict[str, str] = field(default_factory=dict)  # new run id -> existing run id


def _check_queue(conn: Connection, owner: str, n_new: int, limits: QueueLimits) -> None:
    if n_new <= 0:
        return
    if limits.max_queue:
        waiting = conn.scalar(sa.select(sa.func.count()).where(runs.c.state == RunState.QUEUED))
        if waiting + n_new > limits.max_queue:
            raise LimitExceeded("max_queue", limits.max_queue,
                                f"{waiting} runs are waiting and this request adds {n_new}")
    if limits.max_queued_per_owner:
        # the runs it owns (first requester), as the files-era limit counted them: joining a
        # run someone else queued adds no work to the queue
        active = conn.scalar(sa.select(sa.func.count()).where(
            runs.c.owner == owner, runs.c.state.in_([s.value for s in ACTIVE_STATES])))
        if active + n_new > limits.max_queued_per_owner:
            raise LimitExceeded("max_queued_per_owner", limits.max_queued_per_owner,
                                f"{owner} has {active} runs queued or running and this request "
                                f"adds {n_new}")


def _reusable(conn: Connection, config_hash: str) -> str | None:
    """An existing run of this config that is queued, running or finished (reused, not copied)."""
    return conn.scalar(sa.select(runs.c.run_id).where(
        runs.c.config_hash == config_hash,
        runs.c.state.in_([RunState.QUEUED, RunState.RUNNING, RunState.FINISHED]),
    ).order_by(runs.c.created).limit(1))


def admit(engine: Engine, owner: str, new: Sequence[NewRun], limits: QueueLimits, *,
          check_room: Callable[[dict[str, Any] | None], None] | None = None,
          check_owner: Callable[[str | None], None] | None = None,
          reuse: bool = True, now: float | None = None) -> Admission:
    """Queue ``new`` runs for ``owner`` in ONE transaction: the owner's proof (``check_owner``
    gets the name's stored key digest, None for a name nobody registered, and raises when the
    caller's proof no longer holds), the room's locks (``check_room`` gets the stored room body,
    raises to refuse) and the queue limits are checked against the rows this transaction sees,
    identical runs are reused (also within the request), the rest inserted. Concurrent
    admissions are serialised (SQLite's write lock; PostgreSQL's advisory lock), so ten racing
    submitters can never overfill a limit. A refusal raises and inserts nothing. ``owner`` is
    taken in normal form (``ValueError`` for a text that is no name)."""
    owner = normalize_owner_name(owner)
    now = time.time() if now is None else now
    out = Admission()
    with writing(engine) as conn:
        serialize(conn)
        if check_owner is not None:
            check_owner(conn.scalar(sa.select(owners.c.digest).where(owners.c.name == owner)))
        if check_room is not None:
            check_room(room_body(conn))
        fresh: list[NewRun] = []
        first: dict[str, str] = {}  # config hash -> the run of this request that has it
        for run in new:
            existing = first.get(run.config_hash) or (
                _reusable(conn, run.config_hash) if reuse else None)
            if existing is None:
                fresh.append(run)
                first[run.config_hash] = run.run_id
            else:
                out.reused[run.run_id] = existing
        _check_queue(conn, owner, len(fresh), limits)
        for run in fresh:
            conn.execute(runs.insert().values(
                run_id=run.run_id, config_hash=run.config_hash, owner=owner, run_group=run.group,
                device=run.device, state=RunState.QUEUED.value, created=now, queued_at=now,
                updated=now))
            out.inserted.append(run.run_id)
        _join(conn, owner, [(run.run_id if run.run_id in out.inserted
                             else out.reused[run.run_id], run.group or "") for run in new])
    return out


def _join(conn: Connection, owner: str, wanted: list[tuple[str, str]]) -> None:
    """Record ``owner`` as a requester of each (run, group) it does not hold yet."""
    ids = {rid for rid, _ in wanted}
    have = set(conn.execute(sa.select(requesters.c.run_id, requesters.c.run_group).where(
        requesters.c.owner == owner, requesters.c.run_id.in_(ids))).all())
    for run_id, group in sorted(set(wanted) - have):
        conn.execute(requesters.insert().values(run_id=run_id, owner=owner, run_group=group))


# --- names --------------------------------------------------------------------------------


def _owns_runs(conn: Connection, name: str) -> bool:
    return conn.scalar(sa.select(requesters.c.run_id).where(requesters.c.owner == name)
                       .limit(1)) is not None


def register_owner(engine: Engine, name: str, *, max_per_hour: int = 0,
                   now: float | None = None) -> str:
    """Register ``name`` (normal form) and return its new key, the only time it is seen (only
    the digest is stored). ``NameTaken``: reserved, already registered, or already owning runs
    (a key must not hand over runs started without one); ``TooManyNewNames`` past
    ``max_per_hour``; ``ValueError`` for a text that is no name."""
    name = normalize_owner_name(name)
    if (why := why_reserved(name)) is not None:
        raise NameTaken(f"{clip(name)} is reserved: {why}")
    now = time.time() if now is None else now
    key = new_key()
    with writing(engine) as conn:
        serialize(conn)  # the same order as admissions: no run can slip in between
        if conn.scalar(sa.select(owners.c.name).where(owners.c.name == name)) is not None:
            raise NameTaken(f"the name {clip(name)} already has an owner key; its owner uses "
                            "that key (or their link), or pick another name")
        recent = conn.scalar(sa.select(sa.func.count()).where(owners.c.created > now - _HOUR_S))
        if max_per_hour and recent >= max_per_hour:
            raise TooManyNewNames(max_per_hour, f"{max_per_hour} new names were registered in "
                                  "the last hour, as many as this server allows")
        if _owns_runs(conn, name):
            raise NameTaken(f"the name {clip(name)} already owns runs that were started without "
                            "a key; pick another name (the teacher manages those runs)")
        conn.execute(owners.insert().values(name=name, digest=digest(key), created=now))
    return key


def owner_of_key(engine: Engine, key: str) -> str | None:
    """The owner whose key ``key`` is, or None; every digest is compared in constant time, to
    the end, so the time taken says nothing about the keys. ``BadKey`` for a malformed key."""
    check_key(key)
    found = None
    with reading(engine) as conn:
        for name, stored in conn.execute(sa.select(owners.c.name, owners.c.digest)):
            if matches(key, stored) and found is None:
                found = name
    return found


# --- requests: landscape slices of a finished run ------------------------------------------


def request_slices(engine: Engine, run_id: str, payload: Mapping[str, Any], *,
                   now: float | None = None) -> int:
    """Ask a worker for ``run_id``'s slices (``payload``: points, radius, who asked); one
    pending request per run (``ValueError`` otherwise, or for a run that is not finished)."""
    now = time.time() if now is None else now
    with writing(engine) as conn:
        state = conn.scalar(sa.select(runs.c.state).where(runs.c.run_id == run_id))
        if state != RunState.FINISHED:
            raise ValueError(f"run {clip(run_id)} is {state or 'unknown'}, not finished: "
                             "slices need its final checkpoint")
        pending = sa.select(requests.c.id).where(requests.c.run_id == run_id,
                                                 requests.c.kind == "slices",
                                                 requests.c.done.is_(False))
        if conn.scalar(pending) is not None:
            raise ValueError(f"slices of run {clip(run_id)} are already being computed")
        return conn.execute(requests.insert().values(
            run_id=run_id, kind="slices", payload=json.dumps(dict(payload), sort_keys=True),
            created=now)).inserted_primary_key[0]
