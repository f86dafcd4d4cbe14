"""Who is asking: owner keys and the teacher token, resolved to an ``Identity``.

The job API used to trust a name (``cancel(run_id, owner="alice")``), so anyone who typed another
student's name could cancel their runs. Now a caller proves who they are:

* an **owner key** (``owner_key=``), given once to whoever registered the name
  (``register_owner``), resolves to that owner (``RunStore.owner_of_key``: the digests in the
  database, runs/ownerkeys.py);
* the **teacher token** (``teacher_token=``; the ``teacher_token`` setting) makes the caller the
  teacher, who may act on every run.

Acting on a run (cancel, delete, resume, slices) needs one of the two. Submitting records a name
(``owner=``): a registered name needs its key, the name ``teacher`` needs the token, and an
unregistered name needs nothing (the CLI, scripts), but its runs can then be cancelled only by
the teacher, and the name can no longer be registered (runs/ownerkeys.py says why). The token is
compared with ``hmac.compare_digest`` and never appears in a message, a repr or a log.

Every name is taken in its normal form (``runs.owners.normalize_owner_name``): ``Alice``,
``alice `` and full-width ``Ａlice`` are ``alice``; a name with an invisible character or a
letter of another alphabet is refused. New names per hour are bounded by the
``max_new_names_per_hour`` setting (``register_owner``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from pydantic import SecretStr

from samon_core.runs.keys import BadKey
from samon_core.runs.messages import clip
from samon_core.runs.ownerkeys import TooManyNewNames
from samon_core.runs.owners import TEACHER_OWNER, NotAllowed, normalize_owner_name
from samon_core.runs.store import RunStore, store_or_default
from samon_core.service.admission import store_errors
from samon_core.service.limits import LimitExceeded
from samon_core.service.settings import Settings, env_name, load_settings


@dataclass(frozen=True)
class Identity:
    """The caller: ``owner`` is the name their owner key proves (None without a key);
    ``is_teacher`` is True when they gave the right teacher token."""

    owner: str | None = None
    is_teacher: bool = False


def _secret_text(token: str | SecretStr | None) -> str | None:
    """The token's text, or None when none was given (an empty field counts as none)."""
    text = token.get_secret_value() if isinstance(token, SecretStr) else token
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str):
        raise NotAllowed(f"the teacher token must be a string, not {type(text).__name__}")
    return text.strip()


def is_teacher(token: str | SecretStr | None, settings: Settings | None = None) -> bool:
    """Whether ``token`` is this server's teacher token (False when none is configured)."""
    s = settings or load_settings()
    given = _secret_text(token)
    if given is None or s.teacher_token is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"),
                               s.teacher_token.get_secret_value().strip().encode("utf-8"))


def _check_teacher(token: str, s: Settings) -> None:
    if s.teacher_token is None:
        raise NotAllowed("this server has no teacher token (set the teacher_token setting, "
                         f"${env_name('teacher_token')}), so nobody can act as the teacher")
    if not is_teacher(token, s):
        raise NotAllowed("the teacher token is wrong")


def _owner_of(owner_key: str, store: RunStore) -> str:
    try:
        with store_errors("read the owner keys", store.root):  # one line, as for a write
            name = store.owner_of_key(owner_key)
    except BadKey as exc:
        raise NotAllowed(f"this is not an owner key: {exc}") from None
    if name is None:
        raise NotAllowed("this owner key is not known on this server (keys are per server and "
                         "per run store); register your name to get one")
    return name


def identify(owner_key: str | None = None, teacher_token: str | SecretStr | None = None, *,
             store: RunStore | None = None, settings: Settings | None = None) -> Identity:
    """The caller that ``owner_key`` and ``teacher_token`` prove. Either may be None (or empty);
    a given one must be right: ``NotAllowed`` for an unknown key or a wrong token, never a
    fallback to less."""
    s = settings or load_settings()
    token = _secret_text(teacher_token)
    if owner_key is not None and not isinstance(owner_key, str):
        raise NotAllowed(f"an owner key must be a string, not {type(owner_key).__name__}")
    key = (owner_key.strip() or None) if owner_key is not None else None
    if token is not None:
        _check_teacher(token, s)
    owner = _owner_of(key, store_or_default(store)) if key is not None else None
    return Identity(owner=owner, is_teacher=token is not None)


def register_owner(name: str, *, store: RunStore | None = None,
                   settings: Settings | None = None) -> str:
    """Register the owner name ``name`` (in normal form) and return its key, this once (only its
    digest is stored). ``ValueError`` for an invalid name; ``NameTaken`` when the name already
    has a key, is reserved, or already owns runs; ``LimitExceeded`` past the
    ``max_new_names_per_hour`` setting; ``StoreUnavailable`` (one line) when the store cannot be
    written."""
    s = settings or load_settings()
    store = store_or_default(store)
    try:
        with store_errors("register the name", store.root):  # full, read-only: one line
            return store.register_owner(
                name, max_per_hour=s.max_new_names_per_hour)
    except TooManyNewNames as exc:
        raise LimitExceeded("max_new_names_per_hour", exc.limit, str(exc),
                            outcome="no name was registered") from None


def require_someone(ident: Identity, run_id: str, action: str) -> None:
    """``NotAllowed`` unless the caller gave an owner key or the teacher token."""
    if ident.owner is None and not ident.is_teacher:
        raise NotAllowed(f"{action} of run {clip(run_id)} needs its owner's key (owner_key=...) "
                         "or the teacher token (teacher_token=...)")


def authorize_owner(owner: str, owner_key: str | None = None,
                    teacher_token: str | SecretStr | None = None, *,
                    store: RunStore | None = None, settings: Settings | None = None) -> Identity:
    """The caller, if they may act under the name ``owner`` (submit, train from the CLI; taken
    in normal form, ``ValueError`` for an invalid one): the teacher may use any name; ``teacher``
    needs the teacher token; a registered name needs its key; an unregistered name needs
    nothing, but a key given must be that name's."""
    store = store_or_default(store)
    owner = normalize_owner_name(owner)
    ident = identify(owner_key, teacher_token, store=store, settings=settings)
    if ident.is_teacher:
        return ident
    if owner == TEACHER_OWNER:
        raise NotAllowed(f"the owner name {clip(owner)} needs the teacher token")
    if ident.owner is not None and ident.owner != owner:
        raise NotAllowed(f"this owner key belongs to another name than {clip(owner)}")
    if ident.owner is None and store.is_registered(owner):
        raise NotAllowed(f"the name {clip(owner)} is registered: acting under it needs its owner "
                         "key (its owner's link), or pick another name")
    return ident
