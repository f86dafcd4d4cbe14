"""CIFAR-10 / CIFAR-100 in torchvision's on-disk format, as uint8 tensors.

Read through torchvision (``datasets.CIFAR100/CIFAR10``) from torchvision's on-disk format
(``<data_dir>/cifar-100-python/{train,test,meta}``, ``<data_dir>/cifar-10-batches-py/
{data_batch_1..5,test_batch,batches.meta}``); downloaded when absent and allowed. torchvision
verifies the md5 of every file, so a folder in the same format that is *not* the official release
(a subset, a re-export, the fakes the tests write with ``tests/support/cifar.py``) fails its check
with "Dataset not found or corrupted". When all the files are present but torchvision refuses
them, we read the same pickles ourselves exactly as torchvision does (``pickle.load(f,
encoding="latin1")``, ``data`` rows of 3072 = 3x32x32 bytes, ``labels`` or ``fine_labels``) and
say so in ``DatasetTensors.source``. Pickles can run code when loaded: only point ``data_dir`` at
files you trust (torchvision has the same caveat). Offline and without files,
``DatasetUnavailable`` says where to put them.

Images are converted from torchvision's (N, 32, 32, 3) numpy array to uint8 (N, 3, 32, 32) once;
no per-image PIL work anywhere.
"""

from __future__ import annotations

import contextlib
import pickle
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from samon_core.catalog.datasets import CIFAR_LAYOUT
from samon_core.train.data.tensors import IMAGE_SIZE, DatasetTensors

CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
# Per-pixel statistics of the CIFAR-10 training set (the often-copied (0.2023, 0.1994, 0.2010) is
# the std of per-image means, not of pixels).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

DOWNLOAD_TIMEOUT_S = 30.0


class DatasetUnavailable(ValueError):
    """The dataset is neither on disk nor downloadable; the message says what to do."""


@dataclass(frozen=True)
class CifarSpec:
    """What torchvision calls one CIFAR variant and what its files hold; where the files are
    (folder, train / test / meta files) is the catalog's ``CIFAR_LAYOUT``."""

    name: str
    tv_class: str  # torchvision.datasets class name
    tarball: str
    meta_key: str  # key of the class names in the meta pickle
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    base_folder = property(lambda self: CIFAR_LAYOUT[self.name].folder)
    train_files = property(lambda self: CIFAR_LAYOUT[self.name].train_files)
    test_files = property(lambda self: CIFAR_LAYOUT[self.name].test_files)
    meta_file = property(lambda self: CIFAR_LAYOUT[self.name].meta_file)
    files = property(lambda self: CIFAR_LAYOUT[self.name].files)


CIFAR_SPECS = {
    "cifar100": CifarSpec("cifar100", "CIFAR100", "cifar-100-python.tar.gz", "fine_label_names",
                          100, CIFAR100_MEAN, CIFAR100_STD),
    "cifar10": CifarSpec("cifar10", "CIFAR10", "cifar-10-python.tar.gz", "label_names", 10,
                         CIFAR10_MEAN, CIFAR10_STD),
}


def hwc_to_chw_uint8(images: np.ndarray) -> torch.Tensor:
    """(N, 32, 32, 3) uint8 numpy (torchvision's ``.data``) -> contiguous uint8 (N, 3, 32, 32)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def _unavailable_message(spec: CifarSpec, root: Path, reason: str) -> str:
    folder = root / spec.base_folder
    return (
        f"{spec.tv_class} is not available: {reason}\n"
        f"Put torchvision's copy of it in {folder}/ , i.e. the files "
        f"{', '.join(spec.files)} (unpack {spec.tarball} from "
        f"https://www.cs.toronto.edu/~kriz/cifar.html in {root}/ : "
        f"`tar xzf {spec.tarball} -C {root}`), or allow the download on a machine with internet.\n"
        f"The 'synthetic' dataset needs no files and works offline."
    )


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    """Give sockets opened inside a finite default timeout, so an offline download fails fast
    instead of hanging (torchvision's urllib calls set none)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _torchvision_split(spec: CifarSpec, root: Path, train: bool, download: bool):
    from torchvision import datasets  # imported lazily: torchvision's import is slowish

    return getattr(datasets, spec.tv_class)(root=str(root), train=train, download=download)


def _read_cifar_pickle(path: Path) -> dict:
    """Load one CIFAR pickle the way torchvision does; keys normalised to ``str`` (the official
    Python 2 pickles decode to str under latin1, Python 3 pickles may carry bytes keys)."""
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in entry.items()}


def _read_cifar_split(spec: CifarSpec, root: Path, train: bool) -> tuple[np.ndarray, list[int]]:
    """Our reader of torchvision's format: rows of 3072 bytes (R, G, B planes of 32x32)."""
    rows, labels = [], []
    for fname in spec.train_files if train else spec.test_files:
        entry = _read_cifar_pickle(root / spec.base_folder / fname)
        rows.append(np.asarray(entry["data"], dtype=np.uint8))
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    data = np.vstack(rows).reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)  # HWC
    return data, labels


def _download(spec: CifarSpec, root: Path) -> None:
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            _torchvision_split(spec, root, True, download=True)
    except Exception as exc:  # any failure (URLError, timeout, bad md5, ...) is reported
        raise DatasetUnavailable(
            _unavailable_message(spec, root, f"download failed ({type(exc).__name__}: {exc})")
        ) from exc


def load_cifar(name: str, root: Path, download: bool) -> DatasetTensors:
    """The whole of CIFAR ``name`` ("cifar100" / "cifar10") from ``root`` (see the module doc)."""
    spec = CIFAR_SPECS[name]
    folder = root / spec.base_folder
    present = all((folder / f).is_file() for f in spec.files)
    if not present and not download:
        raise DatasetUnavailable(_unavailable_message(spec, root, f"no complete copy in {folder}"))
    if not present:
        _download(spec, root)
    try:
        tv_train = _torchvision_split(spec, root, True, download=False)
        tv_test = _torchvision_split(spec, root, False, download=False)
    except RuntimeError:
        # All files are there but torchvision refuses them ("Dataset not found or corrupted": the
        # md5s differ from the official release): read the same format ourselves.
        train_data, train_labels = _read_cifar_split(spec, root, True)
        test_data, test_labels = _read_cifar_split(spec, root, False)
        meta = _read_cifar_pickle(folder / spec.meta_file)
        classes = tuple(meta.get(spec.meta_key, ()))
        source = (
            f"{spec.tv_class}-format pickles from {root} (not the official files: torchvision's "
            f"md5 check failed; read by samon_core.train.data)"
        )
    else:
        train_data, train_labels = tv_train.data, tv_train.targets
        test_data, test_labels = tv_test.data, tv_test.targets
        classes = tuple(tv_train.classes)
        source = f"torchvision {spec.tv_class} from {root}"
    for labels in (train_labels, test_labels):
        if labels and not 0 <= min(labels) <= max(labels) < spec.num_classes:
            raise ValueError(f"labels in {folder} are outside 0..{spec.num_classes - 1}")
    return DatasetTensors(
        train_x=hwc_to_chw_uint8(train_data),
        train_y=torch.as_tensor(train_labels, dtype=torch.int64),
        test_x=hwc_to_chw_uint8(test_data),
        test_y=torch.as_tensor(test_labels, dtype=torch.int64),
        num_classes=spec.num_classes,
        mean=spec.mean,
        std=spec.std,
        name=spec.name,
        synthetic=False,
        source=source,
        class_names=classes,
    )
