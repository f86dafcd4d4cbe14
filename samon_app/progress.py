"""Where a run stands, in words: active or not, progress and ETA, and what happened to a run
that did not finish (failed, diverged, interrupted, cancelled)."""

from __future__ import annotations

import math
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
        "running": f"epoch {max(1, min(epoch, epochs))} of {epochs}" if epochs else "running",
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
    return {
        "progress": progress,
        "text": text,
        "eta_s": eta if state == "running" else None,
        "active": is_active(state),
        "problem": problem,
        "traceback": status.get("traceback"),
    }

