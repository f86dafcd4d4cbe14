"""One tiny training config for every test that trains or fakes a run.

tiny_resnet on 256 synthetic images, 2 epochs of 64-image batches: a few seconds on one CPU core.
Tests change what they exercise with ``tiny_config(field=value)``.
"""

from __future__ import annotations

from typing import Any

from samon_core.runs.config import RunConfig

TINY_FIELDS: dict[str, Any] = dict(
    model="tiny_resnet",
    dataset="synthetic",
    train_subset=256,
    test_subset=128,
    epochs=2,
    batch_size=64,
    sharpness_samples=0,
    stats_bins=10,
    log_every_s=0.2,
    device="cpu",
)


def tiny_config(**changes: Any) -> RunConfig:
    """The tiny config with ``changes`` applied (validated like any RunConfig)."""
    return RunConfig(**{**TINY_FIELDS, **changes})


# The tiny config itself: two epochs, no sharpness probe (the pages' fake and queued runs).
TINY = tiny_config()
