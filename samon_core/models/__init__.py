"""Model zoo: CIFAR ResNets, Wide ResNets and a small ViT behind a name registry.

See :mod:`samon_core.models.registry` for the conventions (stage names, norm naming, classifier).
"""

from samon_core.models import resnet_cifar, vit, wide_resnet  # noqa: F401  (registration)
from samon_core.models.layers import NORM_KINDS, make_norm
from samon_core.models.registry import (
    build_model,
    list_models,
    model_info,
    register_model,
)

__all__ = [
    "NORM_KINDS",
    "build_model",
    "list_models",
    "make_norm",
    "model_info",
    "register_model",
]
