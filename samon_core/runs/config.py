"""Run configuration: one frozen, validated ``RunConfig`` per training run.

Imports nothing heavy (no torch, no pandas): Streamlit pages and the CLI import this module to fill
forms, print help and validate input before anything is trained.

* Every field carries its one-line help in ``dataclasses.field(metadata={"help": ...})`` together
  with its allowed choices or range; ``field_help(name)``, ``FIELD_HELP``, ``CHOICES`` and
  ``field_info(name)`` expose them to the UI and the CLI.
* ``RunConfig.__post_init__`` validates every field; a bad value raises ``ValueError`` naming the
  field and what is allowed.
* ``DEFAULT_RHO`` / ``paper_rho`` hold the best rho read off the paper's figure (WRN-28-10,
  CIFAR-100, Mueller et al., NeurIPS 2023); ``rho=None`` means "use that value".
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samon_core.runs.io import atomic_write_text

CONFIG_FILENAME = "config.json"

# Version of the canonical form hashed by ``RunConfig.config_hash``; bump it when the meaning of a
# field changes so that old finished runs are no longer reused for new requests.
# 2: sam_norm renamed ball, method "sgd" renamed "base".
HASH_SCHEMA = 2

_MODEL_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda|cuda:[0-9]{1,2})$")

# ---------------------------------------------------------------------------------------------
# rho defaults
# ---------------------------------------------------------------------------------------------

# Best rho per (adaptive, ball) variant, for perturbing all parameters ("all") and only the
# normalization parameters ("norm"). "paper" entries are read off the authors' figure (WRN-28-10,
# CIFAR-100); the paper gives no value for the "guess" entries (p=inf without the elementwise
# T_w), which are our own choice: 10x below the elementwise p=inf values, because without T_w = |w|
# the step rho * sign(g) is not scaled down by the (mostly small) weights.
DEFAULT_RHO: dict[tuple[str, str], dict[str, float]] = {
    ("none", "l2"): {"all": 0.2, "norm": 1.0},
    ("elementwise", "l2"): {"all": 5.0, "norm": 10.0},
    ("layerwise", "l2"): {"all": 0.05, "norm": 0.5},
    ("elementwise", "linf"): {"all": 0.01, "norm": 0.1},
    ("none", "linf"): {"all": 0.001, "norm": 0.01},
    ("layerwise", "linf"): {"all": 0.001, "norm": 0.01},
}
RHO_SOURCE: dict[tuple[str, str], str] = {
    ("none", "l2"): "paper",
    ("elementwise", "l2"): "paper",
    ("layerwise", "l2"): "paper",
    ("elementwise", "linf"): "paper",
    ("none", "linf"): "guess",
    ("layerwise", "linf"): "guess",
}
# Which column of DEFAULT_RHO a scope uses: the no-norm control uses SAM-all's rho (it perturbs
# almost all parameters), the random-mask control SAM-ON's (it perturbs as few as SAM-ON does).
_RHO_COLUMN = {"all": "all", "no-norm": "all", "norm": "norm", "random": "norm"}

# ---------------------------------------------------------------------------------------------
# Field declarations
# ---------------------------------------------------------------------------------------------


def _f(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    pattern: re.Pattern[str] | None = None,
    pattern_text: str | None = None,
    sam: bool = False,
) -> Any:
    """A dataclass field whose metadata holds its help text and its allowed values."""
    meta: dict[str, Any] = {"help": help, "sam": sam}
    if choices is not None:
        meta["choices"] = choices
    for key, bound in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)):
        if bound is not None:
            meta[key] = bound
    if pattern is not None:
        meta["pattern"] = pattern
        meta["pattern_text"] = pattern_text or pattern.pattern
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run. Frozen; build variants with ``replace``.

    Epoch numbers in this config are 0-based where they name a window (``sam_start_epoch``,
    ``sam_end_epoch``: SAM is on for epochs ``start <= e < end``); counts are plain counts.
    """

    # --- model and data ---------------------------------------------------------------------
    model: str = _f(
        "tiny_resnet",
        "Model registry name (e.g. tiny_resnet, resnet20, resnet56, wrn16_4, wrn28_10, vit_tiny); "
        "checked against the registry when the model is built.",
        pattern=_MODEL_NAME_RE,
        pattern_text="a name of letters, digits, '_' or '-' starting with a letter (max 64)",
    )
    norm_layer: str = _f(
        "batchnorm",
        "Normalization layer type used by the model (its gamma/beta are what SAM-ON perturbs).",
        choices=("batchnorm", "groupnorm", "layernorm"),
    )
    dataset: str = _f(
        "synthetic",
        "Training data: CIFAR-100, CIFAR-10 or a small synthetic image set (no download).",
        choices=("cifar100", "cifar10", "synthetic"),
    )
    train_subset: int = _f(
        0,
        "Training images used: 0 = the whole training set, else the first N of a seeded "
        "permutation.",
        ge=0,
    )
    test_subset: int = _f(
        0,
        "Test images used: 0 = the whole test set, else the first N of a seeded permutation.",
        ge=0,
    )
    # --- base optimisation --------------------------------------------------------------------
    epochs: int = _f(
        10, "Number of training epochs (passes over the training subset).", ge=1, le=400
    )
    batch_size: int = _f(128, "Mini-batch size in images (the paper uses 128).", ge=1, le=4096)
    optimizer: str = _f(
        "sgd",
        "Base optimizer that SAM wraps (SGD with momentum in the paper's ResNet runs).",
        choices=("sgd", "adamw", "lion"),
    )
    lr: float = _f(0.1, "Peak learning rate of the base optimizer.", gt=0.0, le=10.0)
    momentum: float = _f(0.9, "SGD momentum (beta1 for AdamW and Lion).", ge=0.0, lt=1.0)
    weight_decay: float = _f(
        5e-4,
        "Weight decay of the base optimizer (not part of the SAM perturbation).",
        ge=0.0,
    )
    label_smoothing: float = _f(
        0.1, "Label smoothing of the cross-entropy loss (the paper uses 0.1).", ge=0.0, lt=1.0
    )
    lr_schedule: str = _f(
        "cosine",
        "Learning-rate schedule over the epochs: cosine decay to 0, constant, or step "
        "(x0.2 at 30%, 60%, 80% of training).",
        choices=("cosine", "constant", "step"),
    )
    warmup_epochs: int = _f(
        0, "Epochs of linear learning-rate warm-up before the schedule (must be < epochs).", ge=0
    )
    augment: str = _f(
        "crop_flip",
        "Training augmentation: random crop (pad 4) + horizontal flip, flip only, or none.",
        choices=("crop_flip", "flip", "none"),
    )
    # --- SAM --------------------------------------------------------------------------------
    method: str = _f(
        "sam",
        "base = the base optimizer alone, no SAM (one gradient per step; SGD, AdamW or Lion); "
        "sam = sharpness-aware minimization (two gradients per step).",
        choices=("base", "sam"),
    )
    scope: str = _f(
        "norm",
        "Which parameters SAM perturbs: all (SAM-all), norm (SAM-ON: only normalization "
        "gamma/beta), no-norm (all but those), random (a random mask as sparse as SAM-ON).",
        choices=("all", "norm", "no-norm", "random"),
        sam=True,
    )
    blocks: tuple[int, ...] = _f(
        (),
        "Scope norm only: perturb the norm layers of these stages only (each 1..3, e.g. 1,2); "
        "empty = all stages.",
        sam=True,
    )
    adaptive: str = _f(
        "none",
        "SAM variant: none = plain SAM, elementwise = ASAM with T_w = |w| + eta, layerwise = "
        "T_w = ||w|| + eta per tensor.",
        choices=("none", "elementwise", "layerwise"),
        sam=True,
    )
    ball: str = _f(
        "l2",
        "Norm of the perturbation ball: l2 (eps ~ g/||g||) or linf (eps = rho * T_w * sign(g)).",
        choices=("l2", "linf"),
        sam=True,
    )
    rho: float | None = _f(
        None,
        "Perturbation radius; empty/None = the paper's best value for this variant and scope "
        "(SAM-ON wants 5-10x more than SAM-all).",
        ge=0.0,
        sam=True,
    )
    eta: float = _f(
        0.0, "ASAM's eta added to T_w (only used by adaptive variants).", ge=0.0, sam=True
    )
    normalize_bias: bool = _f(
        False,
        "ASAM only: also scale bias tensors (beta included) by T_w; by default biases get T_w = 1.",
        sam=True,
    )
    bn_second_pass: str = _f(
        "update",
        "BatchNorm running statistics during SAM's second (perturbed) pass: update them, or keep "
        "the values from the first pass.",
        choices=("update", "keep"),
        sam=True,
    )
    sam_start_epoch: int = _f(
        0,
        "First epoch (0-based) in which SAM is used; earlier epochs use the base optimizer.",
        ge=0,
        sam=True,
    )
    sam_end_epoch: int | None = _f(
        None,
        "SAM is used for epochs in [sam_start_epoch, sam_end_epoch) (0-based); None = until the "
        "end.",
        ge=1,
        sam=True,
    )
    # --- run environment --------------------------------------------------------------------
    seed: int = _f(
        0,
        "Random seed for initialisation, data order, subsets and the random mask.",
        ge=0,
        le=2**31 - 1,
    )
    device: str = _f(
        "auto",
        "Compute device: auto (CUDA if available, then MPS, else CPU), cpu, cuda, cuda:N or mps.",
        pattern=_DEVICE_RE,
        pattern_text="one of auto, cpu, cuda, cuda:N, mps",
    )
    precision: str = _f(
        "auto",
        "Arithmetic: auto = bf16 autocast on CUDA and fp32 elsewhere, or force fp32 / bf16.",
        choices=("auto", "fp32", "bf16"),
    )
    # --- measurements -----------------------------------------------------------------------
    sharpness_every: int = _f(
        0, "Epochs between 1-step sharpness probes; 0 = only at the end of training.", ge=0
    )
    sharpness_samples: int = _f(
        1024,
        "Un-augmented training images used by the sharpness probes (paper: 1024); 0 disables them.",
        ge=0,
    )
    sharpness_m: int = _f(128, "Batch size m of the m-sharpness probe (paper: 128).", ge=1)
    sharpness_rho: float = _f(
        0.01,
        "Radius of the 1-step probe, relative to |w| elementwise (paper: 0.01 and 0.03).",
        gt=0.0,
        le=1.0,
    )
    sharpness_steps: int = _f(
        1,
        "Ascent steps of the regular probe (1 = cheap; 20 = the paper's multi-step).",
        ge=1,
        le=50,
    )
    sharpness_rho_multi: float = _f(
        0.003,
        "Radius of the multi-step probe, relative to |w| elementwise (paper: 0.003 and 0.007).",
        gt=0.0,
        le=1.0,
    )
    sharpness_multi_every: int = _f(
        0, "Epochs between multi-step sharpness probes; 0 = only at the end.", ge=0
    )
    sharpness_multi_steps: int = _f(
        20, "Ascent steps of the multi-step probe (paper: 20); 0 disables it.", ge=0, le=50
    )
    log_every_s: float = _f(
        2.0, "Seconds of training between two step records in metrics.jsonl.", gt=0.0, le=3600.0
    )
    stats_bins: int = _f(
        60,
        "Histogram bins for the gamma/beta distributions (fixed edges for the run).",
        ge=2,
        le=1000,
    )

    # -----------------------------------------------------------------------------------------
    # validation
    # -----------------------------------------------------------------------------------------

    def __post_init__(self) -> None:
        for spec in _specs():
            value = _check_type(spec, getattr(self, spec.name))
            if value is not getattr(self, spec.name):
                object.__setattr__(self, spec.name, value)
            _check_value(spec, value)
        self._check_cross_fields()

    def _check_cross_fields(self) -> None:
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"RunConfig.warmup_epochs must be < epochs ({self.epochs}); "
                f"got {self.warmup_epochs}"
            )
        if self.sam_start_epoch >= self.epochs:
            raise ValueError(
                f"RunConfig.sam_start_epoch must be < epochs ({self.epochs}); "
                f"got {self.sam_start_epoch}"
            )
        if self.sam_end_epoch is not None and not (
            self.sam_start_epoch < self.sam_end_epoch <= self.epochs
        ):
            raise ValueError(
                f"RunConfig.sam_end_epoch must be None or in (sam_start_epoch, epochs] = "
                f"({self.sam_start_epoch}, {self.epochs}]; got {self.sam_end_epoch}"
            )
        if 0 < self.sharpness_samples < self.sharpness_m:
            raise ValueError(
                f"RunConfig.sharpness_samples must be 0 (probe off) or >= sharpness_m "
                f"({self.sharpness_m}); got {self.sharpness_samples}"
            )
        if self.method == "sam" and self.blocks and self.scope != "norm":
            raise ValueError(
                f"RunConfig.blocks may only be set with scope 'norm' (SAM-ON); scope is "
                f"{self.scope!r} and blocks is {list(self.blocks)}"
            )

    # -----------------------------------------------------------------------------------------
    # derived values
    # -----------------------------------------------------------------------------------------

    def resolved_rho(self) -> float:
        """``rho``, or the paper's best value for this variant and scope when ``rho`` is None."""
        if self.rho is not None:
            return self.rho
        return paper_rho(self.adaptive, self.ball, self.scope)[0]

    def rho_source(self) -> str:
        """Where ``resolved_rho()`` comes from: 'user' (rho set explicitly), 'paper' (read off the
        paper's figure) or 'guess' (the paper gives no value for this variant; our choice)."""
        if self.rho is not None:
            return "user"
        return paper_rho(self.adaptive, self.ball, self.scope)[1]

    def sam_end(self) -> int:
        """End (exclusive, 0-based) of the SAM window: ``sam_end_epoch`` or ``epochs``."""
        return self.epochs if self.sam_end_epoch is None else self.sam_end_epoch

    def sam_active(self, epoch: int) -> bool:
        """Whether SAM is used in ``epoch`` (0-based)."""
        return self.method == "sam" and self.sam_start_epoch <= epoch < self.sam_end()

    def method_label(self) -> str:
        """Display name: 'SGD' (or 'AdamW' / 'Lion' for method sgd with those optimizers),
        'SAM-all', 'SAM-ON', 'no-norm', 'random mask'; details in parentheses, e.g.
        'SAM-ON (B1,B2)', 'SAM-all (ASAM elementwise)', 'SAM-ON (p=inf; AdamW)'."""
        if self.method == "base":
            return _OPTIMIZER_LABELS[self.optimizer]
        parts: list[str] = []
        if self.scope == "norm" and self.blocks:
            parts.append(",".join(f"B{b}" for b in self.blocks))
        variant = _VARIANT_LABELS[(self.adaptive, self.ball)]
        if variant:
            parts.append(variant)
        if self.optimizer != "sgd":
            parts.append(_OPTIMIZER_LABELS[self.optimizer])
        if self.sam_start_epoch != 0 or self.sam_end_epoch not in (None, self.epochs):
            parts.append(f"SAM epochs {self.sam_start_epoch}-{self.sam_end()}")
        base = _SCOPE_LABELS[self.scope]
        return f"{base} ({'; '.join(parts)})" if parts else base

    # -----------------------------------------------------------------------------------------
    # (de)serialisation
    # -----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict in field order (tuples become lists)."""
        out: dict[str, Any] = {}
        for spec in _specs():
            value = getattr(self, spec.name)
            out[spec.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build from a dict as written by ``to_dict``. Missing keys take their defaults; unknown
        keys and wrong types raise ``ValueError``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"RunConfig.from_dict expects a mapping, got {type(data).__name__}")
        data = _upgrade_legacy(data)
        unknown = sorted(str(k) for k in data if k not in _SPEC_BY_NAME)
        if unknown:
            raise ValueError(f"unknown RunConfig field(s): {', '.join(unknown)}{_suggest(unknown)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            spec = _SPEC_BY_NAME[key]
            if spec.base is tuple and isinstance(value, list):
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"RunConfig JSON is malformed: {exc}") from exc
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the config atomically to ``path`` (a file, or a folder: ``<folder>/config.json``).
        Returns the file written."""
        target = Path(path)
        if target.is_dir():
            target = target / CONFIG_FILENAME
        atomic_write_text(target, self.to_json() + "\n")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunConfig:
        """Read a config written by ``save`` (a file, or a folder holding ``config.json``)."""
        source = Path(path)
        if source.is_dir():
            source = source / CONFIG_FILENAME
        return cls.from_json(source.read_text(encoding="utf-8"))

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` applied (validated; unknown names raise ``ValueError``)."""
        unknown = sorted(k for k in changes if k not in _SPEC_BY_NAME)
        if unknown:
            raise ValueError(f"unknown RunConfig field(s): {', '.join(unknown)}{_suggest(unknown)}")
        if "blocks" in changes and isinstance(changes["blocks"], list):
            changes["blocks"] = tuple(changes["blocks"])
        return dataclasses.replace(self, **changes)

    def with_overrides(self, overrides: Iterable[str] | str) -> RunConfig:
        """A copy with ``["key=value", ...]`` applied; values are parsed by the field's type (see
        ``parse_field_value``). Later assignments of the same key win."""
        if isinstance(overrides, str):
            overrides = [overrides]
        changes: dict[str, Any] = {}
        for item in overrides:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"override {item!r} is not of the form key=value")
            key, text = item.split("=", 1)
            key = key.strip()
            changes[key] = parse_field_value(key, text)
        return self.replace(**changes)

    def canonical_dict(self) -> dict[str, Any]:
        """The dict hashed by ``config_hash``: ``to_dict`` with the settings that cannot change
        the run normalised (SAM settings of a method-sgd run reset to defaults; rho resolved;
        ``sam_end_epoch`` None -> epochs; ASAM-only settings reset for plain SAM; the BatchNorm
        option reset for other norm layers)."""
        d = self.to_dict()
        if self.method == "base":
            for spec in _specs():
                if spec.sam:
                    d[spec.name] = _listify(spec.default)
        else:
            d["rho"] = self.resolved_rho()
            d["sam_end_epoch"] = self.sam_end()
            if self.adaptive == "none":
                d["eta"] = _SPEC_BY_NAME["eta"].default
                d["normalize_bias"] = _SPEC_BY_NAME["normalize_bias"].default
            if self.norm_layer != "batchnorm":
                d["bn_second_pass"] = _SPEC_BY_NAME["bn_second_pass"].default
        return d

    def config_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of ``canonical_dict``: equal for configs that train
        identically, so a finished run can be reused instead of trained again."""
        payload = {"schema": HASH_SCHEMA, "config": self.canonical_dict()}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _upgrade_legacy(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """Run folders written before the renames stay readable: ``sam_norm`` is now ``ball`` (the
    perturbation's p-norm ball, not a layer type) and ``method="sgd"`` is now ``"base"`` (no SAM,
    whatever the base optimizer)."""
    if "sam_norm" not in data and data.get("method") != "sgd":
        return data
    out = dict(data)
    if "sam_norm" in out and "ball" not in out:
        out["ball"] = out.pop("sam_norm")
    if out.get("method") == "sgd":
        out["method"] = "base"
    return out


# ---------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------

_SCOPE_LABELS = {"all": "SAM-all", "norm": "SAM-ON", "no-norm": "no-norm", "random": "random mask"}
_VARIANT_LABELS = {
    ("none", "l2"): "",
    ("elementwise", "l2"): "ASAM elementwise",
    ("layerwise", "l2"): "ASAM layerwise",
    ("none", "linf"): "p=inf",
    ("elementwise", "linf"): "p=inf elementwise",
    ("layerwise", "linf"): "p=inf layerwise",
}
_OPTIMIZER_LABELS = {"sgd": "SGD", "adamw": "AdamW", "lion": "Lion"}

# ---------------------------------------------------------------------------------------------
# field specs (built once from the dataclass)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    name: str
    base: type  # int, float, bool, str or tuple (of ints)
    optional: bool
    default: Any
    meta: Mapping[str, Any]

    @property
    def sam(self) -> bool:
        return bool(self.meta.get("sam"))


def _build_specs() -> tuple[_Spec, ...]:
    hints = typing.get_type_hints(RunConfig)
    specs = []
    for f in dataclasses.fields(RunConfig):
        tp = hints[f.name]
        optional = False
        if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            optional = len(args) < len(typing.get_args(tp))
            (tp,) = args
        base = typing.get_origin(tp) or tp
        if base not in (int, float, bool, str, tuple):
            raise TypeError(f"unsupported RunConfig field type for {f.name}: {tp}")
        specs.append(_Spec(f.name, base, optional, f.default, f.metadata))
    return tuple(specs)


_SPECS: tuple[_Spec, ...] = _build_specs()
_SPEC_BY_NAME: dict[str, _Spec] = {s.name: s for s in _SPECS}


def _specs() -> tuple[_Spec, ...]:
    return _SPECS


FIELD_NAMES: tuple[str, ...] = tuple(s.name for s in _SPECS)
FIELD_HELP: dict[str, str] = {s.name: s.meta["help"] for s in _SPECS}
# Select-box choices of every enum field. ``device`` also accepts ``cuda:N`` (validated by regex).
CHOICES: dict[str, tuple[str, ...]] = {
    s.name: s.meta["choices"] for s in _SPECS if "choices" in s.meta
}
CHOICES["device"] = ("auto", "cpu", "cuda", "mps")
# Fields that only matter for method "sam".
SAM_FIELDS: tuple[str, ...] = tuple(s.name for s in _SPECS if s.sam)


def field_help(name: str) -> str:
    """One-line help of a RunConfig field (for CLI --help and UI tooltips)."""
    return _spec(name).meta["help"]


def field_info(name: str) -> dict[str, Any]:
    """Everything the UI needs to render a widget for ``name``: type ('int', 'float', 'bool',
    'str', 'tuple'), optional, default, help, choices (or None) and bounds (ge/gt/le/lt)."""
    spec = _spec(name)
    info: dict[str, Any] = {
        "name": name,
        "type": spec.base.__name__,
        "optional": spec.optional,
        "default": _listify(spec.default),
        "help": spec.meta["help"],
        "choices": CHOICES.get(name),
        "sam_only": spec.sam,
    }
    info.update({k: spec.meta[k] for k in ("ge", "gt", "le", "lt") if k in spec.meta})
    if name == "blocks":
        info.update(item_ge=1, item_le=3)
    return info


def _spec(name: str) -> _Spec:
    try:
        return _SPEC_BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown RunConfig field: {name}{_suggest([name])}") from None


def _suggest(names: list[str]) -> str:
    hints = []
    for name in names:
        close = difflib.get_close_matches(name, FIELD_NAMES, n=1)
        if close:
            hints.append(f"{name} -> {close[0]}?")
    return f" (did you mean: {', '.join(hints)})" if hints else ""


def _listify(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ---------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------


def _range_text(meta: Mapping[str, Any]) -> str:
    lo = ("[", meta["ge"]) if "ge" in meta else ("(", meta["gt"]) if "gt" in meta else None
    hi = ("]", meta["le"]) if "le" in meta else (")", meta["lt"]) if "lt" in meta else None
    if lo and hi:
        return f"in {lo[0]}{lo[1]}, {hi[1]}{hi[0]}"
    if lo:
        return f"{'>=' if lo[0] == '[' else '>'} {lo[1]}"
    if hi:
        return f"{'<=' if hi[0] == ']' else '<'} {hi[1]}"
    return ""


def _fail(spec: _Spec, what: str, value: Any) -> typing.NoReturn:
    raise ValueError(f"RunConfig.{spec.name} must be {what}; got {value!r}")


def _type_text(spec: _Spec) -> str:
    text = {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
        tuple: "a list of integers",
    }[spec.base]
    return f"{text} or None" if spec.optional else text


def _check_type(spec: _Spec, value: Any) -> Any:
    """Type-check ``value`` for ``spec``; returns it normalised (int -> float for float fields,
    list -> tuple for tuple fields)."""
    if value is None:
        if spec.optional:
            return None
        _fail(spec, _type_text(spec), value)
    base = spec.base
    if base is bool:
        if not isinstance(value, bool):
            _fail(spec, _type_text(spec), value)
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(spec, _type_text(spec), value)
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(spec, _type_text(spec), value)
        if not math.isfinite(value):
            _fail(spec, "a finite number", value)
        return float(value)
    if base is str:
        if not isinstance(value, str):
            _fail(spec, _type_text(spec), value)
        return value
    # tuple of ints
    if not isinstance(value, (tuple, list)) or any(
        isinstance(v, bool) or not isinstance(v, int) for v in value
    ):
        _fail(spec, _type_text(spec), value)
    return tuple(sorted(value))  # order carries no meaning; sorted keeps labels and hashes stable


def _check_value(spec: _Spec, value: Any) -> None:
    if value is None:
        return
    meta = spec.meta
    if "choices" in meta and value not in meta["choices"]:
        _fail(spec, f"one of {', '.join(meta['choices'])}", value)
    if "pattern" in meta and not meta["pattern"].match(value):
        _fail(spec, meta["pattern_text"], value)
    if spec.base in (int, float):
        ok = (
            ("ge" not in meta or value >= meta["ge"])
            and ("gt" not in meta or value > meta["gt"])
            and ("le" not in meta or value <= meta["le"])
            and ("lt" not in meta or value < meta["lt"])
        )
        if not ok:
            _fail(spec, f"{_type_text(spec).removesuffix(' or None')} {_range_text(meta)}", value)
    if spec.name == "blocks":
        if any(not 1 <= b <= 3 for b in value):
            _fail(spec, "a list of stage numbers, each in 1..3", list(value))
        if len(set(value)) != len(value):
            _fail(spec, "a list of distinct stage numbers", list(value))


# ---------------------------------------------------------------------------------------------
# string parsing (CLI / "key=value" overrides); never eval
# ---------------------------------------------------------------------------------------------

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null", ""}


def parse_field_value(name: str, text: str) -> Any:
    """Parse ``text`` as a value of field ``name``: int, float, bool ('true'/'false', also
    1/0/yes/no/on/off), str, optional ('none'/'null'/empty -> None), tuple of ints ('1,2,3',
    brackets optional, empty -> ()). Raises ``ValueError`` naming the field."""
    spec = _spec(name)
    raw = text
    text = text.strip()
    if spec.optional and text.lower() in _NONE:
        return None
    try:
        if spec.base is str:
            return text
        if spec.base is bool:
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("not a boolean")
        if spec.base is int:
            return int(text, 10)
        if spec.base is float:
            return float(text)
        # tuple of ints
        inner = text
        if inner[:1] in "([" and inner[-1:] in ")]":
            inner = inner[1:-1]
        items = [s.strip() for s in inner.split(",")]
        if items == [""]:
            return ()
        return tuple(int(s, 10) for s in items)
    except ValueError:
        raise ValueError(f"RunConfig.{name}: cannot parse {raw!r} as {_type_text(spec)}") from None


# ---------------------------------------------------------------------------------------------
# rho table access
# ---------------------------------------------------------------------------------------------


def paper_rho(adaptive: str, ball: str, scope: str) -> tuple[float, str]:
    """Default rho for a variant and scope, with its source: ('paper' | 'guess').

    SAM-all and no-norm use the SAM-all column, SAM-ON and random mask the SAM-ON column.
    """
    key = (adaptive, ball)
    if key not in DEFAULT_RHO:
        raise ValueError(
            f"no rho default for adaptive={adaptive!r}, ball={ball!r}; adaptive must be "
            f"one of {', '.join(CHOICES['adaptive'])} and ball one of "
            f"{', '.join(CHOICES['ball'])}"
        )
    if scope not in _RHO_COLUMN:
        raise ValueError(f"scope must be one of {', '.join(CHOICES['scope'])}; got {scope!r}")
    return DEFAULT_RHO[key][_RHO_COLUMN[scope]], RHO_SOURCE[key]


# ---------------------------------------------------------------------------------------------
# run-time estimate
# ---------------------------------------------------------------------------------------------

# Seconds per training image (one forward + backward at batch 128) on one CPU core pair, plain
# SGD. ROUGH numbers, to be calibrated; unknown models use _DEFAULT_SECONDS_PER_IMAGE.
# Calibrated on a 2-core AMD EPYC (torch 2.14.1, CPU): the quick demo's SGD run measured 1.8e-3
# s/image with eval and probe included (machine shared), tiny_resnet fwd+bwd alone 7e-4; ResNet-20
# fwd+bwd 5.6e-3 quiet. The larger models are scaled from ResNet-20 by their FLOPs.
MODEL_SECONDS_PER_IMAGE_CPU: dict[str, float] = {
    "tiny_resnet": 1.2e-3,
    "resnet20": 8e-3,
    "resnet56": 2.4e-2,
    "wrn16_4": 6e-2,
    "wrn28_10": 6e-1,
    "vit_tiny": 3e-2,
}
_DEFAULT_SECONDS_PER_IMAGE = 2e-2
# CUDA: not measured yet (no GPU was available); FLOP-based guesses for an A100/H100-class card with
# bf16 autocast. Small models are launch-bound, so a flat "x times faster than the CPU" is wrong.
MODEL_SECONDS_PER_IMAGE_CUDA: dict[str, float] = {
    "tiny_resnet": 2e-5,
    "resnet20": 3e-5,
    "resnet56": 6e-5,
    "wrn16_4": 6e-5,
    "wrn28_10": 4e-4,
    "vit_tiny": 5e-5,
}
# How much faster than the CPU figures above a device is (rough).
DEVICE_SPEEDUP: dict[str, float] = {"cpu": 1.0, "cuda": 100.0, "mps": 10.0}
# (train, test) sizes of the full datasets. The synthetic sizes must match samon_core.train.data.
DATASET_SIZES: dict[str, tuple[int, int]] = {
    "cifar100": (50_000, 10_000),
    "cifar10": (50_000, 10_000),
    "synthetic": (10_000, 2_000),
}
# Cost of one SAM step relative to one base-optimizer step, per scope (forward-pass units: SGD 3F,
# SAM-all 6F, SAM-ON about 5F because its ascent pass skips the conv/linear weight gradients).
SAM_COST_FACTOR: dict[str, float] = {"all": 2.0, "no-norm": 2.0, "random": 2.0, "norm": 5.0 / 3.0}


def estimate_seconds(config: RunConfig, device_kind: str = "cpu") -> float:
    """ROUGH estimate of a run's wall time in seconds (training, evaluation and probes).

    Per-image cost from ``MODEL_SECONDS_PER_IMAGE_CPU`` divided by ``DEVICE_SPEEDUP``, times the
    SAM cost factor for the epochs with SAM, times the images seen. Ignores data loading, start-up
    and precision; good to a factor of about 2-3 at best. Meant for "about 3 minutes" vs "about 2
    hours" in the UI, not for scheduling.
    """
    kind = device_kind.split(":", 1)[0]
    if kind not in DEVICE_SPEEDUP:
        raise ValueError(
            f"device_kind must be one of {', '.join(DEVICE_SPEEDUP)}; got {device_kind!r}"
        )
    if kind == "cuda":
        per_image = MODEL_SECONDS_PER_IMAGE_CUDA.get(config.model, 1e-4)
    else:
        per_image = MODEL_SECONDS_PER_IMAGE_CPU.get(config.model, _DEFAULT_SECONDS_PER_IMAGE)
        per_image /= DEVICE_SPEEDUP[kind]
    full_train, full_test = DATASET_SIZES[config.dataset]
    n_train = min(config.train_subset, full_train) if config.train_subset else full_train
    n_test = min(config.test_subset, full_test) if config.test_subset else full_test

    sam_epochs = 0
    if config.method == "sam":
        sam_epochs = max(0, config.sam_end() - config.sam_start_epoch)
    factor = SAM_COST_FACTOR[config.scope]
    train_units = n_train * ((config.epochs - sam_epochs) + sam_epochs * factor)
    eval_units = n_test * config.epochs / 3.0  # forward only: about a third of forward+backward

    def n_probes(every: int) -> int:
        if every <= 0:
            return 1
        return config.epochs // every + (1 if config.epochs % every else 0)

    probe_units = 0.0
    n_probe = min(config.sharpness_samples, n_train)
    if n_probe:
        # each ascent step is a forward+backward; plus the clean and the final forward passes
        probe_units += n_probes(config.sharpness_every) * n_probe * (config.sharpness_steps + 2 / 3)
        if config.sharpness_multi_steps:
            probe_units += (
                n_probes(config.sharpness_multi_every)
                * n_probe
                * (config.sharpness_multi_steps + 2 / 3)
            )
    return float(per_image * (train_units + eval_units + probe_units))
