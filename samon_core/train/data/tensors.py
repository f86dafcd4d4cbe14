"""One dataset in memory: uint8 image tensors and int64 labels, whatever the source.

Images are kept as uint8 (N, 3, 32, 32) tensors (CIFAR-100 train: 150 MB), so that the whole split
can live on the device and be augmented there (``loader.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

IMAGE_SIZE = 32


@dataclass
class DatasetTensors:
    """One dataset in memory. Images uint8 (N, 3, 32, 32), labels int64 (N,)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, float, float]  # per channel, in [0, 1] pixel units
    std: tuple[float, float, float]
    name: str
    synthetic: bool
    source: str  # human-readable provenance, shown in the UI and logs
    class_names: tuple[str, ...] = field(default=())
    # The training labels before any label noise (the synthetic sets' own, ``label_noise``), for
    # measurements the paper makes on clean labels (the sharpness probe); None: ``train_y`` is
    # clean. Same order and length as ``train_y``.
    train_y_clean: torch.Tensor | None = None

    def clean_train_labels(self) -> torch.Tensor:
        """The training labels without label noise (``train_y_clean``, else ``train_y``)."""
        return self.train_y if self.train_y_clean is None else self.train_y_clean

    def __repr__(self) -> str:
        return (
            f"DatasetTensors(name={self.name!r}, train={tuple(self.train_x.shape)}, "
            f"test={tuple(self.test_x.shape)}, classes={self.num_classes}, source={self.source!r})"
        )
