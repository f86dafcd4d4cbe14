"""A run's database row as the status dict readers know, and its requesters.

The ``runs`` table keeps in columns what the scheduler queries (state, times, worker, progress,
cancel request); everything else a trainer reports (epoch, accuracy, eta, host, ...) is the
row's ``status`` JSON. ``column_values`` splits a status update into the two, ``status_of``
joins them back into the dict that ``status.json`` held in the files era (``message`` is the
``reason`` column, ``heartbeat`` is ``updated``), so the readers did not change. A damaged
field of the ``status`` JSON is left out and named in the dict's ``problem`` (the listing shows
it as the run's problem), never dropped without a word.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from samon_core.runs import database as db
from samon_core.runs.fieldcheck import check_fields, summarize
from samon_core.runs.files import STATUS_FILE
from samon_core.runs.states import RunState

# status fields kept in a column of their own (queried by the scheduler)
COLUMN_FIELDS = ("state", "created", "updated", "started", "ended", "queued_at", "worker",
                 "progress", "auto_resumes", "cancel_requested")


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# How the problems of a row's status JSON start (``status_of``): in the files era it was
# status.json, which no longer exists.
STATUS_PROBLEM = "the run's status in the database"


def status_json(row: Any) -> dict[str, Any]:
    """The row's ``status`` JSON object; {} when it is none (edited by hand)."""
    return _status_json(row)[0]


def _status_json(row: Any) -> tuple[dict[str, Any], str | None]:
    """``status_json`` and, when the JSON is no object, what is wrong with it."""
    try:
        extra = json.loads(row.status or "{}")
    except (ValueError, RecursionError) as exc:
        return {}, f"is not JSON ({type(exc).__name__}): its fields are left out"
    if not isinstance(extra, dict):
        return {}, f"is not a JSON object ({type(extra).__name__}): its fields are left out"
    return extra, None


def column_values(row: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The column values of ``fields`` merged into ``row``: a field with a column of its own
    goes there (``message`` to ``reason``), the rest into the row's ``status`` JSON."""
    extra = status_json(row)
    values: dict[str, Any] = {}
    for key, value in fields.items():
        if key in ("state", "heartbeat", "updated"):
            continue  # set by the caller
        if key == "message":
            values["reason"] = None if value is None else str(value)
        elif key == "worker":
            values["worker"] = value if isinstance(value, str) else None
        elif key == "cancel_requested":
            values["cancel_requested"] = bool(value)
        elif key == "auto_resumes":
            values["auto_resumes"] = int(number(value) or 0)
        elif key in COLUMN_FIELDS:
            values[key] = number(value)
        else:
            extra[key] = value
    values["status"] = json.dumps(extra, default=str)
    return values


def status_of(row: Any) -> dict[str, Any]:
    """A row as the status dict readers know (status.json's fields of the files era). Its
    ``status`` JSON without fields of the wrong type (``fieldcheck``), and read as {} when it
    is no JSON object (edited by hand): one damaged row never breaks a listing. What was left
    out is named in ``problem`` (absent for a sound row)."""
    extra, damaged = _status_json(row)
    out, problems = check_fields(STATUS_FILE, extra)
    problems = [f"{STATUS_PROBLEM} {damaged}"] if damaged else [
        f"{STATUS_PROBLEM}: {p.removeprefix(STATUS_FILE + ': ')}" for p in problems]
    out.pop("problem", None)  # a field of that name in the JSON is no problem of ours
    if problems:
        out["problem"] = "; ".join(summarize(problems))
    out.update(state=row.state, created=row.created, updated=row.updated, heartbeat=row.updated,
               owner=row.owner)
    for key in ("started", "ended", "queued_at", "worker", "progress"):
        if getattr(row, key) is not None:
            out[key] = getattr(row, key)
    if row.reason is not None:
        out["message"] = row.reason
    if row.auto_resumes:
        out["auto_resumes"] = row.auto_resumes
    if row.cancel_requested:
        out["cancel_requested"] = True
    return out


def requesters_of(conn: Connection, run_ids: list[str] | None
                ) -> dict[str, list[dict[str, Any]]]:
    """run id -> its requesters as meta.json listed them (owner, group, time), oldest first
    (of ``run_ids``; None: of every run)."""
    out: dict[str, list[dict[str, Any]]] = {}
    query = sa.select(db.requesters)
    if run_ids is not None:
        query = query.where(db.requesters.c.run_id.in_(run_ids))
    query = query.order_by(sa.func.coalesce(db.requesters.c.time, 0.0), db.requesters.c.owner)
    for row in conn.execute(query):
        out.setdefault(row.run_id, []).append(
            {"owner": row.owner, "group": row.run_group, "time": row.time})
    return out


def add_requester(conn: Connection, run_id: str, owner: str, group: str, now: float) -> None:
    """Record ``owner`` as a requester of ``run_id`` in ``group`` (once)."""
    have = conn.scalar(sa.select(db.requesters.c.owner).where(
        db.requesters.c.run_id == run_id, db.requesters.c.owner == owner,
        db.requesters.c.run_group == group))
    if have is None:
        conn.execute(db.requesters.insert().values(run_id=run_id, owner=owner,
                                                   run_group=group, time=now))


def keep_requesters(conn: Connection, run_id: str, meta: Mapping[str, Any]) -> None:
    """Make the run's owner and requesters those of ``meta`` (after ``owners.release``)."""
    if meta.get("owner"):
        conn.execute(db.runs.update().where(db.runs.c.run_id == run_id)
                     .values(owner=meta["owner"]))
    kept = {(e.get("owner"), e.get("group") or "") for e in meta.get("requesters") or ()}
    for who, group in conn.execute(sa.select(db.requesters.c.owner, db.requesters.c.run_group)
                                   .where(db.requesters.c.run_id == run_id)).all():
        if (who, group) not in kept:
            conn.execute(db.requesters.delete().where(
                db.requesters.c.run_id == run_id, db.requesters.c.owner == who,
                db.requesters.c.run_group == group))


def new_row(run_id: str, device: str, info: Mapping[str, Any], now: float
            ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The row of a new queued run (``info``: its meta) and its requesters (owner, group)."""
    who = [(entry.get("owner") or "", entry.get("group") or "")
           for entry in info.get("requesters") or () if isinstance(entry, Mapping)]
    if not who and info.get("owner"):
        who = [(info["owner"], info.get("group") or "")]
    row = {"run_id": run_id, "config_hash": info["config_hash"],
           "owner": info.get("owner") or "", "run_group": info.get("group") or None,
           "device": device, "state": RunState.QUEUED.value, "created": now,
           "queued_at": now, "updated": now}
    return row, list(dict.fromkeys(who))
