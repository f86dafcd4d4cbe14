"""Logit-normalised adaptive l_inf m-sharpness, the sharpness measure of the SAM-ON paper.

Mueller et al. ("Normalization Layers Are All That Sharpness-Aware Minimization Needs", NeurIPS
2023) report, following Andriushchenko et al. (2023, "A modern look at the relationship between
sharpness and generalization")::

    S(w) = 1/B sum_b [ max_{|delta| <= rho |w| (elementwise)} L_b(w + delta) - L_b(w) ]

over B batches of m points each (m = 128, 1,024 un-augmented training points), where

* all trainable parameters are perturbed, the model is in eval mode (BatchNorm uses and keeps its
  running statistics);
* L_b is the cross-entropy of *logit-normalised* outputs: z = l - mean(l), z / ||z||_2 per sample
  (no label smoothing), which removes the trivial sharpness change from rescaling the logits;
* the inner max is approximated by sign-gradient ascent (``linf_adaptive_ascent``).

Ascent: sign-gradient ascent with momentum (Auto-PGD, Croce & Hein 2020), step for step as the
paper's sharpness code does it (Andriushchenko et al., tml-epfl/sharpness-vs-generalization,
``eval_APGD_sharpness``; written anew here, see docs/fidelity.md). Step sizes are in units of |w0|,
P is the clamp onto the box |delta| <= rho |w0|, alpha = ``momentum`` = 0.75::

    delta_0 = delta_{-1} = 0,  eta = 2 rho,  u = w0 (the point where the gradient is taken)
    z_{k+1}     = P(delta_k + eta |w0| sign(grad L(u)))
    delta_{k+1} = alpha z_{k+1} + (1 - alpha) delta_{k-1}        u = w0 + delta_{k+1}

So the momentum acts on the first step too: one step lands at 0.75 rho |w0| sign(g), three
quarters of the box corner. The worst loss seen (starting from L(w0)) is kept with its delta; an
iterate counts as an improvement only when its loss is strictly larger. At the checkpoints
(``checkpoints(steps)``: fractions p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03,
0.06) of the steps, rounded up) eta is halved and u is reset to the worst point (the running delta
is kept) when fewer than 75% of the steps since the last checkpoint improved the worst loss, or
when neither eta nor the worst loss changed since then. The value is worst loss - L(w0) >= 0.

The model is left exactly as found: parameters restored bitwise from saved copies, each module's
``training`` flag restored; gradients are taken with ``torch.autograd.grad``, so ``.grad`` fields
are untouched, and in eval mode BatchNorm buffers do not change.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


def logit_normalized_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of centred, l2-normalised logits. logits (B, C), y (B,) -> scalar."""
    z = logits - logits.mean(dim=1, keepdim=True)  # (B, C), centred per sample
    z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)  # unit l2 norm per sample
    return F.cross_entropy(z, y)


@dataclass
class AscentResult:
    """Outcome of one inner maximisation on one batch."""

    clean_loss: float  # L(w0)
    best_loss: float  # max over the evaluated iterates, >= clean_loss
    losses: list[float] = field(default_factory=list)  # loss of every iterate, losses[0] = clean
    step_sizes: list[float] = field(default_factory=list)  # eta used for each step (units of |w|)
    best_delta: list[torch.Tensor] | None = None  # the maximiser found (one tensor per param)

    @property
    def sharpness(self) -> float:
        return self.best_loss - self.clean_loss


@contextlib.contextmanager
def frozen_eval(
    model: nn.Module, params: Sequence[torch.Tensor]
) -> Iterator[list[torch.Tensor]]:
    """Eval mode inside, yielding copies of ``params``; afterwards every module's ``training``
    flag and every parameter restored bitwise (from those copies), whatever happened inside."""
    modes = [(m, m.training) for m in model.modules()]
    saved = [p.detach().clone() for p in params]
    model.eval()
    try:
        yield saved
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
        for m, mode in modes:
            m.training = mode


def _set_params(params: Sequence[torch.Tensor], w0: Sequence[torch.Tensor],
                delta: Sequence[torch.Tensor]) -> None:
    """w = w0 + delta, in place (delta = 0 gives w0 bitwise)."""
    with torch.no_grad():
        for p, w, d in zip(params, w0, delta, strict=True):
            p.copy_(w).add_(d)


def _loss_and_grad(model, x, y, params, loss_fn) -> tuple[float, list[torch.Tensor]]:
    with torch.enable_grad():
        loss = loss_fn(model(x), y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]
    return loss.item(), grads


@torch.no_grad()
def _loss(model, x, y, loss_fn) -> float:
    return loss_fn(model(x), y).item()


