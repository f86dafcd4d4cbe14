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

A worker's trainer records under its ``claim`` (runs/fence.py): every status write and heartbeat
applies only while the run's row still holds it, and a record is appended to ``metrics.jsonl``
only after that check (a step record: its status write goes first; any other: a read of the
row), as is ``summary.json``. When the run was taken back (``NotHeld``), the recorder raises
``Released``: the loop stops without an end, and nothing more of this trainer reaches the row,
the metrics or the summary (the checkpoint of an epoch is saved between the epoch record's
check and the epoch's status write: a window of one save). Without a claim (``samon run``, a run
trained in its own process) nothing is fenced.
"""

from __future__ import annotations

import os
import platform
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from samon_core.records import Record
from samon_core.runs.config import RunConfig
from samon_core.runs.fence import NotHeld, WorkerClaim
from samon_core.runs.files import CHECKPOINT_FILE, CONFIG_FILE
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore
from samon_core.train.loop import EXPLODE_FACTOR, Callback, Diverged, Loop
from samon_core.train.stopping import RELEASED, Released


@contextmanager
def _fenced() -> Iterator[None]:
    """A write refused because the run is no longer held stops the trainer: ``Released``."""
    try:
        yield
    except NotHeld as exc:
        raise Released(str(exc)) from exc


class StoreRecorder(Callback):
    """Records one run in the ``RunStore`` that holds ``run_dir`` (module doc); ``claim``: the
    worker's claim on the run, the fence of every write (None: not fenced)."""

    def __init__(self, config: RunConfig, run_dir: str | os.PathLike, *,
                 claim: WorkerClaim | None = None):
        run_dir = Path(run_dir).resolve()
        self.config, self.claim = config, claim
        # the store's keyword only with a claim: an unfenced trainer (``samon run``) writes
        # exactly as before (tests/support/train_golden.json holds its calls)
        self._fence = {} if claim is None else {"claim": claim}
        self.store, self.run_id = RunStore(run_dir.parent), run_dir.name
        self.checkpoint_path = run_dir / CHECKPOINT_FILE
        if not (run_dir / CONFIG_FILE).is_file():
            self.store.create_run(config, run_id=self.run_id)
        self._status(RunState.RUNNING, pid=os.getpid(), host=platform.node(), message="",
                     progress=0.0)
        self.writer = self.store.metrics_writer(self.run_id)
        self.last_epoch: Record | None = None

    def _status(self, state: RunState, **fields) -> None:
        with _fenced():
            self.store.write_status(self.run_id, state, **self._fence, **fields)

    def on_record(self, loop: Loop, record: Record) -> None:
        if record["kind"] == "step":
            # Its status first: the fence, so a trainer whose run was taken back appends
            # nothing more. step_at: when this step's status was written; later writes (an
            # epoch's end) refresh 'updated' but not this, so Live's time left keeps counting
            # through an evaluation.
            self._status(RunState.RUNNING, epoch_in_progress=record["epoch"],
                         step=record["step"], progress=round(loop.progress, 4),
                         step_at=time.time())
        else:
            with _fenced():
                self.store.check_held(self.run_id, self.claim)
        self.writer.write(record)
        if record["kind"] == "epoch":
            self.last_epoch = record

    def on_heartbeat(self, loop: Loop) -> None:
        with _fenced():
            self.store.heartbeat(self.run_id, **self._fence)

    def on_epoch_end(self, loop: Loop, epoch: int) -> None:
        """After the checkpoint (the callbacks before this one): the epoch is safely done."""
        record = self.last_epoch
        self._status(RunState.RUNNING, epoch=epoch, step=loop.state.step,
                     progress=round(epoch / self.config.epochs, 4), eta_s=record["eta_s"],
                     test_acc=record["test_acc"], best_test_acc=loop.state.best_acc)

    def on_end(self, loop: Loop, summary: dict, error: BaseException | None) -> None:
        """Write the run's end; an end refused (the run was taken back from this worker) makes
        the summary's state ``RELEASED``: this trainer ended nothing."""
        try:
            self._end(loop, summary, error)
        except (NotHeld, Released) as exc:  # Released: a status write refused (``_fenced``)
            summary.update(state=RELEASED, released=str(exc))
        finally:
            self.writer.close()

    def _end(self, loop: Loop, summary: dict, error: BaseException | None) -> None:
        state = summary["state"]
        if state == RELEASED:  # no end: the worker releases the run ('running' -> 'queued')
            return
        if state == RunState.FINISHED:
            self.store.check_held(self.run_id, self.claim)  # before its summary replaces one
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
