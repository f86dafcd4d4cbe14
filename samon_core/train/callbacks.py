"""The measurements that plug into the training loop (loop.py) as callbacks, and the caller's own.

    Checkpointer     restores a resumed run before its first step; writes checkpoint.pt
                     atomically after every epoch (checkpoint.py)
    NormStats        gamma / beta histograms on fixed bins and per-layer mean/std (normstats.py),
                     at initialisation (epoch 0) and after every epoch's evaluation
    SharpnessProbes  logit-normalised adaptive l_inf m-sharpness (sharpness.py), 1-step and
                     multi-step, every ``sharpness_every`` / ``sharpness_multi_every`` epochs and
                     after the last, on the fixed probe batch
    LandscapeSlices  1D loss slices around the final weights (landscape.py)
    Robustness       PGD attacks and corruptions on the final weights (robustness.py); its
                     result also goes into the summary
    Records          a plain function of each record (``train``'s ``callback``)

``measurements`` lists them in the order the loop needs: the checkpoint first (a resume restores
the state the others read), norm statistics before sharpness, landscape before robustness (the
order of their records). The run store's recorder is recorder.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from samon_core.records import (
    LandscapeRecord,
    Record,
    ResumeRecord,
    RobustnessRecord,
    SharpnessRecord,
)
from samon_core.runs.config import RunConfig
from samon_core.train.checkpoint import load_checkpoint, restore, save_checkpoint
from samon_core.train.data import DeviceLoader, first_images
from samon_core.train.landscape import gradient_direction, loss_slice, offsets, random_direction
from samon_core.train.loop import Callback, Loop
from samon_core.train.normstats import fixed_bins, norm_stats_records
from samon_core.train.robustness import measure
from samon_core.train.sharpness import m_sharpness
from samon_core.train.telemetry import due_probes

# The random landscape direction's seed: fixed, so that every run of a comparison (any seed) is
# sliced along the same Gaussian draw, each normalised to its own weights.
LANDSCAPE_SEED = 0


def _nothing() -> None:
    pass


class Checkpointer(Callback):
    """``path``: the run's checkpoint.pt; ``resume``: continue from it (it must exist)."""

    def __init__(self, path: Path, resume: bool = False):
        self.path, self.resume = Path(path), resume

    def on_train_start(self, loop: Loop) -> None:
        s = loop.setup
        if self.resume and self.path.is_file():
            loop.state = restore(load_checkpoint(self.path), s.model, s.optimizer, s.scheduler)
            st = loop.state
            loop.emit(ResumeRecord(kind="resume", epoch=st.epoch, step=st.step, time=st.elapsed))
        elif self.resume:
            raise ValueError(
                f"cannot resume run {self.path.parent.name!r}: it has no checkpoint yet")

    def on_epoch_end(self, loop: Loop, epoch: int) -> None:
        s = loop.setup
        save_checkpoint(self.path, model=s.model, optimizer=s.optimizer, scheduler=s.scheduler,
                        state=loop.state, config=loop.config)


class NormStats(Callback):
    def __init__(self, config: RunConfig):
        # Fixed for the whole run, so that histograms of all epochs (and runs) compare.
        self.bins = {role: fixed_bins(role, config.stats_bins) for role in ("gamma", "beta")}

    def _emit(self, loop: Loop, epoch: int, step: int, time: float) -> None:
        for record in norm_stats_records(loop.setup.model, epoch=epoch, step=step, time=time,
                                         bins_gamma=self.bins["gamma"],
                                         bins_beta=self.bins["beta"]):
            loop.emit(record)

    def on_train_start(self, loop: Loop) -> None:
        if loop.state.epoch == 0:  # at initialisation (not again on a resume)
            self._emit(loop, 0, 0, 0.0)

    def on_eval(self, loop: Loop, epoch: int) -> None:
        self._emit(loop, epoch, loop.state.step, loop.clock())


