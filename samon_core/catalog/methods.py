"""The methods a comparison can hold, without torch: names, labels, what they perturb, colours.

A run's *method family* follows from two settings: ``method="base"`` (no SAM, whatever the base
optimizer) or ``method="sam"`` with a ``scope``: ``all`` (SAM-all), ``norm`` (SAM-ON, the paper's
method: only the normalization layers' gamma and beta), ``no-norm`` and ``random`` (the paper's
controls). Each family has one display name, one help text, one colour; every page, chart, table
and progress bar takes them from here, so a method looks the same everywhere, and the seeds of a
method share its colour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MethodSpec:
    """One method family: ``key`` (stable, stored nowhere but derived from a config), ``name``
    (shown), the RunConfig settings that make it, what it perturbs, a help line, a colour."""

    key: str
    name: str
    settings: Mapping[str, str] = field(default_factory=dict)
    perturbs: str = ""
    help: str = ""
    color: str = "#6c757d"


# Display order = this order. Colours: vanilla grey, SAM-all blue, SAM-ON orange, no-norm green,
# random mask purple (distinguishable for the common colour-vision deficiencies).
FAMILIES: tuple[MethodSpec, ...] = (
    MethodSpec("base", "SGD", {"method": "base"}, "nothing (no SAM)",
               "the base optimizer alone (one gradient per step): the baseline", "#6c757d"),
    MethodSpec("all", "SAM-all", {"method": "sam", "scope": "all"}, "all parameters",
               "SAM perturbing every parameter (the usual SAM)", "#1c7ed6"),
    MethodSpec("norm", "SAM-ON", {"method": "sam", "scope": "norm"}, "norm layers' gamma, beta",
               "SAM perturbing only the normalization layers' gamma and beta", "#e8590c"),
    MethodSpec("no-norm", "no-norm", {"method": "sam", "scope": "no-norm"},
               "all but gamma, beta",
               "SAM perturbing every parameter except gamma and beta (control)", "#2f9e44"),
    MethodSpec("random", "random mask", {"method": "sam", "scope": "random"},
               "random mask (SAM-ON's size)",
               "SAM on a random set of parameters as small as SAM-ON's (control)", "#7048e8"),
)
BY_KEY: dict[str, MethodSpec] = {m.key: m for m in FAMILIES}
BY_NAME: dict[str, MethodSpec] = {m.name: m for m in FAMILIES}
# Scope -> the name of the SAM method with that scope (RunConfig.method_label).
SCOPE_NAMES: dict[str, str] = {
    m.settings["scope"]: m.name for m in FAMILIES if "scope" in m.settings
}

# Colours for charts that colour by something other than the method family.
PALETTE: tuple[str, ...] = (
    "#e8590c", "#1c7ed6", "#2f9e44", "#7048e8", "#c2255c", "#0c8599", "#f08c00", "#5c940d",
    "#862e9c", "#364fc7", "#a61e4d", "#087f5b", "#6c757d", "#d9480f", "#1864ab",
)

# SAM variants: (adaptive, ball) -> the name shown in the form and in a run's label ("" = plain
# SAM, p=2). Paper variants first.
VARIANTS: dict[tuple[str, str], str] = {
    ("none", "l2"): "",
    ("elementwise", "l2"): "ASAM elementwise",
    ("layerwise", "l2"): "ASAM layerwise",
    ("elementwise", "linf"): "p=inf elementwise",
    ("none", "linf"): "p=inf",
    ("layerwise", "linf"): "p=inf layerwise",
}
# Base optimizers: short name (run labels) and long name (select boxes).
OPTIMIZER_NAMES: dict[str, str] = {"sgd": "SGD", "adamw": "AdamW", "lion": "Lion"}
OPTIMIZER_LABELS: dict[str, str] = {"sgd": "SGD with momentum", "adamw": "AdamW", "lion": "Lion"}


def method_key(config: Any) -> str:
    """'base', 'all', 'norm', 'no-norm' or 'random': the family of a RunConfig or its dict."""
    get = config.get if isinstance(config, Mapping) else lambda k, d=None: getattr(config, k, d)
    if get("method") in ("base", "sgd"):  # "sgd": run folders written before the rename
        return "base"
    return str(get("scope") or "all")


def method_color(key: str) -> str:
    """The colour of a method family (a palette colour, stable per name, for an unknown one)."""
    spec = BY_KEY.get(key)
    if spec is not None:
        return spec.color
    return PALETTE[sum(map(ord, key)) % len(PALETTE)]  # not hash(): stable across processes


_LABEL_PREFIXES = (("SGD", "base"), ("AdamW", "base"), ("Lion", "base"),
                   *((m.name, m.key) for m in FAMILIES if m.key != "base"))


def method_sort_key(label: str, key: str = "") -> tuple[int, str]:
    """Display order: vanilla, SAM-all, SAM-ON, no-norm, random mask (then by label). ``key``
    is the method family; without it the family is guessed from the label."""
    if not key:
        key = next((k for prefix, k in _LABEL_PREFIXES if label.startswith(prefix)), "")
    keys = [m.key for m in FAMILIES]
    return (keys.index(key) if key in keys else len(keys)), label
