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
    synthetic: bool = False  # generated here (samon_core.train.data.synthetic), NOT real images


DATASETS: dict[str, DatasetSpec] = {
    d.name: d
    for d in (
        DatasetSpec("cifar100", "CIFAR-100 (the paper's dataset; needs the files)", 50_000,
                    10_000, 100),
        DatasetSpec("cifar10", "CIFAR-10 (needs the files)", 50_000, 10_000, 10),
        DatasetSpec("synthetic", "Synthetic images (generated, no download; NOT CIFAR)", 10_000,
                    2_000, 100, synthetic=True),
        # Ten classes: a small net fits the clean signal within a few epochs and then memorizes
        # noisy labels, the regime where SAM's advantage shows on a CPU (the claims' cpu size).
        DatasetSpec("synthetic10", "Synthetic images, 10 classes (generated, no download; NOT "
                    "CIFAR)", 10_000, 2_000, 10, synthetic=True),
    )
}



def is_synthetic(name: str) -> bool:
    """Whether dataset ``name`` is generated here (to be labelled as such wherever it shows)."""
    spec = DATASETS.get(name)
    return bool(spec and spec.synthetic)


# (train, test) sizes of the full datasets, for the subset checks of the form and the job limits.
DATASET_SIZES: dict[str, tuple[int, int]] = {
    d.name: (d.train_size, d.test_size) for d in DATASETS.values()
}
