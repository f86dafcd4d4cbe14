"""SAM-ON Lab's library: SAM-family optimizers, CIFAR models and data, a trainer that streams
metrics, a run store and a job runner. It never imports streamlit.

Importing ``samon_core`` is cheap: torch is imported only when something that needs it is used
(``train``, the optimizers, the models), so the app's pages that only read runs load fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "RunConfig": "samon_core.runs.config",
    "list_presets": "samon_core.runs.presets",
    "get_preset": "samon_core.runs.presets",
    "RunStore": "samon_core.runs.store",
    "train": "samon_core.train.trainer",
    "SAM": "samon_core.optim",
    "perturbation_groups": "samon_core.optim",
    "build_model": "samon_core.models",
    "list_models": "samon_core.models",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'samon_core' has no attribute {name!r}")
