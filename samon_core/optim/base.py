"""The base optimizers SAM wraps, by name: SGD with momentum, AdamW, and Lion.

Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", 2023) is what the SAM-ON poster
pairs with a ViT-S/32 on ImageNet; it comes from the maintained ``lion-pytorch`` package.
"""

from __future__ import annotations

import torch

from samon_core.catalog import choices

BASE_OPTIMIZER_CHOICES = choices.OPTIMIZERS


def base_optimizer(name: str, *, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    """(optimizer class, keyword arguments) for ``name``; momentum maps to beta1 for AdamW/Lion."""
    if name == "sgd":
        return torch.optim.SGD, dict(lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW, dict(lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)
    if name == "lion":
        from lion_pytorch import Lion

        return Lion, dict(lr=lr, betas=(momentum, 0.99), weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {BASE_OPTIMIZER_CHOICES}, got {name!r}")
