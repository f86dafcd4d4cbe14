"""Datasets as uint8 tensors, and a loader that augments whole batches on the device.

Everything here serves one goal: feed a small CIFAR network fast enough that the GPU, not the
input pipeline, is the limit (the reference trains 200 epochs of CIFAR-100, Mueller et al.,
"Normalization Layers Are All That Sharpness-Aware Minimization Needs", NeurIPS 2023).

Datasets (``load_dataset``)
    ``cifar100`` / ``cifar10``
        Read through torchvision (``datasets.CIFAR100/CIFAR10``) from torchvision's on-disk format
        (``<data_dir>/cifar-100-python/{train,test,meta}``, ``<data_dir>/cifar-10-batches-py/
        {data_batch_1..5,test_batch,batches.meta}``); downloaded when absent and allowed.
        torchvision verifies the md5 of every file, so a folder in the same format that is *not*
        the official release (a subset, a re-export, the fakes written by ``write_cifar_like``)
        fails its check with "Dataset not found or corrupted". When all the files are present but
        torchvision refuses them, we read the same pickles ourselves exactly as torchvision does
        (``pickle.load(f, encoding="latin1")``, ``data`` rows of 3072 = 3x32x32 bytes, ``labels``
        or ``fine_labels``) and say so in ``DatasetTensors.source``. Pickles can run code when
        loaded: only point ``data_dir`` at files you trust (torchvision has the same caveat).
        Offline and without files, ``DatasetUnavailable`` says where to put them.
    ``synthetic``
        A generated 100-class 32x32 RGB set that needs no download (see ``make_synthetic``).
        It is fixed (generated from ``SYNTHETIC_SEED``): the run seed only picks subsets, so runs
        with different seeds see the same images, as they would with CIFAR.

    Images are kept as uint8 (N, 3, 32, 32) tensors, converted from torchvision's (N, 32, 32, 3)
    numpy array once; no per-image PIL work anywhere. Subsets are the first N indices of a seeded
    permutation (sorted back into dataset order), so they are deterministic and nested.

On-device augmentation (``DeviceLoader``)
    The whole split lives on the device as uint8 (CIFAR-100 train: 150 MB). Per epoch, the
    permutation, crop offsets and flip bits are drawn on the CPU from a generator seeded by
    ``(seed, epoch)``; the batches of an epoch are therefore a pure function of (seed, epoch), the
    same on every device, and resuming at an epoch needs no saved RNG state. A batch is
    ``uint8 gather -> pad 4 with zeros -> one gather of per-sample 32x32 windows (the flip folded
    into the column index) -> float -> (x/255 - mean) / std``, the same result as torchvision's
    ``RandomCrop(32, padding=4)`` (zero fill), ``RandomHorizontalFlip``, ``ToTensor``,
    ``Normalize`` on each image.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DATASET_NAMES = ("cifar100", "cifar10", "synthetic")
AUGMENTATIONS = ("crop_flip", "flip", "none")

CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
# Per-pixel statistics of the CIFAR-10 training set (the often-copied (0.2023, 0.1994, 0.2010) is
# the std of per-image means, not of pixels).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

SYNTHETIC_SEED = 20231210  # the synthetic set is one fixed dataset, like CIFAR
SYNTHETIC_TRAIN = 10_000
SYNTHETIC_TEST = 2_000

IMAGE_SIZE = 32
CROP_PADDING = 4


class DatasetUnavailable(ValueError):
    """The dataset is neither on disk nor downloadable; the message says what to do."""


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

    def __repr__(self) -> str:
        return (
            f"DatasetTensors(name={self.name!r}, train={tuple(self.train_x.shape)}, "
            f"test={tuple(self.test_x.shape)}, classes={self.num_classes}, source={self.source!r})"
        )


# --------------------------------------------------------------------------------------------
# CIFAR in torchvision's on-disk format
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CifarSpec:
    name: str
    tv_class: str  # torchvision.datasets class name
    base_folder: str
    tarball: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    meta_key: str  # key of the class names in the meta pickle
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def files(self) -> tuple[str, ...]:
        return self.train_files + self.test_files + (self.meta_file,)


_CIFAR = {
    "cifar100": _CifarSpec(
        "cifar100", "CIFAR100", "cifar-100-python", "cifar-100-python.tar.gz",
        ("train",), ("test",), "meta", "fine_label_names", 100, CIFAR100_MEAN, CIFAR100_STD,
    ),
    "cifar10": _CifarSpec(
        "cifar10", "CIFAR10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
        tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "batches.meta",
        "label_names", 10, CIFAR10_MEAN, CIFAR10_STD,
    ),
}


def hwc_to_chw_uint8(images: np.ndarray) -> torch.Tensor:
    """(N, 32, 32, 3) uint8 numpy (torchvision's ``.data``) -> contiguous uint8 (N, 3, 32, 32)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def _unavailable_message(spec: _CifarSpec, root: Path, reason: str) -> str:
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


def _torchvision_split(spec: _CifarSpec, root: Path, train: bool, download: bool):
    from torchvision import datasets  # imported lazily: torchvision's import is slowish

    return getattr(datasets, spec.tv_class)(root=str(root), train=train, download=download)


def _read_cifar_pickle(path: Path) -> dict:
    """Load one CIFAR pickle the way torchvision does; keys normalised to ``str`` (the official
    Python 2 pickles decode to str under latin1, Python 3 pickles may carry bytes keys)."""
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in entry.items()}


