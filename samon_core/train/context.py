"""What the parts of one training run share: where it writes, how it reports, where it stands.

``RunContext`` replaces a long list of arguments: the config, the run's folder in the store, the
``emit`` function that writes a metric record (and hands it to the caller's callback), the
caller's ``should_stop``, and the mutable ``TrainState`` that a checkpoint saves and a resume
restores. ``Cancelled`` and ``Diverged`` end the run early; ``train`` turns them into a status.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samon_core.records import Record
from samon_core.runs.config import RunConfig
from samon_core.runs.store import CHECKPOINT_FILE, RunStore


class Cancelled(Exception):
    """``should_stop()`` said so."""


class Diverged(Exception):
    """The training loss became NaN or infinite, or exploded past ``limit`` (``loop.py``), at
    ``epoch`` (1-based), ``step``. ``limit`` is None for a loss that is not finite."""

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


@dataclass
class RunContext:
    """One run's fixed surroundings and its ``TrainState``."""

    config: RunConfig
    run_dir: Path
    store: RunStore
    emit: Callable[[Record], None]
    should_stop: Callable[[], bool] | None = None
    data_dir: str | os.PathLike = "data"
    resume: bool = False
    state: TrainState = field(default_factory=TrainState)

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_FILE

    def check_stop(self) -> None:
        """Raise ``Cancelled`` when the caller asked to stop."""
        if self.should_stop is not None and self.should_stop():
            raise Cancelled()

    def heartbeat(self) -> None:
        self.store.heartbeat(self.run_id)

    def write_status(self, state: str, **fields: Any) -> None:
        self.store.write_status(self.run_id, state, **fields)
