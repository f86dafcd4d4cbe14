"""The Launch form's model: its fields and defaults, preset -> form values, form -> RunConfigs.

The form holds plain values (numbers, strings, lists) under keys that are mostly RunConfig field
names, plus ``methods``, ``variant``, ``seeds`` and one ``rho_*`` key per SAM method.
``form_configs`` turns them into one ``RunConfig`` per chosen method and reports every problem
under the form key it belongs to, with a message a user can act on. The field a RunConfig error
is about is read from the error itself (see ``config_errors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from samon_app.vocabulary import METHODS, RHO_KEYS, SAM_VARIANTS
from samon_core.catalog import DATASET_SIZES, MODELS
from samon_core.catalog.choices import MAX_SEEDS  # the Launch and Room pages read it here
from samon_core.catalog.methods import BY_KEY, BY_NAME
from samon_core.paper import paper_rho
from samon_core.runs.config import RunConfig
from samon_core.runs.fieldspec import ConfigError
from samon_core.runs.presets import get_preset

QUICK_DEMO = "cpu-quick-demo"


def _quick_demo_base() -> RunConfig:
    """The quick demo's settings with plain SGD: the form's defaults and the reference the
    fields are checked against one by one."""
    configs = get_preset(QUICK_DEMO).configs
    return next(iter(configs.values())).replace(method="base")


# Form fields that are RunConfig fields with the same name.
FORM_CONFIG_FIELDS: tuple[str, ...] = (
    "model",
    "norm_layer",
    "dataset",
    "train_subset",
    "test_subset",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "label_smoothing",
    "lr_schedule",
    "warmup_epochs",
    "augment",
    "seed",
    "device",
    "sharpness_every",
    "sharpness_samples",
    "sharpness_multi_steps",
    "log_every_s",
)


def form_defaults() -> dict[str, Any]:
    """The form's default values: the quick demo (tiny ResNet, synthetic data, SGD vs SAM-all vs
    SAM-ON, the paper's rho) so that an untouched form launches the quick demo."""
    base = _quick_demo_base()
    values: dict[str, Any] = {name: getattr(base, name) for name in FORM_CONFIG_FIELDS}
    values.update(
        methods=["SGD", "SAM-all", "SAM-ON"],
        variant="SAM (p=2)",
        seeds=1,
        **{key: None for key in RHO_KEYS.values()},
    )
    return values


def preset_form_values(configs: Mapping[str, RunConfig]) -> dict[str, Any]:
    """Form values that reproduce a preset as closely as the form can: its base settings, the
    methods it compares, its SAM variant and rho values (only the first variant of a preset that
    compares several)."""
    cfgs = list(configs.values())
    if not cfgs:
        return form_defaults()
    base = cfgs[0]
    values = form_defaults()
    values.update({name: getattr(base, name) for name in FORM_CONFIG_FIELDS})
    methods: list[str] = []
    variant = None
    rhos: dict[str, float | None] = {}
    for cfg in cfgs:
        for name, changes in METHODS.items():
            if changes.get("method") == cfg.method and (
                cfg.method == "base" or changes.get("scope") == cfg.scope
            ):
                if name not in methods:
                    methods.append(name)
                if cfg.method == "sam":
                    if variant is None:
                        variant = next(
                            (v for v, key in SAM_VARIANTS.items()
                             if key == (cfg.adaptive, cfg.ball)),
                            None,
                        )
                    rhos.setdefault(RHO_KEYS[name], cfg.rho)
    values["methods"] = [m for m in METHODS if m in methods]
    values["variant"] = variant or "SAM (p=2)"
    values.update(rhos)
    return values


@dataclass
class FormResult:
    """What ``form_configs`` makes of the form: one config per method (display label -> config),
    the number of seeds, and the errors keyed by form field (empty when all is well)."""

    configs: dict[str, RunConfig] = field(default_factory=dict)
    seeds: int = 1
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.configs)

    @property
    def n_runs(self) -> int:
        return len(self.configs) * self.seeds


# ---------------------------------------------------------------------------------------------
# RunConfig errors, keyed by the field they are about
# ---------------------------------------------------------------------------------------------

