"""Replaying finished runs: which of their recorded records a replay shows after some wall time.

A student whose comparison reused runs trained earlier gets finished curves at once and never
sees training happen. The Live page can redraw those curves as if live, from the records
already read (no compute): ``elapsed_s`` seconds after play, at ``speed`` times real time, a run
shows the records whose ``time`` (seconds since the run started) is at most
``elapsed_s * speed``. The runs of a lockstep group share one clock, so they advance together.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from samon_app.formatting import finite
from samon_app.progress import REPLAY_FLAG
from samon_app.reader import RunData, RunInfo, build_run_data
from samon_core.runs.states import RunState

REPLAY_SPEEDS = (10, 60, 300)  # the choices offered: times real (training) time


def record_times(records: Sequence[Mapping[str, Any]]) -> list[float]:
    """When each record appears in a replay: its ``time``, raised to the latest time before it.

    Records are appended in the order they were written, so a record without a usable time
    (or with an earlier one, as after a resume) appears together with the record before it
    (at 0 when it comes first). The times never decrease, so a replay always shows a prefix."""
    out: list[float] = []
    latest = 0.0
    for rec in records:
        t = rec.get("time")
        if finite(t):
            latest = max(latest, float(t))
        out.append(latest)
    return out


def replay_records(records: Sequence[Mapping[str, Any]], elapsed_s: float,
                   speed: float) -> tuple[list[Mapping[str, Any]], float]:
    """The records shown ``elapsed_s`` wall seconds into a replay at ``speed`` times real time,
    and the fraction of the run's recorded time shown (1.0 once it is all shown, and for a run
    without records or whose records all have time 0). A negative ``elapsed_s`` counts as 0."""
    if not finite(speed) or speed <= 0:
        raise ValueError(f"the replay speed must be a positive number; got {speed!r}")
    if not isinstance(elapsed_s, (int, float)) or math.isnan(elapsed_s):
        raise ValueError(f"the replay's elapsed time must be a number; got {elapsed_s!r}")
    shown_s = max(0.0, float(elapsed_s)) * float(speed)
    times = record_times(records)
    end = times[-1] if times else 0.0
    n = bisect.bisect_right(times, shown_s)
    fraction = 1.0 if end <= 0.0 or shown_s >= end else shown_s / end
    return list(records[:n]), fraction


def replay_data(data: Mapping[str, RunData], elapsed_s: float,
                speed: float) -> tuple[dict[str, RunData], float]:
    """``replay_records`` for every run of a group: the runs as the charts take them, each cut
    to what the replay shows, and the fraction shown of the group (that of its longest run: the
    replay ends when every run is shown whole)."""
    out: dict[str, RunData] = {}
    fraction = 1.0
    for run_id, run in data.items():
        shown, part = replay_records(run.records, elapsed_s, speed)
        out[run_id] = build_run_data(run_id, list(shown), version=len(shown))
        fraction = min(fraction, part)
    return out, fraction


def replay_infos(infos: Sequence[RunInfo]) -> list[RunInfo]:
    """The runs as a replay shows them: 'running', so that the verdicts on the part shown are
    provisional, as they were during training, and flagged (``progress.REPLAY_FLAG``) so that
    the charts' notes say the replay fills them in (nothing trains). Their worker is dropped:
    runs of one worker that are running count as trained interleaved (``speed.lockstep_sets``),
    which runs trained one after the other were not; the summary's ``lockstep`` still tells
    which were."""
    out = []
    for info in infos:
        status = {k: v for k, v in info.status.items() if k != "worker"}
        status["state"] = RunState.RUNNING.value
        status[REPLAY_FLAG] = True
        out.append(dataclasses.replace(info, state=RunState.RUNNING.value, status=status))
    return out
