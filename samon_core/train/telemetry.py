"""The bookkeeping behind the loop's own records (loop.py; samon_core/records.py).

``RunClock`` (training wall time, continued across a resume), ``BatchTotals`` (sums over a span of
batches: an epoch, or the window of one ``step`` record), ``step_record`` (the mean loss and
accuracy of the window's images, lr, seconds per step, images/s, the machine's load),
``eta_seconds`` (mean of the last 3 epochs) and ``due_probes`` (which sharpness probes an epoch
gets). The measurements' records are built by their callbacks (callbacks.py).

Loss and accuracy are summed on the device (0-d tensors) and read once per record, so a GPU run
does not wait for the device after every step.
"""

from __future__ import annotations

import os
from time import monotonic
from typing import NamedTuple

import torch

from samon_core.records import StepRecord
from samon_core.runs.config import RunConfig


class RunClock:
    """Seconds of training wall time, continued across a resume from ``elapsed``."""

    def __init__(self, elapsed: float = 0.0):
        self.set(elapsed)

    def set(self, elapsed: float) -> None:
        """Read ``elapsed`` now (a resumed run continues its clock)."""
        self._t0 = monotonic() - elapsed

    def __call__(self) -> float:
        return monotonic() - self._t0


class Measured(NamedTuple):
    """Loss (the criterion's, with label smoothing), plain cross-entropy and accuracy over a set
    of images, means per image."""

    loss: float
    ce: float
    acc: float


class BatchTotals:
    """Sums over a span of batches, kept on the device: loss x images, plain CE x images (when
    given), correct images, images, optimizer steps, and the span's start time (monotonic)."""

    def __init__(self, device: torch.device, *, own_time: bool = False):
        self.own_time = own_time  # step times from ``busy`` (the run's own seconds), not wall
        self.busy = 0.0
        self.loss = torch.zeros((), device=device)
        self.ce = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.n = 0
        self.steps = 0
        self.started = monotonic()

    def add(
        self, loss: torch.Tensor, correct: torch.Tensor, n: int, ce: torch.Tensor | None = None
    ) -> None:
        """loss: the batch's mean loss (0-d), correct: its number of right answers (0-d), ce: its
        mean plain cross-entropy (0-d), if this span records it."""
        self.loss += loss * n
        if ce is not None:
            self.ce += ce * n
        self.correct += correct
        self.n += n
        self.steps += 1

    def seconds(self) -> float:
        """Seconds since the span started."""
        return monotonic() - self.started

    def step_seconds(self) -> float:
        """Seconds the span's steps took: its own (``busy``) in lockstep, else its wall time."""
        return self.busy if self.own_time else self.seconds()

    def mean_loss(self) -> float:
        return float(self.loss) / self.n

    def mean_ce(self) -> float:
        return float(self.ce) / self.n

    def accuracy(self) -> float:
        return float(self.correct) / self.n

    def reset(self) -> None:
        self.loss.zero_()
        self.ce.zero_()
        self.correct.zero_()
        self.n, self.steps, self.started, self.busy = 0, 0, monotonic(), 0.0


def step_record(
    window: BatchTotals, *, epoch: int, step: int, time: float, lr: float
) -> StepRecord:
    """The step record closing ``window``; ``epoch`` is the epoch in progress (1-based).
    ``load`` is the machine's 1-minute load average, so that step times can be judged."""
    dt = max(window.step_seconds(), 1e-9)
    return StepRecord(
        kind="step",
        epoch=epoch,
        step=step,
        time=time,
        loss=window.mean_loss(),
        acc=window.accuracy(),
        lr=lr,
        step_time=dt / window.steps,
        images_per_s=window.n / dt,
        load=load_average(),
    )


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def eta_seconds(epoch_times: list[float], epochs_left: int) -> float:
    """Epochs left x the mean time of the last three epochs."""
    recent = epoch_times[-3:]
    return epochs_left * sum(recent) / len(recent)


def due_probes(config: RunConfig, epoch: int, final: bool) -> list[tuple[float, int]]:
    """(rho, ascent steps) of the sharpness probes due after epoch ``epoch`` (1-based)."""
    probes = []
    if config.sharpness_steps and (
        final or (config.sharpness_every and epoch % config.sharpness_every == 0)
    ):
        probes.append((config.sharpness_rho, config.sharpness_steps))
    if config.sharpness_multi_steps and (
        final or (config.sharpness_multi_every and epoch % config.sharpness_multi_every == 0)
    ):
        probes.append((config.sharpness_rho_multi, config.sharpness_multi_steps))
    return probes
