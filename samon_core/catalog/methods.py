"""The methods a comparison can hold, without torch: every per-method fact in one ``MethodSpec``.

A run's *method family* follows from two settings: ``method="base"`` (no SAM, whatever the base
optimizer) or ``method="sam"`` with a ``scope``: ``all`` (SAM-all), ``norm`` (SAM-ON, the paper's
method: only the normalization layers' gamma and beta), ``no-norm`` and ``random`` (the paper's
controls). Each family has one display name, one help text, one colour, one paper rho column, one
step cost and one form key; the scope choices, the paper's rho lookup, the time estimate, the cost
ratios and the Launch form read them from here (keyed by ``MethodSpec.key``), so a method looks
the same everywhere, and the seeds of a method share its colour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MethodSpec:
    """One method family and every per-method fact the lab keeps about it.

    ``key`` (stable, stored nowhere but derived from a config: ``method_key``; the key every
    per-method table uses, the paper's included), ``name`` (shown), the RunConfig ``settings``
    that make it, what it ``perturbs``, a ``help`` line, a ``color``; ``rho_like``: the family
    whose best rho in the paper's figure (``paper.DEFAULT_RHO``'s columns) this one takes;
    ``step_cost_f``: one training step in forward-pass units F, the lab's own FLOP estimate (a
    backward pass costs about 2F); ``form_key``: the Launch form's rho input of a SAM family.
    """

    key: str
    name: str
    settings: Mapping[str, str] = field(default_factory=dict)
    perturbs: str = ""
    help: str = ""
    color: str = "#6c757d"
    rho_like: str = ""
    step_cost_f: float = 0.0
    form_key: str = ""

    @property
    def scope(self) -> str:
        """The ``scope`` setting of a SAM family ('' for the base optimizer alone)."""
        return self.settings.get("scope", "")


# Display order = this order. Colours: vanilla grey, SAM-all blue, SAM-ON orange, no-norm green,
# random mask purple (distinguishable for the common colour-vision deficiencies).
# Step costs: the base optimizer is one forward + backward (3F), SAM-all two (6F); SAM-ON's ascent
# backward needs the gradients of the norm parameters only, so the conv / linear weight gradients
# (about 1F) are skipped: 5F. The controls need every gradient in the ascent pass: 6F.
# Rhos: the no-norm control takes SAM-all's rho (it perturbs almost all parameters), the random
# mask SAM-ON's (it perturbs as few as SAM-ON does).
FAMILIES: tuple[MethodSpec, ...] = (
    MethodSpec("base", "SGD", {"method": "base"}, "nothing (no SAM)",
               "the base optimizer alone (one gradient per step): the baseline", "#6c757d",
               step_cost_f=3.0),
    MethodSpec("all", "SAM-all", {"method": "sam", "scope": "all"}, "all parameters",
               "SAM perturbing every parameter (the usual SAM)", "#1c7ed6",
               rho_like="all", step_cost_f=6.0, form_key="rho_all"),
    MethodSpec("norm", "SAM-ON", {"method": "sam", "scope": "norm"}, "norm layers' gamma, beta",
               "SAM perturbing only the normalization layers' gamma and beta", "#e8590c",
               rho_like="norm", step_cost_f=5.0, form_key="rho_norm"),
    MethodSpec("no-norm", "no-norm", {"method": "sam", "scope": "no-norm"},
               "all but gamma, beta",
               "SAM perturbing every parameter except gamma and beta (control)", "#2f9e44",
               rho_like="all", step_cost_f=6.0, form_key="rho_nonorm"),
    MethodSpec("random", "random mask", {"method": "sam", "scope": "random"},
               "random mask (SAM-ON's size)",
               "SAM on a random set of parameters as small as SAM-ON's (control)", "#7048e8",
               rho_like="norm", step_cost_f=6.0, form_key="rho_random"),
)
BY_KEY: dict[str, MethodSpec] = {m.key: m for m in FAMILIES}
BY_NAME: dict[str, MethodSpec] = {m.name: m for m in FAMILIES}
# The SAM families by their scope (the RunConfig's ``scope`` choices, in this order).
BY_SCOPE: dict[str, MethodSpec] = {m.scope: m for m in FAMILIES if m.scope}
# Scope -> the name of the SAM method with that scope (RunConfig.method_label).
SCOPE_NAMES: dict[str, str] = {scope: m.name for scope, m in BY_SCOPE.items()}


def cost_factor(key: str) -> float:
    """One step of family ``key`` over one step of the base optimizer alone (from
    ``step_cost_f``: SAM-all 6F / 3F = 2, SAM-ON 5F / 3F)."""
    return BY_KEY[key].step_cost_f / BY_KEY["base"].step_cost_f


def _check(families: tuple[MethodSpec, ...]) -> None:
    """A family's rho must come from a SAM family, its form key be unique: fail at import."""
    by_key = {m.key: m for m in families}
    for m in families:
        like = by_key.get(m.rho_like)
        if m.scope and (like is None or not like.scope or not m.form_key):
            raise ValueError(f"method family {m.key!r}: a SAM family needs rho_like (a SAM "
                             f"family's key) and form_key; got {m.rho_like!r}, {m.form_key!r}")
        if m.step_cost_f <= 0:
            raise ValueError(f"method family {m.key!r}: step_cost_f must be > 0")
    form_keys = [m.form_key for m in families if m.form_key]
    if len(form_keys) != len(set(form_keys)):
        raise ValueError(f"form keys must be unique: {form_keys}")


_check(FAMILIES)

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


def variant_name(variant: tuple[str, str]) -> str:
    """The name a sentence gives SAM variant ``variant`` (adaptive, ball): its run label's name
    from ``VARIANTS``, 'SAM' for plain SAM (whose run labels name no variant)."""
    return VARIANTS[variant] or "SAM"
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
