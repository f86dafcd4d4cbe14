"""Everything a run needs before its first step: device, precision, data, model, optimizer.

``build_run(config, data_dir)`` seeds the global RNGs and builds, in this order (the order fixes
which random numbers the model's initialisation draws): the dataset (on the device, data/), the
model (channels_last on CUDA), the optimizer (the base optimizer, wrapped in SAM for the SAM
methods, over SAM-ON's perturbation groups), the loaders, the lr schedule (warm-up, then cosine /
step / constant per optimizer step) and the fixed batch of the sharpness probe (clean labels).

Precision (``resolve_precision``): bf16 autocast on CUDA by default (``precision="auto"``), plain
fp32 on the CPU and MPS; ``"fp32"`` (the paper presets: the authors' train.py has no autocast) on
CUDA lets matmuls and convolutions use TF32 tensor cores (``allow_tf32``), recorded as
"fp32+tf32". The resolved name goes into summary.json. channels_last only on CUDA, where it speeds
up convolutions on tensor cores.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from samon_core.models import build_model
from samon_core.optim import base_optimizer, create_sam
from samon_core.runs.config import RunConfig
from samon_core.train.data import DeviceLoader, load_dataset
from samon_core.train.step import TrainStep


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else MPS, else CPU; a named device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available here (use 'auto' or 'cpu')")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' but MPS is not available here")
    return dev


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA for ``auto``; None means plain fp32."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def has_tf32(device: torch.device) -> bool:
    """Whether ``device`` has TF32 tensor cores: CUDA compute capability 8.0 (Ampere) or later."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def resolve_precision(precision: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """(autocast dtype or None, the arithmetic actually used): "bf16" with autocast, else
    "fp32+tf32" on a CUDA device with TF32 tensor cores (``allow_tf32``) and "fp32" elsewhere
    (the flags change nothing on older GPUs, so the record says plain fp32 there)."""
    amp = autocast_dtype(precision, device)
    if amp is not None:
        return amp, "bf16"
    return None, "fp32+tf32" if has_tf32(device) else "fp32"


def allow_tf32(device: torch.device) -> None:
    """On CUDA, let fp32 matmuls and cuDNN convolutions run on TF32 tensor cores (10-bit mantissa
    products, fp32 accumulation): about the arithmetic of the reference's fp32 runs on Ampere-class
    GPUs, where PyTorch then allowed TF32 by default. Set for every CUDA run, so a worker process
    does not inherit the setting of the run before. Nothing changes for CPU or MPS runs."""
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def autocast(device: torch.device, amp: torch.dtype | None):
    """The autocast context for ``amp``, or a no-op for fp32 (so the CPU path needs no autocast)."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp)


def uses_channels_last(device: torch.device) -> bool:
    """channels_last speeds up convolutions on CUDA tensor cores; on the CPU it does not help."""
    return device.type == "cuda"


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # progress after warm-up, [0, 1]
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    if schedule == "step":  # the classic CIFAR recipe: x0.2 at 30%, 60% and 80% of training
        return 0.2 ** sum(t >= m for m in (0.3, 0.6, 0.8))
    return 1.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_network(config: RunConfig, num_classes: int, device: torch.device) -> nn.Module:
    """The registry model of ``config`` on ``device`` (channels_last on CUDA)."""
    model = build_model(config.model, num_classes=num_classes, norm=config.norm_layer)
    fmt = torch.channels_last if uses_channels_last(device) else torch.preserve_format
    return model.to(device, memory_format=fmt)


