"""The room: what the teacher sets for everyone on this server (a pinned message and locks).

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

import logging
import math
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from samon_core.catalog import MODELS
from samon_core.runs.config import RunConfig
from samon_core.runs.database import read_room_body, write_room_body
from samon_core.runs.messages import clip
from samon_core.runs.owners import NotAllowed
from samon_core.runs.presets import get_preset, list_presets
from samon_core.runs.store import RunStore, store_or_default
from samon_core.service.identity import identify
from samon_core.service.limits import LimitExceeded
from samon_core.service.settings import Settings, load_settings

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
