"""The datasets the lab can train on, without torch: label, full train/test sizes, classes; where
their files live (``data_dir``: the one reader of ``$SAMON_DATA_DIR``) and torchvision's on-disk
layout of the CIFAR files (``CIFAR_LAYOUT``).

The loaders live in ``samon_core.train.data`` and take their sizes and class counts from here (a
test checks that the synthetic set the loader generates has these sizes); the form, the run
config's subset checks and the job limits read them before any data is loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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
        # Real images that a kept package ships (scikit-learn, no download): 1,797 8x8 digits,
        # one fixed split (samon_core.train.data.digits), upsampled to 32x32 for the pipeline.
        DatasetSpec("digits", "Handwritten digits (scikit-learn's 8x8 digits, real, NOT CIFAR)",
                    1_000, 797, 10),
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


# The dataset folder when none is given: this environment variable, else ./data.
DATA_DIR_ENV = "SAMON_DATA_DIR"
DEFAULT_DATA_DIR = "data"


def data_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """The dataset folder: ``given`` (a ``--data-dir``), else ``$SAMON_DATA_DIR``, else ./data;
    ``~`` expanded. Every reader of the variable outside the service's settings asks here."""
    return Path(given or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


@dataclass(frozen=True)
class CifarLayout:
    """Where torchvision keeps one CIFAR variant under the data folder: its folder and files."""

    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str

    @property
    def files(self) -> tuple[str, ...]:
        return self.train_files + self.test_files + (self.meta_file,)


# torchvision's on-disk format (the loader, samon_core.train.data.cifar, and the test fakes of
# tests/support/cifar.py read it here).
CIFAR_LAYOUT: dict[str, CifarLayout] = {
    "cifar100": CifarLayout("cifar-100-python", ("train",), ("test",), "meta"),
    "cifar10": CifarLayout("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                           ("test_batch",), "batches.meta"),
}
