"""The training loop of one run, to be read top to bottom.

    loop = Loop(config, callbacks=[...], should_stop=..., data_dir=...)
    summary = loop.run()                  # or one step at a time: for step in loop.steps(): ...

In order: build the run (setup.py: seed, data, model, optimizer, schedule); ``on_train_start``
(a resumed run's checkpoint is restored, the norm statistics at initialisation recorded); per
epoch the SAM or base steps over the training batches (``TrainStep``) with a ``step`` record every
``log_every_s`` seconds and one closing the epoch, the test evaluation, ``on_eval`` (norm
statistics, sharpness probes), the ``epoch`` record and ``on_epoch_end`` (checkpoint, status);
after the last epoch ``on_train_end`` (landscape slices, robustness), the summary, ``on_end``.

The loop measures and emits metric records (samon_core/records.py) and writes nothing itself:
every record goes to every callback's ``on_record``. The plug-ins are callbacks (``Callback``):
callbacks.py holds the measurements (checkpoint, norm statistics, sharpness, landscape,
robustness) and recorder.py the run store's recorder (metrics.jsonl, status, summary.json). With
no callbacks the loop trains and returns its summary; it imports no store.

``should_stop`` is polled before every step (and before the evaluation and each sharpness probe or
landscape slice), so a cancel lands within one step; a ``should_stop`` that raises ``Released``
(stopping.py: a worker stopping) stops the loop without ending the run. A NaN or infinite loss
raises ``Diverged``: on the CPU it is checked every step (free), on a GPU only when a step record
is due, since reading the loss waits for the device (the record then names the step it was seen
at). So does an exploding loss: a finite training loss above ``EXPLODE_FACTOR`` x the chance
level ln(num_classes) (a step's, or an epoch's mean), which no run that learns reaches
(``rho=1e6`` "finished" at 15,056 before this check). A run ends exactly once (``end``):
finished, cancelled, diverged or failed (or is released: no end), each with its summary, handed
to every callback's ``on_end``.

A run that ends but whose training loss never fell clearly (by ``MIN_DROP``) below its first
step's or the chance level, whichever is lower (lr=10 sits at or above chance), gets a ``warning``
in its summary (``loss_warning``). The chance level counts because a network that collapses to
uniform predictions scores ln(C), a little below a typical first loss, without having learnt
anything.

Losses: the training loss is the criterion's, with label smoothing (``label_smoothing``); the test
loss is measured with the same label smoothing (as the authors' train.py does), and both are also
recorded as plain cross-entropy (``train_ce``, ``test_ce``), so that a chart of "loss" compares
like with like and the plain CE stays available.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

import torch
from torch import nn

from samon_core.records import EpochRecord, Record
from samon_core.runs.config import RunConfig
from samon_core.runs.states import RunState
from samon_core.train.data import DeviceLoader
from samon_core.train.hardware import device_description
from samon_core.train.setup import RunSetup, autocast, build_run
from samon_core.train.stopping import RELEASED, Released
from samon_core.train.telemetry import BatchTotals, Measured, RunClock, eta_seconds, step_record


class Callback:
    """A plug-in of the loop: override the hooks it needs (here each does nothing). ``loop``
    gives a hook what it needs: ``config``, ``setup`` (model, optimizer, loaders, probe),
    ``state``, ``clock``, ``emit`` (a record to every callback), ``heartbeat``, ``check_stop``.
    Hooks run in the order of the loop's callback list."""

    def on_train_start(self, loop: Loop) -> None:
        """The run is built; before its first step (a resume restores ``loop.state`` here)."""

    def on_record(self, loop: Loop, record: Record) -> None:
        """Every record, the loop's and the callbacks'."""

    def on_heartbeat(self, loop: Loop) -> None:
        """The run is alive, in the middle of a long measurement."""

    def on_eval(self, loop: Loop, epoch: int) -> None:
        """Epoch ``epoch`` (1-based) is trained and evaluated; before its epoch record."""

    def on_epoch_end(self, loop: Loop, epoch: int) -> None:
        """After the epoch record; ``loop.state`` counts the epoch as done."""

    def on_train_end(self, loop: Loop) -> None:
        """After the last epoch; what it measures for the summary goes into ``loop.measured``."""

    def on_end(self, loop: Loop, summary: dict, error: BaseException | None) -> None:
        """Once: the run ended with ``summary``; ``error`` is None when it finished."""


