"""CIFAR ResNets (He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
Section 4.2).

Architecture (depth 6n+2): a 3x3 conv with 16 channels + norm + ReLU (the stem), then three stages
of ``n`` post-activation basic blocks (two 3x3 convs, each followed by a norm) with 16, 32 and 64
channels at 32x32, 16x16 and 8x8 resolution (the first block of stages 2 and 3 has stride 2),
global average pooling and a linear classifier.

The shortcut of a block that changes shape is the paper's option B: a 1x1 strided conv followed by
a norm, held in ``downsample = nn.Sequential(conv, norm)`` so its norm parameters are named
``downsample.1.weight`` / ``downsample.1.bias`` like in torchvision. (The paper's CIFAR models
used option A, zero-padded identity; option B adds 2 small convs and 2 norm layers.)

Registered models:

* ``resnet20`` (n=3, ~0.28M parameters at 100 classes) and ``resnet56`` (n=9, ~0.86M).
* ``resnet8``: one basic block per stage at full width (16/32/64, ~84k parameters): the smallest
  net here that can memorize a few thousand noisy labels, which is where SAM's advantage shows
  (the claims' ``cpu`` size).
* ``tiny_resnet``: ResNet-8 at half width: one block per stage with 8/16/32 channels, still a norm
  layer after every conv (9 norm layers); small enough to train a 5k-image epoch in seconds on
  2 CPU cores.

Norm choices: ``batchnorm`` (default), ``groupnorm`` (GroupNorm, <= 8 groups) and ``layernorm``
(GroupNorm with 1 group, LayerNorm over C,H,W); see :func:`samon_core.models.layers.make_norm`.
"""

from __future__ import annotations

import torch
from torch import nn

from samon_core.models.layers import init_conv_kaiming, make_norm
from samon_core.models.registry import register_model


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Post-activation basic block: ``relu(norm2(conv2(relu(norm1(conv1(x))))) + shortcut(x))``."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_ch, out_ch, stride)
        self.norm1 = make_norm(norm, out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(out_ch, out_ch)
        self.norm2 = make_norm(norm, out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False),
                make_norm(norm, out_ch),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + identity)


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs: stem, ``stage1``-``stage3`` of ``blocks_per_stage`` blocks, head."""

    def __init__(
        self,
        blocks_per_stage: int,
        num_classes: int = 100,
        norm: str = "batchnorm",
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        if blocks_per_stage < 1:
            raise ValueError(f"blocks_per_stage must be >= 1, got {blocks_per_stage}")
        if len(widths) != 3:
            raise ValueError(f"widths must have 3 entries, got {widths!r}")
        self.blocks_per_stage = blocks_per_stage
        self.conv1 = _conv3x3(3, widths[0])
        self.norm1 = make_norm(norm, widths[0])
        self.relu = nn.ReLU(inplace=True)
        in_ch = widths[0]
        stages = []
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(blocks_per_stage):
                blocks.append(BasicBlock(in_ch, width, stride if j == 0 else 1, norm))
                in_ch = width
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_conv_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.norm1(self.conv1(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model("resnet20")
def resnet20(num_classes: int = 100, norm: str = "batchnorm") -> CifarResNet:
    return CifarResNet(3, num_classes, norm)


@register_model("resnet56")
def resnet56(num_classes: int = 100, norm: str = "batchnorm") -> CifarResNet:
    return CifarResNet(9, num_classes, norm)


@register_model("resnet8")
def resnet8(num_classes: int = 100, norm: str = "batchnorm") -> CifarResNet:
    return CifarResNet(1, num_classes, norm)


@register_model("tiny_resnet")
def tiny_resnet(num_classes: int = 100, norm: str = "batchnorm") -> CifarResNet:
    return CifarResNet(1, num_classes, norm, widths=(8, 16, 32))
