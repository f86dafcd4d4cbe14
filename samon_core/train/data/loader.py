"""Batches of one split, augmented on the device: the input pipeline of the trainer.

The goal is to feed a small CIFAR network fast enough that the GPU, not the input pipeline, is
the limit (the reference trains 200 epochs of CIFAR-100, Mueller et al., "Normalization Layers
Are All That Sharpness-Aware Minimization Needs", NeurIPS 2023).

The whole split lives on the device as uint8 (CIFAR-100 train: 150 MB). Per epoch, the
permutation, crop offsets and flip bits are drawn on the CPU from a generator seeded by
``(seed, epoch)`` (``epoch_seed``); the batches of an epoch are therefore a pure function of
(seed, epoch), the same on every device, and resuming at an epoch needs no saved RNG state. A batch
is ``uint8 gather -> pad 4 with zeros -> one gather of per-sample 32x32 windows (the flip folded
into the column index) -> float -> (x/255 - mean) / std``, the same result as torchvision's
``RandomCrop(32, padding=4)`` (zero fill), ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``
on each image. ``augment="autoaugment"`` adds AutoAugment's CIFAR-10 policy after the flip, per
image, as the authors' ``--autoaugment`` does (autoaugment.py); its random draws are seeded by
``batch_seed(seed, epoch, batch)``, so those batches too are a pure function of (seed, epoch).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from samon_core.train.data.autoaugment import autoaugment_uint8
from samon_core.train.data.tensors import IMAGE_SIZE, DatasetTensors

AUGMENTATIONS = ("crop_flip", "flip", "none", "autoaugment")
CROP_PADDING = 4
_WITH_CROP = ("crop_flip", "autoaugment")  # the augmentations that start with crop + flip


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit generator seed that is a fixed function of (seed, epoch)."""
    return (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + 1) % (2**63)


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """The AutoAugment seed of batch ``batch`` (0-based) of ``epoch``: a fixed function of the
    three that differs from ``epoch_seed(seed, epoch)`` (an odd multiple of batch + 1 added)."""
    return (epoch_seed(seed, epoch) + (batch + 1) * 0x94D049BB133111EB) % (2**63)


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
    ``"crop_flip"``; ``"autoaugment"`` = crop + flip + AutoAugment), last partial batch dropped.
    ``train=False``: the test split in order, never augmented, last partial batch kept. ``split``
    overrides which split is read (e.g. the training images without augmentation for train
    accuracy or the sharpness probe).

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
            if self.augment in _WITH_CROP:
                xb = crop_flip_uint8(xb, top[sl], left[sl], flip[sl], CROP_PADDING)
            elif self.augment == "flip":
                xb = torch.where(flip[sl, None, None, None], xb.flip(-1), xb)
            if self.augment == "autoaugment":  # after crop + flip, as the reference's Compose
                xb = autoaugment_uint8(xb, batch_seed(self.seed, epoch, i))
            xb = normalize_uint8(xb, self.mean, self.std, self.dtype, affine=self._affine)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, self.y[idx]


def first_images(loader: DeviceLoader, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of ``loader``'s epoch 0 (or all of them), as (x, y) on its device:
    a fixed set for measurements such as the landscape slices."""
    xs, ys, have = [], [], 0
    for x, y in loader.epoch_batches(0):
        xs.append(x)
        ys.append(y)
        have += len(y)
        if have >= n:
            break
    return torch.cat(xs)[:n], torch.cat(ys)[:n]
