"""The run store's record of a training: the one callback of the loop that writes the store.

``StoreRecorder(config, run_dir)`` creates the run folder if needed, marks the run ``running``
and opens its metrics writer; as the loop (loop.py) trains it appends every record to
``metrics.jsonl``, keeps the status current (``running`` with the progress at each step record
and the accuracy and ETA at each epoch's end, a heartbeat during long measurements) and, when
the run ends, writes its final status (finished, cancelled, diverged, failed; nothing for a run
released by its worker, which puts it back in the queue itself: stopping.py) and
``summary.json`` (with ``total_time_s``; not for a cancelled or failed run: nothing final was
measured). ``train`` and ``train_group`` (lockstep.py) plug it in, so a run reads the same
whether it trained alone or in a group. Every status write of a training is here.
"""

from __future__ import annotations

import os
import platform
import time
import traceback
from pathlib import Path

from samon_core.records import Record
from samon_core.runs.config import RunConfig
from samon_core.runs.files import CHECKPOINT_FILE, CONFIG_FILE
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore
from samon_core.train.loop import EXPLODE_FACTOR, Callback, Diverged, Loop
from samon_core.train.stopping import RELEASED


class StoreRecorder(Callback):
    """Records one run in the ``RunStore`` that holds ``run_dir`` (module doc)."""

    def __init__(self, config: RunConfig, run_dir: str | os.PathLike):
        run_dir = Path(run_dir).resolve()
        self.config = config
        self.store, self.run_id = RunStore(run_dir.parent), run_dir.name
        self.checkpoint_path = run_dir / CHECKPOINT_FILE
        if not (run_dir / CONFIG_FILE).is_file():
            self.store.create_run(config, run_id=self.run_id)
        self.store.write_status(self.run_id, RunState.RUNNING, pid=os.getpid(),
                                host=platform.node(), message="", progress=0.0)
        self.writer = self.store.metrics_writer(self.run_id)
        self.last_epoch: Record | None = None

    def _status(self, state: RunState, **fields) -> None:
        self.store.write_status(self.run_id, state, **fields)

    def on_record(self, loop: Loop, record: Record) -> None:
        self.writer.write(record)
        if record["kind"] == "step":
            # step_at: when this step's status was written; later writes (an epoch's end)
            # refresh 'updated' but not this, so Live's time left keeps counting through an
            # evaluation.
            self._status(RunState.RUNNING, epoch_in_progress=record["epoch"],
                         step=record["step"], progress=round(loop.progress, 4),
                         step_at=time.time())
        elif record["kind"] == "epoch":
            self.last_epoch = record

    def on_heartbeat(self, loop: Loop) -> None:
        self.store.heartbeat(self.run_id)

    def on_epoch_end(self, loop: Loop, epoch: int) -> None:
        """After the checkpoint (the callbacks before this one): the epoch is safely done."""
        record = self.last_epoch
        self._status(RunState.RUNNING, epoch=epoch, step=loop.state.step,
                     progress=round(epoch / self.config.epochs, 4), eta_s=record["eta_s"],
                     test_acc=record["test_acc"], best_test_acc=loop.state.best_acc)

    def on_end(self, loop: Loop, summary: dict, error: BaseException | None) -> None:
        try:
            self._end(loop, summary, error)
        finally:
            self.writer.close()

    def _end(self, loop: Loop, summary: dict, error: BaseException | None) -> None:
        state = summary["state"]
        if state == RELEASED:  # no end: the worker releases the run ('running' -> 'queued')
            return
        if state == RunState.FINISHED:
            self.store.write_summary(self.run_id, summary)
            self._status(RunState.FINISHED, message=summary.get("warning", ""), progress=1.0,
                         epoch=self.config.epochs, step=summary["steps"],
                         test_acc=summary["final_test_acc"], eta_s=0.0)
        elif state == RunState.CANCELLED:
            self._status(RunState.CANCELLED, message=f"cancelled in epoch {loop.state.epoch + 1}",
                         step=loop.state.step)
        elif state == RunState.DIVERGED:
            self._status(RunState.DIVERGED, message=diverged_message(error), epoch=error.epoch,
                         step=error.step)
            self.store.write_summary(self.run_id, summary)
        else:  # failed: no summary file, nothing was measured
            self._status(RunState.FAILED, message=f"{type(error).__name__}: {error}",
                         traceback="".join(traceback.format_exception(error, limit=8)))


def diverged_message(d: Diverged) -> str:
    """The diverged status's message: what the loss did, where, and what to try."""
    if d.limit is None:
        what = f"the loss became {d.loss}"
    else:  # exploded: finite but far above the chance level
        what = (f"the training loss exploded to {d.loss:.4g}, more than {EXPLODE_FACTOR:g}x "
                f"the chance level (limit {d.limit:.1f}),")
    return (f"diverged: {what} at epoch {d.epoch}, step {d.step}. "
            "Try a smaller learning rate or rho.")