def build_optimizer(
    config: RunConfig, model: nn.Module
) -> tuple[torch.optim.Optimizer, int, int]:
    """(optimizer, perturbed parameter count, trainable parameter count).

    SAM methods: ``create_sam`` (the base optimizer wrapped in ``SAM`` over the scope's
    parameter groups; SAM-ON: the normalization layers' gamma/beta); ``base`` is the base
    optimizer alone.
    """
    if config.method != "sam":
        cls, kw = base_optimizer(config.optimizer, lr=config.lr, momentum=config.momentum,
                                 weight_decay=config.weight_decay)
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return cls(model.parameters(), **kw), 0, n_params
    optimizer = create_sam(
        model, scope=config.scope, base=config.optimizer, rho=config.resolved_rho(),
        lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
        adaptive=config.adaptive, ball=config.ball, eta=config.eta,
        normalize_bias=config.normalize_bias, blocks=config.blocks, seed=config.seed,
    )
    n_perturbed, n_params = optimizer.perturbed_count()
    return optimizer, n_perturbed, n_params


def build_step(
    config: RunConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    amp: torch.dtype | None,
) -> TrainStep:
    """The trainer's step function for ``config`` (loss, BatchNorm handling, autocast)."""
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    return TrainStep(
        model,
        optimizer,
        criterion,
        autocast=lambda: autocast(device, amp),
        bn_mode=config.bn_second_pass,
    )


@dataclass
class RunSetup:
    """What ``build_run`` made for one run."""

    device: torch.device
    amp: torch.dtype | None
    precision: str  # the arithmetic used: "fp32", "bf16" or "fp32+tf32" (resolve_precision)
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    step: TrainStep
    train_loader: DeviceLoader
    test_loader: DeviceLoader
    probe: tuple[torch.Tensor, torch.Tensor] | None  # un-augmented training images, clean labels
    n_perturbed: int
    n_params: int
    data_source: str
    synthetic: bool
    num_classes: int  # of the dataset: sets the chance-level loss ln(num_classes)


def build_run(config: RunConfig, data_dir: str | os.PathLike) -> RunSetup:
    """Seed, then build data, model, optimizer, loaders, schedule and probe (module doc)."""
    device = resolve_device(config.device)
    amp, precision = resolve_precision(config.precision, device)
    allow_tf32(device)
    seed_everything(config.seed)
    data = load_dataset(
        config.dataset,
        data_dir,
        train_subset=config.train_subset,
        test_subset=config.test_subset,
        seed=config.seed if config.data_seed is None else config.data_seed,
        label_noise=config.label_noise,
    )
    if len(data.train_y) < config.batch_size:
        raise ValueError(
            f"batch_size={config.batch_size} is larger than the training set "
            f"({len(data.train_y)} images); lower batch_size or raise train_subset"
        )
    model = build_network(config, data.num_classes, device)
    optimizer, n_perturbed, n_params = build_optimizer(config, model)
    channels_last = uses_channels_last(device)
    train_loader = DeviceLoader(
        data,
        device,
        config.batch_size,
        train=True,
        augment=config.augment,
        seed=config.seed,
        channels_last=channels_last,
    )
    test_loader = DeviceLoader(
        data, device, max(config.batch_size, 256), train=False, channels_last=channels_last
    )
    total = config.epochs * len(train_loader)
    warmup = config.warmup_epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup, config.lr_schedule)
    )
    probe = None
    if config.sharpness_samples:
        n = min(config.sharpness_samples, len(data.train_y))
        plain = DeviceLoader(
            data, device, n, train=False, split="train", channels_last=channels_last
        )
        # the first n training images, no augmentation, with their clean labels: the paper
        # measures sharpness on clean data, and noisy labels (label_noise, the synthetic sets'
        # own) would add the loss of fitting wrong targets
        x, _ = next(iter(plain.epoch_batches(0)))
        probe = (x, data.clean_train_labels()[:n].to(device))
    return RunSetup(
        device=device,
        amp=amp,
        precision=precision,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        step=build_step(config, model, optimizer, device, amp),
        train_loader=train_loader,
        test_loader=test_loader,
        probe=probe,
        n_perturbed=n_perturbed,
        n_params=n_params,
        data_source=data.source,
        synthetic=data.synthetic,
        num_classes=data.num_classes,
    )
