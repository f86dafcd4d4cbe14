"""A run store of the files era (run folders with status.json and meta.json, ``.owner_keys.json``,
``.room.json``) opens in the database: ``import_store`` copies what the database now keeps.

It runs once per database (the ``samon`` table remembers it) and only adds what is missing, so a
second call, or two processes starting at once, change nothing. What is imported:

* every run folder: its state (a damaged status.json reads ``interrupted``, as the listing shows
  it), times, worker, message, cancel request; owner, requesters and group from meta.json; the
  config's hash and device from config.json. A run that was ``running`` keeps that state with
  its old worker, who has no heartbeat in the database: the first ``reclaim_dead`` queues it
  again and it resumes from its checkpoint, like any run of a dead worker;
* the registered owners' key digests (names in normal form, as ``read_digests`` gives);
* the room (its stored JSON, validated again by room.py when read).

A run whose files cannot be read at all (meta.json or config.json missing or damaged) is not
imported and is reported (``ImportReport.skipped``): its folder stays for a teacher to delete.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from samon_core.runs import database as db
from samon_core.runs import owners
from samon_core.runs.config import RunConfig
from samon_core.runs.files import CONFIG_FILE, META_FILE, STATUS_FILE
from samon_core.runs.io import DamagedFile, read_json_dict
from samon_core.runs.keys import is_digest
from samon_core.runs.listing import checked_file, status_or_damaged
from samon_core.runs.messages import clip
from samon_core.runs.ownerkeys import KEYS_DAMAGED
from samon_core.runs.owners import BadOwnerName, normalize_owner_name
from samon_core.runs.rows import number
from samon_core.runs.states import RunState

_DONE_KEY = "imported_store"
ROOM_FILE = ".room.json"  # the files era's room
KEYS_FILE = ".owner_keys.json"  # the files era's owner keys: {"owners": {name: {digest, created}}}


@dataclass
class ImportReport:
    """Runs and owners imported now, runs skipped with the reason (one line each)."""

    runs: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    room: bool = False
    skipped: dict[str, str] = field(default_factory=dict)
    already: bool = False


# --- the files era's owner key file ---------------------------------------------------------


def _damaged(root: Path, why: str) -> DamagedFile:
    return DamagedFile(f"the owner key file {root / KEYS_FILE} is damaged ({why}); restore it "
                       "from a backup, or remove it and let every owner register again")


def _read_owners(root: Path) -> dict[str, dict[str, Any]]:
    """The file's ``owners`` table, checked entry by entry; {} when there is no file yet."""
    try:
        data = read_json_dict(root / KEYS_FILE)
    except FileNotFoundError:
        return {}
    except DamagedFile as exc:
        raise _damaged(root, str(exc)) from None
    owners = data.get("owners")
    if not isinstance(owners, dict):
        raise _damaged(root, "no 'owners' table")
    for name, entry in owners.items():
        if not isinstance(entry, dict) or not is_digest(entry.get("digest")):
            raise _damaged(root, f"the entry of {clip(name)} has no valid digest")
    return owners


