"""Which modules count as normalization layers: the one place that decides it.

A normalization layer computes ``Norm(x) = gamma * (x - mu) / sigma + beta``; its affine parameters
gamma (``weight``) and beta (``bias``) are what SAM-ON perturbs (Mueller et al., "Normalization
Layers Are All That Sharpness-Aware Minimization Needs", NeurIPS 2023). Layers are recognised by
module *type*, never by a substring of a parameter name, so a convolution called ``bn_proj`` is not
a norm layer and torchvision's ``downsample.1`` BatchNorm is one.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

# Every module type whose affine parameters are "normalization parameters". BatchNorm1d/2d/3d,
# their lazy variants and SyncBatchNorm all derive from _NormBase / _BatchNorm; InstanceNorm also
# derives from _NormBase but only carries parameters when built with affine=True, which the
# parameter walk below handles for free (no parameters, nothing found).
NORM_LAYER_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,  # has no parameters; listed so that "is a norm layer" is complete
)


def is_norm_layer(module: nn.Module) -> bool:
    """True if ``module`` is a normalization layer (see ``NORM_LAYER_TYPES``)."""
    return isinstance(module, NORM_LAYER_TYPES)


def norm_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(qualified_name, module)`` for every normalization layer of ``model``."""
    for name, module in model.named_modules():
        if is_norm_layer(module):
            yield name, module


def norm_parameters(model: nn.Module) -> Iterator[tuple[str, str, nn.Parameter]]:
    """Yield ``(layer_name, role, parameter)`` for each trainable norm-layer parameter.

    ``role`` is ``"gamma"`` for the scale (``weight``) and ``"beta"`` for the shift (``bias``).
    """
    for layer_name, module in norm_layers(model):
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            role = {"weight": "gamma", "bias": "beta"}.get(pname, pname)
            yield layer_name, role, p


def norm_parameter_ids(model: nn.Module) -> set[int]:
    """``id()`` of every trainable norm-layer parameter (handy for membership tests)."""
    return {id(p) for _, _, p in norm_parameters(model)}


def count_parameters(params) -> int:
    """Number of scalar weights in an iterable of tensors."""
    return sum(p.numel() for p in params)
