"""A run store of the files era (run folders with status.json and meta.json, ``.owner_keys.json``,
``.room.json``) opens in the database: ``import_store`` copies what the database now keeps.

It runs once per database (the ``samon`` table remembers it) and only adds what is missing, so a
second call, or two processes starting at once, change nothing. What is imported:

* every run folder: its state (a damaged status.json reads ``interrupted``, as the listing shows
  it), times, worker, message, cancel request; owner, requesters and group from meta.json; the
  config's hash and device from config.json. A run that was ``running`` keeps that state with
  its old worker, who has no heartbeat in the database: the first ``reclaim_dead`` queues it
  again and it resumes from its checkpoint, like any run of a dead worker;
* the registered owners' key digests (names in normal form, as ``keyfile.read_digests`` gives);
* the room (its stored JSON, validated again by room.py when read).

A run whose files cannot be read at all (meta.json or config.json missing or damaged) is not
imported and is reported (``ImportReport.skipped``): its folder stays for a teacher to delete.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from samon_core.runs import keyfile, owners
from samon_core.runs.io import read_json_dict
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore
from samon_core.service import database as db

_DONE_KEY = "imported_store"
ROOM_FILE = ".room.json"  # the files era's room (room.py's ROOM_FILE)


@dataclass
class ImportReport:
    """Runs and owners imported now, runs skipped with the reason (one line each)."""

    runs: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    room: bool = False
    skipped: dict[str, str] = field(default_factory=dict)
    already: bool = False


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _config_hash(store: RunStore, run_id: str) -> tuple[str, str]:
    """(hash, device) of the run's config; a config of another version is hashed as stored."""
    raw = store.read_config_dict(run_id)
    try:
        return store.read_config(run_id).config_hash(), str(raw.get("device") or "auto")
    except (ValueError, TypeError):
        text = json.dumps(raw, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest(), str(raw.get("device") or "auto")


def _run_row(store: RunStore, run_id: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The runs row and the requesters of one run folder (raises on unreadable meta/config)."""
    meta = store.read_meta(run_id)
    status = store.read_status(run_id)
    config_hash, device = _config_hash(store, run_id)
    owner = owners.owner_name_or_raw(meta.get("owner"))
    if not owner:
        raise ValueError("meta.json names no owner")
    grouped = owners.groups_of(meta)
    who = [(name, "") for name in owners.requesters(meta)
           if not any(g_owner == name for g_owner, _ in grouped)] + grouped
    state = status.get("state")
    state = state if state in {s.value for s in RunState} else RunState.INTERRUPTED.value
    created = _number(meta.get("created")) or 0.0
    row = {
        "run_id": run_id, "config_hash": config_hash, "owner": owner,
        "run_group": meta.get("group") or None, "device": device, "state": state,
        "created": created, "queued_at": _number(status.get("queued_at")) or created,
        "started": _number(status.get("started")), "ended": _number(status.get("ended")),
        "updated": _number(status.get("updated")),
        "worker": status.get("worker") if isinstance(status.get("worker"), str) else None,
        "reason": status.get("message") if isinstance(status.get("message"), str) else None,
        "auto_resumes": int(_number(status.get("auto_resumes")) or 0),
        "cancel_requested": bool(status.get("cancel_requested"))
        or (store.run_dir(run_id) / "cancel_requested").exists(),
    }
    return row, who


def _import_owners(conn: sa.Connection, store: RunStore, report: ImportReport) -> None:
    digests = keyfile.read_digests(store.root)
    raw = read_json_dict(store.root / keyfile.KEYS_FILE).get("owners", {}) if digests else {}
    have = set(conn.scalars(sa.select(db.owners.c.name)))
    for name, digest in sorted(digests.items()):
        if name in have:
            continue
        entry = raw.get(name) if isinstance(raw, dict) else None
        created = _number(entry.get("created")) if isinstance(entry, dict) else None
        conn.execute(db.owners.insert().values(name=name, digest=digest,
                                               created=created or time.time()))
        report.owners.append(name)


def _import_room(conn: sa.Connection, store: RunStore, report: ImportReport) -> None:
    path = store.root / ROOM_FILE
    if not path.exists() or db.room_body(conn) is not None:
        return
    try:
        body = read_json_dict(path)
    except (OSError, ValueError) as exc:  # a damaged room reads as no locks (room.py)
        report.skipped[ROOM_FILE] = f"not imported: {exc}"
        return
    conn.execute(db.room.insert().values(id=1, body=json.dumps(body, sort_keys=True),
                                         updated=time.time()))
    report.room = True


def import_store(engine: Engine, store: RunStore) -> ImportReport:
    """Copy the files era's runs, owners and room into the database, once (module doc)."""
    report = ImportReport()
    with db.writing(engine) as conn:
        db.serialize(conn)
        if conn.scalar(sa.select(db.settings_kv.c.value)
                       .where(db.settings_kv.c.key == _DONE_KEY)) is not None:
            report.already = True
            return report
        have = set(conn.scalars(sa.select(db.runs.c.run_id)))
        for run_id in store.run_ids():
            if run_id in have:
                continue
            try:
                row, who = _run_row(store, run_id)
            except (OSError, ValueError) as exc:
                report.skipped[run_id] = str(exc).splitlines()[0][:300] if str(exc) else \
                    type(exc).__name__
                continue
            conn.execute(db.runs.insert().values(**row))
            conn.execute(db.requesters.insert(),
                         [{"run_id": run_id, "owner": o, "run_group": g} for o, g in who])
            report.runs.append(run_id)
        _import_owners(conn, store, report)
        _import_room(conn, store, report)
        conn.execute(db.settings_kv.insert().values(key=_DONE_KEY, value=str(time.time())))
    return report