def _normal_view(owners: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The table by normal name: old spellings normalised, the earlier of two that collide
    kept, names without a normal form left out (they prove nothing)."""
    out: dict[str, dict[str, Any]] = {}
    for name, entry in owners.items():
        try:
            norm = normalize_owner_name(name)
        except BadOwnerName:
            continue
        if norm not in out or _created(entry) < _created(out[norm]):
            out[norm] = entry
    return out


def _created(entry: dict[str, Any]) -> float:
    t = entry.get("created")
    return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else 0.0


def read_digests(root: Path) -> dict[str, str]:
    """Registered owner name (normal form) -> digest of its key, from ``.owner_keys.json``."""
    return {name: entry["digest"] for name, entry in _normal_view(_read_owners(root)).items()}


# --- run folders ----------------------------------------------------------------------------


def _config_hash(run_dir: Path) -> tuple[str, str]:
    """(hash, device) of the run's config; a config of another version is hashed as stored."""
    raw = read_json_dict(run_dir / CONFIG_FILE)
    try:
        return RunConfig.from_dict(raw).config_hash(), str(raw.get("device") or "auto")
    except (ValueError, TypeError):
        text = json.dumps(raw, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest(), str(raw.get("device") or "auto")


def run_row(run_dir: Path) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The runs row and the requesters of one files-era run folder (its status.json and
    meta.json; raises on an unreadable meta.json or config.json)."""
    run_id = run_dir.name
    meta = checked_file(run_dir / META_FILE)
    status = status_or_damaged(run_dir / STATUS_FILE)
    config_hash, device = _config_hash(run_dir)
    owner = owners.owner_name_or_raw(meta.get("owner"))
    if not owner:
        raise ValueError(f"{META_FILE} names no owner")
    grouped = owners.groups_of(meta)
    who = [(name, "") for name in owners.requesters(meta)
           if not any(g_owner == name for g_owner, _ in grouped)] + grouped
    state = status.get("state")
    state = state if state in {s.value for s in RunState} else RunState.INTERRUPTED.value
    created = number(meta.get("created")) or 0.0
    row = {
        "run_id": run_id, "config_hash": config_hash, "owner": owner,
        "run_group": meta.get("group") or None, "device": device, "state": state,
        "created": created, "queued_at": number(status.get("queued_at")) or created,
        "started": number(status.get("started")), "ended": number(status.get("ended")),
        "updated": number(status.get("updated")),
        "worker": status.get("worker") if isinstance(status.get("worker"), str) else None,
        "reason": status.get("message") if isinstance(status.get("message"), str) else None,
        "auto_resumes": int(number(status.get("auto_resumes")) or 0),
        "cancel_requested": bool(status.get("cancel_requested"))
        or (run_dir / "cancel_requested").exists(),
        "status": json.dumps({k: v for k, v in status.items() if k not in _COLUMNS}),
    }
    return row, who


# status.json's fields that have a column of their own (the rest goes to ``status`` as JSON)
_COLUMNS = {"state", "created", "updated", "heartbeat", "started", "ended", "queued_at",
            "worker", "message", "progress", "auto_resumes", "cancel_requested"}


def insert_run(conn: sa.Connection, row: dict[str, Any], who: list[tuple[str, str]]) -> None:
    """Insert one imported run and its requesters."""
    conn.execute(db.runs.insert().values(**row))
    if who:
        conn.execute(db.requesters.insert(),
                     [{"run_id": row["run_id"], "owner": o, "run_group": g,
                       "time": row["created"]} for o, g in who])




def _import_owners(conn: sa.Connection, root: Path, report: ImportReport) -> None:
    """The key file's digests. A damaged file is not skipped quietly: its names must not become
    free to take (that would hand their runs to whoever registers first), so the database keeps
    a mark that makes every key check fail closed (``ownerkeys``) until the file is restored
    and the store opened again (the import of the keys is retried at each open while marked)."""
    try:
        digests = read_digests(root)
    except DamagedFile as exc:
        report.skipped[KEYS_FILE] = str(exc)
        db.set_fact(conn, KEYS_DAMAGED, str(exc))
        return
    conn.execute(db.settings_kv.delete().where(db.settings_kv.c.key == KEYS_DAMAGED))
    raw = read_json_dict(root / KEYS_FILE).get("owners", {}) if digests else {}
    have = set(conn.scalars(sa.select(db.owners.c.name)))
    for name, digest in sorted(digests.items()):
        if name in have:
            continue
        entry = raw.get(name) if isinstance(raw, dict) else None
        created = number(entry.get("created")) if isinstance(entry, dict) else None
        conn.execute(db.owners.insert().values(name=name, digest=digest,
                                               created=created or time.time()))
        report.owners.append(name)


def _import_room(conn: sa.Connection, root: Path, report: ImportReport) -> None:
    path = root / ROOM_FILE
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


def import_store(engine: Engine, root: Path, run_ids: list[str]) -> ImportReport:
    """Copy the files era's runs (the folders ``run_ids`` under ``root``), owners and room into
    the database, once (module doc)."""
    report = ImportReport()
    with db.writing(engine) as conn:
        db.serialize(conn)
        if db.fact(conn, _DONE_KEY) is not None:
            report.already = True
            if db.fact(conn, KEYS_DAMAGED) is not None:  # restored since? try the keys again
                _import_owners(conn, root, report)
            return report
        have = set(conn.scalars(sa.select(db.runs.c.run_id)))
        for run_id in run_ids:
            if run_id in have or not (root / run_id / STATUS_FILE).exists():
                continue
            try:
                row, who = run_row(root / run_id)
            except (OSError, ValueError) as exc:
                report.skipped[run_id] = str(exc).splitlines()[0][:300] if str(exc) else \
                    type(exc).__name__
                continue
            insert_run(conn, row, who)
            report.runs.append(run_id)
        _import_owners(conn, root, report)
        _import_room(conn, root, report)
        db.set_fact(conn, _DONE_KEY, str(time.time()))
    return report
