"""samon_core.optim.create_sam: the one-call factory is the optimizer built by hand (same
parameter split, same first update), takes the paper's rho when given none, refuses an unknown
scope or base optimizer with the choices, and is what the README's example and the trainer use."""

from __future__ import annotations

import re
import runpy

import pytest
import torch
from support.paths import REPO as ROOT
from torch import nn

from samon_core import paper
from samon_core.optim import SAM, base_optimizer, create_sam, perturbation_groups, perturbed_count
from samon_core.runs.config import RunConfig


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5),
    ).double()


def _one_step(model: nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    torch.manual_seed(1)
    x, y = torch.randn(6, 3, 8, 8, dtype=torch.float64), torch.randint(0, 5, (6,))

    def closure():
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    opt.zero_grad()
    closure()
    opt.step(closure)
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("scope", ["all", "norm", "no-norm", "random"])
@pytest.mark.parametrize("base", ["sgd", "adamw"])
def test_create_sam_is_the_optimizer_built_by_hand(scope, base):
    a, b = _net(), _net()
    made = create_sam(a, scope=scope, base=base, rho=0.3, lr=0.05, momentum=0.8,
                      weight_decay=1e-3, adaptive="elementwise", seed=7)
    cls, kw = base_optimizer(base, lr=0.05, momentum=0.8, weight_decay=1e-3)
    groups = perturbation_groups(b, scope, seed=7)
    by_hand = SAM(groups, cls, rho=0.3, adaptive="elementwise", **kw)

    names = dict((id(p), n) for n, p in a.named_parameters())
    names_b = dict((id(p), n) for n, p in b.named_parameters())
    split = [(g["perturb"], g["weight"], [names[id(p)] for p in g["params"]])
             for g in made.param_groups]
    assert split == [(g["perturb"], g["weight"], [names_b[id(p)] for p in g["params"]])
                     for g in by_hand.param_groups]
    assert type(made.base_optimizer) is type(by_hand.base_optimizer)
    assert made.perturbed_count() == perturbed_count(groups)
    for pa, pb in zip(_one_step(a, made), _one_step(b, by_hand), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(next(_net().parameters()), next(a.parameters()))  # it did move


def test_no_rho_takes_the_papers_best_rho_for_the_variant_and_scope():
    for scope in ("all", "norm", "no-norm", "random"):
        opt = create_sam(_net(), scope=scope, lr=0.1, adaptive="elementwise")
        assert opt.rho == paper.paper_rho("elementwise", "l2", scope)[0]
    assert create_sam(_net(), lr=0.1).rho == 1.0  # SAM-ON's best rho in the figure


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"scope": "gamma"}, r"scope must be one of all, norm, no-norm, random; got 'gamma'"),
        ({"base": "adam"}, r"base must be one of sgd, adamw, lion; got 'adam'"),
        ({"ball": "l1"}, r"ball"),
        ({"rho": -1.0}, r"rho must be a finite number >= 0"),
        ({"scope": "all", "blocks": (1,)}, r"needs scope='norm'"),
    ],
)
def test_bad_arguments_raise_a_clear_error(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        create_sam(_net(), **{"lr": 0.1, "rho": 0.1, **kwargs})


def test_the_trainer_builds_its_sam_with_create_sam(monkeypatch):
    """build_optimizer goes through create_sam with the config's settings (the benchmarks build
    their optimizers with build_optimizer)."""
    from samon_core.train import setup

    seen = {}
    real = setup.create_sam

    def spy(model, **kw):
        seen.update(kw)
        return real(model, **kw)

    monkeypatch.setattr(setup, "create_sam", spy)
    config = RunConfig(method="sam", scope="random", optimizer="adamw", rho=0.4, seed=3)
    model = _net().float()
    opt, n_perturbed, n_params = setup.build_optimizer(config, model)
    assert seen["scope"] == "random" and seen["base"] == "adamw" and seen["seed"] == 3
    assert opt.rho == 0.4 and isinstance(opt.base_optimizer, torch.optim.AdamW)
    norm_count = sum(p.numel() for m in model.modules()
                     if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for p in m.parameters())
    assert (n_perturbed, n_params) == (norm_count, sum(p.numel() for p in model.parameters()))


def test_the_readme_example_runs_and_uses_create_sam(tmp_path):
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S)
                 if "samon_core.optim" in b)
    assert "create_sam(" in block
    torch.manual_seed(0)
    example = tmp_path / "readme_example.py"
    example.write_text(block)
    batch = {"x": torch.randn(4, 3, 32, 32), "y": torch.randint(0, 100, (4,))}
    done = runpy.run_path(str(example), init_globals=batch)  # the README's code, as written
    assert isinstance(done["opt"], SAM) and torch.isfinite(done["loss"])
