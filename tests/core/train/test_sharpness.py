"""samon_core.train.sharpness: logit-normalised adaptive l_inf m-sharpness."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from samon_core.train.sharpness import (
    checkpoints,
    linf_adaptive_ascent,
    logit_normalized_ce,
    m_sharpness,
)


def _data(n=256, d=10, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    return x, y


def _linear(d=10, c=5, seed=0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, c)


def _bn_model(seed=0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(16, 5))


def test_logit_normalized_ce_is_shift_and_scale_invariant():
    torch.manual_seed(0)
    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    base = logit_normalized_ce(logits, y)
    assert torch.allclose(base, logit_normalized_ce(3.0 * logits + 7.0, y), atol=1e-6)
    z = logits - logits.mean(1, keepdim=True)
    z = z / z.norm(dim=1, keepdim=True)
    assert torch.allclose(base, F.cross_entropy(z, y), atol=1e-7)


def test_one_step_equals_direct_computation_on_a_linear_model():
    model, (x, y) = _linear(), _data()
    rho, m = 0.05, 64
    got = m_sharpness(model, x, y, rho=rho, steps=1, m=m)
    terms = []
    for b in range(4):
        xb, yb = x[b * m:(b + 1) * m], y[b * m:(b + 1) * m]
        w, bias = model.weight.detach().clone(), model.bias.detach().clone()
        w.requires_grad_(True)
        bias.requires_grad_(True)
        clean = logit_normalized_ce(F.linear(xb, w, bias), yb)
        gw, gb = torch.autograd.grad(clean, (w, bias))
        with torch.no_grad():
            # 3/4 of the l_inf box corner along the gradient sign: the paper's code applies its
            # momentum (0.75) to the first step too
            w2 = w + 0.75 * rho * w.abs() * gw.sign()
            b2 = bias + 0.75 * rho * bias.abs() * gb.sign()
            diff = logit_normalized_ce(F.linear(xb, w2, b2), yb) - clean
        assert diff > 0  # (so the max with the clean point changes nothing here)
        terms.append(max(diff.item(), 0.0))
    assert got == pytest.approx(sum(terms) / len(terms), rel=1e-5, abs=1e-8)


def test_rho_zero_gives_zero():
    model, (x, y) = _bn_model(), _data()
    assert m_sharpness(model, x, y, rho=0.0, steps=20, m=128) == 0.0
    assert linf_adaptive_ascent(model, x[:128], y[:128], 0.0, 3).sharpness == 0.0


def test_multi_step_keeps_the_best_and_stays_in_the_box():
    model, (x, y) = _bn_model(), _data(128)
    rho = 0.05
    params = [p for p in model.parameters()]
    w0 = [p.detach().clone() for p in params]
    res = linf_adaptive_ascent(model, x, y, rho, steps=20, keep_delta=True)
    assert len(res.losses) == 21 and res.losses[0] == res.clean_loss
    assert res.best_loss == max(res.losses) and res.sharpness >= 0
    assert res.step_sizes[0] == 2 * rho
    assert all(b <= a for a, b in itertools.pairwise(res.step_sizes))
    for d, w in zip(res.best_delta, w0, strict=True):
        assert (d.abs() <= rho * w.abs() + 1e-7).all()
    # The returned maximiser reproduces the best loss (eval mode, BN running stats).
    probe = copy.deepcopy(model).eval()
    with torch.no_grad():
        for p, w, d in zip(probe.parameters(), w0, res.best_delta, strict=True):
            p.copy_(w + d)
        assert logit_normalized_ce(probe(x), y).item() == pytest.approx(res.best_loss, rel=1e-6)
    # The first multi-step iterate is the 1-step corner, so more steps never report less.
    one = linf_adaptive_ascent(model, x, y, rho, steps=1)
    assert one.step_sizes == [2 * rho]
    assert res.best_loss >= one.best_loss - 1e-7
    assert m_sharpness(model, x, y, rho, 20, m=64) >= m_sharpness(model, x, y, rho, 1, m=64) - 1e-7


def test_step_size_halves_on_stalls():
    model, (x, y) = _bn_model(), _data(128)
    res = linf_adaptive_ascent(model, x, y, 0.5, steps=20)
    assert res.step_sizes[0] == 1.0 and min(res.step_sizes) < 1.0  # a large rho must stall
    # the step size changes only right after a checkpoint
    changes = [k for k in range(1, 20) if res.step_sizes[k] != res.step_sizes[k - 1]]
    assert changes and all(k - 1 in checkpoints(20) for k in changes)


def test_checkpoints_follow_the_reference_schedule():
    # p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 of the steps, rounded up (0.70 * 20 is
    # 14.000000000000002 in floating point, so 15, as in the reference)
    assert checkpoints(20) == (5, 9, 12, 15, 16, 18, 19, 20)
    assert checkpoints(1) == (1,)  # no check inside a 1-step ascent
    assert checkpoints(100)[:3] == (22, 41, 58)  # 0.57 * 100 = 57.00000000000001


class _LinearLoss(nn.Module):
    """f(x) = x . w with a loss equal to the mean output: L(w + d) - L(w) = g . d exactly, with
    g = mean(x) fixed, so every iterate of the ascent can be written down by hand."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x):
        return x @ self.w


