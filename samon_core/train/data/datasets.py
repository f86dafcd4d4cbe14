"""A dataset by name, whole or as a deterministic subset: the one entry point of the trainer.

Subsets are the first N indices of a seeded permutation, sorted back into dataset order, so they
are deterministic and nested (a smaller subset of the same seed is part of a larger one).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from samon_core.catalog.choices import DATASET_NAMES
from samon_core.catalog.datasets import DATASETS, is_synthetic
from samon_core.train.data.cifar import CIFAR_SPECS, load_cifar
from samon_core.train.data.digits import load_digits_tensors
from samon_core.train.data.synthetic import make_synthetic
from samon_core.train.data.tensors import DatasetTensors


def subset_indices(n_total: int, n: int, seed: int) -> torch.Tensor:
    """First ``n`` of a seeded permutation of ``range(n_total)``, sorted (dataset order)."""
    if n > n_total:
        raise ValueError(f"subset of {n} requested but the split has only {n_total} images")
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=g)[:n].sort().values


# The label-noise draw gets its own stream: the subsets use seed (train) and seed + 1 (test).
LABEL_NOISE_SEED_OFFSET = 2


def noisy_labels(labels: torch.Tensor, rate: float, num_classes: int,
                 seed: int) -> torch.Tensor:
    """``labels`` with exactly ``round(rate * n)`` of them (the first of a seeded permutation)
    replaced by a uniformly random *other* class; a new tensor, deterministic in ``seed``.

    Symmetric label noise as in the noisy-label experiments of the SAM literature (Foret et al.,
    ICLR 2021, section 3.3: SAM resists noisy labels): the model sees wrong targets for a known
    share of its training images, and a method that fits them less generalises better."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"label noise must be in [0, 1]; got {rate!r}")
    n = labels.shape[0]
    k = round(rate * n)
    if k == 0 or num_classes < 2:
        return labels.clone()
    g = torch.Generator().manual_seed(seed)
    which = torch.randperm(n, generator=g)[:k]
    shift = torch.randint(1, num_classes, (k,), generator=g)
    out = labels.clone()
    out[which] = (labels[which] + shift) % num_classes
    return out


def load_dataset(
    name: str,
    data_dir: str | os.PathLike = "data",
    *,
    train_subset: int = 0,
    test_subset: int = 0,
    seed: int = 0,
    download: bool = True,
    label_noise: float = 0.0,
) -> DatasetTensors:
    """Load ``cifar100``, ``cifar10`` (cifar.py), a synthetic set (synthetic.py) or scikit-learn's
    ``digits`` (digits.py) as uint8 tensors.

    ``train_subset`` / ``test_subset``: 0 keeps the whole split, otherwise the first N of a
    permutation seeded by ``seed`` (train) and ``seed + 1`` (test).
    ``label_noise``: the share of the (subset's) training labels replaced by another class
    (``noisy_labels``, seeded by ``seed + LABEL_NOISE_SEED_OFFSET``); the test labels stay clean,
    and ``source`` says so. The labels before the noise stay in ``train_y_clean`` (the sharpness
    probe measures on them, as the paper on clean labels).
    Raises ``DatasetUnavailable`` when CIFAR is neither on disk nor downloadable, or the digits'
    scikit-learn is not installed.
    """
    if is_synthetic(name):
        data = make_synthetic(num_classes=DATASETS[name].num_classes, name=name)
    elif name in CIFAR_SPECS:
        data = load_cifar(name, Path(data_dir).expanduser(), download)
    elif name == "digits":
        data = load_digits_tensors()
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASET_NAMES}")
    if train_subset:
        idx = subset_indices(len(data.train_y), train_subset, seed)
        data.train_x, data.train_y = data.train_x[idx], data.train_y[idx]
        if data.train_y_clean is not None:
            data.train_y_clean = data.train_y_clean[idx]
    if test_subset:
        idx = subset_indices(len(data.test_y), test_subset, seed + 1)
        data.test_x, data.test_y = data.test_x[idx], data.test_y[idx]
    if label_noise:
        data.train_y_clean = data.clean_train_labels()
        data.train_y = noisy_labels(data.train_y, label_noise, data.num_classes,
                                    seed + LABEL_NOISE_SEED_OFFSET)
        data.source += (f"; label_noise: {label_noise:.0%} of the training labels replaced by "
                        "another class (test labels clean)")
    return data
