"""Who may cancel or delete a run: its requesters (``meta.json``), or a teacher.

An identical request shares a run (``samon_core.service.submit``), so a run can belong to several
people: ``meta["requesters"]`` lists every owner who asked for it (older runs without the list
belong to ``meta["owner"]`` alone). Cancel and delete act for a requester only, and on a shared
run they only *detach* that requester; the run itself is cancelled or deleted when no requester is
left. A caller who is not a requester gets ``NotAllowed``. ``is_teacher=True`` is the hook for a
lab's administrator: it acts on the whole run at once; deciding who is a teacher is the caller's
business (the service checks the teacher token and owner keys: ``samon_core.service.identity``).
Pure functions on the meta dict; the store applies them under its lock.

Also here: what an owner name may be (``check_owner_name``) and the reserved names
(``RESERVED_NAMES``: the teacher's, and ``guest``, the app's shared browsing name), which no
student can register (keyfile.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from samon_core.runs.messages import clip

DETACHED = "detached"  # what cancel / delete return when only the caller was removed
TEACHER_OWNER = "teacher"  # the teacher's name: needs the teacher token, never registered
GUEST_OWNER = "guest"  # the app's name for whoever typed none: shared by all, so nobody's own
# A reserved name -> why nobody can register it (lower case; compared case-insensitively).
RESERVED_NAMES = {
    TEACHER_OWNER: "the teacher acts with the teacher token",
    GUEST_OWNER: "everyone who has typed no name browses as guest",
}
# An owner name: 1-40 letters, digits, blanks or _ . @ -, starting with a letter or digit
# (fullmatch, not match with "$": "$" also matches before a trailing newline).
OWNER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@ -]{0,39}")


class NotAllowed(ValueError):
    """The caller may not do this (not one of the run's requesters, an unknown owner key, a wrong
    teacher token)."""


class NameTaken(ValueError):
    """The owner name already has a key (or is reserved for the teacher)."""


def check_owner_name(name: object) -> str:
    """``name`` if it is a valid owner name (``OWNER_NAME_RE``), else ``ValueError``."""
    if not isinstance(name, str) or not OWNER_NAME_RE.fullmatch(name):
        raise ValueError(f"invalid owner name {clip(name)}: 1-40 letters, digits, blanks or "
                         "_ . @ -, starting with a letter or digit")
    return name


def why_reserved(name: str) -> str | None:
    """Why ``name`` is reserved (``RESERVED_NAMES``, in any case: 'Teacher' would fool a reader
    too), or None when it is not."""
    return RESERVED_NAMES.get(name.strip().casefold())


def is_reserved(name: str) -> bool:
    """Whether ``name`` is reserved: the teacher's, or ``guest`` (``RESERVED_NAMES``)."""
    return why_reserved(name) is not None


def is_teacher_name(name: str) -> bool:
    """Whether ``name`` is the teacher's (in any case), the one name the teacher token acts as."""
    return name.strip().casefold() == TEACHER_OWNER


def requesters(meta: Mapping[str, Any]) -> list[str]:
    """The owners who asked for the run, in order, each once."""
    entries = meta.get("requesters")
    if isinstance(entries, list):
        names = [e.get("owner") for e in entries if isinstance(e, Mapping)]
    else:
        names = [meta.get("owner")]
    out: list[str] = []
    for name in names:
        if isinstance(name, str) and name not in out:
            out.append(name)
    return out


def check(meta: Mapping[str, Any] | None, run_id: str, owner: str | None, is_teacher: bool,
          action: str) -> None:
    """Raise ``NotAllowed`` unless ``owner`` is a requester of the run or ``is_teacher``."""
    if is_teacher:
        return
    if owner is None:
        raise NotAllowed(f"{action} of run {clip(run_id)} needs the owner's name (owner=...) "
                         "or is_teacher=True")
    if meta is None:
        raise NotAllowed(f"run {clip(run_id)} has a damaged meta.json, so its owner is unknown; "
                         f"only a teacher can {action} it")
    if owner not in requesters(meta):
        raise NotAllowed(f"{clip(owner)} did not request run {clip(run_id)}; only its "
                         f"requesters (or a teacher) can {action} it")


def release(meta: Mapping[str, Any] | None, run_id: str, owner: str | None, is_teacher: bool,
            action: str) -> dict[str, Any] | None:
    """What ``owner`` asking to ``action`` the run does to its meta: None means "act on the whole
    run" (a teacher, or the last requester); a dict is the new meta with ``owner`` detached (the
    others keep the run; the first of them becomes its ``owner``)."""
    check(meta, run_id, owner, is_teacher, action)
    if is_teacher or meta is None:
        return None
    others = [n for n in requesters(meta) if n != owner]
    if not others:
        return None
    new = dict(meta)
    entries = meta.get("requesters")
    if isinstance(entries, list):
        new["requesters"] = [e for e in entries
                             if not (isinstance(e, Mapping) and e.get("owner") == owner)]
    if new.get("owner") == owner:
        new["owner"] = others[0]
    return new
