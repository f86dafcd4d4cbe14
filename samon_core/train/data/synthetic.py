"""The synthetic dataset: a fixed, labelled 100-class set of 32x32 RGB images, no download.

It stands in for CIFAR-100 where there is no copy (offline machines, tests, quick looks): smooth
random patterns, several prototypes per class, random shifts, colour jitter, pixel noise and 10%
training label noise, calibrated so that a small CNN learns it well above chance without
saturating (``SyntheticSpec``). It is one fixed dataset, generated from ``SYNTHETIC_SEED``: the run
seed only picks subsets, so runs with different seeds see the same images, as they would with
CIFAR.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from samon_core.train.data.tensors import IMAGE_SIZE, DatasetTensors

SYNTHETIC_SEED = 20231210  # the synthetic set is one fixed dataset, like CIFAR
SYNTHETIC_TRAIN = 10_000
SYNTHETIC_TEST = 2_000


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
    name: str = "synthetic",  # the catalog's name of the set (synthetic, synthetic10)
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
    ``label_noise`` (test labels clean; ``train_y_clean`` keeps the drawn classes), to overfit.
    Deterministic in ``seed`` (one CPU generator, fixed chunking); ~1 s for 12,000 images.
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

    def sample(n: int, label_noise: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]  # balanced
        # Fixed-size chunks keep the temporaries in cache; the draw order stays deterministic.
        x = torch.cat([chunk(y[i:i + 1000]) for i in range(0, n, 1000)]) if n else \
            torch.empty(0, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
        # Drawn even when label_noise = 0, so the images do not depend on the label noise.
        noisy = torch.rand(n, generator=g) < label_noise
        other = (y + torch.randint(1, max(num_classes, 2), (n,), generator=g)) % num_classes
        return x, torch.where(noisy, other, y).to(torch.int64), y.to(torch.int64)

    train_x, train_y, train_clean = sample(n_train, spec.label_noise)
    test_x, test_y, _ = sample(n_test, 0.0)
    mean, std = channel_stats(train_x)
    return DatasetTensors(
        train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, train_y_clean=train_clean,
        num_classes=num_classes, mean=mean, std=std, name=name, synthetic=True,
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
