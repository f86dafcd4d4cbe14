"""The rough run-time estimate (samon_core.runs.estimate). No torch."""

from __future__ import annotations

import pytest

from samon_core.catalog import MODELS
from samon_core.runs.config import RunConfig
from samon_core.runs.estimate import (
    DEFAULT_CPU_S_PER_IMAGE,
    estimate_seconds,
    probe_units,
    seconds_per_image,
)


def test_estimate_seconds():
    base = RunConfig(
        model="resnet20", dataset="cifar100", train_subset=10_000, epochs=10, sharpness_samples=0
    )
    sgd = estimate_seconds(base.replace(method="base"))
    sam_all = estimate_seconds(base.replace(scope="all"))
    sam_on = estimate_seconds(base.replace(scope="norm"))
    assert 0 < sgd < sam_on < sam_all
    assert estimate_seconds(base, "cuda") < sam_on / 50
    assert estimate_seconds(base.replace(epochs=20)) > 1.9 * sam_on
    assert estimate_seconds(base.replace(train_subset=0)) > 4 * sam_on
    assert estimate_seconds(base.replace(sharpness_samples=1024)) > sam_on
    with pytest.raises(ValueError):
        estimate_seconds(base, "tpu")


def test_cost_per_image_comes_from_the_catalog():
    assert seconds_per_image("resnet20", "cpu") == MODELS["resnet20"].cpu_s_per_image
    assert seconds_per_image("resnet20", "cuda") == MODELS["resnet20"].cuda_s_per_image
    assert seconds_per_image("resnet20", "mps") == MODELS["resnet20"].cpu_s_per_image / 10
    assert seconds_per_image("not_in_catalog", "cpu") == DEFAULT_CPU_S_PER_IMAGE
    small = RunConfig(model="tiny_resnet", method="base", sharpness_samples=0)
    assert estimate_seconds(small.replace(model="resnet20")) / estimate_seconds(small) == (
        pytest.approx(MODELS["resnet20"].cpu_s_per_image / MODELS["tiny_resnet"].cpu_s_per_image)
    )


def test_probe_units_count_the_ascent_steps():
    c = RunConfig(epochs=10, sharpness_samples=1024, sharpness_every=5, sharpness_steps=1,
                  sharpness_multi_steps=0)
    assert probe_units(c, n_train=50_000) == pytest.approx(2 * 1024 * (1 + 2 / 3))
    assert probe_units(c, n_train=512) == pytest.approx(2 * 512 * (1 + 2 / 3))  # capped by data
    multi = c.replace(sharpness_multi_steps=20, sharpness_multi_every=0)
    assert probe_units(multi, 50_000) - probe_units(c, 50_000) == pytest.approx(1024 * (20 + 2 / 3))
    assert probe_units(c.replace(sharpness_samples=0), 50_000) == 0.0
