"""A writer of small datasets in torchvision's exact CIFAR-10 / CIFAR-100 on-disk format.

Test-only: it lets the tests (and bench/throughput.py) exercise the real CIFAR loading path of
``samon_core.train.data`` without the real files. The images are the synthetic set's, so a network
can learn them; they are not CIFAR and fail torchvision's md5 check (the loader then reads the
pickles itself and says so).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from samon_core.train.data.cifar import CIFAR_SPECS
from samon_core.train.data.synthetic import make_synthetic


def _rows(x: torch.Tensor) -> np.ndarray:
    """(N, 3, 32, 32) uint8 -> (N, 3072): R, G, B planes, torchvision's row layout."""
    return x.reshape(x.shape[0], -1).numpy()


def write_cifar_like(
    folder: str | os.PathLike, name: str, n_train: int, n_test: int, seed: int = 0
) -> Path:
    """Write a small dataset in torchvision's exact CIFAR-100 / CIFAR-10 on-disk format.

    ``folder`` is the ``data_dir`` (root): the files go to ``folder/cifar-100-python/{train,test,
    meta}`` or ``folder/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``. Images
    are synthetic (``make_synthetic`` with the dataset's class count, ``seed``). Returns the folder
    holding the pickles.
    """
    spec = CIFAR_SPECS[name]
    synth = make_synthetic(n_train, n_test, num_classes=spec.num_classes, seed=seed)
    base = Path(folder) / spec.base_folder
    base.mkdir(parents=True, exist_ok=True)

    def dump(fname: str, obj: dict) -> None:
        with open(base / fname, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    fine_names = [f"class_{i:03d}" for i in range(spec.num_classes)]
    if name == "cifar100":
        for fname, x, y in (("train", synth.train_x, synth.train_y),
                            ("test", synth.test_x, synth.test_y)):
            labels = y.tolist()
            dump(fname, {
                "filenames": [f"{fname}_{i:05d}.png" for i in range(len(labels))],
                "batch_label": f"fake {fname} batch",
                "fine_labels": labels,
                "coarse_labels": [lab // 5 for lab in labels],
                "data": _rows(x),
            })
        dump("meta", {"fine_label_names": fine_names,
                      "coarse_label_names": [f"superclass_{i:02d}" for i in range(20)]})
    else:
        chunks = np.array_split(np.arange(n_train), 5)
        for i, idx in enumerate(chunks, start=1):
            t = torch.from_numpy(idx)
            dump(f"data_batch_{i}", {
                "batch_label": f"fake training batch {i} of 5",
                "labels": synth.train_y[t].tolist(),
                "data": _rows(synth.train_x[t]),
                "filenames": [f"train_{j:05d}.png" for j in idx.tolist()],
            })
        dump("test_batch", {
            "batch_label": "fake testing batch 1 of 1",
            "labels": synth.test_y.tolist(),
            "data": _rows(synth.test_x),
            "filenames": [f"test_{j:05d}.png" for j in range(n_test)],
        })
        dump("batches.meta", {"label_names": fine_names,
                              "num_cases_per_batch": len(chunks[0]), "num_vis": 3072})
    return base
