"""Which parameters SAM perturbs: the scope, as optimizer parameter groups.

Scopes (Mueller et al., "Normalization Layers Are All That Sharpness-Aware Minimization Needs",
NeurIPS 2023):

    "all"      SAM-all: every trainable parameter.
    "norm"     SAM-ON: only the affine parameters gamma/beta of normalization layers (about 0.1%
               of the weights of a ResNet). With ``blocks`` only the norm layers of those stages
               (the paper's B1-B3 computational-savings idea).
    "no-norm"  every parameter except the normalization parameters.
    "random"   a seeded random subset of individual weights, as many as SAM-ON perturbs (the
               paper's random-mask control, 99.95% sparse on a WRN-28-10).

Norm layers are found by module type (``samon_core.norms.NORM_LAYER_TYPES``), never by name. Each
group also says whether its tensors are weight tensors (``weight``: True for every ``.weight``,
gamma included), because, as in the reference, ASAM's T_w applies to weight tensors only; biases
(beta included) and other tensors (a ViT's cls token and position embedding) get it only with
``normalize_bias``. The split is asserted to cover
every trainable parameter exactly once.
"""

from __future__ import annotations

import torch
from torch import nn

from samon_core.catalog import choices
from samon_core.catalog.stages import stage_index
from samon_core.norms import norm_parameter_ids

SCOPE_CHOICES = choices.SCOPES


def _random_masks(params: list[nn.Parameter], count: int, seed: int) -> list[torch.Tensor]:
    """Bool masks (one per tensor, same shapes) selecting ``count`` weights uniformly at random."""
    total = sum(p.numel() for p in params)
    gen = torch.Generator().manual_seed(seed)
    flat = torch.zeros(total, dtype=torch.bool)
    flat[torch.randperm(total, generator=gen)[:count]] = True
    chunks = flat.split([p.numel() for p in params])
    return [c.view_as(p).to(p.device) for c, p in zip(chunks, params, strict=True)]


def perturbation_groups(
    model: nn.Module,
    scope: str = "norm",
    *,
    blocks: tuple[int, ...] | list[int] = (),
    seed: int = 0,
) -> list[dict]:
    """Split the trainable parameters of ``model`` into optimizer parameter groups.

    Each group is a dict with ``params``, ``param_names``, ``perturb`` (bool), ``weight`` (bool)
    and, for the random scope, ``masks`` (one bool tensor per parameter). Pass it to ``SAM``.
    """
    if scope not in SCOPE_CHOICES:
        raise ValueError(f"scope must be one of {SCOPE_CHOICES}, got {scope!r}")
    blocks = tuple(blocks)
    if blocks and scope != "norm":
        raise ValueError(
            f"blocks selects norm layers of stages and needs scope='norm', got {scope!r}"
        )
    if any(not isinstance(b, int) or b < 1 for b in blocks):
        raise ValueError(f"blocks must be stage numbers >= 1, got {blocks!r}")

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    norm_ids = norm_parameter_ids(model)

    masks: dict[int, torch.Tensor] = {}
    if scope == "all":
        chosen = {id(p) for _, p in named}
    elif scope == "norm":
        chosen = {
            id(p)
            for n, p in named
            if id(p) in norm_ids and (not blocks or stage_index(n) in blocks)
        }
    elif scope == "no-norm":
        chosen = {id(p) for _, p in named if id(p) not in norm_ids}
    else:  # random: as many individual weights as SAM-ON perturbs, anywhere in the network
        count = sum(p.numel() for _, p in named if id(p) in norm_ids)
        params = [p for _, p in named]
        for p, m in zip(params, _random_masks(params, count, seed), strict=True):
            if m.any():
                masks[id(p)] = m
        chosen = set(masks)
    if not chosen:
        raise ValueError(f"scope={scope!r} (blocks={blocks}) selects no parameter of this model")

    groups: dict[tuple[bool, bool], dict] = {}
    for name, p in named:
        perturb = id(p) in chosen
        is_weight = name.rsplit(".", 1)[-1] == "weight"  # the module attribute, gamma included
        g = groups.setdefault(
            (perturb, is_weight),
            {"params": [], "param_names": [], "perturb": perturb, "weight": is_weight},
        )
        g["params"].append(p)
        g["param_names"].append(name)
        if perturb and scope == "random":
            g.setdefault("masks", []).append(masks[id(p)])

    out = [groups[k] for k in sorted(groups, key=lambda k: (not k[0], not k[1]))]
    covered = [id(p) for g in out for p in g["params"]]
    assert len(covered) == len(set(covered)) == len(named), (
        "scope split must cover each parameter once"
    )
    return out


def perturbed_count(groups: list[dict]) -> tuple[int, int]:
    """(number of perturbed weights, number of trainable weights) for groups from above."""
    total = sum(p.numel() for g in groups for p in g["params"])
    pert = 0
    for g in groups:
        if not g["perturb"]:
            continue
        if "masks" in g:
            pert += sum(int(m.sum()) for m in g["masks"])
        else:
            pert += sum(p.numel() for p in g["params"])
    return pert, total