class Cancelled(Exception):
    """``should_stop()`` said so."""


class Diverged(Exception):
    """The training loss became NaN or infinite, or exploded past ``limit``, at ``epoch``
    (1-based), ``step``. ``limit`` is None for a loss that is not finite."""

    def __init__(self, epoch: int, step: int, loss: float, limit: float | None = None):
        super().__init__(f"loss became {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss, self.limit = epoch, step, loss, limit


@dataclass
class TrainState:
    """Where the run stands; saved in every checkpoint and restored on resume."""

    epoch: int = 0  # epochs done (during an epoch: the 0-based index of the epoch in progress)
    step: int = 0  # global optimizer steps done
    elapsed: float = 0.0  # seconds of training wall time at the last checkpoint
    best_acc: float = 0.0  # best test accuracy so far
    epoch_times: list[float] = field(default_factory=list)  # seconds per epoch done
    first_loss: float | None = None  # training loss of the run's first step
    lowest_loss: float = math.inf  # lowest training loss of a step record or an epoch


# An exploding run: training loss above this many times the chance level ln(num_classes).
EXPLODE_FACTOR = 10.0
# "Fell below" means by at least this share: a run stuck at chance hovers a few hundredths
# around it.
MIN_DROP = 0.02


def chance_loss(num_classes: int) -> float:
    """The cross-entropy of uniform predictions, ln(C) (label smoothing does not change it)."""
    return math.log(max(num_classes, 2))


def explosion_limit(num_classes: int) -> float:
    """The training loss above which a run counts as diverged: ``EXPLODE_FACTOR`` x ln(C)."""
    return EXPLODE_FACTOR * chance_loss(num_classes)


def loss_warning(first: float | None, lowest: float, num_classes: int) -> str | None:
    """The warning for a run whose training loss never fell clearly below its first value or
    the chance level (the lower of the two), else None."""
    if first is None:
        return None
    chance = chance_loss(num_classes)
    if lowest < min(first, chance) * (1.0 - MIN_DROP):
        return None
    return (
        f"the training loss never fell below its first value ({first:.2f}; lowest {lowest:.2f}, "
        f"chance level {chance:.2f}): the learning rate may be too high, or the run too short"
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DeviceLoader,
    device: torch.device,
    amp: torch.dtype | None,
    label_smoothing: float = 0.0,
) -> Measured:
    """Over the loader, model in eval mode, per image: the mean loss with ``label_smoothing``
    (the training criterion's, (1 - s) CE + s mean_k(-log p_k)), the mean plain cross-entropy, and
    the accuracy."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    ce_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    for x, y in loader.epoch_batches(0):
        with autocast(device, amp):
            out = model(x)
        logits = out.float()
        ce_sum += nn.functional.cross_entropy(logits, y, reduction="sum")
        loss_sum += nn.functional.cross_entropy(
            logits, y, reduction="sum", label_smoothing=label_smoothing
        )
        correct += (out.argmax(1) == y).sum()
        n += len(y)
    model.train(was_training)
    return Measured(float(loss_sum) / n, float(ce_sum) / n, float(correct) / n)


class Loop:
    """One run's training (module doc). ``own_time``: lockstep (train_group) times each step
    itself, since the window's wall time includes the other runs' steps. ``setup``: an already
    built run (else ``build_run(config, data_dir)`` when training starts)."""

    def __init__(
        self,
        config: RunConfig,
        *,
        callbacks: Sequence[Callback] = (),
        should_stop: Callable[[], bool] | None = None,
        data_dir: str | os.PathLike = "data",
        own_time: bool = False,
        setup: RunSetup | None = None,
    ):
        self.config = config
        self.callbacks = list(callbacks)
        self.should_stop = should_stop
        self.data_dir = data_dir
        self.own_time = own_time
        self.setup = setup
        self.state = TrainState()
        self.clock = RunClock()  # training wall time, continued across a resume
        self.started = monotonic()  # the summary's total_time_s counts from here
        self.progress = 0.0  # share of the run done at the last step record
        self.measured: dict[str, Any] = {}  # on_train_end's results, put into the summary
        self.result: dict = {}  # the finished run's summary, before ``end``
        self.extra: dict[str, Any] = {}  # the caller's summary fields (lockstep: the group)
        self.summary: dict | None = None  # once the run has ended

    # -- what callbacks call -------------------------------------------------------------

    def emit(self, record: Record) -> None:
        self._call("on_record", record)

    def heartbeat(self) -> None:
        self._call("on_heartbeat")

    def check_stop(self) -> None:
        """Raise ``Cancelled`` when the caller asked to stop (``Released`` comes from
        ``should_stop`` itself)."""
        if self.should_stop is not None and self.should_stop():
            raise Cancelled()

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    # -- the run -------------------------------------------------------------------------

    def run(self) -> dict:
        """Train to the end; the summary (also of a cancelled or diverged run)."""
        for _ in self.steps():
            pass
        return self.summary

    def steps(self) -> Iterator[int]:
        """Train, yielding the global step number after every optimizer step, so that a caller
        can interleave several runs (``train_group``). The run ends here (``end``); an error
        other than a cancel or a divergence is raised after that."""
        try:
            yield from self._train()
        except GeneratorExit:  # the caller dropped the loop: it ends the run itself
            raise
        except (Cancelled, Diverged, Released) as exc:
            self.end(exc)
        except BaseException as exc:
            self.end(exc)
            raise
        else:
            self.end(None)

    def _train(self) -> Iterator[int]:
        if self.setup is None:
            self.setup = build_run(self.config, self.data_dir)
        self.loss_limit = explosion_limit(self.setup.num_classes)
        self._call("on_train_start")  # a resume restores self.state; statistics at init
        self.clock.set(self.state.elapsed)
        self.setup.model.train()
        test = Measured(math.nan, math.nan, math.nan)  # no epoch left to train
        for epoch in range(self.state.epoch, self.config.epochs):
            self.state.epoch = epoch
            started = monotonic()
            use_sam = self.config.sam_active(epoch)
            totals = yield from self._train_epoch(epoch, use_sam)
            test = self._close_epoch(epoch, totals, use_sam, started)
        self._call("on_train_end")  # landscape slices, robustness
        self.result = self._summary(test)

    def _train_epoch(self, epoch: int, use_sam: bool) -> Generator[int, None, BatchTotals]:
        """All optimizer steps of epoch ``epoch`` (0-based), yielding after each; its totals."""
        s, state = self.setup, self.state
        totals, window = BatchTotals(s.device), BatchTotals(s.device, own_time=self.own_time)
        last = len(s.train_loader) - 1
        check_every_step = s.device.type == "cpu"
        for i, (x, y) in enumerate(s.train_loader.epoch_batches(epoch)):
            self.check_stop()
            loss, logits = self._timed_step(x, y, use_sam, window)
            lr = s.scheduler.get_last_lr()[0]
            s.scheduler.step()
            state.step += 1
            correct = (logits.argmax(1) == y).sum()
            # plain CE of the clean pass's logits: one small kernel, no extra forward pass
            ce = nn.functional.cross_entropy(logits.float(), y)
            totals.add(loss, correct, len(y), ce=ce)
            window.add(loss, correct, len(y))
            # A step record every log_every_s, and one closing each epoch (short epochs get one).
            due = window.seconds() >= self.config.log_every_s or i == last
            if check_every_step or due or state.first_loss is None:
                self._check_loss(float(loss), epoch)
            if due:
                state.lowest_loss = min(state.lowest_loss, window.mean_loss())
                epoch_images = len(s.train_loader) * self.config.batch_size
                self.progress = (epoch + totals.n / epoch_images) / self.config.epochs
                self.emit(step_record(window, epoch=epoch + 1, step=state.step,
                                      time=self.clock(), lr=lr))
                window.reset()
            yield state.step
        return totals

    def _timed_step(self, x: torch.Tensor, y: torch.Tensor, use_sam: bool, window: BatchTotals):
        """One optimizer step; with ``own_time`` its own seconds go to ``window.busy`` (on a GPU
        after a synchronisation: the kernels run asynchronously)."""
        if not self.own_time:
            return self.setup.step(x, y, use_sam)
        t0 = monotonic()
        out = self.setup.step(x, y, use_sam)
        if self.setup.device.type == "cuda":
            torch.cuda.synchronize(self.setup.device)
        window.busy += monotonic() - t0
        return out

    def _check_loss(self, value: float, epoch: int) -> None:
        """Raise ``Diverged`` for a training loss that is not finite or has exploded; remember the
        run's first loss."""
        state = self.state
        if not math.isfinite(value):
            raise Diverged(epoch + 1, state.step, value)
        if value > self.loss_limit:
            raise Diverged(epoch + 1, state.step, value, limit=self.loss_limit)
        if state.first_loss is None:
            state.first_loss = value

    def _close_epoch(
        self, epoch: int, totals: BatchTotals, use_sam: bool, started: float
    ) -> Measured:
        """Evaluate, measure and record the end of epoch ``epoch`` (0-based)."""
        s, state, config = self.setup, self.state, self.config
        train = Measured(totals.mean_loss(), totals.mean_ce(), totals.accuracy())
        self._check_loss(train.loss, epoch)  # a GPU run reads its loss only at records
        state.lowest_loss = min(state.lowest_loss, train.loss)
        self.heartbeat()
        self.check_stop()
        test = evaluate(s.model, s.test_loader, s.device, s.amp, config.label_smoothing)
        self.heartbeat()
        state.best_acc = max(state.best_acc, test.acc)
        done = epoch + 1
        self._call("on_eval", done)  # norm statistics, sharpness probes
        state.epoch_times.append(monotonic() - started)
        self.emit(EpochRecord(
            kind="epoch", epoch=done, step=state.step, time=self.clock(),
            train_loss=train.loss, train_ce=train.ce, train_acc=train.acc,
            test_loss=test.loss, test_ce=test.ce, test_acc=test.acc,
            epoch_time=state.epoch_times[-1],
            eta_s=eta_seconds(state.epoch_times, config.epochs - done), sam=use_sam,
        ))
        state.epoch, state.elapsed = done, self.clock()
        self._call("on_epoch_end", done)  # checkpoint, status
        return test

    def _summary(self, last_test: Measured) -> dict:
        s, config, state = self.setup, self.config, self.state
        summary = {
            "state": RunState.FINISHED.value,
            "final_test_acc": last_test.acc,
            "final_test_loss": last_test.loss,  # with label smoothing, as the epoch's test_loss
            "final_test_ce": last_test.ce,
            "best_test_acc": state.best_acc,
            "epochs_done": config.epochs,
            "steps": state.step,
            "train_time_s": self.clock(),
            "params_total": s.n_params,
            "params_perturbed": s.n_perturbed,
            "perturbed_share": s.n_perturbed / s.n_params if s.n_params else 0.0,
            "method_label": config.method_label(),
            "rho": config.resolved_rho() if config.method == "sam" else None,
            "device": str(s.device),
            "hardware": device_description(s.device),
            "precision": s.precision,  # resolved: "fp32", "bf16" or "fp32+tf32"
            "torch": torch.__version__,
            "data_source": s.data_source,
            "synthetic_data": s.synthetic,
        }
        warning = loss_warning(state.first_loss, state.lowest_loss, s.num_classes)
        if warning:
            summary["warning"] = warning
        return {**summary, **self.measured}

    # -- the end -------------------------------------------------------------------------

    def end(self, error: BaseException | None) -> dict:
        """End the run, once (a second call returns the first summary): finished (``error``
        None), cancelled, diverged or failed, or released (stopped without an end: the caller
        gives the run back); the summary goes to every ``on_end``."""
        if self.summary is not None:
            return self.summary
        state = self.state
        if error is None:
            summary = dict(self.result)
        elif isinstance(error, Cancelled):
            summary = {"state": RunState.CANCELLED.value, "epochs_done": state.epoch}
        elif isinstance(error, Released):  # not an end: the caller gives the run back
            summary = {"state": RELEASED, "epochs_done": state.epoch}
        elif isinstance(error, Diverged):
            summary = {
                "state": RunState.DIVERGED.value,
                "epochs_done": error.epoch - 1,
                "diverged_epoch": error.epoch,
                "diverged_step": error.step,
                "diverged_reason": "not finite" if error.limit is None else "exploded",
            }
        else:
            summary = {"state": RunState.FAILED.value, "error": f"{type(error).__name__}: {error}"}
        summary.update(self.extra)
        summary.setdefault("total_time_s", monotonic() - self.started)
        self.summary = summary
        self._call("on_end", summary, error)
        return summary
