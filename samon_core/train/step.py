"""One optimizer step exactly as the trainer takes it; bench/step_cost.py times this same object.

A step on a batch x (B, 3, 32, 32), y (B,):

    base      forward + backward at w, then the base optimizer's step
    SAM       ``SAM.step(closure, second_pass=...)`` (samon_core/optim/sam.py): forward + backward
              at w (SAM-ON: gradients of the perturbed gamma/beta only), w -> w + eps, forward +
              backward at w + eps inside ``bn_second_pass(model, bn_mode)`` (what BatchNorm's
              running statistics do on the perturbed pass), restore w, base optimizer's step

The closure computes the loss on float32 logits under the caller's autocast (bf16 on CUDA), and
keeps the logits of the first (clean) pass for the training accuracy.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import torch
from torch import nn

from samon_core.optim import SAM, bn_second_pass


class TrainStep:
    """Callable ``(x, y, sam) -> (loss, logits)``: one optimizer step on the batch.

    loss: the detached 0-d loss at w (before the step); logits: the detached (B, classes) output
    of the clean forward pass. ``sam=False`` takes a base-optimizer step even with a SAM optimizer
    (epochs outside ``sam_start_epoch .. sam_end_epoch``).
    fast_ascent: SAM's cheap ascent pass (``SAM.ascent_pass``); False only for benchmarks.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        bn_mode: str = "update",
        fast_ascent: bool = True,
    ):
        self.model = model
        self.optimizer = optimizer
        self.criterion = criterion
        self.autocast = autocast
        self.second_pass = functools.partial(bn_second_pass, model, bn_mode)
        self.fast_ascent = fast_ascent

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, sam: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        outputs: list[torch.Tensor] = []  # logits of each pass; [0] is the clean pass

        def closure() -> torch.Tensor:
            with self.autocast():
                out = self.model(x)
                loss = self.criterion(out.float(), y)
            loss.backward()
            outputs.append(out.detach())
            return loss.detach()

        opt = self.optimizer
        if sam:
            loss = opt.step(closure, fast=self.fast_ascent, second_pass=self.second_pass)
        else:
            opt.zero_grad(set_to_none=True)
            loss = closure()
            (opt.base_step if isinstance(opt, SAM) else opt.step)()
        return loss, outputs[0]
