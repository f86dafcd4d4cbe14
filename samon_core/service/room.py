"""The room: who someone is (owner keys, the teacher token: ``identify``, at the end of this
module) and what the teacher sets for everyone on this server (a pinned message and locks).

Stored in the run store's database (the ``room`` table's one row: the ``Room`` model as JSON,
``runs/database.py``), so every machine of a room reads the same room and a change is one
transaction; a files-era ``.room.json`` is imported once (``runs/importer.py``). Only the teacher
may change it (``set_room`` checks the teacher token); anyone may read it. The locks bind
students, not the teacher, and are enforced where runs are created (``submit``, and
``samon run`` / ``samon claim run``), not only in a page:

* ``presets_only``: a request must name a preset (its configs unchanged, seeds aside) or a claim
  (``preset="claim:<id>"``, as the Claims page and ``claim run`` pass) *and be its runs*: every
  config must be one of that preset's or that claim's (at some size), seeds aside. The name
  alone proves nothing: any config could be sent with ``preset="claim:accuracy"``. This is the
  one place the service reads the claims layer (``samon_core.claims.data``, imported in the
  function): the claims' run sets are data built from the runs layer, and claims.data imports
  nothing of the service;
* ``max_epochs``: at most this many epochs per run (at most the server's ``max_epochs``);
* ``models``: only these models of the catalog.

The room also holds the **class experiment** (``ClassExperiment``: a claim and a size; what
starting, stopping and "add my seed" do is ``samon_core.claims.classroom``) and the **replay**
of one loaded from a file (its runs in the run store ``REPLAY_DIR`` under the root), changed
through ``set_room`` like the rest: only the teacher starts or stops them.

A request that breaks a lock raises ``RoomLocked`` (a ``LimitExceeded``) with one line naming
the lock; the admission checks the locks on the body its own transaction reads
(``room_from_body``). A damaged stored room (a hand edit, or a damaged ``.room.json`` the importer
copied) reads as the default room (no message, no locks) with a logged warning: a broken room
must not stop a class.
"""


from __future__ import annotations

import hmac
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from samon_core.catalog import MODELS
from samon_core.runs.config import RunConfig
from samon_core.runs.database import read_room_body, write_room_body
from samon_core.runs.keys import BadKey
from samon_core.runs.messages import clip
from samon_core.runs.ownerkeys import TooManyNewNames
from samon_core.runs.owners import TEACHER_OWNER, NotAllowed, normalize_owner_name
from samon_core.runs.presets import get_preset, list_presets
from samon_core.runs.store import RunStore, store_or_default
from samon_core.service.admission import LimitExceeded, store_errors
from samon_core.service.settings import Settings, env_name, load_settings

REPLAY_DIR = ".replay"  # the runs of a loaded class experiment: a run store of their own
MESSAGE_MAX_CHARS = 500
CLAIM_PREFIX = "claim:"  # preset of a claim's runs: "claim:<claim id>"
_CLAIM_ID_RE = re.compile(r"[a-z0-9_-]{1,40}")
# Control characters other than newline and tab: a pinned message is plain text.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

log = logging.getLogger(__name__)


def _time_value(value: Any, name: str) -> Any:
    """A time from JSON (strict mode refuses an int for a float; a hand-written file may hold
    one); ``ValueError`` for one that is no time."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, float) and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a time (seconds since 1970)")
    return value


class ClassExperiment(BaseModel):
    """The class experiment the teacher started: every student adds one seed of a claim's runs
    at one size, and the class verdict pools every seed of exactly those configs
    (``samon_core.claims.classroom``). ``stopped_at`` set: no more seeds are added (the verdict
    still shows, from the runs created before it); ``provisional``: runs still training count
    with their latest epoch; ``exported_at``: a replay loaded from a file exported then."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    claim: str = Field(description="The claim's id (samon_core.claims.CLAIM_IDS).")
    size: str = Field(description="The claim's size (cpu, gpu or paper).")
    started_at: float = Field(description="When the teacher started it (unix time).")
    stopped_at: float | None = Field(None, description="When the teacher stopped it.")
    provisional: bool = Field(False, description="Runs still training count (provisionally).")
    exported_at: float | None = Field(None, description="A replay: when it was exported.")

    @field_validator("claim")
    @classmethod
    def _claim(cls, value: str) -> str:
        from samon_core.claims.data import BY_ID  # data only; see the module docstring

        if _CLAIM_ID_RE.fullmatch(value) is None or value not in BY_ID:
            raise ValueError(f"unknown claim {clip(value)}; one of {', '.join(BY_ID)}")
        return value

    @field_validator("size")
    @classmethod
    def _size(cls, value: str) -> str:
        from samon_core.claims.runsets import SIZES  # data only

        if value not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}; got {clip(value)}")
        return value

    @field_validator("started_at", "stopped_at", "exported_at", mode="before")
    @classmethod
    def _times(cls, value: Any, info: Any) -> Any:
        return _time_value(value, info.field_name)

    @property
    def running(self) -> bool:
        """Students may add seeds (started, not stopped, not a replay)."""
        return self.stopped_at is None and self.exported_at is None


