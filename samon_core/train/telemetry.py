"""Building and emitting a run's metric records (samon_core/records.py, ARCHITECTURE.md).

    step        every ``log_every_s`` seconds and at the end of each epoch: the mean loss and
                accuracy of the window's images, lr, seconds per step, images/s (``StepWindow``)
    epoch       train/test loss (with label smoothing) and plain cross-entropy, accuracy,
                epoch time, ETA (mean of the last 3 epochs)
    sharpness   logit-normalised adaptive l_inf m-sharpness (sharpness.py), 1-step and multi-step,
                every ``sharpness_every`` / ``sharpness_multi_every`` epochs and after the last
    norm_stats  gamma / beta histograms on fixed bins and per-layer mean/std (normstats.py);
                epoch 0 = at initialisation
    resume      the run continued from its checkpoint
    robustness  accuracy under PGD attacks and corruptions after the last epoch (robustness.py)

Loss and accuracy are summed on the device (0-d tensors) and read once per record, so a GPU run
does not wait for the device after every step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from time import monotonic
from typing import NamedTuple

import torch
from torch import nn

from samon_core.records import (
    EpochRecord,
    LandscapeRecord,
    Record,
    ResumeRecord,
    RobustnessRecord,
    SharpnessRecord,
    StepRecord,
)
from samon_core.runs.config import RunConfig
from samon_core.train.data import DeviceLoader
from samon_core.train.landscape import gradient_direction, loss_slice, offsets, random_direction
from samon_core.train.normstats import fixed_bins, norm_stats_records
from samon_core.train.robustness import measure
from samon_core.train.sharpness import m_sharpness

# The random landscape direction's seed: fixed, so that every run of a comparison (any seed) is
# sliced along the same Gaussian draw, each normalised to its own weights.
LANDSCAPE_SEED = 0


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


class Telemetry:
    """Builds the records of one run and hands them to ``emit``, timed by ``clock``.

    ``heartbeat`` is called after each (possibly long) sharpness measurement.
    """

    def __init__(
        self,
        config: RunConfig,
        emit: Callable[[Record], None],
        clock: RunClock,
        heartbeat: Callable[[], None] = lambda: None,
    ):
        self.config = config
        self.emit = emit
        self.clock = clock
        self.heartbeat = heartbeat
        # Fixed for the whole run, so that histograms of all epochs (and runs) compare.
        self.bins_gamma = fixed_bins("gamma", config.stats_bins)
        self.bins_beta = fixed_bins("beta", config.stats_bins)

    def norm_stats(self, model: nn.Module, *, epoch: int, step: int, time: float) -> None:
        for record in norm_stats_records(
            model,
            epoch=epoch,
            step=step,
            time=time,
            bins_gamma=self.bins_gamma,
            bins_beta=self.bins_beta,
        ):
            self.emit(record)

    def resume(self, *, epoch: int, step: int, time: float) -> None:
        self.emit(ResumeRecord(kind="resume", epoch=epoch, step=step, time=time))

    def step(self, window: BatchTotals, *, epoch: int, step: int, lr: float) -> None:
        self.emit(step_record(window, epoch=epoch, step=step, time=self.clock(), lr=lr))

    def landscape(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, direction: str, split: str,
        step: int,
    ) -> None:
        """Measure and emit one 1D landscape slice (landscape.py) on the fixed set (x, y)."""
        config = self.config
        if direction == "random":
            d = random_direction(model, seed=LANDSCAPE_SEED)
        else:
            d = gradient_direction(model, x, y)
        grid = offsets(config.landscape_points, config.landscape_radius)
        losses = loss_slice(model, x, y, [d], [(a,) for a in grid])
        self.heartbeat()
        self.emit(LandscapeRecord(
            kind="landscape", epoch=config.epochs, step=step, time=self.clock(),
            direction=direction, split=split, offsets=grid, losses=losses, n=len(y),
            seed=LANDSCAPE_SEED,
        ))

    def robustness(self, model: nn.Module, loader: DeviceLoader, *, step: int,
                   tick: Callable[[], None] | None = None) -> dict:
        """Run the config's robustness suite (robustness.py) on the first test images of
        ``loader``, emit the ``robustness`` record and return its result (for the summary).
        ``tick`` runs between attacks (default: the heartbeat)."""
        config = self.config
        result = measure(model, loader, config.robustness_images, config.robustness,
                         tick=tick or self.heartbeat)
        self.emit(RobustnessRecord(kind="robustness", epoch=config.epochs, step=step,
                                   time=self.clock(), **result))
        return result

    def sharpness(
        self,
        model: nn.Module,
        probe: tuple[torch.Tensor, torch.Tensor],
        *,
        epoch: int,
        step: int,
        rho: float,
        steps: int,
    ) -> None:
        """Measure and emit one sharpness probe on the fixed batch ``probe`` (x, y)."""
        x, y = probe
        # a training subset smaller than sharpness_m gives one batch of all its points
        m = min(self.config.sharpness_m, len(y))
        value = m_sharpness(model, x, y, rho=rho, steps=steps, m=m)
        self.heartbeat()
        self.emit(
            SharpnessRecord(
                kind="sharpness",
                epoch=epoch,
                step=step,
                time=self.clock(),
                steps=steps,
                rho=rho,
                value=value,
                m=m,
                n=len(y),
            )
        )

    def epoch(
        self,
        *,
        epoch: int,
        step: int,
        train: Measured,
        test: Measured,
        epoch_time: float,
        eta_s: float,
        sam: bool,
    ) -> None:
        """The record closing epoch ``epoch`` (1-based)."""
        self.emit(
            EpochRecord(
                kind="epoch",
                epoch=epoch,
                step=step,
                time=self.clock(),
                train_loss=train.loss,
                train_ce=train.ce,
                train_acc=train.acc,
                test_loss=test.loss,
                test_ce=test.ce,
                test_acc=test.acc,
                epoch_time=epoch_time,
                eta_s=eta_s,
                sam=sam,
            )
        )
