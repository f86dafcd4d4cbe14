"""The epoch / step loop of one run, from a fresh start or from its checkpoint.

Per epoch: the SAM or base steps over the training batches (``TrainStep``), a step record every
``log_every_s`` seconds and one closing the epoch, then the test evaluation, the norm statistics,
the due sharpness probes, the epoch record, the checkpoint and the status. ``should_stop`` is
polled before every step (and before the evaluation and each sharpness probe), so a cancel lands
within one step. A NaN or infinite loss raises ``Diverged``: on the CPU it is checked every step
(free), on a GPU only when a step record is due, since reading the loss waits for the device (the
record then names the step it was seen at). So does an exploding loss: a finite training loss
above ``EXPLODE_FACTOR`` x the chance level ln(num_classes) (a step's, or an epoch's mean), which
no run that learns reaches (``rho=1e6`` "finished" at 15,056 before this check).

A run that ends but whose training loss never fell clearly (by ``MIN_DROP``) below its first
step's or the chance level, whichever is lower (lr=10 sits at or above chance), gets a ``warning``
in its summary (``loss_warning``); the trainer puts it in the finished status's message. The
chance level counts because a network that collapses to uniform predictions scores ln(C), a
little below a typical first loss, without having learnt anything.

Losses: the training loss is the criterion's, with label smoothing (``label_smoothing``); the test
loss is measured with the same label smoothing (as the authors' train.py does), and both are also
recorded as plain cross-entropy (``train_ce``, ``test_ce``), so that a chart of "loss" compares
like with like and the plain CE stays available.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Iterator
from time import monotonic

import torch
from torch import nn

from samon_core.train.checkpoint import load_checkpoint, restore, save_checkpoint
from samon_core.train.context import Diverged, RunContext
from samon_core.train.data import DeviceLoader, first_images
from samon_core.train.hardware import device_description
from samon_core.train.setup import RunSetup, autocast
from samon_core.train.telemetry import (
    BatchTotals,
    Measured,
    RunClock,
    Telemetry,
    due_probes,
    eta_seconds,
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


class TrainingLoop:
    """Trains ``setup``'s model for the run of ``ctx``; ``run()`` returns the summary."""

    def __init__(self, ctx: RunContext, setup: RunSetup, *, own_time: bool = False):
        self.ctx = ctx
        self.setup = setup
        self.config = ctx.config
        self.clock = RunClock()
        self.telemetry = Telemetry(ctx.config, ctx.emit, self.clock, ctx.heartbeat)
        self.loss_limit = explosion_limit(setup.num_classes)
        # Lockstep (train_group): step times are each run's own, not the window's wall time.
        self.own_time = own_time
        self.result: dict = {}

    def run(self) -> dict:
        """Train the remaining epochs; the summary (``summary.json`` without total_time_s)."""
        for _ in self.steps():
            pass
        return self.result

    def steps(self) -> Iterator[int]:
        """Train, yielding the global step number after every optimizer step, so that a caller
        can interleave several runs (``train_group``); ``result`` holds the summary at the end."""
        self._start()
        self.setup.model.train()
        last_test = Measured(math.nan, math.nan, math.nan)  # no epoch left to train
        for epoch in range(self.ctx.state.epoch, self.config.epochs):
            last_test = yield from self._epoch(epoch)
        if self.config.landscape_points:
            self._landscape()
        robustness = self._robustness() if self.config.robustness != "off" else None
        self.result = self._summary(last_test)
        if robustness is not None:
            self.result["robustness"] = robustness

    def _robustness(self) -> dict:
        """Accuracy under PGD attacks and corruptions at the final weights (robustness.py), on
        the first ``robustness_images`` test images; a cancel lands between two attacks."""
        ctx = self.ctx

        def tick() -> None:
            ctx.heartbeat()
            ctx.check_stop()

        return self.telemetry.robustness(self.setup.model, self.setup.test_loader,
                                         step=ctx.state.step, tick=tick)

    def _landscape(self) -> None:
        """1D slices around the final weights (landscape.py): a random filter-normalised
        direction (one fixed seed: the same draw for every run of a comparison, seeds included)
        and the gradient direction, on the probe's training images and up to 1,024 test images."""
        s = self.setup
        sets = {"test": first_images(s.test_loader, 1024)}
        if s.probe is not None:
            sets = {"train": s.probe, **sets}
        for split, (x, y) in sets.items():
            for name in ("random", "gradient"):
                self.ctx.check_stop()
                self.telemetry.landscape(s.model, x, y, direction=name, split=split,
                                         step=self.ctx.state.step)

    def _start(self) -> None:
        """Restore the checkpoint (``resume``) or record the state at initialisation."""
        ctx, s = self.ctx, self.setup
        if ctx.resume and ctx.checkpoint_path.is_file():
            ckpt = load_checkpoint(ctx.checkpoint_path)
            ctx.state = restore(ckpt, s.model, s.optimizer, s.scheduler)
            st = ctx.state
            self.telemetry.resume(epoch=st.epoch, step=st.step, time=st.elapsed)
        elif ctx.resume:
            raise ValueError(f"cannot resume run {ctx.run_id!r}: it has no checkpoint yet")
        self.clock.set(ctx.state.elapsed)
        if ctx.state.epoch == 0:
            self.telemetry.norm_stats(s.model, epoch=0, step=0, time=0.0)

    def _epoch(self, epoch: int) -> Generator[int, None, Measured]:
        """Train epoch ``epoch`` (0-based) and close it; returns the test measurement."""
        self.ctx.state.epoch = epoch
        started = monotonic()
        use_sam = self.config.sam_active(epoch)
        totals = yield from self._train_batches(epoch, use_sam)
        return self._close_epoch(epoch, totals, use_sam, started)

    def _timed_step(self, x: torch.Tensor, y: torch.Tensor, use_sam: bool, window: BatchTotals):
        """One optimizer step; in lockstep (``own_time``) its own seconds go to ``window.busy``:
        the window's wall time would include the other runs' steps. On a GPU that needs a
        synchronisation after the step (the kernels run asynchronously)."""
        if not self.own_time:
            return self.setup.step(x, y, use_sam)
        t0 = monotonic()
        out = self.setup.step(x, y, use_sam)
        if self.setup.device.type == "cuda":
            torch.cuda.synchronize(self.setup.device)
        window.busy += monotonic() - t0
        return out

    def _train_batches(
        self, epoch: int, use_sam: bool
    ) -> Generator[int, None, BatchTotals]:
        """All optimizer steps of one epoch (yielding after each); the epoch's totals."""
        ctx, s, state = self.ctx, self.setup, self.ctx.state
        totals, window = BatchTotals(s.device), BatchTotals(s.device, own_time=self.own_time)
        last = len(s.train_loader) - 1
        check_every_step = s.device.type == "cpu"
        for i, (x, y) in enumerate(s.train_loader.epoch_batches(epoch)):
            ctx.check_stop()
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
                self._report_window(window, epoch, lr, images_done=totals.n)
            yield state.step
        return totals

    def _check_loss(self, value: float, epoch: int) -> None:
        """Raise ``Diverged`` for a training loss that is not finite or has exploded; remember the
        run's first loss."""
        state = self.ctx.state
        if not math.isfinite(value):
            raise Diverged(epoch + 1, state.step, value)
        if value > self.loss_limit:
            raise Diverged(epoch + 1, state.step, value, limit=self.loss_limit)
        if state.first_loss is None:
            state.first_loss = value

    def _report_window(self, window: BatchTotals, epoch: int, lr: float, images_done: int) -> None:
        state, config = self.ctx.state, self.config
        state.lowest_loss = min(state.lowest_loss, window.mean_loss())
        self.telemetry.step(window, epoch=epoch + 1, step=state.step, lr=lr)
        epoch_images = len(self.setup.train_loader) * config.batch_size
        progress = (epoch + images_done / epoch_images) / config.epochs
        # step_at: when this step's status was written; later writes (an epoch's end) refresh
        # 'updated' but not this, so Live's time left keeps counting through an evaluation.
        self.ctx.write_status(
            "running", epoch_in_progress=epoch + 1, step=state.step, progress=round(progress, 4),
            step_at=time.time(),
        )
        window.reset()

    def _close_epoch(
        self, epoch: int, totals: BatchTotals, use_sam: bool, started: float
    ) -> Measured:
        """Evaluate, measure, record and checkpoint the end of epoch ``epoch`` (0-based)."""
        ctx, s, state, config = self.ctx, self.setup, self.ctx.state, self.config
        train = Measured(totals.mean_loss(), totals.mean_ce(), totals.accuracy())
        self._check_loss(train.loss, epoch)  # a GPU run reads its loss only at records
        state.lowest_loss = min(state.lowest_loss, train.loss)
        ctx.heartbeat()
        ctx.check_stop()
        test = evaluate(s.model, s.test_loader, s.device, s.amp, config.label_smoothing)
        ctx.heartbeat()
        state.best_acc = max(state.best_acc, test.acc)
        done = epoch + 1
        self.telemetry.norm_stats(s.model, epoch=done, step=state.step, time=self.clock())
        self._probe_sharpness(done, final=done == config.epochs)
        state.epoch_times.append(monotonic() - started)
        eta = eta_seconds(state.epoch_times, config.epochs - done)
        self.telemetry.epoch(
            epoch=done,
            step=state.step,
            train=train,
            test=test,
            epoch_time=state.epoch_times[-1],
            eta_s=eta,
            sam=use_sam,
        )
        state.epoch, state.elapsed = done, self.clock()
        save_checkpoint(
            ctx.checkpoint_path,
            model=s.model,
            optimizer=s.optimizer,
            scheduler=s.scheduler,
            state=state,
            config=config,
        )
        ctx.write_status(
            "running",
            epoch=done,
            step=state.step,
            progress=round(done / config.epochs, 4),
            eta_s=eta,
            test_acc=test.acc,
            best_test_acc=state.best_acc,
        )
        return test

    def _probe_sharpness(self, epoch: int, final: bool) -> None:
        if self.setup.probe is None:
            return
        for rho, steps in due_probes(self.config, epoch, final):
            self.ctx.check_stop()  # a 20-step probe can take a while
            self.telemetry.sharpness(
                self.setup.model,
                self.setup.probe,
                epoch=epoch,
                step=self.ctx.state.step,
                rho=rho,
                steps=steps,
            )

    def _summary(self, last_test: Measured) -> dict:
        s, config = self.setup, self.config
        summary = {
            "state": "finished",
            "final_test_acc": last_test.acc,
            "final_test_loss": last_test.loss,  # with label smoothing, as the epoch's test_loss
            "final_test_ce": last_test.ce,
            "best_test_acc": self.ctx.state.best_acc,
            "epochs_done": config.epochs,
            "steps": self.ctx.state.step,
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
        state = self.ctx.state
        warning = loss_warning(state.first_loss, state.lowest_loss, s.num_classes)
        if warning:
            summary["warning"] = warning
        return summary
