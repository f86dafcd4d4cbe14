"""SAM as a wrapper around any base optimizer, with SAM-ON's cheap ascent pass.

One SAM step (Foret et al., ICLR 2021), for the perturbed parameters P (the scope):

    g      = grad L(w)                 first forward/backward
    eps    = sam_perturbation(w_P, g)  see perturbation.py (SAM, ASAM, p = 2 or inf)
    w_P   <- w_P + eps                 first_step
    g'     = grad L(w + eps)           second forward/backward, all parameters
    w_P   <- w_P (restored exactly)    second_step ...
    w     <- base_step(w, g')          ... then the base optimizer (SGD, AdamW, Lion) with g'

SAM-ON (Mueller et al., NeurIPS 2023) perturbs only the normalization parameters. The first
backward then needs gradients of gamma/beta only: the weight gradients of convolutions and linear
layers are skipped by turning ``requires_grad`` off for the parameters that are not perturbed
(``ascent_pass``), so a step costs about 5 forward-pass units instead of SAM-all's 6.

The API follows davda54/sam: ``first_step``, ``second_step``, ``step(closure)``, and the base
optimizer's ``param_groups`` are shared, so ``torch.optim.lr_scheduler`` works on the SAM object.
``step(closure, second_pass=...)`` wraps the second forward/backward in a context of the caller's
(the trainer's BatchNorm-statistics handling, batchnorm.py), so that the trainer and the step-cost
benchmark run this one implementation of the step.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator

import torch

from samon_core.optim.perturbation import ADAPTIVE_CHOICES, BALL_CHOICES, sam_perturbation
from samon_core.optim.scopes import perturbed_count


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimization around ``base_optimizer`` (a class, e.g. ``torch.optim.SGD``).

    params: tensors, or parameter groups from ``perturbation_groups`` (keys ``perturb``, ``weight``,
        optional ``masks``). Plain tensors are all perturbed and treated as weights.
    rho: radius of the perturbation (>= 0; 0 gives exactly the base optimizer's step).
    adaptive: "none" (SAM), "elementwise" or "layerwise" (ASAM's T_w).
    ball: "l2" or "linf": the perturbation ball, i.e. the p of the constraint ||eps||_p <= rho.
    eta: added to T_w in the adaptive variants.
    normalize_bias: also apply T_w to biases (beta included) and the other tensors that are not
        a `.weight` (a ViT's cls token and position embedding); by default they get T_w = 1.
    **base_kwargs: passed to the base optimizer (lr, momentum, weight_decay, ...).
    """

    def __init__(
        self,
        params: Iterable,
        base_optimizer: type[torch.optim.Optimizer],
        *,
        rho: float = 0.05,
        adaptive: str = "none",
        ball: str = "l2",
        eta: float = 0.0,
        normalize_bias: bool = False,
        **base_kwargs,
    ):
        if not isinstance(rho, (int, float)) or not math.isfinite(rho) or rho < 0:
            raise ValueError(f"rho must be a finite number >= 0, got {rho!r}")
        if adaptive not in ADAPTIVE_CHOICES:
            raise ValueError(f"adaptive must be one of {ADAPTIVE_CHOICES}, got {adaptive!r}")
        if ball not in BALL_CHOICES:
            raise ValueError(f"ball must be one of {BALL_CHOICES}, got {ball!r}")
        if not isinstance(eta, (int, float)) or not math.isfinite(eta) or eta < 0:
            raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")
        if not (
            isinstance(base_optimizer, type) and issubclass(base_optimizer, torch.optim.Optimizer)
        ):
            raise ValueError(f"base_optimizer must be an Optimizer class, got {base_optimizer!r}")

        groups = list(params)
        if not groups:
            raise ValueError("params is empty")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        # Masks are per-parameter tensors: keep them out of param_groups (and so out of state_dict;
        # they are rebuilt from the seed by perturbation_groups).
        self._masks: dict[torch.Tensor, torch.Tensor] = {}
        clean = []
        for g in groups:
            g = dict(g)
            g["params"] = list(g["params"])
            masks = g.pop("masks", None)
            if masks is not None:
                self._masks.update(zip(g["params"], masks, strict=True))
            g.setdefault("perturb", True)
            g.setdefault("weight", True)
            clean.append(g)
        if not any(g["perturb"] for g in clean):
            raise ValueError("no parameter group is perturbed (every group has perturb=False)")

        # The SAM settings live in every param group (like lr), so state_dict carries them.
        defaults = dict(
            rho=float(rho),
            adaptive=adaptive,
            ball=ball,
            eta=float(eta),
            normalize_bias=bool(normalize_bias),
        )
        super().__init__(clean, defaults)
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups  # shared: schedulers see one list
        self.defaults.update(self.base_optimizer.defaults)
        self._saved: list[torch.Tensor] = []
        self._perturbed = False

    def perturbed_count(self) -> tuple[int, int]:
        """(number of perturbed weights, number of weights) over the parameter groups, a random
        mask counting only its chosen weights (``scopes.perturbed_count`` of the groups)."""
        return perturbed_count([
            {**g, "masks": [self._masks[p] for p in g["params"]]}
            if g["perturb"] and self._masks else g
            for g in self.param_groups
        ])

    def _setting(self, key: str):
        values = {g[key] for g in self.param_groups}
        if len(values) != 1:
            raise ValueError(f"{key} differs between parameter groups: {sorted(map(str, values))}")
        return values.pop()

    rho = property(lambda self: self._setting("rho"))
    adaptive = property(lambda self: self._setting("adaptive"))
    ball = property(lambda self: self._setting("ball"))
    eta = property(lambda self: self._setting("eta"))
    normalize_bias = property(lambda self: self._setting("normalize_bias"))

    # -- the two halves of a step ------------------------------------------------------------

    def _perturbed_params(self) -> Iterator[tuple[torch.Tensor, bool]]:
        for g in self.param_groups:
            if g["perturb"]:
                use_scale = self.normalize_bias or g["weight"]
                for p in g["params"]:
                    if p.grad is not None:
                        yield p, use_scale

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move the perturbed parameters to w + eps, using the gradients now in ``.grad``."""
        if self._perturbed:
            raise RuntimeError("first_step called twice without second_step")
        pairs = list(self._perturbed_params())
        params = [p for p, _ in pairs]
        if params:
            eps = sam_perturbation(
                params,
                [p.grad for p in params],
                rho=self.rho,
                adaptive=self.adaptive,
                ball=self.ball,
                eta=self.eta,
                use_scale=[s for _, s in pairs],
                masks=[self._masks.get(p) for p in params] if self._masks else None,
            )
            # Keep an exact copy of w: subtracting eps again would not restore it bit for bit.
            for p in params:
                st = self.state[p]
                if "sam_w" not in st or st["sam_w"].shape != p.shape:
                    st["sam_w"] = torch.empty_like(p)
            torch._foreach_copy_([self.state[p]["sam_w"] for p in params], params)
            torch._foreach_add_(params, eps)
        self._saved = params
        self._perturbed = True
        if zero_grad:
            self.zero_grad(set_to_none=True)

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore w exactly, then take the base optimizer's step with the gradient at w + eps."""
        if not self._perturbed:
            raise RuntimeError("second_step called without first_step")
        if self._saved:
            torch._foreach_copy_(self._saved, [self.state[p]["sam_w"] for p in self._saved])
        self._saved, self._perturbed = [], False
        self.base_optimizer.step()
        self._opt_called = True  # lets lr_scheduler know a step was taken (it wraps step() only)
        if zero_grad:
            self.zero_grad(set_to_none=True)

    @torch.no_grad()
    def base_step(self) -> None:
        """Only the base optimizer's step, with the gradient at w (epochs outside the SAM
        window). Through here, not ``base_optimizer.step()``, so that an lr_scheduler attached
        to this optimizer sees the step (it wraps this object's ``step`` only)."""
        self.base_optimizer.step()
        self._opt_called = True

    # -- SAM-ON's cheap ascent pass ------------------------------------------------------------

    @contextlib.contextmanager
    def ascent_pass(self) -> Iterator[None]:
        """Within this block, backward computes gradients of the perturbed parameters only.

        Turning ``requires_grad`` off for the others makes autograd skip their weight gradients
        (for a conv: dL/dW, shape (C_out, C_in, k, k)), while input gradients still flow back to
        earlier norm layers. With every parameter perturbed this changes nothing.
        """
        frozen = [
            p for g in self.param_groups if not g["perturb"] for p in g["params"] if p.requires_grad
        ]
        for p in frozen:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in frozen:
                p.requires_grad_(True)

    def step(
        self,
        closure: Callable[[], torch.Tensor] | None = None,
        *,
        fast: bool = True,
        second_pass: Callable[[], contextlib.AbstractContextManager] | None = None,
    ):
        """Full SAM step. ``closure`` runs forward + backward and returns the loss (at w).

        ``fast`` uses ``ascent_pass`` for the first backward (same result, less work).
        ``second_pass``: a factory of a context manager entered around the second (perturbed)
        forward + backward only, e.g. ``functools.partial(bn_second_pass, model, "keep")``
        (batchnorm.py) to keep BatchNorm's running statistics as the clean pass set them.
        Gradients are cleared between and after the two passes.
        """
        if closure is None:
            raise ValueError("SAM.step needs a closure that runs forward and backward")
        self.zero_grad(set_to_none=True)
        with torch.enable_grad(), self.ascent_pass() if fast else contextlib.nullcontext():
            loss = closure()
        self.first_step(zero_grad=True)
        with torch.enable_grad(), second_pass() if second_pass else contextlib.nullcontext():
            closure()
        self.second_step(zero_grad=True)
        return loss

    # -- state ---------------------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        """The base optimizer's state (momentum buffers, ...) and the shared param groups."""
        if self._perturbed:
            raise RuntimeError(
                "state_dict between first_step and second_step (weights are perturbed)"
            )
        return {"base_optimizer": self.base_optimizer.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        if set(state_dict) != {"base_optimizer"}:
            raise ValueError("not a SAM state_dict (expected the key 'base_optimizer' only)")
        self.base_optimizer.load_state_dict(state_dict["base_optimizer"])
        self.param_groups = self.base_optimizer.param_groups
