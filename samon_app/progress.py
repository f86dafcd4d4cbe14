"""Where a run stands, in words: active or not, progress and ETA, and what happened to a run
that did not finish (failed, diverged, interrupted, cancelled)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from samon_app.formatting import format_duration
from samon_app.reader import RunInfo


def is_active(state: str) -> bool:
    """Queued or training: the run still changes (the Live page keeps polling)."""
    return state in ("queued", "running")


def run_progress(info: RunInfo) -> dict[str, Any]:
    """Progress line of a run: fraction done, text, ETA, whether it is active, and what happened
    to a run that did not finish (``problem``)."""
    status, cfg = info.status, info.config
    state = info.state
    epochs = cfg.get("epochs") or 0
    epoch = status.get("epoch") or 0
    progress = status.get("progress")
    if not isinstance(progress, (int, float)) or not math.isfinite(progress):
        progress = (epoch / epochs) if epochs else 0.0
    if state == "finished":
        progress = 1.0
    progress = min(1.0, max(0.0, float(progress)))
    eta = status.get("eta_s")
    text = {
        "queued": "waiting in the queue",
        "running": f"{max(0, min(epoch, epochs))} of {epochs} epochs done" if epochs else "running",
        "finished": f"finished ({epochs} epochs)",
        "cancelled": f"cancelled after {epoch} of {epochs} epochs",
        "failed": "failed",
        "diverged": "diverged",
        "interrupted": f"interrupted after {epoch} of {epochs} epochs",
    }.get(state, state)
    if state == "running" and isinstance(eta, (int, float)) and math.isfinite(eta):
        text += f" · about {format_duration(eta)} left"
    problem = None
    message = str(status.get("message") or "").strip()
    if state == "failed":
        problem = f"This run failed: {message or 'the worker reported an error.'}"
    elif state == "diverged":
        problem = message or (
            "The loss became NaN or infinite, so training stopped. Try a smaller learning rate "
            "or rho."
        )
    elif state == "interrupted":
        problem = (
            "The worker training this run stopped (a crash or a restart) "
            + (f"({message}) " if message else "")
            + "before it finished. It continues from its last checkpoint when it is resumed."
        )
    elif state == "cancelled":
        problem = message and f"Cancelled: {message}" or "This run was cancelled."
    elif state == "unknown":
        problem = str(status.get("error") or "The run's status file cannot be read.")
    elif state == "finished":  # finished, but e.g. the loss never fell: say so
        warning = (info.summary or {}).get("warning") or message
        problem = f"Finished with a warning: {warning}" if warning else None
    return {
        "progress": progress,
        "text": text,
        "eta_s": eta if state == "running" else None,
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


def bar_css(infos: Sequence[RunInfo]) -> str:
    """A <style> block that draws each run's progress bar in its method's colour (Streamlit's
    bar takes the theme colour otherwise: every bar SAM-ON orange)."""
    rules = [
        f".st-key-{bar_key(i)} [data-testid='stProgressBarTrack'] > div "
        f"{{ background-color: {i.color} !important; }}"
        for i in infos if re.fullmatch(r"#[0-9a-fA-F]{3,8}", i.color or "")
    ]
    return "<style>\n" + "\n".join(rules) + "\n</style>"


def empty_chart_note(infos: Sequence[RunInfo]) -> str:
    """What an empty chart of these runs says: they are coming, or why none will."""
    states = {i.state for i in infos}
    if states & {"queued", "running"}:
        return "the chart fills in as the runs train."
    if states == {"cancelled"}:
        return "the runs were cancelled before they recorded any."
    if states and states <= {"cancelled", "failed", "diverged", "interrupted"}:
        return "the runs ended before they recorded any (see above)."
    return "none were recorded."


def sharpness_note(infos: Sequence[RunInfo]) -> str:
    """When the sharpness probe runs for these runs (their ``sharpness_every``)."""
    every = sorted({int(i.config.get("sharpness_every") or 0) for i in infos})
    if any(e > 0 for e in every):
        n = min(e for e in every if e > 0)
        when = "after every epoch" if n == 1 else f"every {n} epochs"
        return f"the probe runs {when} and at the end of training; the chart fills in then."
    return "these runs probe only at the end of training."