# How the form names a field in a message where its Python name would puzzle a student.
FIELD_WORDS: dict[str, str] = {
    "lr": "learning rate",
    "rho": "perturbation radius rho",
    "ball": "perturbation ball",
    "eta": "ASAM's eta",
    "bn_second_pass": "BatchNorm in the second pass",
    "sam_start_epoch": "first SAM epoch",
    "sam_end_epoch": "last SAM epoch",
}


def _error_items(exc: ValueError) -> list[tuple[str | None, str]]:
    """(field or None, message) for each problem: a ``ConfigError`` pairs every message with its
    field; any other error (none expected) is one problem of no field."""
    if isinstance(exc, ConfigError):
        return [(name or None, message) for name, message in exc.errors]
    return [(None, str(exc))]


def _friendly(name: str, message: str) -> str:
    """'RunConfig.lr must be a number in (0, 10]; got 0' -> 'Learning rate must be a number in
    (0, 10]; got 0': the field's name in words, first letter capitalised."""
    prefix = f"RunConfig.{name}"
    words = FIELD_WORDS.get(name, name.replace("_", " "))
    text = words + message[len(prefix):] if message.startswith(prefix) else message
    return text[:1].upper() + text[1:]


def config_errors(exc: ValueError, fallback: str) -> dict[str, str]:
    """Field -> message of a RunConfig validation error (first message per field); a problem
    that names no field goes under ``fallback``."""
    out: dict[str, str] = {}
    for name, message in _error_items(exc):
        out.setdefault(name or fallback, _friendly(name or fallback, message))
    return out


# ---------------------------------------------------------------------------------------------
# form -> RunConfigs
# ---------------------------------------------------------------------------------------------