class SharpnessProbes(Callback):
    def on_eval(self, loop: Loop, epoch: int) -> None:
        if loop.setup.probe is None:
            return
        x, y = loop.setup.probe
        # a training subset smaller than sharpness_m gives one batch of all its points
        m = min(loop.config.sharpness_m, len(y))
        for rho, steps in due_probes(loop.config, epoch, final=epoch == loop.config.epochs):
            loop.check_stop()  # a 20-step probe can take a while
            value = m_sharpness(loop.setup.model, x, y, rho=rho, steps=steps, m=m)
            loop.heartbeat()
            loop.emit(SharpnessRecord(kind="sharpness", epoch=epoch, step=loop.state.step,
                                      time=loop.clock(), steps=steps, rho=rho, value=value, m=m,
                                      n=len(y)))


def landscape_record(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: RunConfig, *, direction: str,
    split: str, step: int, clock: Callable[[], float], heartbeat: Callable[[], None] = _nothing,
) -> LandscapeRecord:
    """One 1D landscape slice (landscape.py) of ``model`` on the fixed set (x, y), along the
    random (seed ``LANDSCAPE_SEED``) or the gradient direction."""
    if direction == "random":
        d = random_direction(model, seed=LANDSCAPE_SEED)
    else:
        d = gradient_direction(model, x, y)
    grid = offsets(config.landscape_points, config.landscape_radius)
    losses = loss_slice(model, x, y, [d], [(a,) for a in grid])
    heartbeat()
    return LandscapeRecord(
        kind="landscape", epoch=config.epochs, step=step, time=clock(), direction=direction,
        split=split, offsets=grid, losses=losses, n=len(y), seed=LANDSCAPE_SEED,
    )


def slice_sets(setup) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The images a run is sliced on: the probe's training images (if any) and up to 1,024
    test images."""
    sets = {"test": first_images(setup.test_loader, 1024)}
    return {"train": setup.probe, **sets} if setup.probe is not None else sets


class LandscapeSlices(Callback):
    """A random filter-normalised direction (one fixed seed: the same draw for every run of a
    comparison, seeds included) and the gradient direction, on each of ``slice_sets``."""

    def on_train_end(self, loop: Loop) -> None:
        if not loop.config.landscape_points:
            return
        for split, (x, y) in slice_sets(loop.setup).items():
            for direction in ("random", "gradient"):
                loop.check_stop()
                loop.emit(landscape_record(loop.setup.model, x, y, loop.config,
                                           direction=direction, split=split,
                                           step=loop.state.step, clock=loop.clock,
                                           heartbeat=loop.heartbeat))


def robustness_record(
    model: nn.Module, loader: DeviceLoader, config: RunConfig, *, step: int,
    clock: Callable[[], float], tick: Callable[[], None] = _nothing,
) -> tuple[dict, RobustnessRecord]:
    """The config's robustness suite (robustness.py) on the first test images of ``loader``:
    (the result, for the summary; its record). ``tick`` runs between attacks."""
    result = measure(model, loader, config.robustness_images, config.robustness, tick=tick)
    return result, RobustnessRecord(kind="robustness", epoch=config.epochs, step=step,
                                    time=clock(), **result)


class Robustness(Callback):
    """At the final weights, on the first ``robustness_images`` test images; a cancel lands
    between two attacks."""

    def on_train_end(self, loop: Loop) -> None:
        if loop.config.robustness == "off":
            return

        def tick() -> None:
            loop.heartbeat()
            loop.check_stop()

        result, record = robustness_record(loop.setup.model, loop.setup.test_loader,
                                           loop.config, step=loop.state.step, clock=loop.clock,
                                           tick=tick)
        loop.emit(record)
        loop.measured["robustness"] = result


class Records(Callback):
    """Hands every record to ``fn``."""

    def __init__(self, fn: Callable[[Record], None]):
        self.fn = fn

    def on_record(self, loop: Loop, record: Record) -> None:
        self.fn(record)


def measurements(config: RunConfig, checkpoint: Path, resume: bool = False) -> list[Callback]:
    """The measurements of a stored run, in their order (module doc)."""
    return [Checkpointer(checkpoint, resume), NormStats(config), SharpnessProbes(),
            LandscapeSlices(), Robustness()]