class Room(BaseModel):
    """The room's shared state. Frozen; ``Room()`` is a room without message or locks."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    message: str = Field("", max_length=MESSAGE_MAX_CHARS,
                         description="Message pinned for the room (plain text).")
    pinned_at: float | None = Field(None, description="When the message was pinned (unix time).")
    presets_only: bool = Field(False, description="Students may launch only presets and claims.")
    max_epochs: int | None = Field(None, ge=1, description="Most epochs per run (None: any).")
    models: tuple[str, ...] | None = Field(
        None, description="Models students may train (None: every model the server allows).")
    experiment: ClassExperiment | None = Field(
        None, description="The class experiment (None: none started).")
    replay: ClassExperiment | None = Field(
        None, description="A class experiment loaded from a file (its runs: REPLAY_DIR).")

    @field_validator("message")
    @classmethod
    def _plain_text(cls, value: str) -> str:
        if _CONTROL_RE.search(value):
            raise ValueError("the message must be plain text (no control characters)")
        return value

    @field_validator("pinned_at", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        return _time_value(value, "pinned_at")

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError("models must be a non-empty list of model names (or None: any)")
        unknown = [m for m in value if m not in MODELS]
        if unknown:
            raise ValueError(f"unknown model {clip(unknown[0])}; the models are "
                             f"{', '.join(MODELS)}")
        return tuple(dict.fromkeys(value))


class RoomLocked(LimitExceeded):
    """A request that one of the teacher's room locks forbids (``limit`` is the lock's name)."""

    @staticmethod
    def describe(limit: str, value: Any, detail: str, outcome: str) -> str:
        return f"{detail}; {outcome}"


def room_from_body(body: Any) -> Room:
    """The room a stored body (``database.room_body``: a dict, or None when never set) holds;
    the default room, with a logged warning, for a damaged one."""
    if body is None:
        return Room()
    try:
        return Room.model_validate(body)
    except (ValueError, TypeError) as exc:  # ValidationError is a ValueError
        log.warning("the stored room is damaged, so the room has no message and no locks: %s",
                    clip(" ".join(str(exc).split()), 300))
        return Room()


def read_room(store: RunStore | None = None) -> Room:
    """The room as the teacher set it; the default room when there is none, or (with a logged
    warning) when the stored one is damaged (not JSON, not a room)."""
    return room_from_body(read_room_body(store_or_default(store).engine))


def _check_against_settings(room: Room, s: Settings) -> None:
    if room.max_epochs is not None and s.max_epochs and room.max_epochs > s.max_epochs:
        raise ValueError(f"the room's max_epochs ({room.max_epochs}) is above the server's "
                         f"max_epochs ({s.max_epochs})")
    if room.models is not None and s.allowed_models:
        outside = [m for m in room.models if m not in s.allowed_models]
        if outside:
            raise ValueError(f"model {clip(outside[0])} is not among the server's allowed "
                             f"models ({', '.join(s.allowed_models)})")


def set_room(room: Room, *, teacher_token: str | SecretStr | None,
             store: RunStore | None = None, settings: Settings | None = None) -> Room:
    """Replace the room (the teacher only: ``NotAllowed`` without the right token). ``ValueError``
    when a lock is wider than the server's own limits. Returns the room stored."""
    store = store_or_default(store)
    s = settings or load_settings()
    if not isinstance(room, Room):
        raise TypeError(f"room must be a Room, got {type(room).__name__}")
    if not identify(teacher_token=teacher_token, store=store, settings=s).is_teacher:
        raise NotAllowed("only the teacher (with the teacher token) can change the room")
    _check_against_settings(room, s)
    write_room_body(store.engine, room.model_dump(mode="json"), now=store.clock())
    return room


