"""Loss-landscape slices around trained weights: what the minimum each method found looks like.

Li et al. ("Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018) plot

    f(a)    = L(w + a d)            (1D)        f(a, b) = L(w + a d1 + b d2)      (2D)

along random directions d whose scale follows the weights': *filter normalisation* draws
d ~ N(0, I) and rescales each filter d_i (one output unit: a row of a linear weight, an output
channel of a conv kernel) to the norm of the weight's filter, d_i <- d_i ||w_i|| / ||d_i||, so
that a = 1 moves every filter by its own size whatever the scale-invariance of a normalised
network would hide. One-dimensional tensors (biases, and the gamma / beta that SAM-ON perturbs)
are scaled as one filter: d <- d ||w|| / ||d||. (Li et al. zero the direction on biases and norm
parameters; we keep them, because for SAM-ON they are the parameters that matter.)

The direction is drawn from a seeded generator in the order of ``model.named_parameters()``, so
every run of a comparison (same architecture) gets the same random draw, normalised to its own
weights: their curves compare. The adversarial slice uses the normalised gradient instead
(``gradient_direction``): the worst direction that sharpness measures, beside a random one.

The loss is the plain cross-entropy in eval mode (BatchNorm running statistics as trained), on a
fixed set of images; at a = 0 it equals the model's eval loss on them. The model is left exactly
as found (weights restored bitwise, modes restored; see ``sharpness.frozen_eval``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from samon_core.train.sharpness import frozen_eval


def filter_normalize(direction: Sequence[torch.Tensor], weights: Sequence[torch.Tensor]) -> list:
    """Each filter of each direction tensor rescaled to the norm of the weight's filter (module
    doc). A zero filter of the direction stays zero."""
    out = []
    for d, w in zip(direction, weights, strict=True):
        if d.dim() <= 1:
            scale = w.norm() / d.norm().clamp_min(1e-12)
            out.append(d * scale)
            continue
        # per output filter: (C_out, ...) -> norms (C_out,), broadcast back as (C_out, 1, ...)
        w_norm = torch.linalg.vector_norm(w.flatten(1), dim=1)
        d_norm = torch.linalg.vector_norm(d.flatten(1), dim=1).clamp_min(1e-12)
        out.append(d * (w_norm / d_norm).view(-1, *([1] * (d.dim() - 1))))
    return out


def random_direction(model: nn.Module, seed: int) -> list[torch.Tensor]:
    """A filter-normalised Gaussian direction, one tensor per trainable parameter (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    raw = [torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p) for p in params]
    return filter_normalize(raw, [p.detach() for p in params])


def gradient_direction(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """The filter-normalised gradient of the eval loss at the current weights: the direction of
    steepest increase, the one sharpness probes."""
    params = [p for p in model.parameters() if p.requires_grad]
    with frozen_eval(model, params):
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]
    return filter_normalize(grads, [p.detach() for p in params])


@torch.no_grad()
def _eval_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    total = 0.0
    for i in range(0, len(y), batch):
        total += F.cross_entropy(model(x[i:i + batch]), y[i:i + batch], reduction="sum").item()
    return total / len(y)


def loss_slice(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    directions: Sequence[Sequence[torch.Tensor]],
    grid: Sequence[Sequence[float]],
    *,
    batch: int = 256,
) -> list[float]:
    """L(w + sum_k a_k d_k) for each coefficient tuple a of ``grid`` (one entry per direction);
    x (N, ...) on the model's device, y (N,). Weights and modes restored afterwards."""
    params = [p for p in model.parameters() if p.requires_grad]
    losses = []
    with frozen_eval(model, params) as w0, torch.no_grad():
        for coeffs in grid:
            for i, p in enumerate(params):
                p.copy_(w0[i])
                for a, d in zip(coeffs, directions, strict=True):
                    if a:
                        p.add_(d[i], alpha=float(a))
            losses.append(_eval_loss(model, x, y, batch))
    return losses


def offsets(points: int, radius: float) -> list[float]:
    """``points`` evenly spaced offsets in [-radius, radius] (0 included when points is odd)."""
    if points < 2:
        raise ValueError(f"a slice needs at least 2 points, got {points}")
    return [-radius + 2 * radius * i / (points - 1) for i in range(points)]
