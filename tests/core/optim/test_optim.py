"""SAM / SAM-ON against a float64 for-loop reference of the formulas in reference-facts.md."""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import warnings

import pytest
import torch
from torch import nn

from samon_core.norms import norm_parameter_ids
from samon_core.optim import (
    SAM,
    base_optimizer,
    bn_second_pass,
    perturbation_groups,
    perturbed_count,
)


class TinyNet(nn.Module):
    """Stages named like the registry's models, a bias-free conv, BN and GN, a linear head."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.stage1 = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.stage2 = nn.Sequential(nn.GroupNorm(2, 4), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, classes))

    def forward(self, x):
        return self.head(self.stage2(self.stage1(self.stem(x))))


def make_model(seed: int = 0, dtype=torch.float64) -> TinyNet:
    torch.manual_seed(seed)
    m = TinyNet().to(dtype)
    with torch.no_grad():  # gamma away from 1 so that the adaptive variants differ from plain SAM
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm2d, nn.GroupNorm)):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m


def batch(seed: int = 1, dtype=torch.float64, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g, dtype=dtype), torch.randint(0, 5, (n,), generator=g)


def loss_of(model, x, y):
    return nn.functional.cross_entropy(model(x), y)


def grads_at(model, x, y) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss_of(model, x, y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def reference_eps(model, grads, perturbed, masks, *, rho, adaptive, norm, eta, normalize_bias):
    """eps per parameter name, written parameter by parameter in float64 from the formulas."""
    t_w, g_eff = {}, {}
    for name, p in model.named_parameters():
        if name not in perturbed:
            continue
        w = p.detach().double()
        g = grads[name].double() * (masks[name].double() if name in masks else 1.0)
        is_weight = name.endswith(".weight")  # T_w for weight tensors only (the reference's rule)
        if adaptive == "none" or (not is_weight and not normalize_bias):
            t = torch.ones_like(w)
        elif adaptive == "elementwise":
            t = w.abs() + eta
        else:  # layerwise: ||w||_2 of the whole tensor, plus eta
            t = torch.full_like(w, math.sqrt(float((w * w).sum())) + eta)
        t_w[name], g_eff[name] = t, g
    if norm == "linf":
        return {n: rho * t_w[n] * torch.sign(g_eff[n]) for n in t_w}
    denom = math.sqrt(sum(float(((t_w[n] * g_eff[n]) ** 2).sum()) for n in t_w))
    return {n: rho * t_w[n] ** 2 * g_eff[n] / denom for n in t_w}


def perturbed_names(groups) -> tuple[set[str], dict[str, torch.Tensor]]:
    names, masks = set(), {}
    for g in groups:
        if g["perturb"]:
            names.update(g["param_names"])
            for n, m in zip(g["param_names"], g.get("masks", []), strict=False):
                masks[n] = m
    return names, masks


CASES = list(
    itertools.product(
        ["none", "elementwise", "layerwise"], ["l2", "linf"], ["all", "norm", "no-norm", "random"]
    )
)


@pytest.mark.parametrize("adaptive,norm,scope", CASES)
@pytest.mark.parametrize("normalize_bias", [False, True])
def test_one_step_matches_float64_reference(adaptive, norm, scope, normalize_bias):
    rho, eta, lr, wd = 0.3, 0.01, 0.1, 5e-4
    model = make_model()
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    groups = perturbation_groups(model, scope, seed=3)
    names, masks = perturbed_names(groups)
    opt = SAM(
        groups,
        torch.optim.SGD,
        rho=rho,
        adaptive=adaptive,
        ball=norm,
        eta=eta,
        normalize_bias=normalize_bias,
        lr=lr,
        momentum=0.9,
        weight_decay=wd,
    )
    x, y = batch()

    g0 = grads_at(model, x, y)
    eps = reference_eps(
        model,
        g0,
        names,
        masks,
        rho=rho,
        adaptive=adaptive,
        norm=norm,
        eta=eta,
        normalize_bias=normalize_bias,
    )
    opt.first_step(zero_grad=True)
    for n, p in model.named_parameters():
        expected = w0[n] + eps[n] if n in names else w0[n]
        torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-14, msg=n)

    # the reference gradient at w + eps, on an independent copy
    twin = make_model()
    with torch.no_grad():
        for n, p in twin.named_parameters():
            p.copy_(w0[n] + eps.get(n, 0.0))
    g1 = grads_at(twin, x, y)

    loss_of(model, x, y).backward()
    opt.second_step(zero_grad=True)
    for n, p in model.named_parameters():
        # SGD's first step with momentum: buffer = g + wd * w, w <- w - lr * buffer
        expected = w0[n] - lr * (g1[n] + wd * w0[n])
        torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-14, msg=n)
        assert p.grad is None


def test_restores_parameters_exactly_after_ascent():
    model = make_model(dtype=torch.float32)
    w0 = copy.deepcopy(model.state_dict())
    opt = SAM(perturbation_groups(model, "all"), torch.optim.SGD, rho=2.0, lr=0.0)
    x, y = batch(dtype=torch.float32)
    loss_of(model, x, y).backward()
    opt.first_step(zero_grad=True)
    assert not all(torch.equal(w0[n], p) for n, p in model.named_parameters())
    loss_of(model, x, y).backward()
    opt.second_step(zero_grad=True)  # lr = 0: only the restore changes anything
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), w0[n]), n


@pytest.mark.parametrize("name", ["sgd", "adamw", "lion"])
@pytest.mark.parametrize("scope", ["all", "norm"])
def test_rho_zero_is_the_base_optimizer(name, scope):
    cls, kw = base_optimizer(name, lr=0.05, momentum=0.9, weight_decay=1e-3)
    a, b = make_model(dtype=torch.float32), make_model(dtype=torch.float32)
    sam = SAM(perturbation_groups(a, scope), cls, rho=0.0, **kw)
    plain = cls(b.parameters(), **kw)
    for step in range(3):
        x, y = batch(seed=step, dtype=torch.float32)

        def closure(x=x, y=y):
            loss = loss_of(a, x, y)
            loss.backward()
            return loss

        sam.step(closure)
        plain.zero_grad()
        loss_of(b, x, y).backward()
        plain.step()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), n


def test_sam_on_ascent_moves_only_norm_parameters():
    model = make_model(dtype=torch.float32)
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    norm_ids = norm_parameter_ids(model)
    opt = SAM(perturbation_groups(model, "norm"), torch.optim.SGD, rho=1.0, lr=0.1)
    x, y = batch(dtype=torch.float32)
    loss_of(model, x, y).backward()
    opt.first_step()
    for n, p in model.named_parameters():
        moved = not torch.equal(p.detach(), w0[n])
        assert moved == (id(p) in norm_ids), n


@pytest.mark.parametrize("scope", ["norm", "no-norm", "random"])
def test_fast_path_equals_slow_path(scope):
    a, b = make_model(), make_model()
    oa = SAM(perturbation_groups(a, scope), torch.optim.SGD, rho=0.5, lr=0.1, momentum=0.9)
    ob = SAM(perturbation_groups(b, scope), torch.optim.SGD, rho=0.5, lr=0.1, momentum=0.9)
    for step in range(3):
        x, y = batch(seed=step)
        la = oa.step(lambda m=a, x=x, y=y: _backward(m, x, y), fast=True)
        lb = ob.step(lambda m=b, x=x, y=y: _backward(m, x, y), fast=False)
        assert torch.equal(la, lb)
    for (n, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-13, atol=1e-15, msg=n)
        assert pa.requires_grad


def test_step_enters_second_pass_around_the_perturbed_pass_only():
    """SAM.step(second_pass=...) is the manual first_step / second_step sequence the trainer ran
    with bn_second_pass around the second pass, bit for bit (parameters and BN buffers)."""
    a, b, c = make_model(), make_model(), make_model()
    kw = dict(rho=0.5, lr=0.1, momentum=0.9)
    oa, ob, oc = (SAM(perturbation_groups(m, "norm"), torch.optim.SGD, **kw) for m in (a, b, c))
    perturbed_inside = []

    @contextlib.contextmanager
    def keep_stats():
        perturbed_inside.append(oa._perturbed)  # entered after first_step, before second_step
        with bn_second_pass(a, "keep"):
            yield

    for step in range(3):
        x, y = batch(seed=step)
        la = oa.step(lambda x=x, y=y: _backward(a, x, y), second_pass=keep_stats)
        ob.zero_grad(set_to_none=True)
        with ob.ascent_pass():
            lb = _backward(b, x, y)
        ob.first_step(zero_grad=True)
        with bn_second_pass(b, "keep"):
            _backward(b, x, y)
        ob.second_step(zero_grad=True)
        oc.step(lambda x=x, y=y: _backward(c, x, y))  # no hook: both passes update BN stats
        assert torch.equal(la, lb)
    assert perturbed_inside == [True, True, True]
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert not torch.equal(sa["stage1.0.running_mean"], sc["stage1.0.running_mean"])
    assert sa["stage1.0.num_batches_tracked"] == 3 and sc["stage1.0.num_batches_tracked"] == 6


def test_fast_path_skips_weight_gradients_in_the_ascent():
    model = make_model()
    opt = SAM(perturbation_groups(model, "norm"), torch.optim.SGD, rho=0.5, lr=0.1)
    norm_ids = norm_parameter_ids(model)
    x, y = batch()
    with opt.ascent_pass():
        loss_of(model, x, y).backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == (id(p) in norm_ids), n


def _backward(model, x, y):
    loss = loss_of(model, x, y)
    loss.backward()
    return loss


@pytest.mark.parametrize("name", ["sgd", "adamw", "lion"])
def test_state_dict_round_trip_keeps_lockstep(name):
    cls, kw = base_optimizer(name, lr=0.05, momentum=0.9, weight_decay=1e-3)
    a = make_model()
    oa = SAM(perturbation_groups(a, "norm"), cls, rho=0.7, adaptive="elementwise", **kw)
    for step in range(2):
        x, y = batch(seed=step)
        oa.step(lambda x=x, y=y: _backward(a, x, y))
    sd = copy.deepcopy(oa.state_dict())
    b = copy.deepcopy(a)
    ob = SAM(perturbation_groups(b, "norm"), cls, rho=0.1, **kw)  # settings come from the state
    ob.load_state_dict(sd)
    assert ob.rho == 0.7 and ob.adaptive == "elementwise"
    for step in range(2, 5):
        x, y = batch(seed=step)
        oa.step(lambda x=x, y=y: _backward(a, x, y))
        ob.step(lambda x=x, y=y: _backward(b, x, y))
    for (n, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), n


def test_lr_scheduler_works_without_warnings():
    model = make_model(dtype=torch.float32)
    opt = SAM(perturbation_groups(model, "norm"), torch.optim.SGD, rho=0.5, lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    x, y = batch(dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            loss_of(model, x, y).backward()
            opt.first_step(zero_grad=True)
            loss_of(model, x, y).backward()
            opt.second_step(zero_grad=True)
            sched.step()
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(
        0.1 * (1 + math.cos(math.pi / 2)) / 2
    )


def test_parameters_without_grad_are_skipped():
    model = make_model(dtype=torch.float32)
    opt = SAM(perturbation_groups(model, "all"), torch.optim.SGD, rho=0.5, lr=0.1)
    x, y = batch(dtype=torch.float32)
    loss_of(model, x, y).backward()
    model.head[2].weight.grad = None
    w = model.head[2].weight.detach().clone()
    opt.first_step(zero_grad=True)
    assert torch.equal(model.head[2].weight, w)
    loss_of(model, x, y).backward()
    opt.second_step()


@pytest.mark.parametrize(
    "fn",
    [lambda x: ((x - 3.0) ** 2).sum(), lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2],
)
@pytest.mark.parametrize("adaptive", ["none", "elementwise"])
def test_objective_decreases(fn, adaptive):
    w = nn.Parameter(torch.tensor([-1.0, 1.5], dtype=torch.float64))
    opt = SAM([w], torch.optim.SGD, rho=0.01, adaptive=adaptive, lr=1e-3, momentum=0.9)
    start = float(fn(w.detach()))

    def closure():
        loss = fn(w)
        loss.backward()
        return loss

    for _ in range(300):
        opt.step(closure)
    assert float(fn(w.detach())) < 0.5 * start


def test_blocks_select_norm_layers_of_those_stages():
    model = make_model()
    names, _ = perturbed_names(perturbation_groups(model, "norm", blocks=(2,)))
    assert names == {"stage2.0.weight", "stage2.0.bias"}
    names, _ = perturbed_names(perturbation_groups(model, "norm"))
    assert names == {"stage1.0.weight", "stage1.0.bias", "stage2.0.weight", "stage2.0.bias"}


def test_random_scope_matches_norm_count_and_seed():
    model = make_model()
    norm_count, total = perturbed_count(perturbation_groups(model, "norm"))
    a = perturbation_groups(model, "random", seed=1)
    b = perturbation_groups(model, "random", seed=1)
    c = perturbation_groups(model, "random", seed=2)
    assert perturbed_count(a) == (norm_count, total)
    flat = lambda gs: torch.cat([m.flatten() for g in gs for m in g.get("masks", [])])  # noqa: E731
    assert torch.equal(flat(a), flat(b)) and not torch.equal(flat(a), flat(c))


def test_split_covers_every_parameter_once():
    model = make_model()
    for scope in ["all", "norm", "no-norm", "random"]:
        groups = perturbation_groups(model, scope)
        ids = [id(p) for g in groups for p in g["params"]]
        assert sorted(ids) == sorted(id(p) for p in model.parameters())


def test_bn_second_pass_keep_leaves_running_stats():
    model = make_model(dtype=torch.float32).train()
    x, y = batch(dtype=torch.float32)
    bn = model.stage1[0]
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    with bn_second_pass(model, "keep"):
        loss_of(model, x, y).backward()
    for k, v in bn.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert bn.track_running_stats
    with bn_second_pass(model, "update"):
        model(x)
    assert not torch.equal(bn.running_mean, before["running_mean"])


@pytest.mark.parametrize(
    "kwargs,word",
    [
        (dict(rho=-0.1), "rho"),
        (dict(rho=float("nan")), "rho"),
        (dict(rho=float("inf")), "rho"),
        (dict(adaptive="bogus"), "adaptive"),
        (dict(ball="l1"), "ball"),
        (dict(eta=-1.0), "eta"),
    ],
)
def test_bad_arguments_raise(kwargs, word):
    model = make_model()
    with pytest.raises(ValueError, match=word):
        SAM(perturbation_groups(model, "norm"), torch.optim.SGD, lr=0.1, **kwargs)


def test_bad_scope_and_empty_selection_raise():
    model = make_model()
    with pytest.raises(ValueError, match="scope"):
        perturbation_groups(model, "everything")
    with pytest.raises(ValueError, match="selects no parameter"):
        perturbation_groups(nn.Sequential(nn.Linear(2, 2)), "norm")
    with pytest.raises(ValueError, match="blocks"):
        perturbation_groups(model, "all", blocks=(1,))
    with pytest.raises(ValueError, match="selects no parameter"):
        perturbation_groups(model, "norm", blocks=(3,))
    with pytest.raises(ValueError, match="optimizer"):
        base_optimizer("rmsprop", lr=0.1)


@pytest.mark.slow
def test_asam_scales_weight_tensors_only_not_tokens_or_embeddings():
    """The reference applies T_w to `weight` tensors: a ViT's cls token and position embedding,
    like biases, take T_w = 1 unless normalize_bias is set."""
    from samon_core.models import build_model

    def vit():
        torch.manual_seed(0)
        model = build_model("vit_tiny", num_classes=10)
        with torch.no_grad():  # a token of large values: T_w = |w| would make its eps large
            model.cls_token.fill_(5.0)
        return model

    flags = {n: g["weight"] for g in perturbation_groups(vit(), "all") for n in g["param_names"]}
    assert flags["cls_token"] is False and flags["pos_embed"] is False
    assert all(flags[n] for n in flags if n.endswith(".weight"))
    assert not any(flags[n] for n in flags if n.endswith(".bias"))
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    for normalize_bias, expected in ((False, 0.1), (True, 0.5)):  # rho * 1, rho * |5|
        model = vit()
        opt = SAM(perturbation_groups(model, "all"), torch.optim.SGD, rho=0.1,
                  adaptive="elementwise", ball="linf", normalize_bias=normalize_bias, lr=0.1)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.first_step(zero_grad=True)
        moved = (model.cls_token.detach() - 5.0).abs()
        assert torch.allclose(moved[moved > 0], torch.tensor(expected)), normalize_bias
