"""A small Vision Transformer for 32x32 images (Dosovitskiy et al., "An Image is Worth 16x16 Words:
Transformers for Image Recognition at Scale", ICLR 2021).

Architecture (``vit_tiny``): the 32x32 image is cut into 4x4 patches (a stride-4 conv, 64 tokens)
embedded in dimension 192; a learnable class token is prepended and a learnable position embedding
added; 6 pre-norm transformer blocks (``x + attn(norm1(x))``, ``x + mlp(norm2(x))``) with 3 heads
and an MLP of hidden size 2 x 192 with GELU; a final LayerNorm; the classifier ``fc`` reads the
class token (``pool="cls"``, default) or the mean of the patch tokens (``pool="mean"``). No dropout.
Linear layers, class token and position embedding are initialised from a truncated normal
(std 0.02), as in the reference implementation. ~1.8M parameters at 100 classes.

Norm: LayerNorm only (``norm1``/``norm2`` in each of ``blocks.0`` ... ``blocks.5``, plus
``final_norm``): 13 norm layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from samon_core.models.layers import make_norm
from samon_core.models.registry import register_model

_LN_EPS = 1e-6


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (scaled dot-product attention)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (n, heads, length, head_dim)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, norm: str) -> None:
        super().__init__()
        self.norm1 = make_norm(norm, dim, layout="tokens", eps=_LN_EPS)
        self.attn = Attention(dim, heads)
        self.norm2 = make_norm(norm, dim, layout="tokens", eps=_LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(
        self,
        num_classes: int = 100,
        norm: str = "layernorm",
        img_size: int = 32,
        patch_size: int = 4,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_ratio: float = 2.0,
        pool: str = "cls",
    ) -> None:
        super().__init__()
        if img_size % patch_size != 0:
            raise ValueError(
                f"img_size ({img_size}) must be divisible by patch_size ({patch_size})"
            )
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        self.img_size, self.pool = img_size, pool
        num_patches = (img_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio, norm) for _ in range(depth)])
        self.final_norm = make_norm(norm, dim, layout="tokens", eps=_LN_EPS)
        self.fc = nn.Linear(dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        # Patch embedding like a linear layer on the flattened patch (lecun-normal-ish fan_in).
        w = self.patch_embed.weight
        nn.init.trunc_normal_(w, std=(1.0 / (w[0].numel())) ** 0.5)
        nn.init.zeros_(self.patch_embed.bias)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(
                f"expected {self.img_size}x{self.img_size} images, got {tuple(x.shape[-2:])}"
            )
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (n, patches, dim)
        cls = self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype)
        x = torch.cat([cls, x], dim=1) + self.pos_embed.to(x.dtype)
        x = self.final_norm(self.blocks(x))
        x = x[:, 0] if self.pool == "cls" else x[:, 1:].mean(dim=1)
        return self.fc(x)


@register_model("vit_tiny")
def vit_tiny(num_classes: int = 100, norm: str = "layernorm", **kw) -> VisionTransformer:
    return VisionTransformer(num_classes=num_classes, norm=norm, **kw)
