"""The owners' registered keys: one small JSON file under the run store's root.

``<root>/.owner_keys.json`` maps each registered owner name to the SHA-256 digest of its key
(keys.py says why a plain digest is enough), never to the key itself::

    {"format": 1, "owners": {"alice": {"digest": "<64 hex>", "created": 1700000000.0}}}

The file starts with a dot, so ``RunStore.run_ids`` (which lists run folders only) never sees it.
A registration is a read-modify-write under ``.owner_keys.lock`` (``io.file_lock``) and an atomic
replace, so two students registering at once both get in and a reader never sees half a file.
A damaged file raises ``DamagedFile`` with one line saying how to recover; it fails closed (no
name can be proven), and nothing that lists runs reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from samon_core.runs.io import DamagedFile, file_lock, read_json_dict, write_json
from samon_core.runs.keys import check_key, digest, is_digest, matches, new_key
from samon_core.runs.messages import clip
from samon_core.runs.owners import NameTaken, check_owner_name, why_reserved

KEYS_FILE = ".owner_keys.json"
_LOCK_FILE = ".owner_keys.lock"
_FORMAT = 1


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


def read_digests(root: Path) -> dict[str, str]:
    """Registered owner name -> digest of its key."""
    return {name: entry["digest"] for name, entry in _read_owners(root).items()}


def _same_name(owners: dict[str, Any], name: str) -> str | None:
    """The registered name ``name`` would be confused with (same letters in another case)."""
    folded = name.casefold()
    return next((n for n in owners if n.casefold() == folded), None)


def register(root: Path, name: str, clock: Callable[[], float]) -> str:
    """Register ``name`` and return its new key (the only time it is seen). ``NameTaken`` when
    the name (in any case) already has a key or is the teacher's; ``ValueError`` for an invalid
    name."""
    check_owner_name(name)
    if (why := why_reserved(name)) is not None:
        raise NameTaken(f"{clip(name)} is reserved: {why}")
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / _LOCK_FILE):
        owners = _read_owners(root)
        taken = _same_name(owners, name)
        if taken is not None:
            raise NameTaken(f"the name {clip(taken)} already has an owner key; its owner uses "
                            "that key (or their link), or pick another name")
        key = new_key()
        owners[name] = {"digest": digest(key), "created": clock()}
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
    """Whether ``name`` has a key (then acting under it needs that key)."""
    return name in read_digests(root)


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