def _whole(value: Any) -> Any:
    """2.0 -> 2 (number inputs may hand integers over as floats); anything else unchanged."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _check_choices(v: Mapping[str, Any], result: FormResult) -> tuple[list[str], str]:
    """Methods, seeds and SAM variant: (chosen methods, variant); sets ``result.seeds``."""
    errors = result.errors
    methods = [m for m in (v.get("methods") or []) if m in METHODS]
    if not methods:
        errors["methods"] = "Choose at least one method to train."
    seeds = _whole(v.get("seeds"))
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        errors["seeds"] = f"Number of seeds must be a whole number from 1 to {MAX_SEEDS}."
        seeds = 1
    result.seeds = seeds
    variant = v.get("variant")
    if variant not in SAM_VARIANTS:
        errors["variant"] = f"Choose one of: {', '.join(SAM_VARIANTS)}."
        variant = "SAM (p=2)"
    return methods, variant


def _field_values(v: Mapping[str, Any], reference: RunConfig,
                  errors: dict[str, str]) -> dict[str, Any]:
    """The form's RunConfig fields as the config takes them (a whole float for an integer
    field becomes an int); an empty field is an error."""
    changes: dict[str, Any] = {}
    for name in FORM_CONFIG_FIELDS:
        value = v.get(name)
        if value is None:
            errors[name] = "This field is required."
            continue
        current = getattr(reference, name)
        if isinstance(current, int) and not isinstance(current, bool):
            value = _whole(value)
        changes[name] = value
    return changes


def _rho_value(rho: Any) -> float | None:
    """The rho input as a number (empty text = None); ``ValueError`` for other text."""
    if isinstance(rho, str):
        return float(rho) if rho.strip() else None
    return rho


def _check_rhos(v: Mapping[str, Any], methods: list[str], errors: dict[str, str]) -> None:
    for name in methods:
        key = RHO_KEYS.get(name)
        if key is None:
            continue
        try:
            rho = _rho_value(v.get(key))
        except ValueError:
            errors[key] = f"rho for {name} must be a number (empty = the paper's value)."
            continue
        if rho is not None and (
            isinstance(rho, bool) or not isinstance(rho, (int, float)) or not rho >= 0
        ):
            errors[key] = f"rho for {name} must be a number >= 0 (empty = the paper's value)."


def _check_model_and_data(v: Mapping[str, Any], changes: Mapping[str, Any],
                          errors: dict[str, str]) -> None:
    """The model exists and is built with the chosen norm layer; subsets fit the dataset."""
    model, norm = v.get("model"), v.get("norm_layer")
    spec = MODELS.get(model) if isinstance(model, str) else None
    if spec is not None and norm not in spec.norms and "norm_layer" not in errors:
        errors["norm_layer"] = f"{model} is built with {' or '.join(spec.norms)} only."
    if spec is None and "model" not in errors:
        errors["model"] = f"Unknown model; choose one of {', '.join(MODELS)}."
    for key, cap in (("train_subset", 0), ("test_subset", 1)):
        n = changes.get(key)
        full = DATASET_SIZES.get(v.get("dataset"), (0, 0))[cap]
        if isinstance(n, int) and full and n > full and key not in errors:
            errors[key] = f"The {v.get('dataset')} set has only {full:,} images here (0 = all)."


def _method_configs(base: RunConfig, v: Mapping[str, Any], methods: list[str], variant: str,
                    result: FormResult) -> None:
    """One config per method (label -> config) into ``result``; errors keyed by form field."""
    adaptive, ball = SAM_VARIANTS[variant]
    for name in methods:
        changes: dict[str, Any] = dict(METHODS[name])
        if changes["method"] == "sam":
            rho = _rho_value(v.get(RHO_KEYS[name]))  # checked by _check_rhos
            changes.update(adaptive=adaptive, ball=ball, rho=rho)
        try:
            cfg = base.replace(**changes)
        except ValueError as exc:
            for where, message in config_errors(exc, "methods").items():
                result.errors[RHO_KEYS.get(name, where) if where == "rho" else where] = message
            continue
        result.configs[cfg.method_label()] = cfg


def _in_form_order(errors: dict[str, str]) -> dict[str, str]:
    """The errors in the order of the form's keys (methods, seeds, variant, the config fields,
    the rho inputs), then any other key."""
    order = ["methods", "seeds", "variant", *FORM_CONFIG_FIELDS, *RHO_KEYS.values()]
    rank = {key: i for i, key in enumerate(order)}
    return dict(sorted(errors.items(), key=lambda item: rank.get(item[0], len(order))))


def form_configs(values: Mapping[str, Any]) -> FormResult:
    """Turn the form's plain values into one RunConfig per chosen method.

    ``values`` holds the keys of ``form_defaults()`` (missing keys take those defaults). Every
    problem is reported under the form key it belongs to (a RunConfig field name, ``methods``,
    ``seeds``, ``variant`` or a ``rho_*`` key), with a message a user can act on."""
    defaults = form_defaults()
    v = {**defaults, **{k: val for k, val in values.items() if k in defaults}}
    result = FormResult()
    methods, variant = _check_choices(v, result)
    reference = _quick_demo_base()
    changes = _field_values(v, reference, result.errors)
    _check_rhos(v, methods, result.errors)
    _check_model_and_data(v, changes, result.errors)
    try:  # every field at once, then the rules between fields (warm-up < epochs, ...)
        base = RunConfig(**{**reference.to_dict(), **changes, "blocks": ()})
    except ValueError as exc:
        for name, message in config_errors(exc, "epochs").items():
            result.errors.setdefault(name, message)  # the form's own wording first
    result.errors = _in_form_order(result.errors)
    if result.errors:
        return result
    _method_configs(base, v, methods, variant, result)
    return result


def rho_hint(method: str, variant: str) -> tuple[float, str]:
    """(paper's best rho, source text) for a SAM method name of the form and a SAM variant."""
    adaptive, ball = SAM_VARIANTS.get(variant, ("none", "l2"))
    spec = BY_NAME[method]
    value, source = paper_rho(adaptive, ball, spec.scope)
    if source == "paper":
        if spec.rho_like != spec.key:  # a control: the figure's value of the family it copies
            return value, f"{BY_KEY[spec.rho_like].name}'s value"
        return value, "WRN-28-10, CIFAR-100"
    return value, "our guess: the paper gives none for this variant"

