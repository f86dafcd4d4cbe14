"""Who the user is in the app, as sentences and decisions (no streamlit; app_pages/identity.py
shows them).

A name typed in the sidebar proves nothing; an owner key does (``samon_core.service.room``).
So the app sorts the user into one ``Standing``: the teacher (signed in with the token), ``guest``
(the shared default name: browses only), a reserved name, a name with its key (acts on its
runs), a registered name without its key (sees its runs read-only), or a new name (its first
launch registers it). Every sentence that explains a refusal comes from here, so the sidebar, the
launch refusal and a disabled button's help say the same thing. Names are Markdown-escaped.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from samon_app.markup import md_escape
from samon_app.urlparams import IDENTITY_PARAMS, RESERVED, looks_secret
from samon_core.runs.owners import (
    GUEST_OWNER,
    is_reserved,
    is_teacher_name,
    requesters,
    why_reserved,
)

KEEP_LINK = ("Keep this link to come back: it is your key to cancel or delete your runs, shown "
             "only now and never in the address bar. Anyone with it can act as you: do not "
             "share it.")
NOT_THE_TOKEN = "Not the teacher token."
NO_TOKEN = "No teacher token is set on this server (docs/deployment.md)."


class Standing(enum.Enum):
    TEACHER = "teacher"  # signed in with the teacher token: acts on every run
    GUEST = "guest"  # the shared default name: browses only
    RESERVED = "reserved"  # 'teacher' without the token, or 'cli' (runs/owners.RESERVED_NAMES)
    OWN = "own"  # a name with its key: acts on its runs
    TAKEN = "taken"  # a registered name without its key: read-only
    NEW = "new"  # an unregistered name: the first launch registers it


def standing(name: str, *, teacher: bool, has_key: bool, registered: bool) -> Standing:
    """The user's standing: ``name`` typed in the sidebar (cleaned), ``teacher`` when signed in,
    ``has_key`` when the session holds that name's key, ``registered`` when the name has one."""
    if teacher:
        return Standing.TEACHER
    if name == GUEST_OWNER:
        return Standing.GUEST
    if is_reserved(name):
        return Standing.RESERVED
    if has_key:
        return Standing.OWN
    return Standing.TAKEN if registered else Standing.NEW


def _reserved_note(name: str) -> str:
    """Why a reserved name cannot be used (the reason is the library's: ``why_reserved``)."""
    then = ("Sign in as the teacher, or pick another name." if is_teacher_name(name)
            else "Pick another name.")
    return f"{md_escape(name, 60)} is reserved: {why_reserved(name)}. {then}"


def sidebar_note(s: Standing, name: str) -> str | None:
    """The sidebar's line under the name (None: nothing to say)."""
    n = md_escape(name, 60)
    return {
        Standing.GUEST: "You browse as guest: your first launch gives you a name of your own "
                        "and its link (or type a name now).",
        Standing.RESERVED: _reserved_note(name),
        Standing.TAKEN: f"{n} is taken: you see {n}'s runs read-only. Open your own link, or "
                        "pick another name.",
        Standing.NEW: f"{n} is free: your first launch registers it and gives you your link.",
        Standing.OWN: f"You act as {n} in this browser tab (your key is not in the address: "
                      "after a reload, open your own link again).",
    }.get(s)


def launch_refusal(s: Standing, name: str) -> str | None:
    """Why nothing may be launched under ``name``, or None when it may (NEW registers first)."""
    if s in (Standing.TEACHER, Standing.OWN, Standing.NEW, Standing.GUEST):
        return None  # a guest gets a visitor name first (visitor_name)
    return f"Not launched: {sidebar_note(s, name)}"


def read_only_text(s: Standing, name: str) -> str | None:
    """Why this user may act on no run at all (guest, a reserved or taken name without its key),
    or None."""
    if s in (Standing.GUEST, Standing.RESERVED, Standing.TAKEN):
        return f"Read-only. {sidebar_note(s, name)}"
    return None


def action_help(s: Standing, name: str, action: str) -> str:
    """The help of a disabled cancel / delete / resume button: why this user cannot ``action``."""
    return read_only_text(s, name) or (f"Only those who asked for this run (with their own "
                                        f"link) or the teacher can {action} it.")


def bad_key_text(name: str) -> str:
    """The warning for a link whose key is unknown or belongs to another name."""
    n = md_escape(name, 60)
    return f"This link's key is not valid for {n}: you view {n}'s runs read-only."


def may_act(run: Mapping[str, Any] | Iterable[str] | None, me: str | None,
            teacher: bool) -> bool:
    """Whether the user may cancel, delete or resume ``run`` (its meta, or its requesters' names;
    None for a damaged meta): the teacher always; else ``me``, the name the session's key
    proves, must be one of its requesters. The job service checks again: this only decides
    whether a button is offered."""
    if teacher:
        return True
    if me is None or run is None:
        return False
    names = requesters(run) if isinstance(run, Mapping) else list(run)
    return me in names


def link_query(name: str, key: str) -> str:
    """The query string of a capability link: ``?owner=NAME&key=KEY`` (URL-encoded)."""
    return "?" + urlencode({"owner": name, "key": key})


def full_link(base_url: str | None, name: str, key: str) -> str:
    """The link that brings the user back as ``name`` with ``key``: the page's URL (without its
    query) plus ``link_query``; only the query when the URL is unknown."""
    base = (base_url or "").split("?", 1)[0].split("#", 1)[0]
    return base + link_query(name, key)


def share_link(base_url: str | None, params: Mapping[str, Sequence[str]]) -> str:
    """A link to the page with ``params`` (name -> values, as in the URL) for anyone: who the
    user is (``?owner=``, ``key``) and whatever is named like a secret are left out, so the
    one who opens it browses as themselves. The page's URL without its query, plus the rest."""
    base = (base_url or "").split("?", 1)[0].split("#", 1)[0]
    kept = [(name, value) for name, values in params.items()
            if name not in IDENTITY_PARAMS and not looks_secret(name) and name not in RESERVED
            for value in values]
    return base + ("?" + urlencode(kept) if kept else "")


def visitor_name() -> str:
    """A fresh name for a guest's first launch: 'visitor-' and 4 random digits (the caller
    retries when it is taken). Random, not counted up, so names do not reveal how many came."""
    return f"visitor-{secrets.randbelow(10_000):04d}"
