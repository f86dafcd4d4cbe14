"""Which runs of a comparison were trained for someone else, said in one plain sentence.

``service.submit_group`` reuses a finished run whose config (seed included) equals a request, and
shares a queued or running one, recording every requester in ``meta.json["requesters"]``
(``meta["owner"]`` asked first). A student who launches a comparison the teacher already trained
gets finished curves at once and would never know that nothing trained for them: the Live page
says so, from the runs' meta and status as plain dicts (no streamlit here).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from samon_app.formatting import finite
from samon_core.runs.states import RunState


@dataclass(frozen=True)
class Reused:
    """One run of the group that was asked for first by another request."""

    label: str
    method_label: str
    owner: str  # who asked for it first ('' when unknown)
    ended: float | None  # when its training ended (unix time), None while it trains
    recorded: bool  # True: it had finished before the group asked (a recording, no training)


def group_request(metas: Iterable[Mapping[str, Any]], group: str) -> tuple[str, float | None]:
    """Who asked for ``group`` and when (unix time): the earliest request of the group among the
    runs' meta (the run created for it, or a ``requesters`` entry of a reused run)."""
    asks: list[tuple[float, str]] = []
    for meta in metas:
        if meta.get("group") == group and finite(meta.get("created")):
            asks.append((float(meta["created"]), str(meta.get("owner") or "")))
        for req in meta.get("requesters") or []:
            if isinstance(req, Mapping) and req.get("group") == group and finite(req.get("time")):
                asks.append((float(req["time"]), str(req.get("owner") or "")))
    if not asks:
        return "", None
    when, who = min(asks)
    return who, when


def reused_runs(runs: Iterable[Mapping[str, Any]], requester: str,
                created: float | None) -> list[Reused]:
    """The runs (dicts with ``label``, optional ``method_label``, ``meta``, ``status``) that were
    trained for someone else: their first requester is not ``requester``, or they finished
    before the group was ``created``."""
    out = []
    for run in runs:
        meta, status = run.get("meta") or {}, run.get("status") or {}
        first = str(meta.get("owner") or "")
        # 'ended' is written with the final state; 'updated' stands in for status files
        # without it (the final state is the last thing written to a finished run's status)
        finished = status.get("state") == RunState.FINISHED
        ended = status.get("ended", status.get("updated")) if finished else None
        ended = float(ended) if finite(ended) else None
        recorded = ended is not None and created is not None and ended <= created
        if first != requester or recorded:
            label = str(run.get("label") or "")
            out.append(Reused(label, str(run.get("method_label") or label), first, ended,
                              recorded))
    return out


def _names(runs: list[Reused]) -> str:
    """'SGD, SAM-all and SAM-ON', with the number of runs when there are several seeds."""
    labels = list(dict.fromkeys(r.method_label for r in runs))
    text = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"
    return text + (f" ({len(runs)} runs)" if len(runs) > len(labels) else "")


def _clock(t: float | None, day_of: float | None) -> str:
    """' at 08:49' in server time, with the date when it is not the day of ``day_of``."""
    if t is None:
        return ""
    same_day = day_of is not None and (time.localtime(t)[:3] == time.localtime(day_of)[:3])
    return time.strftime(" at %H:%M" if same_day else " at %b %d %H:%M", time.localtime(t))


def _who(owner: str, viewer: str) -> str:
    return "you" if owner == viewer else (owner or "someone")


def recorded_sentence(reused: list[Reused], *, requester: str, viewer: str,
                      created: float | None, n_runs: int) -> str | None:
    """'SGD, SAM-all and SAM-ON were trained by teacher at 08:49 (server time), before you
    asked: you got their recorded runs, nothing was trained for you.' for the runs that had
    finished before the group asked (owners and end times grouped); None when there are none.
    ``n_runs`` is the size of the group: 'nothing was trained' only when all of it was reused."""
    recorded = [r for r in reused if r.recorded]
    if not recorded:
        return None
    parts: dict[tuple[str, str], list[Reused]] = {}
    for r in recorded:
        parts.setdefault((_who(r.owner, viewer), _clock(r.ended, created)), []).append(r)
    (who, clock), runs = next(iter(parts.items()))
    head = f"{_names(runs)} {'were' if len(runs) > 1 else 'was'} trained by {who}{clock}"
    tail = "".join(f", {_names(more)} by {who_}{clock_}"
                   for (who_, clock_), more in list(parts.items())[1:])
    asker = _who(requester, viewer)
    times = " (server time)" if any(clock_ for _, clock_ in parts) else ""
    rest = (f"nothing was trained for {asker}" if len(recorded) >= n_runs
            else "they were not trained again")
    return (f"{head}{tail}{times}, before {asker} asked: {asker} got their recorded runs, "
            f"{rest}.")


def shared_sentence(reused: list[Reused], *, requester: str, viewer: str) -> str | None:
    """The runs another request had already queued (or started) when the group asked: they
    train once, for everyone who asked for them. None when there are none."""
    shared = [r for r in reused if not r.recorded]
    if not shared:
        return None
    owners = list(dict.fromkeys(_who(r.owner, viewer) for r in shared))
    by = owners[0] if len(owners) == 1 else f"{', '.join(owners[:-1])} and {owners[-1]}"
    verb = "were" if len(shared) > 1 else "was"
    return (f"{_names(shared)} {verb} asked for first by {by} and {verb} already queued or "
            f"training when {_who(requester, viewer)} asked: one training serves everyone who "
            "asked for the same run.")
