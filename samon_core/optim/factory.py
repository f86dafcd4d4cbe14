"""``create_sam``: a SAM-family optimizer for a model in one call (timm's ``create_optimizer_v2``).

    opt = create_sam(model, scope="norm", base="sgd", rho=1.0, lr=0.1, weight_decay=5e-4)

is the same optimizer as the three steps it stands for, which stay public for anyone who wants
them: ``perturbation_groups`` (which parameters SAM perturbs: the scope), ``base_optimizer``
(the base optimizer's class and keyword arguments by name) and ``SAM`` around both. The trainer,
the benchmarks and the README build their optimizers here, so they cannot drift apart.
"""

from __future__ import annotations

from torch import nn

from samon_core import paper
from samon_core.catalog import choices
from samon_core.optim.base import base_optimizer
from samon_core.optim.sam import SAM
from samon_core.optim.scopes import perturbation_groups


def create_sam(
    model: nn.Module,
    scope: str = "norm",
    base: str = "sgd",
    rho: float | None = None,
    *,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    adaptive: str = "none",
    ball: str = "l2",
    eta: float = 0.0,
    normalize_bias: bool = False,
    blocks: tuple[int, ...] | list[int] = (),
    seed: int = 0,
) -> SAM:
    """SAM over ``model``'s trainable parameters, perturbing those of ``scope``.

    scope: "all" (SAM-all), "norm" (SAM-ON: only the norm layers' gamma and beta; ``blocks``
        narrows it to those stages), "no-norm" or "random" (the paper's controls; ``seed`` picks
        the random mask).
    base: the base optimizer SAM wraps, "sgd" (with ``momentum``), "adamw" or "lion"
        (``momentum`` is their beta1).
    rho: the perturbation radius; None takes the paper's best rho for the variant (``adaptive``,
        ``ball``) and scope (``paper.paper_rho``).
    Raises ValueError, naming the choices, for an unknown scope, base, adaptive or ball.
    """
    if scope not in choices.SCOPES:
        raise ValueError(f"scope must be one of {', '.join(choices.SCOPES)}; got {scope!r}")
    if base not in choices.OPTIMIZERS:
        raise ValueError(
            f"base must be one of {', '.join(choices.OPTIMIZERS)}; got {base!r}"
        )
    if rho is None:
        rho = paper.paper_rho(adaptive, ball, scope)[0]
    cls, kwargs = base_optimizer(base, lr=lr, momentum=momentum, weight_decay=weight_decay)
    groups = perturbation_groups(model, scope, blocks=blocks, seed=seed)
    return SAM(groups, cls, rho=rho, adaptive=adaptive, ball=ball, eta=eta,
               normalize_bias=normalize_bias, **kwargs)
