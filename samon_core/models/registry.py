"""Model registry: ``@register_model`` builders, looked up by name.

Usage::

    from samon_core.models import build_model, list_models, model_info
    model = build_model("resnet20", num_classes=100, norm="groupnorm")

A builder is a function ``fn(num_classes: int, norm: str, **kw) -> nn.Module`` decorated with
:func:`register_model`; ``build_model`` validates ``name`` and ``norm`` before calling it. What a
model is (description, norm choices, default norm, CPU-friendliness, size) is written once, in the
torch-free catalog :data:`samon_core.catalog.MODELS`, which the UI reads without importing torch.

Conventions every registered model follows (the optimizer, the norm statistics and the UI rely on
them):

* **Stages.** ResNet-like models (CIFAR ResNet, Wide ResNet) hold their residual stages in
  top-level submodules named ``stage1``, ``stage2``, ``stage3`` (the paper's blocks B1-B3), so a
  parameter ``stage2.0.norm1.weight`` belongs to stage 2. The stem (``conv1``/``norm1``), a final
  norm (``final_norm``) and the classifier belong to no stage. :func:`stage_index` maps a
  parameter/module name to its stage. The ViT holds its transformer blocks in ``blocks.0`` ...
  ``blocks.<depth-1>`` (no stages: ``stage_index`` is ``None`` for all of them).
* **Norm layers** are built by :func:`samon_core.models.layers.make_norm` and recognised by module
  type (:mod:`samon_core.norms`), never by name. Residual blocks name them ``norm1``/``norm2``; a
  projection shortcut of a post-activation ResNet is ``downsample = Sequential(conv1x1, norm)``,
  so its norm is ``downsample.1`` like in torchvision.
* **Classifier** is a top-level ``nn.Linear`` named ``fc``.
* **Input** is ``(N, 3, 32, 32)`` (CIFAR); the ViT requires exactly 32x32, the conv nets accept any
  size thanks to global average pooling. ``channels_last`` and CPU/CUDA autocast are supported.
* **Determinism**: all initialisation draws from torch's global RNG, so ``torch.manual_seed(s)``
  before ``build_model`` gives identical weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from samon_core.catalog import ModelSpec, model_spec
from samon_core.norms import count_parameters, norm_parameters

#: Builder signature: ``fn(num_classes, norm, **kw) -> nn.Module``.
ModelBuilder = Callable[..., nn.Module]



@dataclass(frozen=True)
class _Entry:
    name: str
    builder: ModelBuilder
    spec: ModelSpec  # the catalog's description of the model


_REGISTRY: dict[str, _Entry] = {}
_COUNT_CACHE: dict[str, dict[str, int | float]] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering ``fn(num_classes, norm, **kw) -> nn.Module`` under ``name``.

    The model's description and norm choices come from its catalog entry
    (``samon_core.catalog.MODELS[name]``); a name missing from the catalog or registered twice is
    an error.
    """
    spec = model_spec(name)

    def decorator(fn: ModelBuilder) -> ModelBuilder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = _Entry(name=name, builder=fn, spec=spec)
        return fn

    return decorator


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown model name={name!r}; argument 'name' must be one of {list_models()}"
        ) from None


def _resolve_norm(entry: _Entry, norm: str | None) -> str:
    if norm is None:
        return entry.spec.default_norm
    if norm not in entry.spec.norms:
        raise ValueError(
            f"unsupported norm={norm!r} for model {entry.name!r}; argument 'norm' must be one of "
            f"{list(entry.spec.norms)}"
        )
    return norm


def build_model(
    name: str, num_classes: int = 100, norm: str | None = None, **kw: object
) -> nn.Module:
    """Build the registered model ``name``.

    ``norm=None`` picks the model's default norm (``model_info(name)["default_norm"]``; BatchNorm
    for the conv nets, LayerNorm for the ViT). Extra keyword arguments go to the builder (e.g.
    ``dropout`` for the Wide ResNets). Unknown ``name`` or unsupported ``norm`` raise
    ``ValueError``.
    The model is created on the current default device (``with torch.device("meta"): ...`` works).
    """
    entry = _entry(name)
    norm = _resolve_norm(entry, norm)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"argument 'num_classes' must be a positive int, got {num_classes!r}")
    return entry.builder(num_classes=num_classes, norm=norm, **kw)


def _counts(name: str) -> dict[str, int | float]:
    """Parameter counts of ``name`` at 100 classes with its default norm (cached).

    Built on the ``meta`` device, so even the 36M-parameter WRN-28-10 costs no memory or init time.
    BatchNorm, GroupNorm and LayerNorm all carry 2*C parameters, so the counts hold for every norm.
    """
    if name not in _COUNT_CACHE:
        try:
            with torch.device("meta"):
                model = build_model(name, num_classes=100)
        except Exception:  # pragma: no cover - fall back to a real build
            model = build_model(name, num_classes=100)
        total = count_parameters(model.parameters())
        n_norm = count_parameters(p for _, _, p in norm_parameters(model))
        n_layers = len({layer for layer, _, _ in norm_parameters(model)})
        _COUNT_CACHE[name] = {
            "num_params": total,
            "num_norm_params": n_norm,
            "num_norm_layers": n_layers,
            "norm_param_share": n_norm / total if total else 0.0,
        }
    return _COUNT_CACHE[name]


def model_info(name: str) -> dict:
    """Description and facts about model ``name``.

    Keys: ``name``, ``description``, ``norm_choices`` (list), ``default_norm``, ``cpu_friendly``,
    and, computed lazily at 100 classes, ``num_params``, ``num_norm_params``, ``num_norm_layers``,
    ``norm_param_share`` (fraction of all parameters that are norm gamma/beta).
    """
    entry = _entry(name)
    info: dict = {
        "name": entry.name,
        "description": entry.spec.description,
        "norm_choices": list(entry.spec.norms),
        "default_norm": entry.spec.default_norm,
        "cpu_friendly": entry.spec.cpu_friendly,
    }
    info.update(_counts(name))
    return info
