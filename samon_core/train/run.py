"""One run's life in the run store while it trains: opened, then ended exactly once.

``open_run`` creates the run folder if needed, marks the run ``running`` and opens its metrics
writer; the ``RunHandle`` it returns ends the run as finished, cancelled, diverged or failed,
writing the status and ``summary.json`` (with ``total_time_s``), and closes the writer. ``train``
and ``train_group`` (lockstep.py) share it, so a run reads the same whether it trained alone or in
a group.
"""

from __future__ import annotations

import os
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samon_core.catalog import datasets
from samon_core.records import Record
from samon_core.runs.config import RunConfig
from samon_core.runs.store import RunStore
from samon_core.train.context import Diverged, RunContext
from samon_core.train.loop import EXPLODE_FACTOR


@dataclass
class RunHandle:
    """An open run: its context, metrics writer, start time, and (once ended) its summary.
    ``extra`` is merged into the summary (e.g. ``lockstep``: the runs trained together)."""

    ctx: RunContext
    writer: Any
    started: float
    summary: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    closed: bool = False

    def _end(self, summary: dict) -> None:
        summary.update(self.extra)
        summary.setdefault("total_time_s", time.monotonic() - self.started)
        self.summary = summary
        self.closed = True

    def finish(self, summary: dict) -> None:
        """Write ``summary.json`` (total_time_s included), then the ``finished`` status."""
        self._end(summary)
        ctx = self.ctx
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

    def cancelled(self) -> None:
        epochs_done = self.ctx.state.epoch
        self.ctx.write_status(
            "cancelled", message=f"cancelled in epoch {epochs_done + 1}", step=self.ctx.state.step
        )
        self._end({"state": "cancelled", "epochs_done": epochs_done})

    def diverged(self, d: Diverged) -> None:
        """The ``diverged`` status and summary."""
        if d.limit is None:
            what = f"the loss became {d.loss}"
        else:  # exploded: finite but far above the chance level
            what = (f"the training loss exploded to {d.loss:.4g}, more than {EXPLODE_FACTOR:g}x "
                    f"the chance level (limit {d.limit:.1f}),")
        msg = (f"diverged: {what} at epoch {d.epoch}, step {d.step}. "
               "Try a smaller learning rate or rho.")
        self.ctx.write_status("diverged", message=msg, epoch=d.epoch, step=d.step)
        self._end({
            "state": "diverged",
            "epochs_done": d.epoch - 1,
            "diverged_epoch": d.epoch,
            "diverged_step": d.step,
            "diverged_reason": "not finite" if d.limit is None else "exploded",
        })
        self.ctx.store.write_summary(self.ctx.run_id, self.summary)

    def fail(self, exc: BaseException) -> None:
        """The ``failed`` status with the error (no summary file: nothing was measured)."""
        self.ctx.write_status(
            "failed",
            message=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc, limit=8)),
        )
        self._end({"state": "failed", "error": f"{type(exc).__name__}: {exc}"})

    def close(self) -> None:
        self.writer.close()


def open_run(
    config: RunConfig,
    run_dir: Path,
    *,
    callback: Callable[[Record], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    data_dir: str | os.PathLike | None = None,
    resume: bool = False,
) -> RunHandle:
    """Create the run folder if needed, mark the run ``running``, open its metrics."""
    run_dir = run_dir.resolve()
    store, run_id = RunStore(run_dir.parent), run_dir.name
    if not (run_dir / "config.json").is_file():
        store.create_run(config, run_id=run_id)
    started = time.monotonic()
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
        data_dir=datasets.data_dir(data_dir),
        resume=resume,
    )
    return RunHandle(ctx, writer, started)
