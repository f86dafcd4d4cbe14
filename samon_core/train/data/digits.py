"""scikit-learn's handwritten digits: 1,797 REAL 8x8 grey-level images of the digits 0-9 (the UCI
"optical recognition of handwritten digits" test set), shipped inside the scikit-learn package, so
no download. Not CIFAR: a small real image set for CPU experiments.

The images are upsampled to the lab's 32x32 RGB uint8 format (bilinear, grey level copied to the
three channels) because the whole pipeline is written for it: the loader's crop (pad 4, 32x32
windows), the robustness suite's corruptions and pixel-unit budgets, and the models' three stages,
whose two stride-2 steps would leave an 8x8 input at 2x2 before the pooling. Upsampling adds no
information; it costs what a 32x32 image costs.

One fixed train/test split (``DIGITS_SPLIT_SEED``): the first ``DIGITS_TRAIN`` images of a seeded
permutation train, the other ``DIGITS_TEST`` test, so runs with different seeds see the same
images, as they would with CIFAR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from samon_core.catalog.datasets import DATASETS
from samon_core.train.data.cifar import DatasetUnavailable
from samon_core.train.data.synthetic import channel_stats
from samon_core.train.data.tensors import IMAGE_SIZE, DatasetTensors

DIGITS_SPLIT_SEED = 20231211  # one fixed split, like CIFAR's
DIGITS_TRAIN = DATASETS["digits"].train_size
DIGITS_TEST = DATASETS["digits"].test_size
DIGITS_MAX = 16.0  # the scikit-learn images' grey levels are 0..16


def _raw_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """(images float (1797, 8, 8) in 0..16, labels int64) from scikit-learn."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # an optional extra of the lab: say how to get it
        raise DatasetUnavailable(
            "the digits dataset comes with scikit-learn, which is not installed: "
            "pip install scikit-learn (it is in requirements.txt), or choose another dataset"
        ) from exc
    bunch = load_digits()
    return (torch.as_tensor(bunch.images, dtype=torch.float32),
            torch.as_tensor(bunch.target, dtype=torch.int64))


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """(N, 8, 8) grey levels 0..16 -> uint8 (N, 3, 32, 32): bilinear upsampling, grey in RGB."""
    x = images[:, None] * (255.0 / DIGITS_MAX)
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def load_digits_tensors() -> DatasetTensors:
    """The digits as ``DatasetTensors``: the fixed split, 32x32 RGB uint8, clean labels."""
    images, labels = _raw_digits()
    if len(labels) != DIGITS_TRAIN + DIGITS_TEST:  # another scikit-learn copy of the set
        raise DatasetUnavailable(
            f"scikit-learn's digits have {len(labels)} images, not the "
            f"{DIGITS_TRAIN + DIGITS_TEST} this split expects")
    g = torch.Generator().manual_seed(DIGITS_SPLIT_SEED)
    order = torch.randperm(len(labels), generator=g)
    train, test = order[:DIGITS_TRAIN].sort().values, order[DIGITS_TRAIN:].sort().values
    x = to_uint8_rgb(images)
    mean, std = channel_stats(x[train])
    return DatasetTensors(
        train_x=x[train], train_y=labels[train], test_x=x[test], test_y=labels[test],
        num_classes=10, mean=mean, std=std, name="digits", synthetic=False,
        source=("scikit-learn's handwritten digits (real 8x8 grey images, upsampled to 32x32; "
                f"{DIGITS_TRAIN} train / {DIGITS_TEST} test, split seed {DIGITS_SPLIT_SEED}); "
                "not CIFAR"),
        class_names=tuple(f"digit {i}" for i in range(10)),
    )
