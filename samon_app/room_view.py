"""The teacher's room as the pages show it: the pinned message's banner, the lines that say
which locks hold, what the locks leave of the Launch form, and the Room page's table of owners.

Pure functions of a ``Room`` (samon_core/service/room.py, where the locks are enforced) and of
the database's run rows (owner, state) and device time per owner (``scheduler.owner_usage``, as
the fair queue counts it); no streamlit, so that each can be tested without a page.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from samon_app.formatting import format_duration
from samon_app.markup import md_escape
from samon_core.runs.config import RunConfig
from samon_core.runs.states import RunState
from samon_core.service.room import MESSAGE_MAX_CHARS, Room, room_problems

# The columns of the owner table: a run's state -> the column that counts it. Diverged runs are
# failures to a teacher; cancelled and interrupted ones are neither.
STATE_COLUMNS: dict[str, str] = {
    RunState.QUEUED: "Queued",
    RunState.RUNNING: "Running",
    RunState.FINISHED: "Finished",
    RunState.FAILED: "Failed",
    RunState.DIVERGED: "Failed",
}
OTHER_COLUMN = "Stopped"
UNKNOWN_OWNER = "(unknown)"  # a run whose meta.json is damaged names nobody


# ---------------------------------------------------------------------------------------------
# the pinned message
# ---------------------------------------------------------------------------------------------


def clean_message(text: str | None) -> str:
    """The text area's message as the room stores it: trimmed, with Windows and old-Mac line
    ends made ``\\n`` (a ``\\r`` is a control character, which the room refuses)."""
    return (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def banner_text(room: Room) -> str | None:
    """The Markdown of the banner every page shows, or None without a pinned message. The
    message is literal text (each line escaped: no link, no HTML, no emphasis), then when it
    was pinned, in the server's local time."""
    lines = [md_escape(line, MESSAGE_MAX_CHARS) for line in room.message.splitlines()
             if line.strip()]
    if not lines:
        return None
    body = "  \n".join(lines)
    if room.pinned_at is None:
        return f"{body}  \n*pinned by the teacher*"
    at = time.strftime("%H:%M", time.localtime(room.pinned_at))
    return f"{body}  \n*pinned by the teacher at {at} (server time)*"


def refusal_text(exc: Exception) -> str:
    """One line saying why the room was not saved (pydantic lists every problem on several
    lines; the first is enough to act on)."""
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        return f"{where}: {message}" if where else message
    return " ".join(str(exc).split()) or type(exc).__name__


# ---------------------------------------------------------------------------------------------
# the locks
# ---------------------------------------------------------------------------------------------


def lock_lines(room: Room) -> list[str]:
    """One plain sentence per lock that holds (empty when the room has none)."""
    out = []
    if room.presets_only:
        out.append("only presets and claims")
    if room.max_epochs is not None:
        out.append(f"at most {room.max_epochs} epoch{'s' if room.max_epochs != 1 else ''} "
                   "per run")
    if room.models is not None:
        out.append(f"only the models {', '.join(room.models)}")
    return out


@dataclass(frozen=True)
class FormLocks:
    """What the room's locks leave of the Launch form: only presets, the most epochs, the
    models the select box offers (None: not locked)."""

    presets_only: bool = False
    max_epochs: int | None = None
    models: tuple[str, ...] | None = None

    def model_options(self, models: Sequence[str]) -> list[str]:
        """The models the select box offers: the allowed ones, in the catalog's order (all of
        them when the lock would leave none, so the form never breaks; submit still refuses)."""
        if self.models is None:
            return list(models)
        return [m for m in models if m in self.models] or list(models)

    def epochs_value(self, value: Any) -> Any:
        """``value`` lowered to the lock (the epochs field must not start above its maximum)."""
        if self.max_epochs is None or not isinstance(value, (int, float)) or isinstance(
                value, bool):
            return value
        return min(value, self.max_epochs)


