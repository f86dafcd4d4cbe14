"""Who may cancel or delete a run: its requesters (``meta.json``), or a teacher.

An identical request shares a run (``samon_core.service.submit``), so a run can belong to several
people: ``meta["requesters"]`` lists every owner who asked for it (older runs without the list
belong to ``meta["owner"]`` alone). Cancel and delete act for a requester only, and on a shared
run they only *detach* that requester; the run itself is cancelled or deleted when no requester is
left. A caller who is not a requester gets ``NotAllowed``. ``is_teacher=True`` is the hook for a
lab's administrator: it acts on the whole run at once; deciding who is a teacher is the caller's
business (the service checks the teacher token and owner keys: ``samon_core.service.room``).
Pure functions on the meta dict; the store applies them under its lock.

Also here: the ONE rule of owner names (``normalize_owner_name``), which every entry point
calls (submit, register, the CLI, the app's name box), and the reserved names (``RESERVED_NAMES``:
the teacher's, ``guest``, the app's shared browsing name, and ``cli``, the owner of ``samon run``
without ``--owner``), which nobody can register (ownerkeys.py).

**One name is one person.** A name is compared only in its normal form: NFKC (full-width
``Ａlice`` is ``alice``), case-folded, surrounding blanks removed, blanks inside turned into one
``-``. After that only ASCII letters and digits and ``. _ @ -`` may remain, 1-40 of them, starting
with a letter or digit. Why ASCII only: Unicode has letters that look like Latin ones (Cyrillic
``а``, Greek ``ο``) and characters that show nothing (zero-width space, bidi controls); a list of
the confusable ones would always be incomplete, while "nothing but ASCII after NFKC" is one line
that a reader can check and that makes two names that look alike *be* alike. The bound of 40 and
the ``@`` and ``.`` are the old rule's, so every name registered before still resolves. Names
stored before this rule (``Alice`` in a meta.json or the key file) are normalised when read
(``owner_name_or_raw``), so they stay their owner's; a stored text that is no name at all (a
control character, say) is kept as it is and matches no key: only the teacher acts on it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from samon_core.runs.files import META_FILE
from samon_core.runs.messages import clip

DETACHED = "detached"  # what cancel / delete return when only the caller was removed
TEACHER_OWNER = "teacher"  # the teacher's name: needs the teacher token, never registered
GUEST_OWNER = "guest"  # the app's name for whoever typed none: shared by all, so nobody's own
CLI_OWNER = "cli"  # the owner of `samon run` without --owner: reserved, so only the teacher acts
# A reserved name -> why nobody can register it (normal form: normalize_owner_name).
RESERVED_NAMES = {
    TEACHER_OWNER: "the teacher acts with the teacher token",
    GUEST_OWNER: "everyone who has typed no name browses as guest",
    CLI_OWNER: "it owns the runs started on the server's command line without --owner; only the "
               "teacher manages them",
}
OWNER_NAME_MAX_CHARS = 40
# An owner name in normal form (fullmatch, not match with "$": "$" also matches before a trailing
# newline).
OWNER_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._@-]{0,39}")
_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._@-")
# Text this long is no name: refused before any normalisation work (NFKC can grow a text).
_RAW_MAX_CHARS = 4 * OWNER_NAME_MAX_CHARS
# Unicode categories that show nothing or control the display: controls, format characters
# (zero-width space, bidi overrides), private use, surrogates, unassigned, line separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
_RULE = ("a name is 1-40 letters a-z, digits and . _ @ -, starting with a letter or digit (case "
         "and surrounding blanks do not count; a blank inside becomes '-')")


class NotAllowed(ValueError):
    """The caller may not do this (not one of the run's requesters, an unknown owner key, a wrong
    teacher token)."""


class BadOwnerName(ValueError):
    """Text that is no owner name; ``reason`` says why without quoting it."""

    def __init__(self, name: object, reason: str):
        self.reason = reason
        super().__init__(f"invalid owner name {clip(name)}: {reason}")


class NameTaken(ValueError):
    """The owner name already has a key, owns runs already, or is reserved."""


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}{f' {name}' if name else ''}"


def _problem(text: str) -> str | None:
    """Why ``text`` (stripped, NFKC, case-folded, blanks joined) is no owner name, or None."""
    if not text:
        return "it is empty"
    bad = next((ch for ch in text if ch not in _ALLOWED), None)
    if bad is not None:
        if bad.isascii():
            return f"{bad!r} is not allowed in a name"
        return (f"{_describe(bad)} is not an ASCII letter (letters from other alphabets can look "
                "exactly like Latin ones, so names are ASCII only)")
    if len(text) > OWNER_NAME_MAX_CHARS:
        return f"it is {len(text)} characters long (at most {OWNER_NAME_MAX_CHARS})"
    if not text[0].isalnum():
        return "it must start with a letter or digit"
    return None


def normalize_owner_name(name: object) -> str:
    """The normal form of the owner name ``name`` (see the module docstring), or
    ``BadOwnerName`` (a ``ValueError``) saying why it is none: not a string, empty, too long, an
    invisible or control character, a non-ASCII letter, ``<`` and the like.
    ``normalize_owner_name(" Alice ") == "alice"``."""
    if not isinstance(name, str):
        raise BadOwnerName(name, f"an owner name is text, not {type(name).__name__}")
    problem = None
    if len(name) > _RAW_MAX_CHARS:
        problem = f"it is {len(name)} characters long (at most {OWNER_NAME_MAX_CHARS})"
    else:
        text = name.strip()
        invisible = next((ch for ch in text if unicodedata.category(ch) in _INVISIBLE), None)
        if invisible is not None:
            problem = f"it holds an invisible or control character ({_describe(invisible)})"
        else:
            # NFKC again after casefold: casefold can leave a text that is not in NFKC.
            text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
            text = re.sub(r"\s+", "-", text.strip())
            problem = _problem(text)
    if problem is not None:
        raise BadOwnerName(name, f"{problem}; {_RULE}")
    return text


def check_owner_name(name: object) -> str:
    """``name`` in normal form (``normalize_owner_name``); kept under this name for callers."""
    return normalize_owner_name(name)


def owner_name_or_raw(name: object) -> str | None:
    """A stored owner name as the service compares it: its normal form, or the text as stored
    when it is no valid name (it then matches no key); None for what is not text."""
    if not isinstance(name, str):
        return None
    try:
        return normalize_owner_name(name)
    except BadOwnerName:
        return name


def why_reserved(name: str) -> str | None:
    """Why ``name`` is reserved (``RESERVED_NAMES``, in any spelling that normalises to one:
    'Teacher' would fool a reader too), or None when it is not."""
    return RESERVED_NAMES.get(owner_name_or_raw(name) or "")


def is_reserved(name: str) -> bool:
    """Whether ``name`` is reserved: the teacher's, ``guest`` or ``cli`` (``RESERVED_NAMES``)."""
    return why_reserved(name) is not None


