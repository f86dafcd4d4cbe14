"""The words of the Launch form that are the UI's own: the device choices, the SAM variants as
the form names them, and the note on synthetic data.

The methods themselves (names, what they perturb, help, colours, the form keys of their rho
inputs), the SAM variants' run labels, the optimizers, models and datasets are facts of
``samon_core.catalog``; the form reads them from there and keeps no copy.
"""

from __future__ import annotations

from samon_core.catalog.methods import FAMILIES, VARIANTS

# Form name of a method -> the RunConfig settings that make it. Order = display order.
METHODS: dict[str, dict[str, str]] = {m.name: dict(m.settings) for m in FAMILIES}
METHOD_HELP: dict[str, str] = {m.name: m.help for m in FAMILIES}

# Form name of each SAM method -> the form key of its rho input (``MethodSpec.form_key``).
RHO_KEYS: dict[str, str] = {m.name: m.form_key for m in FAMILIES if m.form_key}

# SAM variant as the form names it -> (adaptive, ball); the run label's name otherwise.
_FORM_NAMES = {("none", "l2"): "SAM (p=2)", ("none", "linf"): "p=inf (no T_w)"}
SAM_VARIANTS: dict[str, tuple[str, str]] = {
    _FORM_NAMES.get(key, name): key for key, name in VARIANTS.items()
}

DEVICE_LABELS = {
    "auto": "auto (GPU if the worker has one)",
    "cpu": "CPU",
    "cuda": "CUDA GPU",
    "mps": "Apple GPU (MPS)",
}

SYNTHETIC_NOTE = (
    "Synthetic data: these runs train on generated images (smooth random patterns in 100 "
    "or 10 classes), not on CIFAR. They show how the methods behave, not the paper's accuracies."
)
