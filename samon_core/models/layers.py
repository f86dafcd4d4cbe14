"""Shared building blocks of the model zoo: the one norm-layer factory and the init helpers.

Every model builds its normalization layers through :func:`make_norm`, so the meaning of a
``norm=`` choice is the same everywhere:

* ``"batchnorm"``: ``nn.BatchNorm2d(C)`` (Ioffe & Szegedy 2015).
* ``"groupnorm"``: ``nn.GroupNorm(G, C)`` (Wu & He 2018) with ``G`` the largest divisor of ``C``
  that is at most 8 and leaves at least 2 channels per group (8 groups for 16 channels and more,
  4 for the 8-channel stem of ``tiny_resnet``).
* ``"layernorm"``: for convolutional feature maps ``nn.GroupNorm(1, C)`` (normalises over
  ``C, H, W`` per sample, i.e. LayerNorm on images; its gamma/beta are per channel); for token
  sequences (``layout="tokens"``) ``nn.LayerNorm(C)`` over the last dimension.

All norm layers are affine, with gamma (``weight``) = 1 and beta (``bias``) = 0 at initialisation,
and both stay trainable: they are exactly the parameters SAM-ON perturbs.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from samon_core.catalog import choices

NORM_KINDS: tuple[str, ...] = choices.NORM_KINDS

#: Upper bound on the number of GroupNorm groups (``"groupnorm"``).
MAX_GROUPS = 8


def group_count(channels: int, max_groups: int = MAX_GROUPS) -> int:
    """GroupNorm group count for ``channels``: the largest ``G <= max_groups`` dividing ``channels``
    with at least 2 channels per group (1 for a single channel)."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    for g in range(min(max_groups, channels // 2), 1, -1):
        if channels % g == 0:
            return g
    return 1


def make_norm(
    kind: str,
    channels: int,
    *,
    layout: Literal["conv", "tokens"] = "conv",
    eps: float | None = None,
) -> nn.Module:
    """Build the normalization layer ``kind`` for ``channels`` features.

    ``layout="conv"`` is for ``(N, C, H, W)`` feature maps, ``layout="tokens"`` for ``(N, L, C)``
    token sequences (only ``"layernorm"`` is supported there). ``eps`` overrides the layer's
    default.
    """
    if kind not in NORM_KINDS:
        raise ValueError(f"norm kind must be one of {list(NORM_KINDS)}, got {kind!r}")
    if layout not in ("conv", "tokens"):
        raise ValueError(f"layout must be 'conv' or 'tokens', got {layout!r}")
    kw = {} if eps is None else {"eps": eps}
    if layout == "tokens":
        if kind != "layernorm":
            raise ValueError(f"norm kind {kind!r} is not supported for token sequences")
        layer: nn.Module = nn.LayerNorm(channels, **kw)
    elif kind == "batchnorm":
        layer = nn.BatchNorm2d(channels, **kw)
    elif kind == "groupnorm":
        layer = nn.GroupNorm(group_count(channels), channels, **kw)
    else:  # layernorm on feature maps
        layer = nn.GroupNorm(1, channels, **kw)
    nn.init.ones_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def init_conv_kaiming(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) init for every ``Conv2d`` of ``model``; conv biases to 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