def _read_cifar_split(spec: _CifarSpec, root: Path, train: bool) -> tuple[np.ndarray, list[int]]:
    """Our reader of torchvision's format: rows of 3072 bytes (R, G, B planes of 32x32)."""
    rows, labels = [], []
    for fname in spec.train_files if train else spec.test_files:
        entry = _read_cifar_pickle(root / spec.base_folder / fname)
        rows.append(np.asarray(entry["data"], dtype=np.uint8))
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    data = np.vstack(rows).reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)  # HWC
    return data, labels


def _load_cifar(spec: _CifarSpec, root: Path, download: bool) -> DatasetTensors:
    folder = root / spec.base_folder
    present = all((folder / f).is_file() for f in spec.files)
    if not present and not download:
        raise DatasetUnavailable(_unavailable_message(spec, root, f"no complete copy in {folder}"))
    if not present:
        try:
            with _socket_timeout(30.0):
                _torchvision_split(spec, root, True, download=True)
        except Exception as exc:  # any failure (URLError, timeout, bad md5, ...) is reported
            raise DatasetUnavailable(
                _unavailable_message(spec, root, f"download failed ({type(exc).__name__}: {exc})")
            ) from exc
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


def write_cifar_like(
    folder: str | os.PathLike, name: str, n_train: int, n_test: int, seed: int = 0
) -> Path:
    """Write a small dataset in torchvision's exact CIFAR-100 / CIFAR-10 on-disk format.

    ``folder`` is the ``data_dir`` (root): the files go to ``folder/cifar-100-python/{train,test,
    meta}`` or ``folder/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``. Images
    are synthetic (``make_synthetic`` with the dataset's class count), so a network can learn them;
    they are not CIFAR and fail torchvision's md5 check (``load_dataset`` then reads them itself).
    Returns the folder holding the pickles.
    """
    spec = _CIFAR[name]
    synth = make_synthetic(n_train, n_test, num_classes=spec.num_classes, seed=seed)
    base = Path(folder) / spec.base_folder
    base.mkdir(parents=True, exist_ok=True)

    def rows(x: torch.Tensor) -> np.ndarray:  # (N, 3, 32, 32) -> (N, 3072): R, G, B planes
        return x.reshape(x.shape[0], -1).numpy()

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
                "data": rows(x),
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
                "data": rows(synth.train_x[t]),
                "filenames": [f"train_{j:05d}.png" for j in idx.tolist()],
            })
        dump("test_batch", {
            "batch_label": "fake testing batch 1 of 1",
            "labels": synth.test_y.tolist(),
            "data": rows(synth.test_x),
            "filenames": [f"test_{j:05d}.png" for j in range(n_test)],
        })
        dump("batches.meta", {"label_names": fine_names,
                              "num_cases_per_batch": len(chunks[0]), "num_vis": 3072})
    return base


