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

Ascent (Auto-PGD style, Croce & Hein 2020; written for this project). Step sizes are in units of
|w|: a step of size eta moves delta by eta * |w0| * sign(g). Let P be the projection (clamp) onto
the box |delta| <= rho |w0|, alpha = ``momentum`` (0.75)::

    delta_0 = 0,  eta = 2 rho                         (1 step: eta = rho, see below)
    z_{k+1}     = P(delta_k + eta |w0| sign(g_k))     g_k = grad of L at w0 + delta_k
    delta_{k+1} = z_{k+1}                                                      if k = 0
                = P(delta_k + alpha (z_{k+1} - delta_k) + (1 - alpha)(delta_k - delta_{k-1}))
                                                                              otherwise

Every iterate's loss is evaluated (the one at delta_k comes free with g_k; the last one needs one
more forward pass), and the best loss seen, *including delta_0 = 0*, is kept: the result is a
lower bound of the true max and never below L(w0), so the sharpness is >= 0. Stalls: after every
``check_every`` iterations (default max(1, round(0.2 * steps)), i.e. 4 for 20 steps) the best loss
is compared with its value at the previous check; if it did not strictly increase, eta is halved
and the iterate restarts from the best delta so far (momentum reset).
With ``steps = 1`` the single step is eta = rho from 0: delta = rho |w0| sign(g_0), the box corner
that maximises the first-order (linear) approximation of the loss (FGSM); the value is
max(L(w0 + delta) - L(w0), 0).

The model is left exactly as found: parameters restored bitwise from saved copies, each module's
``training`` flag restored; gradients are taken with ``torch.autograd.grad``, so ``.grad`` fields
are untouched, and in eval mode BatchNorm buffers do not change.
"""

from __future__ import annotations

import contextlib
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


def linf_adaptive_ascent(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    rho: float,
    steps: int,
    *,
    params: Sequence[torch.Tensor] | None = None,
    momentum: float = 0.75,
    check_every: int | None = None,
    loss_fn=logit_normalized_ce,
    keep_delta: bool = False,
) -> AscentResult:
    """Approximate max_{|delta| <= rho |w|} loss_fn(model_{w+delta}(x), y) (see the module doc).

    ``params``: the perturbed tensors (default: every parameter with requires_grad). The model is
    evaluated in eval mode and restored exactly afterwards. ``keep_delta`` returns the maximiser.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
    params = list(params)
    check_every = check_every or max(1, round(0.2 * steps))

    with frozen_eval(model, params) as w0:  # w0: the unperturbed values, restored afterwards
        radius = [rho * w.abs() for w in w0]  # box half-widths, one tensor per param
        delta = [torch.zeros_like(w) for w in w0]
        prev = [torch.zeros_like(w) for w in w0]  # delta_{k-1}, for the momentum term
        best_delta = [d.clone() for d in delta]

        clean, grads = _loss_and_grad(model, x, y, params, loss_fn)  # at delta_0 = 0
        losses, etas = [clean], []
        best = clean
        eta = rho if steps == 1 else 2.0 * rho
        best_at_check = best
        for k in range(steps):
            etas.append(eta)
            new = []
            for d, dp, g, w, r in zip(delta, prev, grads, w0, radius, strict=True):
                z = (d + eta * w.abs() * g.sign()).clamp_(-r, r)
                if k > 0:  # momentum step between the sign step and the previous move
                    z = (d + momentum * (z - d) + (1 - momentum) * (d - dp)).clamp_(-r, r)
                new.append(z)
            prev, delta = delta, new
            _set_params(params, w0, delta)
            last = k == steps - 1
            if last:
                loss = _loss(model, x, y, loss_fn)
            else:
                loss, grads = _loss_and_grad(model, x, y, params, loss_fn)
            losses.append(loss)
            if loss > best:
                best = loss
                best_delta = [d.clone() for d in delta]
            if not last and (k + 1) % check_every == 0:
                if not best > best_at_check:  # stalled: halve, restart from the best point
                    eta /= 2.0
                    delta = [d.clone() for d in best_delta]
                    prev = [d.clone() for d in best_delta]
                    _set_params(params, w0, delta)
                    _, grads = _loss_and_grad(model, x, y, params, loss_fn)
                best_at_check = best

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