def is_teacher_name(name: str) -> bool:
    """Whether ``name`` is the teacher's (in any spelling), the one name the teacher token acts
    as."""
    return owner_name_or_raw(name) == TEACHER_OWNER


def requesters(meta: Mapping[str, Any]) -> list[str]:
    """The owners who asked for the run, in order, each once, in normal form (a name stored
    before names were normalised, ``Alice``, is ``alice``'s: ``owner_name_or_raw``)."""
    entries = meta.get("requesters")
    if isinstance(entries, list):
        names = [e.get("owner") for e in entries if isinstance(e, Mapping)]
    else:
        names = [meta.get("owner")]
    out: list[str] = []
    for name in names:
        norm = owner_name_or_raw(name)
        if norm is not None and norm not in out:
            out.append(norm)
    return out


def groups_of(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(owner in normal form, group) of every request of the run, each once: who put the run
    into which comparison (older runs without ``requesters``: their ``owner`` and ``group``)."""
    entries = meta.get("requesters")
    if isinstance(entries, list):
        pairs = [(e.get("owner"), e.get("group")) for e in entries if isinstance(e, Mapping)]
    else:
        pairs = [(meta.get("owner"), meta.get("group"))]
    out: list[tuple[str, str]] = []
    for owner, group in pairs:
        norm = owner_name_or_raw(owner)
        if norm is not None and isinstance(group, str) and group and (norm, group) not in out:
            out.append((norm, group))
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
        raise NotAllowed(f"run {clip(run_id)} has a damaged {META_FILE}, so its owner is unknown; "
                         f"only a teacher can {action} it")
    if owner_name_or_raw(owner) not in requesters(meta):
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
    owner = owner_name_or_raw(owner)
    others = [n for n in requesters(meta) if n != owner]
    if not others:
        return None
    new = dict(meta)
    entries = meta.get("requesters")
    if isinstance(entries, list):
        new["requesters"] = [e for e in entries if not (
            isinstance(e, Mapping) and owner_name_or_raw(e.get("owner")) == owner)]
    if owner_name_or_raw(new.get("owner")) == owner:
        new["owner"] = others[0]
    return new
