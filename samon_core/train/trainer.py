"""Train one run end to end and stream everything a user wants to watch.

``train(config, run_dir)`` seeds everything, builds data (on the device), model and optimizer
(SGD / AdamW / Lion, wrapped in SAM for the SAM methods, with SAM-ON's cheap ascent pass) and
trains. It emits the metric records of samon_core/records.py to ``metrics.jsonl`` and to an
optional ``callback``:

    step        every ``log_every_s`` seconds: loss, accuracy, lr, step time, images/s
    epoch       train/test loss (label-smoothed) and plain CE, accuracy, epoch time, ETA
    sharpness   logit-normalised adaptive l_inf m-sharpness (sharpness.py), 1-step and multi-step
    norm_stats  gamma / beta histograms on fixed bins and per-layer mean/std (epoch 0 = init)

It keeps ``status.json`` current (running + heartbeat, then finished / diverged / cancelled /
failed), writes a checkpoint atomically after every epoch (model, optimizer, scheduler, RNG,
epoch) from which ``resume=True`` continues exactly, and writes ``summary.json`` (with
``total_time_s`` and the resolved ``precision``) at the end. ``should_stop()`` is polled every
step and cancels within one step.

Runs that go wrong say so instead of "finishing" quietly (loop.py has the thresholds):

* a NaN or infinite training loss ends the run as ``diverged`` (with the epoch and step), not as
  a crash;
* so does an exploding one, a finite training loss above 10x the chance level ln(num_classes)
  (``rho=1e6`` reached 15,056): state ``diverged``, ``diverged_reason`` "exploded" in the summary
  and a status message naming the loss and the limit. Diverged, not finished, because such a
  model has learnt nothing worth comparing and its accuracy would only mislead a chart;
* a run that finishes although its training loss never fell below its first value (``lr=10``
  ends at chance) stays ``finished`` (its numbers are real) with a ``warning`` in its summary,
  which is also the finished status's message.

The parts: setup.py (device, precision, data, model, optimizer, schedule), step.py (one optimizer
step), loop.py (epochs and steps), telemetry.py (the records), checkpoint.py (save / resume),
context.py (what they share).
"""

from __future__ import annotations

import os
import platform
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from samon_core.records import Record
from samon_core.runs.config import RunConfig
from samon_core.runs.store import RunStore
from samon_core.train.context import Cancelled, Diverged, RunContext
from samon_core.train.loop import EXPLODE_FACTOR, TrainingLoop
from samon_core.train.setup import build_run

DATA_DIR_ENV = "SAMON_DATA_DIR"


def train(
    config: RunConfig,
    run_dir: str | os.PathLike,
    *,
    callback: Callable[[Record], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    data_dir: str | os.PathLike | None = None,
    resume: bool = False,
) -> dict:
    """Train one run in ``run_dir`` (a folder of a ``RunStore``; created if missing) and return
    its summary. See the module docstring for what is written."""
    run_dir = Path(run_dir).resolve()
    store, run_id = RunStore(run_dir.parent), run_dir.name
    if not (run_dir / "config.json").is_file():
        store.create_run(config, run_id=run_id)
    t_start = time.monotonic()
    store.write_status(
        run_id, "running", pid=os.getpid(), host=platform.node(), message="", progress=0.0
    )
    writer = store.metrics_writer(run_id)

    def emit(record: Record) -> None:
        writer.write(record)
        if callback is not None:
            callback(record)

    ctx = RunContext(
        config=config,
        run_dir=run_dir,
        store=store,
        emit=emit,
        should_stop=should_stop,
        data_dir=data_dir or os.environ.get(DATA_DIR_ENV, "data"),
        resume=resume,
    )
    try:
        summary = TrainingLoop(ctx, build_run(config, ctx.data_dir)).run()
        _finish(ctx, summary, t_start)
    except Cancelled:
        epochs_done = ctx.state.epoch
        ctx.write_status(
            "cancelled", message=f"cancelled in epoch {epochs_done + 1}", step=ctx.state.step
        )
        summary = {"state": "cancelled", "epochs_done": epochs_done}
    except Diverged as d:
        summary = _diverged(ctx, d, t_start)
    except BaseException as exc:
        ctx.write_status(
            "failed",
            message=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=8),
        )
        raise
    finally:
        writer.close()
    summary.setdefault("total_time_s", time.monotonic() - t_start)
    return summary


def _finish(ctx: RunContext, summary: dict, t_start: float) -> None:
    """Write ``summary.json`` (total_time_s included), then the ``finished`` status."""
    summary["total_time_s"] = time.monotonic() - t_start
    ctx.store.write_summary(ctx.run_id, summary)
    ctx.write_status(
        "finished",
        message=summary.get("warning", ""),
        progress=1.0,
        epoch=ctx.config.epochs,
        step=summary["steps"],
        test_acc=summary["final_test_acc"],
        eta_s=0.0,
    )


def _diverged(ctx: RunContext, d: Diverged, t_start: float) -> dict:
    """The ``diverged`` status and summary (written, total_time_s included)."""
    if d.limit is None:
        what = f"the loss became {d.loss}"
    else:  # exploded: finite but far above the chance level
        what = (f"the training loss exploded to {d.loss:.4g}, more than {EXPLODE_FACTOR:g}x "
                f"the chance level (limit {d.limit:.1f}),")
    msg = f"diverged: {what} at epoch {d.epoch}, step {d.step}. Try a smaller learning rate or rho."
    ctx.write_status("diverged", message=msg, epoch=d.epoch, step=d.step)
    summary = {
        "state": "diverged",
        "epochs_done": d.epoch - 1,
        "diverged_epoch": d.epoch,
        "diverged_step": d.step,
        "diverged_reason": "not finite" if d.limit is None else "exploded",
        "total_time_s": time.monotonic() - t_start,
    }
    ctx.store.write_summary(ctx.run_id, summary)
    return summary
