"""The vocabulary of the UI: methods, SAM variants, their labels and colours.

Form names of the methods ("SGD", "SAM-all", ...) and the RunConfig changes that make them, the
SAM variants of the form, one colour per method family, and what the select boxes show for the
optimizers and devices. Models and datasets (labels, norm layers, sizes) are not repeated here:
the pages read them from ``samon_core.catalog``; the method names, labels and colours move there
too once the catalog describes the methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from samon_core.runs.config import RunConfig

METHODS: dict[str, dict[str, str]] = {
    "SGD": {"method": "base"},
    "SAM-all": {"method": "sam", "scope": "all"},
    "SAM-ON": {"method": "sam", "scope": "norm"},
    "no-norm": {"method": "sam", "scope": "no-norm"},
    "random mask": {"method": "sam", "scope": "random"},
}
METHOD_HELP: dict[str, str] = {
    "SGD": "the base optimizer alone (one gradient per step): the baseline",
    "SAM-all": "SAM perturbing every parameter (the usual SAM)",
    "SAM-ON": "SAM perturbing only the normalization layers' gamma and beta",
    "no-norm": "SAM perturbing every parameter except gamma and beta (control)",
    "random mask": "SAM on a random set of parameters as small as SAM-ON's (control)",
}
# Form key of each SAM method's rho input.
RHO_KEYS: dict[str, str] = {
    "SAM-all": "rho_all",
    "SAM-ON": "rho_norm",
    "no-norm": "rho_nonorm",
    "random mask": "rho_random",
}

# One colour per method family, the same on every chart (vanilla grey, SAM-all blue, SAM-ON
# orange, no-norm green, random mask purple).
METHOD_COLORS: dict[str, str] = {
    "sgd": "#6c757d",
    "all": "#1c7ed6",
    "norm": "#e8590c",
    "no-norm": "#2f9e44",
    "random": "#7048e8",
}
METHOD_KEY_ORDER = ("sgd", "all", "norm", "no-norm", "random")
# Further colours for charts that colour by something other than the method family.
PALETTE = (
    "#e8590c", "#1c7ed6", "#2f9e44", "#7048e8", "#c2255c", "#0c8599", "#f08c00", "#5c940d",
    "#862e9c", "#364fc7", "#a61e4d", "#087f5b", "#6c757d", "#d9480f", "#1864ab",
)

SYNTHETIC_NOTE = (
    "Synthetic data: these runs train on generated images (smooth random patterns in 100 "
    "classes), not on CIFAR. They show how the methods behave, not the paper's accuracies."
)

# SAM variant shown in the form -> (adaptive, ball). Paper variants first.
SAM_VARIANTS: dict[str, tuple[str, str]] = {
    "SAM (p=2)": ("none", "l2"),
    "ASAM elementwise": ("elementwise", "l2"),
    "ASAM layerwise": ("layerwise", "l2"),
    "p=inf elementwise": ("elementwise", "linf"),
    "p=inf (no T_w)": ("none", "linf"),
    "p=inf layerwise": ("layerwise", "linf"),
}

OPTIMIZER_LABELS = {"sgd": "SGD with momentum", "adamw": "AdamW", "lion": "Lion"}
DEVICE_LABELS = {
    "auto": "auto (GPU if the worker has one)",
    "cpu": "CPU",
    "cuda": "CUDA GPU",
    "mps": "Apple GPU (MPS)",
}

PERTURBS = {
    "sgd": "nothing (no SAM)",
    "all": "all parameters",
    "norm": "norm layers' gamma, beta",
    "no-norm": "all but gamma, beta",
    "random": "random mask (SAM-ON's size)",
}


def method_key(config: RunConfig | Mapping[str, Any]) -> str:
    """'sgd', 'all', 'norm', 'no-norm' or 'random': the method family of a run."""
    get = config.get if isinstance(config, Mapping) else lambda k, d=None: getattr(config, k, d)
    if get("method") == "base":
        return "sgd"
    return str(get("scope") or "all")


def method_color(key: str) -> str:
    """The chart colour of a method family (a palette colour for an unknown one)."""
    return METHOD_COLORS.get(key, PALETTE[hash(key) % len(PALETTE)])


_LABEL_PREFIX_KEYS = (("SGD", "sgd"), ("AdamW", "sgd"), ("Lion", "sgd"), ("SAM-all", "all"),
                      ("SAM-ON", "norm"), ("no-norm", "no-norm"), ("random mask", "random"))


def method_sort_key(label: str, key: str = "") -> tuple[int, str]:
    """Display order: vanilla, SAM-all, SAM-ON, no-norm, random mask (then by label). ``key``
    is the method family; without it the family is guessed from the label."""
    if not key:
        key = next((k for prefix, k in _LABEL_PREFIX_KEYS if label.startswith(prefix)), "")
    order = METHOD_KEY_ORDER.index(key) if key in METHOD_KEY_ORDER else len(METHOD_KEY_ORDER)
    return order, label

