"""A dataset by name, whole or as a deterministic subset: the one entry point of the trainer.

Subsets are the first N indices of a seeded permutation, sorted back into dataset order, so they
are deterministic and nested (a smaller subset of the same seed is part of a larger one).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from samon_core.train.data.cifar import CIFAR_SPECS, load_cifar
from samon_core.train.data.synthetic import make_synthetic
from samon_core.train.data.tensors import DatasetTensors

DATASET_NAMES = ("cifar100", "cifar10", "synthetic")


def subset_indices(n_total: int, n: int, seed: int) -> torch.Tensor:
    """First ``n`` of a seeded permutation of ``range(n_total)``, sorted (dataset order)."""
    if n > n_total:
        raise ValueError(f"subset of {n} requested but the split has only {n_total} images")
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=g)[:n].sort().values


def load_dataset(
    name: str,
    data_dir: str | os.PathLike = "data",
    *,
    train_subset: int = 0,
    test_subset: int = 0,
    seed: int = 0,
    download: bool = True,
) -> DatasetTensors:
    """Load ``cifar100``, ``cifar10`` (cifar.py) or ``synthetic`` (synthetic.py) as uint8 tensors.

    ``train_subset`` / ``test_subset``: 0 keeps the whole split, otherwise the first N of a
    permutation seeded by ``seed`` (train) and ``seed + 1`` (test).
    Raises ``DatasetUnavailable`` when CIFAR is neither on disk nor downloadable.
    """
    if name == "synthetic":
        data = make_synthetic()
    elif name in CIFAR_SPECS:
        data = load_cifar(name, Path(data_dir).expanduser(), download)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASET_NAMES}")
    if train_subset:
        idx = subset_indices(len(data.train_y), train_subset, seed)
        data.train_x, data.train_y = data.train_x[idx], data.train_y[idx]
    if test_subset:
        idx = subset_indices(len(data.test_y), test_subset, seed + 1)
        data.test_x, data.test_y = data.test_x[idx], data.test_y[idx]
    return data