def _same_ignoring_seed(a: RunConfig, b: RunConfig) -> bool:
    return a.replace(seed=0).config_hash() == b.replace(seed=0).config_hash()


def _preset_problem(configs: list[RunConfig], preset: str | None) -> str | None:
    """Why the request is not a preset's or a claim's runs (None when it is)."""
    if preset is None or not isinstance(preset, str):
        return "the teacher allows only presets and claims"
    offered = _offered(preset)
    if offered is None:
        return f"the teacher allows only presets and claims ({clip(preset)} is neither)"
    if any(not any(_same_ignoring_seed(c, p) for p in offered) for c in configs):
        return f"the teacher allows only presets and claims, unchanged ({preset!r} was changed)"
    return None


def _offered(preset: str) -> list[RunConfig] | None:
    """The configs (any seed) the preset or claim ``preset`` runs, or None when it is neither."""
    if preset.startswith(CLAIM_PREFIX):
        claim_id = preset[len(CLAIM_PREFIX):]
        if _CLAIM_ID_RE.fullmatch(claim_id) is None:
            return None
        from samon_core.claims.data import BY_ID  # data only; see the module docstring
        from samon_core.claims.runsets import SIZES

        claim = BY_ID.get(claim_id)
        if claim is None:
            return None
        return [c for size in SIZES for c in claim.runs(size).values()]
    if preset not in list_presets():
        return None
    return list(get_preset(preset).configs.values())


def room_problems(room: Room, configs: Iterable[RunConfig], preset: str | None
                  ) -> list[tuple[str, Any, str]]:
    """(lock, value, one line) for every lock the request breaks, in a fixed order."""
    configs = list(configs)
    out: list[tuple[str, Any, str]] = []
    if room.presets_only and (why := _preset_problem(configs, preset)):
        out.append(("presets_only", True, why))
    longest = max((c.epochs for c in configs), default=0)
    if room.max_epochs is not None and longest > room.max_epochs:
        out.append(("max_epochs", room.max_epochs,
                    f"the teacher allows at most {room.max_epochs} epochs (this request asks "
                    f"for {longest})"))
    if room.models is not None:
        other = next((c.model for c in configs if c.model not in room.models), None)
        if other is not None:
            out.append(("models", room.models,
                        f"the teacher allows only the models {', '.join(room.models)} (not "
                        f"{clip(other)})"))
    return out


def check_room(room: Room, configs: Iterable[RunConfig], preset: str | None, *,
               outcome: str = "nothing was queued") -> None:
    """``RoomLocked`` naming the first lock the request breaks (for students; the teacher is
    exempt, which the caller decides)."""
    problems = room_problems(room, configs, preset)
    if problems:
        raise RoomLocked(*problems[0], outcome=outcome)


# --- who someone is: owner keys and the teacher token --------------------------------------------
# Who is asking: owner keys and the teacher token, resolved to an ``Identity``.
#
# The job API used to trust a name (``cancel(run_id, owner="alice")``), so anyone who typed another
# student's name could cancel their runs. Now a caller proves who they are:
#
# * an **owner key** (``owner_key=``), given once to whoever registered the name
#   (``register_owner``), resolves to that owner (``RunStore.owner_of_key``: the digests in the
#   database, runs/ownerkeys.py);
# * the **teacher token** (``teacher_token=``; the ``teacher_token`` setting) makes the caller the
#   teacher, who may act on every run.
#
# Acting on a run (cancel, delete, resume, slices) needs one of the two. Submitting records a name
# (``owner=``): a registered name needs its key, the name ``teacher`` needs the token, and an
# unregistered name needs nothing (the CLI, scripts), but its runs can then be cancelled only by
# the teacher, and the name can no longer be registered (runs/ownerkeys.py says why). The token is
# compared with ``hmac.compare_digest`` and never appears in a message, a repr or a log.
#
# Every name is taken in its normal form (``runs.owners.normalize_owner_name``): ``Alice``,
# ``alice `` and full-width ``Ａlice`` are ``alice``; a name with an invisible character or a
# letter of another alphabet is refused. New names per hour are bounded by the
# ``max_new_names_per_hour`` setting (``register_owner``).


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
        with store_errors("read the owner keys", store):  # one line, as for a write
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
        with store_errors("register the name", store):  # full, read-only: one line
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