# --------------------------------------------------------------------------------------------
# The synthetic dataset
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticSpec:
    """Knobs of the generator (field units: 1 = ``contrast`` grey levels around 128).

    Calibrated so that a small CNN trained by SGD for a few epochs is far above chance (1%) yet far
    from perfect on the test split, and starts to overfit. Calibration run (CPU, one thread): a
    3-stage ResNet (widths 16/32/64, one basic block per stage, BatchNorm), SGD + Nesterov 0.9,
    weight decay 5e-4, one-cycle lr peaking at 0.1, batch 128, 6 epochs, test accuracy after
    epochs 1..6:
      no augmentation: 9.5 / 18.2 / 32.8 / 42.1 / 53.4 / 57.6%; the training images then score
        62.7% against their clean labels and 56.9% against the noisy ones (a gap opens);
      crop_flip:       7.1 / 10.3 / 16.3 / 22.8 / 27.4 / 29.1% (learning slower, still rising).
    An easier setting (3 prototypes, distractor 0.6, pixel noise 0.35) reached 85% in 6 epochs
    without augmentation: too close to saturation to show differences between optimizers.
    """

    prototypes_per_class: int = 4
    class_weight: float = 1.0  # coarse (4x4-node) field shared by the prototypes of a class
    proto_weight: float = 0.7  # finer (8x8-node) field, one per prototype
    shared_weight: float = 0.9  # coarse field drawn per sample, belongs to no class (distractor)
    max_shift: float = 4.0  # per-sample translation, uniform in [-max_shift, max_shift] pixels
    gain_std: float = 0.25  # per-sample, per-channel multiplicative colour jitter
    offset_std: float = 0.25  # per-sample, per-channel additive colour jitter
    pixel_noise: float = 0.5  # per-pixel Gaussian noise
    contrast: float = 40.0  # grey levels per field unit
    label_noise: float = 0.10  # fraction of training labels replaced by another class


def smooth_basis(positions: torch.Tensor, nodes: int, extent: float) -> torch.Tensor:
    """1-D Gaussian bump basis evaluated at pixel ``positions`` (..., P) -> (..., P, nodes).

    ``nodes`` bumps evenly spaced over [-extent, IMAGE_SIZE - 1 + extent], width 0.6 x spacing.
    Rows are l2-normalised, so a field ``B_r C B_c^T`` with i.i.d. N(0, 1) coefficients C has unit
    variance at every pixel; shifting ``positions`` translates the field continuously.
    """
    centres = torch.linspace(-extent, IMAGE_SIZE - 1 + extent, nodes)
    width = 0.6 * (IMAGE_SIZE - 1 + 2 * extent) / (nodes - 1)
    b = torch.exp(-0.5 * ((positions[..., None] - centres) / width) ** 2)
    return b / b.norm(dim=-1, keepdim=True)