def test_ascent_iterates_on_a_loss_linear_in_w_match_the_hand_computation():
    # With a fixed gradient sign every z is the box corner c = rho |w| sign(g) (the step 2 rho
    # overshoots it), so delta_{k+1} = 0.75 c + 0.25 delta_{k-1}: 0.75 c, 0.75 c, 0.9375 c, ...
    # and the gain over L(w) is a_k * rho * sum |w_i g_i| with a = 0.75, 0.75, 0.9375, 0.9375.
    torch.manual_seed(0)
    x, y = torch.randn(32, 6) + 0.5, torch.zeros(32, dtype=torch.long)
    w = torch.randn(6)
    model = _LinearLoss(w)
    rho = 0.05
    full_gain = rho * (w.abs() * x.mean(0).abs()).sum().item()
    loss = lambda out, _y: out.mean()  # noqa: E731
    for steps, a in ((1, 0.75), (2, 0.75), (3, 0.9375), (4, 0.9375), (5, 0.984375)):
        res = linf_adaptive_ascent(model, x, y, rho, steps, loss_fn=loss)
        assert res.sharpness == pytest.approx(a * full_gain, rel=1e-5), steps


def _reference_ascent(model, x, y, rho, steps):
    """A straightforward transcription of the procedure in the paper's sharpness code (dicts,
    a deep copy of the model, load_state_dict for the resets), independent of the one under test."""
    model = copy.deepcopy(model).eval()
    orig = {n: p.detach().clone() for n, p in model.named_parameters()}
    delta = {n: torch.zeros_like(p) for n, p in orig.items()}
    prev = {n: torch.zeros_like(p) for n, p in orig.items()}
    with torch.no_grad():
        init = logit_normalized_ce(model(x), y).item()
    worst, worst_state = init, copy.deepcopy(model.state_dict())
    step, prev_step, prev_worst, prev_cp, updates = 2 * rho, 2 * rho, init, 0, 0
    marks = [0, math.ceil(steps * 0.22)]
    ps = [0, 0.22]
    while marks[-1] < steps and marks[-1] != marks[-2]:
        ps.append(ps[-1] + max(ps[-1] - ps[-2] - 0.03, 0.06))
        marks.append(math.ceil(ps[-1] * steps))
    marks = marks[1:]
    for i in range(steps):
        model.zero_grad()
        logit_normalized_ce(model(x), y).backward()
        backup = {n: d.clone() for n, d in delta.items()}
        with torch.no_grad():
            for n, p in model.named_parameters():
                box = rho * orig[n].abs()
                z = torch.max(torch.min(delta[n] + step * p.grad.sign() * orig[n].abs(), box), -box)
                delta[n] = 0.75 * z + 0.25 * prev[n]
                p.copy_(orig[n] + delta[n])
            prev = backup
            cur = logit_normalized_ce(model(x), y).item()
        if cur > worst:
            worst, worst_state, updates = cur, copy.deepcopy(model.state_dict()), updates + 1
        if i in marks:
            cond1 = updates < 0.75 * (i - prev_cp)
            cond2 = prev_step == step and prev_worst == worst
            prev_step, prev_worst, prev_cp, updates = step, worst, i, 0
            if cond1 or cond2:
                step *= 0.5
                model.load_state_dict(worst_state)
    return worst - init


@pytest.mark.parametrize("steps,rho", [(1, 0.01), (1, 0.03), (20, 0.003), (20, 0.05)])
def test_ascent_equals_an_independent_implementation_on_a_small_net(steps, rho):
    model, (x, y) = _bn_model(), _data(128)
    model.train()
    model(x)  # non-trivial BatchNorm running statistics
    model.eval()
    model = model.double()
    x = x.double()
    got = linf_adaptive_ascent(model, x, y, rho, steps).sharpness
    assert got == pytest.approx(_reference_ascent(model, x, y, rho, steps), rel=1e-9, abs=1e-12)


def test_model_is_restored_exactly():
    model, (x, y) = _bn_model(), _data()
    model.train()
    model(x)  # give BatchNorm non-trivial running statistics
    model[3].eval()  # mixed per-module modes must come back as they were
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]

    value = m_sharpness(model, x, y, rho=0.1, steps=5, m=128)

    assert value > 0
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k  # bitwise, incl. running stats
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True))


def test_only_requires_grad_parameters_are_perturbed_and_m_checks():
    model, (x, y) = _bn_model(), _data()
    for p in model.parameters():
        p.requires_grad_(False)
    model[1].weight.requires_grad_(True)  # only the BatchNorm gamma
    res = linf_adaptive_ascent(model, x[:128], y[:128], 0.2, steps=3, keep_delta=True)
    assert len(res.best_delta) == 1 and res.best_delta[0].shape == (16,)
    with pytest.raises(ValueError, match="at least m"):
        m_sharpness(model, x[:100], y[:100], 0.1, 1, m=128)
