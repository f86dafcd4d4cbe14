"""The owners' registered keys, in the run store's database (``database.owners``).

Each registered owner name maps to the SHA-256 digest of its key (keys.py says why a plain
digest is enough), never to the key itself. A registration is one transaction that
``database.serialize`` orders after every other registration and admission, so two students
registering at once both get in, and a name cannot be registered between a submit's check of it
and that submit's runs (the admission reads the name's digest in its own transaction).

Names are kept and compared in normal form (``owners.normalize_owner_name``); a files-era
``.owner_keys.json`` is imported once in normal form (``importer.py``).

**A name that already owns runs cannot be registered** (``NameTaken``). Runs are recorded under
names nobody registered: a script's, ``samon run --owner ann`` on the server. If registering such
a name gave its key power over those runs, whoever typed it first in a browser could cancel and
delete them. The alternative, a key that acts only on runs requested after its registration,
would make "who may act on this run" depend on registration times as well as on the run's
requesters, in the service and in every page's buttons; refusing the registration keeps the rule
one fact (the run's requesters) and tells the student at once to pick another name.

**New names per hour are bounded** (``max_per_hour``; ``TooManyNewNames``): each new name gets
its own per-owner quota and its own turn in the fair queue, so a script that registers fresh
names could otherwise take the room's queue.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from samon_core.runs.database import fact, owners, reading, requesters, serialize, writing
from samon_core.runs.io import DamagedFile
from samon_core.runs.keys import check_key, digest, matches, new_key
from samon_core.runs.messages import clip
from samon_core.runs.owners import BadOwnerName, NameTaken, normalize_owner_name, why_reserved

_HOUR_S = 3600.0
KEYS_DAMAGED = "owner_keys_damaged"  # importer.py sets it when the files-era key file was damaged


def _fail_closed(conn: Connection) -> None:
    """``DamagedFile`` (one line) while the imported key file was damaged: no name can be
    proven or taken until it is restored (importer.py)."""
    why = fact(conn, KEYS_DAMAGED)
    if why is not None:
        raise DamagedFile(why.splitlines()[0])


class TooManyNewNames(ValueError):
    """More names were registered in the last hour than the server allows (``limit``)."""

    def __init__(self, limit: int, message: str):
        self.limit = limit
        super().__init__(message)


def owns_runs(conn: Connection, name: str) -> bool:
    """Whether ``name`` (normal form) requested any run."""
    return conn.scalar(sa.select(requesters.c.run_id).where(requesters.c.owner == name)
                       .limit(1)) is not None


def register(engine: Engine, name: str, now: float, *, max_per_hour: int = 0) -> str:
    """Register ``name`` (in normal form) and return its new key (the only time it is seen).
    ``NameTaken`` when the name already has a key, is reserved, or already owns runs;
    ``TooManyNewNames`` when ``max_per_hour`` (0: no bound) names were registered in the last
    hour; ``ValueError`` for an invalid name."""
    name = normalize_owner_name(name)
    if (why := why_reserved(name)) is not None:
        raise NameTaken(f"{clip(name)} is reserved: {why}")
    key = new_key()
    with writing(engine) as conn:
        serialize(conn)  # in line with admissions: no run can slip in between the checks
        _fail_closed(conn)
        if conn.scalar(sa.select(owners.c.name).where(owners.c.name == name)) is not None:
            raise NameTaken(f"the name {clip(name)} already has an owner key; its owner uses "
                            "that key (or their link), or pick another name")
        recent = conn.scalar(sa.select(sa.func.count()).where(owners.c.created > now - _HOUR_S))
        if max_per_hour and recent >= max_per_hour:
            were = "name was" if max_per_hour == 1 else "names were"
            raise TooManyNewNames(max_per_hour, f"{max_per_hour} new {were} registered in the "
                                  "last hour, as many as this server allows; use a name you "
                                  "have (your link), try again later, or ask the teacher")
        if owns_runs(conn, name):
            raise NameTaken(f"the name {clip(name)} already owns runs that were started without "
                            "a key (by a script or on the server's command line); registering "
                            "it would hand them to you, so pick another name (the teacher "
                            "manages those runs)")
        conn.execute(owners.insert().values(name=name, digest=digest(key), created=now))
    return key


def digests(engine: Engine) -> dict[str, str]:
    """Registered owner name -> digest of its key."""
    with reading(engine) as conn:
        _fail_closed(conn)
        return {row.name: row.digest for row in conn.execute(sa.select(owners))}


def owner_of_key(engine: Engine, key: str) -> str | None:
    """The owner whose key ``key`` is, or None (``BadKey`` for text that is no key). Every
    stored digest is compared (in constant time each, without stopping at a match), so the time
    taken says nothing about the keys."""
    check_key(key)
    found = None
    for name, stored in digests(engine).items():
        if matches(key, stored) and found is None:
            found = name
    return found


def is_registered(engine: Engine, name: str) -> bool:
    """Whether ``name`` (in any spelling of its normal form) has a key (then acting under it
    needs that key). A text that is no name has none."""
    try:
        norm = normalize_owner_name(name)
    except BadOwnerName:
        return False
    with reading(engine) as conn:
        _fail_closed(conn)
        return conn.scalar(sa.select(owners.c.name).where(owners.c.name == norm)) is not None


def unregister(engine: Engine, key: str) -> str | None:
    """Give back the name that ``key`` proves, registered a moment ago: the app registers a
    name just before a first launch and gives it back when that launch fails, so a failed
    launch leaves no name behind that its user has no link for. Returns the name, or None (no
    such key, or the name owns runs by now: its runs need their owner's key)."""
    check_key(key)
    with writing(engine) as conn:
        serialize(conn)
        _fail_closed(conn)
        name = next((row.name for row in conn.execute(sa.select(owners))
                     if matches(key, row.digest)), None)
        if name is None or owns_runs(conn, name):
            return None
        conn.execute(owners.delete().where(owners.c.name == name))
    return name