def make_synthetic(
    n_train: int = SYNTHETIC_TRAIN,
    n_test: int = SYNTHETIC_TEST,
    num_classes: int = 100,
    seed: int = SYNTHETIC_SEED,
    spec: SyntheticSpec | None = None,
) -> DatasetTensors:
    """Generate the synthetic set: images uint8 (N, 3, 32, 32), balanced labels.

    Smooth fields are ``B_r C B_c^T`` (``smooth_basis``, coefficients C (3, K, K) ~ N(0, 1)).
    Class c has coarse coefficients T_c (K = 4) and each of its ``prototypes_per_class``
    prototypes finer coefficients V_ck (K = 8). A sample of class c, prototype k uniform, is::

        f = a field(T_c, shifted) + b field(V_ck, shifted) + s field(S)
        x = 128 + contrast * (gain * f + offset + sigma * noise)

    with one random (sub-pixel) shift of up to ``max_shift`` pixels per axis and sample, S a
    per-sample coarse distractor that belongs to no class, gain ~ 1 + N(0, gain_std^2) and offset
    ~ N(0, offset_std^2) per channel, i.i.d. N(0, 1) pixel noise; rounded and clipped to uint8.
    Training labels are then replaced by a uniformly drawn *other* class with probability
    ``label_noise`` (test labels stay clean): something for a network to overfit.
    Deterministic in ``seed`` (one CPU generator, fixed chunking). About 1 s for the default
    12,000 images on one free CPU core (several seconds when the cores are busy).
    """
    spec = spec or SyntheticSpec()
    g = torch.Generator().manual_seed(seed)
    k = spec.prototypes_per_class
    class_coef = torch.randn(num_classes, 3, 4, 4, generator=g)
    proto_coef = torch.randn(num_classes * k, 3, 8, 8, generator=g)
    pix = torch.arange(IMAGE_SIZE, dtype=torch.float32)
    fixed4 = smooth_basis(pix, 4, 0.0)[None]  # (1, 32, 4): the unshifted distractor basis

    def chunk(y: torch.Tensor) -> torch.Tensor:
        n = y.shape[0]
        which = y * k + torch.randint(0, k, (n,), generator=g)
        shift = (torch.rand(n, 2, generator=g) * 2 - 1) * spec.max_shift
        rows, cols = pix + shift[:, :1], pix + shift[:, 1:]  # (n, 32) shifted positions
        ext = spec.max_shift
        distractor = torch.randn(n, 3, 4, 4, generator=g)
        gain = 1.0 + spec.gain_std * torch.randn(n, 3, 1, 1, generator=g)
        offset = spec.offset_std * torch.randn(n, 3, 1, 1, generator=g)
        noise = torch.randn(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
        # The three fields B_r C B_c^T as ONE product: [B_r4 B_r8 B_4] (n, 32, 16) times the
        # stacked half-products C B_c^T (n, 3, 16, 32); weights, gain and contrast are folded
        # into the half-products, so the (n, 3, 32, 32) output is written once.
        half = torch.cat([
            spec.class_weight * class_coef[y] @ smooth_basis(cols, 4, ext)[:, None].mT,
            spec.proto_weight * proto_coef[which] @ smooth_basis(cols, 8, ext)[:, None].mT,
            spec.shared_weight * distractor @ fixed4.mT,
        ], dim=2) * (spec.contrast * gain)  # (n, 3, 16, 32)
        left = torch.cat([smooth_basis(rows, 4, ext), smooth_basis(rows, 8, ext),
                          fixed4.expand(n, -1, -1)], dim=2)  # (n, 32, 16)
        base = noise.mul_(spec.contrast * spec.pixel_noise).add_(128.0 + spec.contrast * offset)
        x = torch.baddbmm(base.view(n * 3, IMAGE_SIZE, IMAGE_SIZE),
                          left[:, None].expand(n, 3, -1, -1).reshape(n * 3, IMAGE_SIZE, -1),
                          half.reshape(n * 3, -1, IMAGE_SIZE))
        return x.view(n, 3, IMAGE_SIZE, IMAGE_SIZE).round_().clamp_(0, 255).to(torch.uint8)

    def sample(n: int, label_noise: float) -> tuple[torch.Tensor, torch.Tensor]:
        y = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]  # balanced
        # Fixed-size chunks keep the temporaries in cache; the draw order stays deterministic.
        x = torch.cat([chunk(y[i:i + 1000]) for i in range(0, n, 1000)]) if n else \
            torch.empty(0, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
        # Drawn even when label_noise = 0, so the images do not depend on the label noise.
        noisy = torch.rand(n, generator=g) < label_noise
        other = (y + torch.randint(1, max(num_classes, 2), (n,), generator=g)) % num_classes
        return x, torch.where(noisy, other, y).to(torch.int64)

    train_x, train_y = sample(n_train, spec.label_noise)
    test_x, test_y = sample(n_test, 0.0)
    mean, std = channel_stats(train_x)
    return DatasetTensors(
        train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
        num_classes=num_classes, mean=mean, std=std, name="synthetic", synthetic=True,
        source=(
            f"SYNTHETIC (generated, seed {seed}): {num_classes} classes of smooth random "
            f"patterns, {spec.label_noise:.0%} training label noise; not CIFAR"
        ),
        class_names=tuple(f"pattern_{i:03d}" for i in range(num_classes)),
    )


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (N, 3, H, W), in [0, 1] pixel units (4 digits).

    Sums in float32 over chunks of 1,000 images (relative error ~1e-7), accumulated in float64,
    so no float copy of the whole set is made.
    """
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros(x.shape[1], dtype=torch.float64)
    for part in x.split(1000):
        pf = part.float()
        total += pf.sum(dim=(0, 2, 3)).double()
        squares += pf.square_().sum(dim=(0, 2, 3)).double()
    count = x.numel() / x.shape[1]
    mean = total / count
    std = (squares / count - mean**2).clamp_min(0).sqrt()
    return (tuple(round(v / 255, 4) for v in mean.tolist()),
            tuple(round(v / 255, 4) for v in std.tolist()))


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


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
    """Load ``cifar100``, ``cifar10`` or ``synthetic`` as uint8 tensors (see the module doc).

    ``train_subset`` / ``test_subset``: 0 keeps the whole split, otherwise the first N of a
    permutation seeded by ``seed`` (train) and ``seed + 1`` (test).
    Raises ``DatasetUnavailable`` when CIFAR is neither on disk nor downloadable.
    """
    if name == "synthetic":
        data = make_synthetic()
    elif name in _CIFAR:
        data = _load_cifar(_CIFAR[name], Path(data_dir).expanduser(), download)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASET_NAMES}")
    if train_subset:
        idx = subset_indices(len(data.train_y), train_subset, seed)
        data.train_x, data.train_y = data.train_x[idx], data.train_y[idx]
    if test_subset:
        idx = subset_indices(len(data.test_y), test_subset, seed + 1)
        data.test_x, data.test_y = data.test_x[idx], data.test_y[idx]
    return data


# --------------------------------------------------------------------------------------------
# On-device batches
# --------------------------------------------------------------------------------------------


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit generator seed that is a fixed function of (seed, epoch)."""
    return (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + 1) % (2**63)


def normalization_affine(
    mean: Sequence[float], std: Sequence[float], device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), both float32 (1, C, 1, 1), with (x/255 - mean)/std = x * scale + shift."""
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return 1.0 / (255.0 * s), -m / s


def normalize_uint8(
    x: torch.Tensor, mean: Sequence[float], std: Sequence[float], dtype=torch.float32,
    *, affine: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> (x/255 - mean) / std in ``dtype`` (computed in float32).

    ``affine``: a precomputed ``normalization_affine`` on x's device (saves two tiny host-to-device
    copies per batch).
    """
    scale, shift = affine if affine is not None else normalization_affine(mean, std, x.device)
    out = torch.addcmul(shift, x.float(), scale)  # one fused multiply-add
    return out if dtype == torch.float32 else out.to(dtype)


def _gather_windows(
    src: torch.Tensor, which: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
    flip: torch.Tensor | None = None, size: int = IMAGE_SIZE,
) -> torch.Tensor:
    """Batched crop: out[b] = src[which[b], :, top[b]:top[b]+size, left[b]:left[b]+size], mirrored
    left-right where ``flip[b]``. One advanced-indexing gather, no Python loop over images.

    src (M, C, H, W); which, top, left, flip (B,) -> (B, C, size, size).
    """
    ar = torch.arange(size, device=src.device)
    rows = top[:, None] + ar  # (B, size)
    cols = left[:, None] + ar  # (B, size)
    if flip is not None:
        # Column j of a mirrored window is column size-1-j of the window.
        cols = torch.where(flip[:, None], left[:, None] + (size - 1 - ar), cols)
    ch = torch.arange(src.shape[1], device=src.device)
    return src[which[:, None, None, None], ch[None, :, None, None],
               rows[:, None, :, None], cols[:, None, None, :]]


def crop_flip_uint8(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor,
    padding: int = CROP_PADDING,
) -> torch.Tensor:
    """Random-crop (zero padding ``padding``) and mirror a uint8 batch in one gather.

    x (B, C, H, W); top, left in [0, 2*padding] (B,) int64; flip (B,) bool -> (B, C, H, W).
    Equals, per image, torchvision's RandomCrop(H, padding) with those offsets, then an optional
    horizontal flip.
    """
    if padding:
        x = F.pad(x, (padding,) * 4)  # zeros (black), as RandomCrop's default fill
    which = torch.arange(x.shape[0], device=x.device)
    return _gather_windows(x, which, top, left, flip, size=x.shape[-1] - 2 * padding)


class DeviceLoader:
    """Batches of one split, augmented on the device; deterministic per (seed, epoch).

    ``train=True``: the training split, reshuffled per epoch, augmented (``augment`` defaults to
    ``"crop_flip"``), last partial batch dropped. ``train=False``: the test split in order, never
    augmented, last partial batch kept. ``split`` overrides which split is read (e.g. the
    training images without augmentation for train accuracy or the sharpness probe).

    Iterate with ``epoch_batches(epoch)`` (preferred: stateless), or ``set_epoch(e)`` and ``for
    x, y in loader``. Yields x (B, 3, 32, 32) ``dtype`` normalised, y int64 (B,).
    """

    def __init__(
        self,
        data: DatasetTensors,
        device: str | torch.device,
        batch_size: int,
        *,
        train: bool,
        augment: str | None = None,
        seed: int = 0,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
        split: str | None = None,
    ):
        if augment is None:
            augment = "crop_flip" if train else "none"
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, not {augment!r}")
        if not train and augment != "none":
            raise ValueError("evaluation batches are never augmented (use augment='none')")
        split = split or ("train" if train else "test")
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.device = torch.device(device)
        x, y = (data.train_x, data.train_y) if split == "train" else (data.test_x, data.test_y)
        self.x = x.to(self.device)  # uint8, moved once
        self.y = y.to(self.device)
        self.mean, self.std = tuple(data.mean), tuple(data.std)
        self._affine = normalization_affine(self.mean, self.std, self.device)
        self.batch_size = batch_size
        self.train = train
        self.augment = augment
        self.seed = seed
        self.channels_last = channels_last
        self.dtype = dtype
        self.drop_last = train
        self.epoch = 0

    @property
    def num_samples(self) -> int:
        return self.x.shape[0]

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch_batches(self.epoch)

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, ...]:
        """(order, top, left, flip) for every position of the epoch, on the device.

        Drawn on the CPU from ``epoch_seed(seed, epoch)`` so that the plan is identical on every
        device; all four are drawn even when unused, so the order does not depend on ``augment``.
        """
        n = self.num_samples
        if not self.train:
            zeros = torch.zeros(n, dtype=torch.int64)
            plan = (torch.arange(n), zeros, zeros, zeros.bool())
        else:
            g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            order = torch.randperm(n, generator=g)
            top = torch.randint(0, 2 * CROP_PADDING + 1, (n,), generator=g)
            left = torch.randint(0, 2 * CROP_PADDING + 1, (n,), generator=g)
            flip = torch.randint(0, 2, (n,), generator=g).bool()
            plan = (order, top, left, flip)
        return tuple(t.to(self.device, non_blocking=True) for t in plan)

    def epoch_batches(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, top, left, flip = self.epoch_plan(epoch)
        for i in range(len(self)):
            sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
            idx = order[sl]
            xb = self.x[idx]  # uint8 (B, 3, 32, 32)
            if self.augment == "crop_flip":
                xb = crop_flip_uint8(xb, top[sl], left[sl], flip[sl], CROP_PADDING)
            elif self.augment == "flip":
                xb = torch.where(flip[sl, None, None, None], xb.flip(-1), xb)
            xb = normalize_uint8(xb, self.mean, self.std, self.dtype, affine=self._affine)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, self.y[idx]
