"""The owners' registered keys: one small JSON file under the run store's root.

``<root>/.owner_keys.json`` maps each registered owner name to the SHA-256 digest of its key
(keys.py says why a plain digest is enough), never to the key itself::

    {"format": 1, "owners": {"alice": {"digest": "<64 hex>", "created": 1700000000.0}}}

The file starts with a dot, so ``RunStore.run_ids`` (which lists run folders only) never sees it.
A registration is a read-modify-write under ``.owner_keys.lock`` (``io.file_lock``) and an atomic
replace, so two students registering at once both get in and a reader never sees half a file.
A damaged file raises ``DamagedFile`` with one line saying how to recover; it fails closed (no
name can be proven), and nothing that lists runs reads it.

Names are kept and compared in normal form (``owners.normalize_owner_name``). A file written
before that rule is read in normal form too (``Alice`` proves ``alice``) and left as it is on
disk; when two old names have one normal form, the earlier registration keeps it (the later key
proves nothing: one name, one person), and an old name that has no normal form proves nothing.

**A name that already owns runs cannot be registered** (``has_runs``; ``NameTaken``). Runs are
recorded under names nobody registered: a script's, ``samon run --owner ann`` on the server. If
registering such a name gave its key power over those runs, whoever typed it first in a browser
could cancel and delete them. The alternative, a key that acts only on runs requested after its
registration, would make "who may act on this run" depend on the key file's times as well as on
the run's meta.json, in the service and in every page's buttons; refusing the registration keeps
the rule one fact (the run's requesters) and tells the student at once to pick another name.

**New names per hour are bounded** (``max_per_hour``; ``TooManyNewNames``): each new name gets
its own per-owner quota and its own turn in the fair queue, so a script that registers fresh
names could otherwise take the room's queue.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from samon_core.runs.io import DamagedFile, file_lock, read_json_dict, write_json
from samon_core.runs.keys import check_key, digest, is_digest, matches, new_key
from samon_core.runs.messages import clip
from samon_core.runs.owners import (
    BadOwnerName,
    NameTaken,
    normalize_owner_name,
    why_reserved,
)

KEYS_FILE = ".owner_keys.json"
_LOCK_FILE = ".owner_keys.lock"
_FORMAT = 1
_HOUR_S = 3600.0


class TooManyNewNames(ValueError):
    """More names were registered in the last hour than the server allows (``limit``)."""

    def __init__(self, limit: int, message: str):
        self.limit = limit
        super().__init__(message)


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
    """Registered owner name (normal form) -> digest of its key."""
    return {name: entry["digest"] for name, entry in _normal_view(_read_owners(root)).items()}


def _recent(owners: dict[str, dict[str, Any]], now: float) -> int:
    return sum(_created(entry) > now - _HOUR_S for entry in owners.values())


def names_lock(root: Path):
    """The lock every registration holds (a context manager): held by a submit under a name
    nobody registered, so that the name cannot be registered between its check and its runs."""
    return file_lock(root / _LOCK_FILE)


def register(root: Path, name: str, clock: Callable[[], float], *,
             has_runs: Callable[[str], bool] | None = None, max_per_hour: int = 0) -> str:
    """Register ``name`` (in normal form) and return its new key (the only time it is seen).
    ``NameTaken`` when the name already has a key, is reserved, or already owns runs
    (``has_runs(name)``, asked under the lock); ``TooManyNewNames`` when ``max_per_hour`` (0:
    no bound) names were registered in the last hour; ``ValueError`` for an invalid name."""
    name = normalize_owner_name(name)
    if (why := why_reserved(name)) is not None:
        raise NameTaken(f"{clip(name)} is reserved: {why}")
    root.mkdir(parents=True, exist_ok=True)
    with names_lock(root):
        owners = _read_owners(root)
        if name in _normal_view(owners):
            raise NameTaken(f"the name {clip(name)} already has an owner key; its owner uses "
                            "that key (or their link), or pick another name")
        now = clock()
        if max_per_hour and _recent(owners, now) >= max_per_hour:
            were = "name was" if max_per_hour == 1 else "names were"
            raise TooManyNewNames(max_per_hour, f"{max_per_hour} new {were} registered in the "
                                  "last hour, as many as this server allows; use a name you "
                                  "have (your link), try again later, or ask the teacher")
        if has_runs is not None and has_runs(name):
            raise NameTaken(f"the name {clip(name)} already owns runs that were started without "
                            "a key (by a script or on the server's command line); registering "
                            "it would hand them to you, so pick another name (the teacher "
                            "manages those runs)")
        key = new_key()
        owners[name] = {"digest": digest(key), "created": now}
        write_json(root / KEYS_FILE, {"format": _FORMAT, "owners": owners})
    return key


def owner_of_key(root: Path, key: str) -> str | None:
    """The owner whose key ``key`` is, or None. Every stored digest is compared (in constant
    time each, without stopping at a match), so the time taken says nothing about the keys."""
    check_key(key)
    found = None
    for name, stored in read_digests(root).items():
        if matches(key, stored) and found is None:
            found = name
    return found


def is_registered(root: Path, name: str) -> bool:
    """Whether ``name`` (in any spelling of its normal form) has a key (then acting under it
    needs that key). A text that is no name has none."""
    try:
        norm = normalize_owner_name(name)
    except BadOwnerName:
        return False
    return norm in read_digests(root)  # a damaged file raises: no name is proven


def unregister(root: Path, key: str, has_runs: Callable[[str], bool] | None = None) -> str | None:
    """Give back the name that ``key`` proves, registered a moment ago: the app registers a
    name just before a first launch and gives it back when that launch fails, so a failed
    launch leaves no name behind that its user has no link for. Returns the name, or None
    (no such key, or the name owns runs by now: ``has_runs(name)``, asked under the lock,
    since its runs need their owner's key)."""
    check_key(key)
    with file_lock(root / _LOCK_FILE):
        owners = _read_owners(root)
        name = next((n for n, entry in owners.items() if matches(key, entry["digest"])), None)
        if name is None or (has_runs is not None and has_runs(name)):
            return None
        del owners[name]
        write_json(root / KEYS_FILE, {"format": _FORMAT, "owners": owners})
    return name
