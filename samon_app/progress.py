"""Where a run stands, in words: active or not, progress, the step it is at and the time left,
and what happened to a run that did not finish (failed, diverged, interrupted, cancelled).

The time left of a training run comes from its step records (one every ``log_every_s``, 2 s by
default), not from the epoch records: seconds so far per step, times the steps to go, counted
down from the moment the record was written. So it moves every few seconds from the first
record on, instead of once per epoch.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from typing import Any

from samon_app.formatting import finite, format_duration
from samon_app.reader import RunData, RunInfo
from samon_core.catalog import DATASET_SIZES
from samon_core.catalog.methods import method_color
from samon_core.runs.states import ACTIVE_STATES, STOPPED_STATES, UNKNOWN_STATE, RunState

# The status key ``replay.replay_infos`` sets on the finished runs it redraws as if live.
REPLAY_FLAG = "replay"


def is_active(state: str) -> bool:
    """Queued or training: the run still changes (the Live page keeps polling)."""
    return state in ACTIVE_STATES


def _whole(value: Any) -> int | None:
    return int(value) if finite(value) and value >= 0 else None


def total_steps(info: RunInfo) -> int | None:
    """Optimizer steps of the whole run: epochs x full batches of its training images (the
    training loader drops the last partial batch); else from the status (its step over its
    progress); None when neither says."""
    cfg, status = info.config, info.status
    epochs, batch = _whole(cfg.get("epochs")), _whole(cfg.get("batch_size"))
    sizes = DATASET_SIZES.get(str(cfg.get("dataset")))
    if epochs and batch and sizes:
        subset = _whole(cfg.get("train_subset"))
        n_train = min(subset, sizes[0]) if subset else sizes[0]
        if n_train // batch:
            return epochs * (n_train // batch)
    step, progress = status.get("step"), status.get("progress")
    if finite(step) and finite(progress) and 0 < progress <= 1 and step > 0:
        return round(step / progress)
    return None


def step_eta(info: RunInfo, data: RunData | None, now: float | None = None
             ) -> tuple[int, int, float] | None:
    """(step, total steps, seconds left) of a training run from its latest step record: the
    seconds it has trained per step so far (evaluations and probes of the epochs done
    included; in lockstep the group's clock, so the mates' steps too) times the steps to go,
    less the seconds since that step's status was written (down to 0; then ``overdue_s``
    counts on, so the text never rests on one value while the run works). None without
    a step record or a known number of steps."""
    if data is None:
        return None
    steps, times = data.series("step", "step", "time")
    total = total_steps(info)
    if not steps or total is None or steps[-1] <= 0 or times[-1] <= 0:
        return None
    step = int(steps[-1])
    left = max(0, total - step) * times[-1] / step
    updated = _step_written(info)
    if finite(updated):
        now = time.time() if now is None else now
        left -= max(0.0, now - float(updated))
    return step, total, max(0.0, left)


def _step_written(info: RunInfo):
    """When the status of the run's latest step was written: ``step_at`` (an epoch's end
    rewrites ``updated`` but not it), else ``updated`` (runs trained before it existed)."""
    step_at = info.status.get("step_at")
    return step_at if finite(step_at) else info.status.get("updated")


def overdue_s(info: RunInfo, data: RunData | None, now: float | None = None) -> float:
    """Seconds a training run is past the time left it was estimated to have when its status
    was last written (0 when it is not): an epoch's evaluation or a slow step. Said in words
    then, so the bar keeps moving instead of resting on its last '5 s'."""
    updated = _step_written(info)
    at_update = step_eta(info, data, now=float(updated)) if finite(updated) else None
    if at_update is None:
        return 0.0
    now = time.time() if now is None else now
    return max(0.0, now - float(updated) - at_update[2])


def format_left(seconds: float) -> str:
    """Time left, fine enough to move while one watches: '40 s', '3 min 25 s' (5-second
    steps) under an hour, ``format_duration`` above."""
    s = max(0.0, float(seconds))
    if s >= 3600:
        return format_duration(s)
    s = 5 * round(s / 5)
    if s < 90:
        return f"{max(5, s)} s"
    m, rest = divmod(s, 60)
    return f"{m} min {rest:02d} s" if rest else f"{m} min"


def run_progress(info: RunInfo, data: RunData | None = None,
                 now: float | None = None) -> dict[str, Any]:
    """Progress line of a run: fraction done, text (for a training run: epochs done, the step
    it is at and the time left, from ``data``'s step records when it has any, else the
    status's per-epoch ETA), whether it is active, and what happened to a run that did not
    finish (``problem``)."""
    status, cfg = info.status, info.config
    state = info.state
    epochs = cfg.get("epochs") or 0
    epoch = status.get("epoch") or 0
    progress = status.get("progress")
    if not isinstance(progress, (int, float)) or not math.isfinite(progress):
        progress = (epoch / epochs) if epochs else 0.0
    if state == RunState.FINISHED:
        progress = 1.0
    progress = min(1.0, max(0.0, float(progress)))
    eta = status.get("eta_s")
    text = {
        RunState.QUEUED: "waiting in the queue",
        RunState.RUNNING: (f"{max(0, min(epoch, epochs))} of {epochs} epochs done" if epochs
                           else "running"),
        RunState.FINISHED: f"finished ({epochs} epochs)",
        RunState.CANCELLED: f"cancelled after {epoch} of {epochs} epochs",
        RunState.FAILED: "failed",
        RunState.DIVERGED: "diverged",
        RunState.INTERRUPTED: f"interrupted after {epoch} of {epochs} epochs",
    }.get(state, state)
    live = step_eta(info, data, now) if state == RunState.RUNNING else None
    if live is not None and live[0] >= live[1]:  # every step done: the last evaluation runs
        text += f" · step {live[0]:,} of {live[1]:,} · evaluating the last epoch"
    elif live is not None:
        step, total, eta = live
        late = overdue_s(info, data, now)
        if late <= 0:
            when = f"about {format_left(eta)} left"
        else:  # the estimate ran out: count on, so the bar never rests (5-second steps)
            when = ("just past its estimate" if late < 2.5
                    else f"{format_left(late)} past its estimate")
        text += f" · step {step:,} of {total:,} · {when}"
    elif state == RunState.RUNNING and isinstance(eta, (int, float)) and math.isfinite(eta):
        text += f" · about {format_duration(eta)} left"
    elif state == RunState.RUNNING:
        text += " · starting: the first steps are on their way"
    problem = None
    message = str(status.get("message") or "").strip()
    if state == RunState.FAILED:
        problem = f"This run failed: {message or 'the worker reported an error.'}"
    elif state == RunState.DIVERGED:
        problem = message or (
            "The loss became NaN or infinite, so training stopped. Try a smaller learning rate "
            "or rho."
        )
    elif state == RunState.INTERRUPTED:
        problem = (
            "The worker training this run stopped (a crash or a restart) "
            + (f"({message}) " if message else "")
            + "before it finished. It continues from its last checkpoint when it is resumed."
        )
    elif state == RunState.CANCELLED:
        problem = message and f"Cancelled: {message}" or "This run was cancelled."
    elif state == UNKNOWN_STATE:
        problem = str(status.get("error") or "The run's status file cannot be read.")
    elif state == RunState.FINISHED:  # finished, but e.g. the loss never fell: say so
        warning = (info.summary or {}).get("warning") or message
        problem = f"Finished with a warning: {warning}" if warning else None
    return {
        "progress": progress,
        "text": text,
        "eta_s": eta if state == RunState.RUNNING else None,
        "active": is_active(state),
        "problem": problem,
        "traceback": status.get("traceback"),
    }



# ---------------------------------------------------------------------------------------------
# progress bars in the method's colour, and what an empty chart says
# ---------------------------------------------------------------------------------------------


def bar_key(info: RunInfo) -> str:
    """The key of the container around a run's progress bar (Streamlit gives it the CSS class
    ``st-key-<key>``, which ``bar_css`` colours)."""
    return "bar_" + re.sub(r"[^A-Za-z0-9_-]", "_", info.run_id)


def colored_bars_css(colors: dict[str, str]) -> str:
    """A <style> block that draws the progress bar inside each container key of ``colors`` in
    its colour (Streamlit's bar takes the theme colour otherwise: every bar SAM-ON orange).
    Keys must be container keys as Streamlit writes them (letters, digits, '-', '_'); colours
    that are not '#rgb'-style hex are left out."""
    rules = [
        f".st-key-{key} [data-testid='stProgressBarTrack'] > div "
        f"{{ background-color: {color} !important; }}"
        for key, color in colors.items()
        if re.fullmatch(r"[A-Za-z0-9_-]+", key) and re.fullmatch(r"#[0-9a-fA-F]{3,8}",
                                                                 color or "")
    ]
    return "<style>\n" + "\n".join(rules) + "\n</style>"


def bar_css(infos: Sequence[RunInfo]) -> str:
    """``colored_bars_css`` for the runs' bars (``bar_key``), each in its method's colour."""
    return colored_bars_css({bar_key(i): i.color for i in infos})


STOPPED_COLOR = "#adb5bd"  # a run that ended without finishing: grey, whatever its method


def method_bar_color(method: str, state: str) -> str:
    """The colour of a run's progress bar: its method family's (``method``: 'base', 'all',
    'norm', ...), grey once it stopped without finishing."""
    if state in STOPPED_STATES or state == UNKNOWN_STATE:
        return STOPPED_COLOR
    return method_color(method)


PER_EPOCH, PER_STEP = "per epoch", "per step"


def default_resolution(infos: Sequence[RunInfo], data: dict[str, RunData]) -> str:
    """What the accuracy charts show unless the user chose: per step until some run of the
    comparison has ended its first epoch (so there is something to watch from the first step
    record on, not "no epoch records yet" for a whole epoch), per epoch from then on."""
    if any(d.counts.get("epoch", 0) for d in data.values()):
        return PER_EPOCH
    return PER_STEP if any(is_active(i.state) for i in infos) else PER_EPOCH


def empty_chart_note(infos: Sequence[RunInfo]) -> str:
    """What an empty chart of these runs says: they are coming, or why none will (a replay
    of finished runs, ``replay.replay_infos``, trains nothing: it reaches them)."""
    states = {i.state for i in infos}
    if any(i.status.get(REPLAY_FLAG) for i in infos):
        return "the chart fills in as the replay reaches the records."
    if states & ACTIVE_STATES:
        return "the chart fills in as the runs train."
    if states == {RunState.CANCELLED}:
        return "the runs were cancelled before they recorded any."
    if states and states <= STOPPED_STATES:
        return "the runs ended before they recorded any (see above)."
    return "none were recorded."


def sharpness_note(infos: Sequence[RunInfo]) -> str:
    """When the sharpness probe runs for these runs (their ``sharpness_every``); for a replay,
    when it ran."""
    every = sorted({int(i.config.get("sharpness_every") or 0) for i in infos})
    replay = any(i.status.get(REPLAY_FLAG) for i in infos)
    if any(e > 0 for e in every):
        n = min(e for e in every if e > 0)
        when = "after every epoch" if n == 1 else f"every {n} epochs"
        if replay:
            return (f"the probe ran {when} and at the end of training; the replay shows each "
                    "probe when it reaches it.")
        return f"the probe runs {when} and at the end of training; the chart fills in then."
    if replay:
        return "these runs probed only at the end of training: the replay shows it at its end."
    return "these runs probe only at the end of training."


# ---------------------------------------------------------------------------------------------
# the workers, in one line (the sidebar)
# ---------------------------------------------------------------------------------------------


def worker_busy(worker: dict[str, Any]) -> bool:
    """Whether a worker's heartbeat record says it trains: a run, or a lockstep group of runs
    (``run_id`` is then the first of them)."""
    return bool(worker.get("run_id") or worker.get("run_ids")) or worker.get("state") == "training"


def workers_line(workers: Sequence[dict[str, Any]], devices: Sequence[str], training: int) -> str:
    """'1 worker (cpu), 1 busy · 3 runs training': the live workers (``workers``, their
    ``devices``), how many of them train, and how many runs the store has training (a worker
    trains a lockstep group's runs together, so there can be more runs than busy workers)."""
    n = len(workers)
    busy = sum(1 for w in workers if worker_busy(w))
    where = ", ".join(sorted(set(devices))) or "?"
    text = f"{n} worker{'s' if n != 1 else ''} ({where}), {busy} busy"
    if training:
        text += f" · {training} run{'s' if training != 1 else ''} training"
    return text
