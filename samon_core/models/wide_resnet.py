"""Wide Residual Networks (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016).

Architecture WRN-d-k (``n = (d - 4) / 6`` blocks per stage): a 3x3 conv with 16 channels (the
stem, no norm: the blocks are pre-activation), three stages of ``n`` pre-activation basic blocks
with 16k, 32k and 64k channels at 32x32, 16x16 and 8x8, a final norm + ReLU, global average pooling
and a linear classifier. A block computes ``conv2(dropout(relu(norm2(conv1(relu(norm1(x)))))))``
plus the shortcut; when the shape changes the shortcut is a 1x1 strided conv (``shortcut``, no norm)
applied to the block's input ``x`` itself, as in the SAM-ON reference's WRN (homura's
``PreactBasicBlock``), so the paper preset trains the paper's network. (Zagoruyko & Komodakis'
own code applies it to the pre-activated ``relu(norm1(x))`` instead.) Dropout between the convs
defaults to 0.

Registered models: ``wrn16_4`` (~2.77M parameters at 100 classes) and ``wrn28_10`` (~36.5M, the
SAM paper's CIFAR workhorse; GPU only). Norm choices: ``batchnorm`` (default), ``groupnorm``,
``layernorm`` (GroupNorm with 1 group); see :func:`samon_core.models.layers.make_norm`.
The final norm is the top-level ``final_norm`` and belongs to no stage.
"""

from __future__ import annotations

import torch
from torch import nn

from samon_core.models.layers import init_conv_kaiming, make_norm
from samon_core.models.registry import register_model


class PreActBlock(nn.Module):
    """Pre-activation wide basic block (norm-ReLU-conv, twice) with optional dropout."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str, dropout: float) -> None:
        super().__init__()
        self.norm1 = make_norm(norm, in_ch)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.norm2 = make_norm(norm, out_ch)
        self.relu2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)  # on x, as the reference
        out = self.conv1(self.relu1(self.norm1(x)))
        out = self.conv2(self.dropout(self.relu2(self.norm2(out))))
        return out + identity


class WideResNet(nn.Module):
    """WRN-``depth``-``widen``: stem conv, ``stage1``-``stage3``, ``final_norm``, ``fc``."""

    def __init__(
        self,
        depth: int,
        widen: int,
        num_classes: int = 100,
        norm: str = "batchnorm",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"depth must be 6n+4 with n >= 1, got {depth}")
        if widen < 1:
            raise ValueError(f"widen must be >= 1, got {widen}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        n = (depth - 4) // 6
        widths = (16 * widen, 32 * widen, 64 * widen)
        self.depth, self.widen = depth, widen
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        in_ch = 16
        stages = []
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                blocks.append(PreActBlock(in_ch, width, stride if j == 0 else 1, norm, dropout))
                in_ch = width
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        self.final_norm = make_norm(norm, in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        # fc keeps PyTorch's default init (weight and bias uniform in +-1/sqrt(fan_in)), as in
        # the reference's homura WRN, whose init touches only convolutions and BatchNorm
        self.fc = nn.Linear(in_ch, num_classes)
        init_conv_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.stage3(self.stage2(self.stage1(x)))
        x = self.relu(self.final_norm(x))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model("wrn16_4")
def wrn16_4(num_classes: int = 100, norm: str = "batchnorm", dropout: float = 0.0) -> WideResNet:
    return WideResNet(16, 4, num_classes, norm, dropout)


@register_model("wrn28_10")
def wrn28_10(num_classes: int = 100, norm: str = "batchnorm", dropout: float = 0.0) -> WideResNet:
    return WideResNet(28, 10, num_classes, norm, dropout)
