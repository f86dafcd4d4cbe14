"""The datasets the lab can train on, without torch: label, full train/test sizes, classes.

The loaders live in ``samon_core.train.data`` and take their sizes and class counts from here (a
test checks that the synthetic set the loader generates has these sizes); the form, the run
config's subset checks and the job limits read them before any data is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its label for the form, full train/test sizes and number of classes."""

    name: str
    label: str
    train_size: int
    test_size: int
    num_classes: int


DATASETS: dict[str, DatasetSpec] = {
    d.name: d
    for d in (
        DatasetSpec("cifar100", "CIFAR-100 (the paper's dataset; needs the files)", 50_000,
                    10_000, 100),
        DatasetSpec("cifar10", "CIFAR-10 (needs the files)", 50_000, 10_000, 10),
        DatasetSpec("synthetic", "Synthetic images (generated, no download; NOT CIFAR)", 10_000,
                    2_000, 100),
    )
}

# (train, test) sizes of the full datasets, for the subset checks of the form and the job limits.
DATASET_SIZES: dict[str, tuple[int, int]] = {
    d.name: (d.train_size, d.test_size) for d in DATASETS.values()
}