def binding_room(room: Room, *, is_teacher: bool) -> Room:
    """The room whose locks bind this session: the room itself for a student, the same room
    without locks for the teacher (the server exempts the teacher too)."""
    if not is_teacher:
        return room
    return Room(message=room.message, pinned_at=room.pinned_at)


def form_locks(room: Room) -> FormLocks:
    """What ``room``'s locks leave of the Launch form (pass ``binding_room``'s room)."""
    return FormLocks(room.presets_only, room.max_epochs, room.models)


def _breaks(room: Room, configs: Sequence[RunConfig], preset: str | None) -> str | None:
    """What of a preset's or claim's runs a lock of ``room`` refuses, in a few words for the
    teacher (``room_problems`` decides; None when the launch is allowed)."""
    words = []
    for lock, _value, line in room_problems(room, configs, preset):
        if lock == "max_epochs":
            words.append(f"{max(c.epochs for c in configs)} epochs")
        elif lock == "models":
            words.append("the model " + ", ".join(
                dict.fromkeys(c.model for c in configs if room.models and c.model not in
                              room.models)))
        else:
            words.append(line)
    return " and ".join(words) or None


def blocked_launches(room: Room, sizes: Sequence[str] = ("cpu", "gpu")) -> list[str]:
    """One line per preset, and per claim size, that ``room``'s locks refuse a student, with
    what breaks the lock ("Quick demo ...: 6 epochs"), so that the teacher sees on the Room page
    that a lock of 3 epochs takes the quick demo away from the whole class. Claims are counted
    per size (``sizes``: the ones a class might run)."""
    from samon_core.claims import CLAIMS  # no torch; imported here: only the Room page needs it
    from samon_core.runs.presets import get_preset, list_presets

    out = []
    for name in list_presets():
        preset = get_preset(name)
        why = _breaks(room, list(preset.configs.values()), name)
        if why:
            out.append(f"the preset *{md_escape(preset.title, 200)}* ({why})")
    for size in sizes:
        refused = [(c, why) for c in CLAIMS
                   if (why := _breaks(room, list(c.runs(size).values()), f"claim:{c.id}"))]
        if refused:
            reasons = "; ".join(dict.fromkeys(why for _c, why in refused))
            out.append(f"{len(refused)} of the {len(CLAIMS)} claims at size {size} ({reasons})")
    return out


def launch_problems(room: Room, configs: Iterable[RunConfig], preset: str | None) -> list[str]:
    """One line per lock of ``room`` that launching ``configs`` (as ``preset``, or None for the
    form) would break: the server's own check (``room_problems``), said before the button."""
    return [line for _lock, _value, line in room_problems(room, configs, preset)]


# ---------------------------------------------------------------------------------------------
# the room at a glance
# ---------------------------------------------------------------------------------------------


def owner_rows(rows: Iterable[Mapping[str, Any]], usage: Mapping[str, float]
               ) -> list[dict[str, Any]]:
    """One row per owner: their runs by state (``rows``: each run's ``owner`` and ``state``, as
    ``database.run_rows`` gives them) and the device time they used in the fair queue's window
    (``usage``: owner -> seconds, ``scheduler.owner_usage``: runs trained together by one
    worker count their share of its time), the busiest first."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        owner = str(row.get("owner") or "") or UNKNOWN_OWNER
        counts[owner][STATE_COLUMNS.get(str(row.get("state")), OTHER_COLUMN)] += 1
    seconds = {owner: float(usage.get(owner, 0.0)) for owner in counts}
    columns = [*dict.fromkeys(STATE_COLUMNS.values()), OTHER_COLUMN]
    order = sorted(counts, key=lambda o: (-seconds[o], o))
    return [{"Owner": owner, **{c: counts[owner][c] for c in columns},
             "Device time": format_duration(seconds[owner]) if seconds[owner] else "-"}
            for owner in order]


def queue_counts(rows: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """(runs waiting in the queue, runs training now)."""
    states = Counter(row.get("state") for row in rows)
    return states[RunState.QUEUED], states[RunState.RUNNING]
