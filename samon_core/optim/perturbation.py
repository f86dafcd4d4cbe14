"""The SAM ascent step as pure functions: from weights and gradients to the perturbation eps.

SAM (Foret et al., ICLR 2021) and ASAM (Kwon et al., ICML 2021) approximate the inner maximisation

    max_{||T_w^{-1} eps||_p <= rho}  L(w + eps)

by one linear step. With g the gradient at w, for the perturbed parameters only:

    p = 2:        eps = rho * T_w^2 g / ||T_w g||_2  (norm over all perturbed parameters)
    p = inf:      eps = rho * T_w sign(g)

and the normalisation operator T_w (a diagonal matrix, stored per tensor) is

    "none":        T_w = 1                                (plain SAM)
    "elementwise": T_w = |w| + eta                        (ASAM, per weight)
    "layerwise":   T_w = ||w||_2 + eta                    (one scalar per tensor)

Following the SAM-ON reference (Mueller et al., NeurIPS 2023, arXiv 2306.04226), T_w applies only to
weight tensors (for a normalization layer: gamma); biases, including beta, and tensors that are no
`.weight` at all (a ViT's cls token and position embedding) use T_w = 1 unless
``normalize_bias`` is set. A random-mask perturbation multiplies g by a 0/1 mask first, so that both
the norm and eps involve the selected weights only.

Everything here works on lists of tensors with ``torch._foreach_*`` kernels: one kernel launch per
operation for the whole list, which is what keeps SAM's bookkeeping cheap next to forward/backward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from samon_core.catalog import choices

ADAPTIVE_CHOICES = choices.ADAPTIVE
BALL_CHOICES = choices.BALLS  # the p-norm of the perturbation ball

# Guards the division when every perturbed gradient is exactly zero (eps is then 0, not NaN).
_TINY = 1e-12


def adaptive_scales(
    weights: Sequence[Tensor], adaptive: str, eta: float, use_scale: Sequence[bool]
) -> list[Tensor | None]:
    """T_w for each tensor: a tensor of w's shape ("elementwise"), a 0-d tensor ("layerwise"),
    or None meaning T_w = 1 ("none", or a bias without ``normalize_bias``)."""
    if adaptive not in ADAPTIVE_CHOICES:
        raise ValueError(f"adaptive must be one of {ADAPTIVE_CHOICES}, got {adaptive!r}")
    if adaptive == "none":
        return [None] * len(weights)
    scaled = [w for w, s in zip(weights, use_scale, strict=True) if s]
    if adaptive == "elementwise":
        values = torch._foreach_add(torch._foreach_abs(scaled), eta) if scaled else []
    else:
        values = torch._foreach_add(torch._foreach_norm(scaled), eta) if scaled else []
    it = iter(values)
    return [next(it) if s else None for s in use_scale]


def _apply(scales: Sequence[Tensor | None], tensors: Sequence[Tensor]) -> list[Tensor]:
    """T_w * t for each pair (T_w = None means 1)."""
    return [t if s is None else t * s for s, t in zip(scales, tensors, strict=True)]


def sam_perturbation(
    weights: Sequence[Tensor],
    grads: Sequence[Tensor],
    *,
    rho: float,
    adaptive: str = "none",
    ball: str = "l2",
    eta: float = 0.0,
    use_scale: Sequence[bool] | None = None,
    masks: Sequence[Tensor | None] | None = None,
) -> list[Tensor]:
    """Return eps (one tensor per weight) for one SAM ascent step; the inputs are not modified.

    weights, grads: matching lists of tensors (grads at w).
    use_scale: per tensor, whether T_w applies (False for biases without normalize_bias).
    masks: per tensor, None or a bool/0-1 tensor of the same shape (random-mask scope).
    """
    if ball not in BALL_CHOICES:
        raise ValueError(f"ball must be one of {BALL_CHOICES}, got {ball!r}")
    if not weights:
        return []
    if use_scale is None:
        use_scale = [True] * len(weights)
    if masks is not None:
        grads = [g if m is None else g * m for g, m in zip(grads, masks, strict=True)]
    scales = adaptive_scales(weights, adaptive, eta, use_scale)

    if ball == "linf":
        eps = torch._foreach_sign(list(grads))
        eps = _apply(scales, eps)
        torch._foreach_mul_(eps, rho)
        return eps

    scaled = _apply(scales, grads)  # T_w g
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(scaled)))  # ||T_w g||_2
    # Out of place: with T_w = 1 and no mask, `scaled` holds the caller's gradient tensors.
    return torch._foreach_mul(
        _apply(scales, scaled), rho / total.clamp_min(_TINY)
    )  # rho T_w^2 g / ||.||
