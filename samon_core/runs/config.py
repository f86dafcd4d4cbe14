"""Run configuration: one frozen, validated ``RunConfig`` (a pydantic v2 model) per training run.

Imports nothing heavy (no torch, no pandas): Streamlit pages and the CLI import this module to fill
forms, print help and validate input before anything is trained.

* Every field is declared once: its type (``Literal`` for a choice), default, constraints and
  one-line help (``Field(description=...)``). ``field_help(name)``, ``FIELD_HELP``, ``CHOICES``
  and ``field_info(name)`` read them back for the UI and the CLI (``samon_core.runs.fieldspec``).
* Validation is strict (no ``"10"`` for an integer, no ``1`` for a boolean, ints are accepted for
  floats) and a bad value raises ``ValueError`` with one line per bad field naming the field and
  what is allowed: ``RunConfig.epochs must be an integer in [1, 400]; got 0``. Rules between
  fields (warm-up shorter than training, the SAM window, subsets that fit the dataset, a batch
  no larger than the training set) are checked after the fields.
* Every number has an upper bound as well as a lower one, so that nothing that passes validation
  overflows or fails later in the trainer (``weight_decay=1e300``, ``train_subset=10**30``).
* Hostile input is refused with one short ``ValueError`` naming the field: quoted values are cut
  (``fieldspec.quote``), JSON text is parsed by ``strictjson.loads_strict`` (no duplicate keys,
  no deep nesting), ``key=value`` text takes plain decimal numbers only.
* ``rho=None`` means "the paper's best rho for this variant and scope" (``samon_core.paper``).
* ``config_hash`` identifies configs that train identically, so finished runs can be reused.

It is longer than 500 lines because the field declarations with their help texts are about half
of it and belong together; reading the fields back is in ``fieldspec``, the time estimate in
``estimate``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from samon_core import paper
from samon_core.catalog import DATASET_SIZES, MODELS, choices, methods
from samon_core.catalog import robustness as robust_suite
from samon_core.catalog.stages import FIRST_STAGE, LAST_STAGE  # the paper's blocks B1-B3
from samon_core.runs.fieldspec import (
    ConfigError,
    FieldError,
    FieldSpec,
    error_messages,
    field_specs,
    name_text,
    parse_text,
    quote,
    suggest,
    unknown_fields_message,
)
from samon_core.runs.files import CONFIG_FILE, METRICS_FILE
from samon_core.runs.io import atomic_write_text, read_bytes_safely
from samon_core.runs.strictjson import loads_strict

# Version of the canonical form hashed by ``RunConfig.config_hash``; bump it when the meaning of a
# field changes so that old finished runs are no longer reused for new requests.
# 2: sam_norm renamed ball, method "sgd" renamed "base".
# 3: what a run records changed (test_loss with label smoothing plus test_ce / train_ce, the
#    gamma histogram's below / above, the resolved precision, the sharpness ascent of the paper's
#    code), so runs finished before are not reused as if they had measured the same things.
# 4: the sharpness probe (and the landscape slices on training images) use the clean training
#    labels (runs with label_noise or a synthetic set measured on noisy ones), and the WRNs' fc
#    bias keeps PyTorch's default init as the reference's (it was zeroed).
HASH_SCHEMA = 4

# SAM-ON's best rho over SAM-all's per variant on the paper's figure (the rho field's help).
_RHO_RATIOS = tuple(paper.rho_ratios().values())

# The robustness suite in the help of the robustness field.
_ATTACKS_TEXT = "; ".join(
    f"{robust_suite.NORM_LABELS[norm]} eps "
    + ", ".join(b.label for b in robust_suite.ATTACKS if b.norm == norm)
    for norm in robust_suite.NORMS
)
_CORRUPTIONS_TEXT = ", ".join(robust_suite.CORRUPTION_LABELS.values()).lower()

# Upper bounds shared by several fields.
MAX_EPOCHS = 400
MAX_BATCH = 4096
MAX_TRAIN_IMAGES = max(train for train, _ in DATASET_SIZES.values())
MAX_TEST_IMAGES = max(test for _, test in DATASET_SIZES.values())
# A config file is a few hundred bytes; refuse text far beyond that before parsing it.
MAX_JSON_CHARS = 1_000_000


def _f(default: Any, help: str, *, sam: bool = False, pattern_text: str | None = None,
       **constraints: Any) -> Any:
    """A field with its help text, pydantic constraints and the extras the UI reads back."""
    extra: dict[str, Any] = {"sam": sam}
    if pattern_text is not None:
        extra["pattern_text"] = pattern_text
    return Field(default, description=help, json_schema_extra=extra, **constraints)


class RunConfig(BaseModel):
    """Everything that defines one training run. Frozen; build variants with ``replace``.

    Epoch numbers in this config are 0-based where they name a window (``sam_start_epoch``,
    ``sam_end_epoch``: SAM is on for epochs ``start <= e < end``); counts are plain counts.
    """

    # regex_engine pinned to pydantic's Rust engine: there ``$`` matches only at the very end, while
    # Python's ``re`` lets ``^cpu$`` match "cpu\n" (tests/hostile/test_hostile_config.py checks).
    model_config = ConfigDict(
        strict=True, frozen=True, extra="forbid", allow_inf_nan=False, regex_engine="rust-regex"
    )

    # --- model and data ---------------------------------------------------------------------
    model: str = _f(
        "tiny_resnet",
        f"Model name (one of {', '.join(MODELS)}); checked against the registry when the model "
        "is built.",
        pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$",
        pattern_text="a name of letters, digits, '_' or '-' starting with a letter (max 64)",
    )
    norm_layer: Literal[choices.NORM_KINDS] = _f(
        "batchnorm",
        "Normalization layer type used by the model (its gamma/beta are what SAM-ON perturbs).",
    )
    dataset: Literal[choices.DATASET_NAMES] = _f(
        "synthetic",
        "Training data: CIFAR-100, CIFAR-10 or a small synthetic image set (100 or 10 classes; "
        "generated, no download).",
    )
    train_subset: int = _f(
        0,
        "Training images used: 0 = the whole training set, else the first N of a seeded "
        "permutation.",
        ge=0,
        le=MAX_TRAIN_IMAGES,
    )
    test_subset: int = _f(
        0,
        "Test images used: 0 = the whole test set, else the first N of a seeded permutation.",
        ge=0,
        le=MAX_TEST_IMAGES,
    )
    label_noise: float = _f(
        0.0,
        "Fraction of the training labels replaced by a uniformly random other class (seeded by "
        "the run's seed; the test set stays clean). SAM is known to resist noisy labels, so "
        "noise makes its advantage visible in short runs; 0 = the dataset's labels as they are.",
        ge=0.0,
        le=0.9,  # above 0.9 the wrong labels outnumber the right ones of a 10-class set
    )
    data_seed: int | None = _f(
        None,
        "Seed of the training and test subsets and of the noisy labels; empty = the run's seed. "
        "Fix it to compare seeds on the same data, as the paper's seeds do (they vary the "
        "initialisation and the batch order, not the dataset).",
        ge=0,
        le=2**31 - 1,
    )
    # --- base optimisation --------------------------------------------------------------------
    epochs: int = _f(
        10, "Number of training epochs (passes over the training subset).", ge=1, le=MAX_EPOCHS
    )
    batch_size: int = _f(
        128,
        f"Mini-batch size in images (the paper uses {paper.TRAINING_SETUP['batch_size']}).",
        ge=1,
        le=MAX_BATCH,
    )
    optimizer: Literal[choices.OPTIMIZERS] = _f(
        "sgd", "Base optimizer that SAM wraps (SGD with momentum in the paper's ResNet runs)."
    )
    lr: float = _f(0.1, "Peak learning rate of the base optimizer.", gt=0.0, le=10.0)
    momentum: float = _f(0.9, "SGD momentum (beta1 for AdamW and Lion).", ge=0.0, lt=1.0)
    weight_decay: float = _f(
        5e-4,
        "Weight decay of the base optimizer (not part of the SAM perturbation).",
        ge=0.0,
        le=1.0,  # lr x weight_decay >= 1 would flip the weights' sign every step
    )
    label_smoothing: float = _f(
        0.1,
        "Label smoothing of the cross-entropy loss (the paper uses "
        f"{paper.TRAINING_SETUP['label_smoothing']}).",
        ge=0.0,
        lt=1.0,
    )
    lr_schedule: Literal[choices.LR_SCHEDULES] = _f(
        "cosine",
        "Learning-rate schedule over the epochs: cosine decay to 0, constant, or step "
        "(x0.2 at 30%, 60%, 80% of training).",
    )
    warmup_epochs: int = _f(
        0,
        "Epochs of linear learning-rate warm-up before the schedule (must be < epochs).",
        ge=0,
        le=MAX_EPOCHS - 1,
    )
    augment: Literal[choices.AUGMENTS] = _f(
        "crop_flip",
        "Training augmentation: random crop (pad 4) + horizontal flip, flip only, none, or "
        "autoaugment = crop + flip + AutoAugment's CIFAR-10 policy per image (the authors' "
        "published command).",
    )
    # --- SAM --------------------------------------------------------------------------------
    method: Literal[choices.METHOD_KINDS] = _f(
        "sam",
        "base = the base optimizer alone, no SAM (one gradient per step; SGD, AdamW or Lion); "
        "sam = sharpness-aware minimization (two gradients per step).",
    )
    scope: Literal[choices.SCOPES] = _f(
        "norm",
        "Which parameters SAM perturbs: all (SAM-all), norm (SAM-ON: only normalization "
        "gamma/beta), no-norm (all but those), random (a random mask as sparse as SAM-ON).",
        sam=True,
    )
    blocks: tuple[int, ...] = Field(
        (),
        description="Scope norm only: perturb the norm layers of these stages only (each "
        f"{FIRST_STAGE}..{LAST_STAGE}, e.g. 1,2); empty = all stages.",
        json_schema_extra={"sam": True, "item_ge": FIRST_STAGE, "item_le": LAST_STAGE},
    )
    adaptive: Literal[choices.ADAPTIVE] = _f(
        "none",
        "SAM variant: none = plain SAM, elementwise = ASAM with T_w = |w| + eta, layerwise = "
        "T_w = ||w|| + eta per tensor.",
        sam=True,
    )
    ball: Literal[choices.BALLS] = _f(
        "l2",
        "Norm of the perturbation ball: l2 (eps ~ g/||g||) or linf (eps = rho * T_w * sign(g)).",
        sam=True,
    )
    rho: float | None = _f(
        None,
        "Perturbation radius; empty/None = the paper's best value for this variant and scope "
        f"(SAM-ON's is {min(_RHO_RATIOS):g} to {max(_RHO_RATIOS):g} times SAM-all's on the "
        "paper's figure).",
        ge=0.0,
        le=100.0,  # 10x the largest radius the paper uses (ASAM SAM-ON, rho 10)
        sam=True,
    )
    eta: float = _f(
        0.0,
        "ASAM's eta added to T_w (only used by adaptive variants).",
        ge=0.0,
        le=1.0,  # ASAM uses 0.01; a larger eta swamps the weights' scale T_w = |w| + eta
        sam=True,
    )
    normalize_bias: bool = _f(
        False,
        "ASAM only: also scale bias tensors (beta included) by T_w; by default biases get T_w = 1.",
        sam=True,
    )
    bn_second_pass: Literal[choices.BN_SECOND_PASS] = _f(
        "update",
        "BatchNorm running statistics during SAM's second (perturbed) pass: update them, or keep "
        "the values from the first pass.",
        sam=True,
    )
    sam_start_epoch: int = _f(
        0,
        "First epoch (0-based) in which SAM is used; earlier epochs use the base optimizer.",
        ge=0,
        le=MAX_EPOCHS - 1,
        sam=True,
    )
    sam_end_epoch: int | None = _f(
        None,
        "SAM is used for epochs in [sam_start_epoch, sam_end_epoch) (0-based); None = until the "
        "end.",
        ge=1,
        le=MAX_EPOCHS,
        sam=True,
    )
    # --- run environment --------------------------------------------------------------------
    seed: int = _f(
        0,
        "Random seed for initialisation, data order, the random mask and (unless data_seed is "
        "set) the subsets and noisy labels.",
        ge=0,
        le=2**31 - 1,
    )
    device: str = _f(
        "auto",
        "Compute device: auto (CUDA if available, then MPS, else CPU), cpu, cuda, cuda:N or mps.",
        pattern=r"^(auto|cpu|mps|cuda|cuda:[0-9]{1,2})$",
        pattern_text="one of auto, cpu, cuda, cuda:N, mps",
    )
    precision: Literal[choices.PRECISIONS] = _f(
        "auto",
        "Arithmetic: auto = bf16 autocast on CUDA and fp32 elsewhere; fp32 = no autocast (TF32 "
        "matmuls on CUDA, as the paper presets); bf16 = bf16 autocast everywhere.",
    )
    # --- measurements -----------------------------------------------------------------------
    sharpness_every: int = _f(
        0,
        "Epochs between 1-step sharpness probes; 0 = only at the end of training.",
        ge=0,
        le=MAX_EPOCHS,
    )
    sharpness_samples: int = _f(
        1024,
        "Un-augmented training images used by the sharpness probes (paper: "
        f"{paper.SHARPNESS_PROBE['sharpness_samples']}); 0 disables them.",
        ge=0,
        le=MAX_TRAIN_IMAGES,
    )
    sharpness_m: int = _f(
        128,
        f"Batch size m of the m-sharpness probe (paper: {paper.SHARPNESS_PROBE['sharpness_m']}).",
        ge=1,
        le=MAX_BATCH,
    )
    sharpness_rho: float = _f(
        0.01,
        "Radius of the 1-step probe, relative to |w| elementwise (paper: "
        f"{paper.SHARPNESS_RHOS_1STEP[0]} and {paper.SHARPNESS_RHOS_1STEP[1]}).",
        gt=0.0,
        le=1.0,
    )
    sharpness_steps: int = _f(
        1,
        "Ascent steps of the regular probe (1 = cheap; "
        f"{paper.SHARPNESS_PROBE['sharpness_multi_steps']} = the paper's multi-step).",
        ge=1,
        le=50,
    )
    sharpness_rho_multi: float = _f(
        0.003,
        "Radius of the multi-step probe, relative to |w| elementwise (paper: "
        f"{paper.SHARPNESS_RHOS_MULTI[0]} and {paper.SHARPNESS_RHOS_MULTI[1]}).",
        gt=0.0,
        le=1.0,
    )
    sharpness_multi_every: int = _f(
        0,
        "Epochs between multi-step sharpness probes; 0 = only at the end.",
        ge=0,
        le=MAX_EPOCHS,
    )
    sharpness_multi_steps: int = _f(
        20,
        "Ascent steps of the multi-step probe (paper: "
        f"{paper.SHARPNESS_PROBE['sharpness_multi_steps']}); 0 disables it.",
        ge=0,
        le=50,
    )
    log_every_s: float = _f(
        2.0, f"Seconds of training between two step records in {METRICS_FILE}.", gt=0.0, le=3600.0
    )
    stats_bins: int = _f(
        60,
        "Histogram bins for the gamma/beta distributions (fixed edges for the run).",
        ge=2,
        le=1000,
    )
    landscape_points: int = _f(
        0,
        "Points of the 1D loss-landscape slices computed after the last epoch (a random "
        "filter-normalised direction and the gradient direction, train and test images); 0 = none.",
        ge=0,
        le=101,
    )
    landscape_radius: float = _f(
        1.0,
        "Half-width of the landscape slices, in units of the filter-normalised direction (1 = "
        "every filter moved by its own norm).",
        gt=0.0,
        le=10.0,
    )
    robustness: Literal[choices.ROBUSTNESS] = _f(
        "off",
        "Robust accuracy measured after the last epoch: off, or standard = PGD attacks "
        f"({_ATTACKS_TEXT}; pixel units, images in [0, 1]) and "
        f"{len(robust_suite.CORRUPTIONS)} corruptions ({_CORRUPTIONS_TEXT}) at "
        f"{len(robust_suite.SEVERITIES)} severities, on the first robustness_images test images.",
    )
    robustness_images: int = _f(
        robust_suite.DEFAULT_IMAGES,
        "Test images of the robustness suite: the first N of the test set (fewer if it has "
        "fewer).",
        ge=1,
        le=MAX_TEST_IMAGES,
    )

    # -----------------------------------------------------------------------------------------
    # validation
    # -----------------------------------------------------------------------------------------

    def __init__(self, /, **values: Any) -> None:
        # pydantic's own messages ("Input should be greater than or equal to 1") name neither the
        # model nor the allowed range; the CLI, the form and the logs want one line per field.
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(error_messages(exc.errors(), _SPEC_BY_NAME,
                                             subject="RunConfig.{}".format,
                                             unknown=lambda _: _UNKNOWN)) from None

    @field_validator("blocks", mode="before")
    @classmethod
    def _check_blocks(cls, value: Any) -> tuple[int, ...]:
        # what is allowed; the formatter adds 'RunConfig.blocks' and the value given
        if not isinstance(value, (tuple, list)) or any(
            isinstance(v, bool) or not isinstance(v, int) for v in value
        ):
            raise ValueError("must be a list of integers")
        stages = tuple(sorted(value))  # order carries no meaning; sorted keeps labels and hashes
        if any(not FIRST_STAGE <= b <= LAST_STAGE for b in stages):
            raise ValueError(
                f"must be a list of stage numbers, each in {FIRST_STAGE}..{LAST_STAGE}")
        if len(set(stages)) != len(stages):
            raise ValueError("must be a list of distinct stage numbers")
        return stages

    @model_validator(mode="after")
    def _check_cross_fields(self) -> RunConfig:
        if self.warmup_epochs >= self.epochs:
            raise FieldError(
                "warmup_epochs",
                f"RunConfig.warmup_epochs must be < epochs ({self.epochs}); "
                f"got {self.warmup_epochs}"
            )
        if self.sam_start_epoch >= self.epochs:
            raise FieldError(
                "sam_start_epoch",
                f"RunConfig.sam_start_epoch must be < epochs ({self.epochs}); "
                f"got {self.sam_start_epoch}"
            )
        if self.sam_end_epoch is not None and not (
            self.sam_start_epoch < self.sam_end_epoch <= self.epochs
        ):
            raise FieldError(
                "sam_end_epoch",
                f"RunConfig.sam_end_epoch must be None or in (sam_start_epoch, epochs] = "
                f"({self.sam_start_epoch}, {self.epochs}]; got {self.sam_end_epoch}"
            )
        if self.landscape_points == 1:
            raise FieldError(
                "landscape_points",
                "RunConfig.landscape_points must be 0 (no slices) or at least 2; got 1",
            )
        if 0 < self.sharpness_samples < self.sharpness_m:
            raise FieldError(
                "sharpness_samples",
                f"RunConfig.sharpness_samples must be 0 (probe off) or >= sharpness_m "
                f"({self.sharpness_m}); got {self.sharpness_samples}"
            )
        if self.method == "sam" and self.blocks and self.scope != "norm":
            raise FieldError(
                "blocks",
                f"RunConfig.blocks may only be set with scope 'norm' (SAM-ON); scope is "
                f"{self.scope!r} and blocks is {list(self.blocks)}"
            )
        self._check_data_sizes()
        return self

    def _check_data_sizes(self) -> None:
        """Subsets within the dataset and a batch no larger than the training images: checked
        here, since the trainer would otherwise fail only once the data is loaded."""
        train_size, test_size = DATASET_SIZES[self.dataset]
        for name, size, split in (("train_subset", train_size, "training"),
                                  ("test_subset", test_size, "test")):
            if getattr(self, name) > size:
                raise FieldError(
                    name,
                    f"RunConfig.{name} must be 0 (the whole set) or at most {size}, the size of "
                    f"{self.dataset}'s {split} set; got {getattr(self, name)}"
                )
        n_train = self.train_subset or train_size
        if self.batch_size > n_train:
            raise FieldError(
                "batch_size",
                f"RunConfig.batch_size must be at most the number of training images "
                f"({n_train}); got {self.batch_size}"
            )

    # -----------------------------------------------------------------------------------------
    # derived values
    # -----------------------------------------------------------------------------------------

    def resolved_rho(self) -> float:
        """``rho``, or the paper's best value for this variant and scope when ``rho`` is None."""
        if self.rho is not None:
            return self.rho
        return paper.paper_rho(self.adaptive, self.ball, self.scope)[0]

    def rho_source(self) -> str:
        """Where ``resolved_rho()`` comes from: 'user' (rho set explicitly), else
        ``paper.rho_source``: 'paper (WRN-28-10, SGD)' (read off the paper's figure, and this run
        is that setting), 'paper value for WRN-28-10/SGD' (the paper's value carried over to
        another model or base optimizer) or 'guess' (the paper gives none for this variant)."""
        if self.rho is not None:
            return "user"
        return paper.rho_source(self.adaptive, self.ball, self.model, self.optimizer)

    def sam_end(self) -> int:
        """End (exclusive, 0-based) of the SAM window: ``sam_end_epoch`` or ``epochs``."""
        return self.epochs if self.sam_end_epoch is None else self.sam_end_epoch

    def sam_active(self, epoch: int) -> bool:
        """Whether SAM is used in ``epoch`` (0-based)."""
        return self.method == "sam" and self.sam_start_epoch <= epoch < self.sam_end()

    def method_label(self) -> str:
        """Display name: 'SGD' (or 'AdamW' / 'Lion' for method base with those optimizers),
        'SAM-all', 'SAM-ON', 'no-norm', 'random mask'; details in parentheses, e.g.
        'SAM-ON (B1,B2)', 'SAM-all (ASAM elementwise)', 'SAM-ON (p=inf; AdamW)',
        'SGD (20% noisy labels)'."""
        noise = f"{self.label_noise:.0%} noisy labels" if self.label_noise else ""
        if self.method == "base":
            name = methods.OPTIMIZER_NAMES[self.optimizer]
            return f"{name} ({noise})" if noise else name
        parts: list[str] = []
        if self.scope == "norm" and self.blocks:
            parts.append(",".join(f"B{b}" for b in self.blocks))
        variant = methods.VARIANTS[(self.adaptive, self.ball)]
        if variant:
            parts.append(variant)
        if self.optimizer != "sgd":
            parts.append(methods.OPTIMIZER_NAMES[self.optimizer])
        if self.sam_start_epoch != 0 or self.sam_end_epoch not in (None, self.epochs):
            parts.append(f"SAM epochs {self.sam_start_epoch}-{self.sam_end()}")
        if noise:
            parts.append(noise)
        base = methods.SCOPE_NAMES[self.scope]
        return f"{base} ({'; '.join(parts)})" if parts else base

    # -----------------------------------------------------------------------------------------
    # (de)serialisation and variants
    # -----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict in field order (tuples become lists)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build from a dict as written by ``to_dict``. Missing keys take their defaults; unknown
        keys and wrong types raise ``ValueError``; configs written before the renames of
        ``sam_norm`` and method ``sgd`` are upgraded."""
        if not isinstance(data, Mapping):
            raise ValueError(f"RunConfig.from_dict expects a mapping, got {type(data).__name__}")
        data = _upgrade_legacy(data)
        _reject_unknown(data)
        return cls(**data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> RunConfig:
        """Parse JSON text written by ``to_json``. Refused with one ``ValueError``: text over
        ``MAX_JSON_CHARS``, malformed or deeply nested JSON, a key given twice, anything
        ``from_dict`` refuses."""
        if isinstance(text, (str, bytes, bytearray)) and len(text) > MAX_JSON_CHARS:
            raise ValueError(
                f"RunConfig JSON is {len(text):,} characters long; a config is a few hundred "
                f"(at most {MAX_JSON_CHARS:,} are read)"
            )
        return cls.from_dict(loads_strict(text, owner="RunConfig"))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the config atomically to ``path`` (a file, or a folder: ``<folder>/config.json``).
        Returns the file written."""
        target = Path(path)
        if target.is_dir():
            target = target / CONFIG_FILE
        atomic_write_text(target, self.to_json() + "\n")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunConfig:
        """Read a config written by ``save`` (a file, or a folder holding ``config.json``).
        A FIFO, a device or a file over ``MAX_JSON_CHARS`` bytes is refused unread
        (``read_bytes_safely``); FileNotFoundError when missing, else ``ValueError``."""
        source = Path(path)
        if source.is_dir():
            source = source / CONFIG_FILE
        return cls.from_json(read_bytes_safely(source, MAX_JSON_CHARS))

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` applied, validated like a new config (pydantic's
        ``model_copy(update=...)`` would skip validation); unknown names raise ``ValueError``."""
        _reject_unknown(changes)
        return type(self)(**{**{name: getattr(self, name) for name in FIELD_NAMES}, **changes})

    def with_overrides(self, overrides: Iterable[str] | str) -> RunConfig:
        """A copy with ``["key=value", ...]`` applied; values are parsed by the field's type (see
        ``parse_field_value``). Later assignments of the same key win."""
        if isinstance(overrides, str):
            overrides = [overrides]
        changes: dict[str, Any] = {}
        for item in overrides:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"override {quote(item)} is not of the form key=value")
            key, text = item.split("=", 1)
            key = key.strip()
            changes[key] = parse_field_value(key, text)
        return self.replace(**changes)

    # -----------------------------------------------------------------------------------------
    # identity
    # -----------------------------------------------------------------------------------------

    def canonical_dict(self) -> dict[str, Any]:
        """The dict hashed by ``config_hash``: ``to_dict`` with the settings that cannot change
        the run normalised (SAM settings of a method-base run reset to defaults; rho resolved;
        ``sam_end_epoch`` None -> epochs; ASAM-only settings reset for plain SAM; the BatchNorm
        option reset for other norm layers)."""
        d = self.to_dict()
        if not self.label_noise:  # added later: runs without it keep their hash
            d.pop("label_noise")
        if self.data_seed is None:  # added later: the data follow the seed, as before
            d.pop("data_seed")
        if not self.landscape_points:  # added later (and measures only): the same run
            d.pop("landscape_points")
            d.pop("landscape_radius")
        if self.robustness == "off":  # added later (and measures only): the same run
            d.pop("robustness")
            d.pop("robustness_images")
        if self.method == "base":
            for spec in _SPECS:
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


def _reject_unknown(values: Mapping[str, Any]) -> None:
    """Unknown names get the closest field suggested (``epoch -> epochs?``)."""
    unknown = [str(k) for k in values if k not in _SPEC_BY_NAME]
    if unknown:
        raise ValueError(unknown_fields_message(_UNKNOWN, unknown, FIELD_NAMES))


def _listify(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ---------------------------------------------------------------------------------------------
# the fields as the UI and the CLI see them
# ---------------------------------------------------------------------------------------------

_SPECS: tuple[FieldSpec, ...] = field_specs(RunConfig)
_SPEC_BY_NAME: dict[str, FieldSpec] = {s.name: s for s in _SPECS}
_UNKNOWN = "unknown RunConfig field(s)"

FIELD_NAMES: tuple[str, ...] = tuple(s.name for s in _SPECS)
FIELD_HELP: dict[str, str] = {s.name: s.help for s in _SPECS}
# Select-box choices of every enum field. ``device`` also accepts ``cuda:N`` (validated by regex).
CHOICES: dict[str, tuple[str, ...]] = {s.name: s.choices for s in _SPECS if s.choices}
CHOICES["device"] = ("auto", "cpu", "cuda", "mps")
# Fields that only matter for method "sam".
SAM_FIELDS: tuple[str, ...] = tuple(s.name for s in _SPECS if s.sam)


def _spec(name: str) -> FieldSpec:
    try:
        return _SPEC_BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown RunConfig field: {name_text(name)}{suggest([str(name)], FIELD_NAMES)}"
        ) from None


def field_help(name: str) -> str:
    """One-line help of a RunConfig field (for CLI --help and UI tooltips)."""
    return _spec(name).help


def field_info(name: str) -> dict[str, Any]:
    """Everything the UI needs to render a widget for ``name``: type ('int', 'float', 'bool',
    'str', 'tuple'), optional, default, help, choices (or None), sam_only, bounds (ge/gt/le/lt)
    and, for ``blocks``, the bounds of each item (item_ge/item_le)."""
    spec = _spec(name)
    info: dict[str, Any] = {
        "name": name,
        "type": spec.base.__name__,
        "optional": spec.optional,
        "default": _listify(spec.default),
        "help": spec.help,
        "choices": CHOICES.get(name),
        "sam_only": spec.sam,
    }
    info.update(spec.bounds)
    info.update({k: spec.extra[k] for k in ("item_ge", "item_le") if k in spec.extra})
    return info


def parse_field_value(name: str, text: str) -> Any:
    """Parse ``text`` as a value of field ``name``: int, float, bool ('true'/'false', also
    1/0/yes/no/on/off), str, optional ('none'/'null'/empty -> None), tuple of ints ('1,2,3',
    brackets optional, empty -> ()). Raises ``ValueError`` naming the field; never evaluates."""
    return parse_text("RunConfig", _spec(name), text)
