"""AutoAugment's CIFAR-10 policy on a uint8 batch on the device, one sub-policy per image.

The authors' published command trains with ``--autoaugment`` (Mueller et al., "Normalization
Layers Are All That Sharpness-Aware Minimization Needs", NeurIPS 2023; github.com/mueller-mp/
SAM-ON): per image, ``RandomCrop(32, padding=4) -> RandomHorizontalFlip -> CIFAR10Policy``
(Cubuk et al., "AutoAugment", CVPR 2019: 25 sub-policies of two operations, each applied with its
probability and magnitude), then ``ToTensor``, ``Normalize``. The loader does the crop and flip as
one gather (loader.py); this module adds the policy with torchvision's implementation,
``torchvision.transforms.v2.AutoAugment(AutoAugmentPolicy.CIFAR10)``, on uint8 (3, 32, 32)
tensors where the batch already is (the GPU in a real run).

Per image, not per batch: a call of torchvision's transform draws ONE sub-policy (and its coin
flips and magnitude signs) for everything it is given, so calling it on the whole batch would give
all 128 images the same operations, a much coarser randomness than the reference's per-image PIL
transform. Each image gets its own call, in batch order.

Deterministic: the transform draws from torch's global CPU generator; ``autoaugment_uint8`` seeds
it with the given seed inside ``torch.random.fork_rng`` (the caller's random state is restored
afterwards, so training draws the same numbers with or without AutoAugment). The loader passes
``loader.batch_seed(seed, epoch, batch)``, so a batch is a pure function of (seed, epoch, batch
index), like its crop and flip.

Fill: the reference's policy (its ``autoaugment.py``) fills the area that shear, translate and
rotate uncover with grey (128, 128, 128); torchvision's default is black. We pass ``fill=128`` to
keep the reference's images. Other small differences of the two implementations (interpolation
of shears, solarize threshold 255 vs 256 steps) are listed in docs/fidelity.md.
"""

from __future__ import annotations

import functools

import torch

# The grey the reference's CIFAR10Policy fills uncovered pixels with.
REFERENCE_FILL = 128


@functools.cache
def cifar10_policy():
    """torchvision's AutoAugment with the CIFAR-10 policy and the reference's grey fill."""
    from torchvision.transforms import v2  # imported on first use: only autoaugment runs need it

    return v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10, fill=REFERENCE_FILL)


def autoaugment_uint8(x: torch.Tensor, seed: int) -> torch.Tensor:
    """AutoAugment (CIFAR-10 policy) on each image of the uint8 batch ``x`` (B, 3, H, W), on x's
    device; image i gets the i-th draw after seeding the CPU generator with ``seed``. Returns a
    new uint8 batch; the global random state is unchanged."""
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(f"expected a uint8 batch (B, C, H, W), got {x.dtype} {tuple(x.shape)}")
    policy = cifar10_policy()
    out = torch.empty_like(x)
    with torch.random.fork_rng(devices=[]):  # CPU only: the policy draws on the CPU generator
        torch.manual_seed(seed)
        for i in range(x.shape[0]):
            out[i] = policy(x[i])
    return out
