"""BatchNorm running statistics during SAM's second (perturbed) forward pass.

A SAM step runs two forward passes in train mode, so BatchNorm updates its running mean/var twice:
once with the clean weights w and once with w + eps. The SAM-ON reference keeps both updates
("update"); "keep" leaves the running statistics as the clean pass set them, so that evaluation
uses statistics of the weights actually being trained. The trainer hands it to SAM as the hook
around the second pass: ``SAM.step(closure, second_pass=partial(bn_second_pass, model, mode))``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

from samon_core.catalog import choices

BN_SECOND_PASS_CHOICES = choices.BN_SECOND_PASS


@contextlib.contextmanager
def bn_second_pass(model: nn.Module, mode: str = "update") -> Iterator[None]:
    """Context for the second forward pass: ``mode="keep"`` freezes BatchNorm running stats.

    BatchNorm still normalises with the batch statistics (train mode); only the buffers
    running_mean, running_var and num_batches_tracked are left untouched, bit for bit.
    """
    if mode not in BN_SECOND_PASS_CHOICES:
        raise ValueError(f"bn_second_pass must be one of {BN_SECOND_PASS_CHOICES}, got {mode!r}")
    if mode == "update":
        yield
        return
    # With track_running_stats off, a training-mode BatchNorm neither reads nor writes its buffers.
    bns = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    for m in bns:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in bns:
            m.track_running_stats = True
