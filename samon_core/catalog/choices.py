"""The allowed values of every choice in a run's settings: the one list each, read by the run
config (its ``Literal`` field types), by the modules that implement the choice (they raise a
clear error for anything else) and by the UI's select boxes.
"""

from __future__ import annotations

from samon_core.catalog.methods import BY_SCOPE

# Normalization layer types every conv net can be built with (samon_core.models.layers).
NORM_KINDS: tuple[str, ...] = ("batchnorm", "groupnorm", "layernorm")
# Base optimizers that SAM wraps (samon_core.optim.base).
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw", "lion")
# "base" = the base optimizer alone; "sam" = sharpness-aware minimization around it.
METHOD_KINDS: tuple[str, ...] = ("base", "sam")
# Which parameters SAM perturbs (samon_core.optim.scopes): SAM-all, SAM-ON, and two controls;
# the SAM method families' scopes (catalog.methods.FAMILIES), in their order.
SCOPES: tuple[str, ...] = tuple(BY_SCOPE)
# ASAM's normalisation operator T_w (samon_core.optim.perturbation).
ADAPTIVE: tuple[str, ...] = ("none", "elementwise", "layerwise")
# The perturbation's ball: its p-norm (p = 2 or infinity).
BALLS: tuple[str, ...] = ("l2", "linf")
# BatchNorm running statistics during SAM's second pass (samon_core.optim.batchnorm).
BN_SECOND_PASS: tuple[str, ...] = ("update", "keep")
LR_SCHEDULES: tuple[str, ...] = ("cosine", "constant", "step")
AUGMENTS: tuple[str, ...] = ("crop_flip", "flip", "none", "autoaugment")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
DATASET_NAMES: tuple[str, ...] = ("cifar100", "cifar10", "synthetic", "synthetic10", "digits")
# The robustness suite measured after training (samon_core.catalog.robustness): off, or the
# standard one (PGD at the poster's and at 32x32 budgets, four corruptions at three severities).
ROBUSTNESS: tuple[str, ...] = ("off", "standard")

# The most seeds per method one request may ask for: the Launch form, the Room's claim pre-run and
# ``claim run --seeds`` (seeds 0..N-1, or seed, seed+1, ... on the form). The Claims page asks
# for fewer (``app_pages/claims.PAGE_MAX_SEEDS``).
MAX_SEEDS = 10