def checkpoints(steps: int) -> tuple[int, ...]:
    """The 0-based iterations at which the ascent checks its progress (module doc): the fractions
    p_j of ``steps`` rounded up, from p_1 = 0.22 on, until they reach ``steps`` or repeat.
    20 steps -> (5, 9, 12, 15, 16, 18, 19, 20); 1 step -> (1,), i.e. no check. The float
    arithmetic is the reference's (0.70 * 20 rounds up to 15), so the schedules agree exactly."""
    fractions = [0.0, 0.22]
    marks = [0, math.ceil(steps * 0.22)]
    while marks[-1] < steps and marks[-1] != marks[-2]:
        fractions.append(fractions[-1] + max(fractions[-1] - fractions[-2] - 0.03, 0.06))
        marks.append(math.ceil(fractions[-1] * steps))
    return tuple(marks[1:])


def _momentum_step(delta, prev, grads, scale, radius, eta: float, momentum: float):
    """delta_{k+1} = alpha P(delta_k + eta |w0| sign(g)) + (1 - alpha) delta_{k-1}, per tensor.
    A convex combination of two points of the box, so delta_{k+1} stays in the box."""
    out = []
    for d, dp, g, s, r in zip(delta, prev, grads, scale, radius, strict=True):
        z = (d + eta * s * g.sign()).clamp_(-r, r)
        out.append(z.mul_(momentum).add_(dp, alpha=1.0 - momentum))
    return out


def linf_adaptive_ascent(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    rho: float,
    steps: int,
    *,
    params: Sequence[torch.Tensor] | None = None,
    momentum: float = 0.75,
    min_update_ratio: float = 0.75,
    loss_fn=logit_normalized_ce,
    keep_delta: bool = False,
) -> AscentResult:
    """Approximate max_{|delta| <= rho |w|} loss_fn(model_{w+delta}(x), y) (see the module doc).

    ``params``: the perturbed tensors (default: every parameter with requires_grad). The model is
    evaluated in eval mode and restored exactly afterwards. ``keep_delta`` returns the maximiser.
    Costs ``steps`` forward+backward passes, one more forward pass, and one forward+backward pass
    per step-size reduction (the gradient at the reset point).
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
    params = list(params)
    marks = set(checkpoints(steps))

    with frozen_eval(model, params) as w0:  # w0: the unperturbed values, restored afterwards
        scale = [w.abs() for w in w0]
        radius = [rho * s for s in scale]  # box half-widths, one tensor per param
        delta = [torch.zeros_like(w) for w in w0]
        prev = [torch.zeros_like(w) for w in w0]  # delta_{k-1}
        best_delta = [d.clone() for d in delta]

        clean, grads = _loss_and_grad(model, x, y, params, loss_fn)  # at w0
        losses, etas = [clean], []
        best, eta = clean, 2.0 * rho
        last_mark, improved, eta_at_mark, best_at_mark = 0, 0, eta, best
        for k in range(steps):
            etas.append(eta)
            prev, delta = delta, _momentum_step(delta, prev, grads, scale, radius, eta, momentum)
            _set_params(params, w0, delta)
            if k == steps - 1:
                loss = _loss(model, x, y, loss_fn)
            else:
                loss, grads = _loss_and_grad(model, x, y, params, loss_fn)
            losses.append(loss)
            if loss > best:
                best, improved = loss, improved + 1
                best_delta = [d.clone() for d in delta]
            if k in marks and k < steps - 1:
                stalled = improved < min_update_ratio * (k - last_mark)
                unchanged = eta == eta_at_mark and best == best_at_mark
                last_mark, improved, eta_at_mark, best_at_mark = k, 0, eta, best
                if stalled or unchanged:  # halve; take the next gradient at the worst point
                    eta *= 0.5
                    _set_params(params, w0, best_delta)
                    _, grads = _loss_and_grad(model, x, y, params, loss_fn)

    return AscentResult(clean, best, losses, etas, best_delta if keep_delta else None)


def m_sharpness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    rho: float,
    steps: int,
    m: int = 128,
    **ascent_kwargs,
) -> float:
    """Mean over consecutive batches of ``m`` points of (best perturbed loss - clean loss).

    x (N, ...) already normalised inputs on the model's device, y (N,). Only full batches are used
    (N // m of them; N >= m required), so every term is the sharpness of exactly m points.
    ``rho = 0`` gives 0 without any computation.
    """
    n_batches = x.shape[0] // m
    if n_batches < 1:
        raise ValueError(f"need at least m = {m} points, got {x.shape[0]}")
    if rho == 0:
        return 0.0
    total = 0.0
    for b in range(n_batches):
        sl = slice(b * m, (b + 1) * m)
        total += linf_adaptive_ascent(model, x[sl], y[sl], rho, steps, **ascent_kwargs).sharpness
    return total / n_batches
