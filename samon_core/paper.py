"""The paper's numbers, in one place: Mueller, Vlaar, Rolnick & Hein, "Normalization Layers Are
All That Sharpness-Aware Minimization Needs", NeurIPS 2023.

Everything the lab takes from the paper lives here, so that the run defaults, the presets, the
field help and the pages quote the same values:

* ``TRAINING_SETUP`` and ``SHARPNESS_PROBE``: the paper's CIFAR training recipe and sharpness
  measurement, as ``RunConfig`` field values;
* ``DEFAULT_RHO`` / ``paper_rho``: the best perturbation radius per SAM variant for SAM-all and
  SAM-ON, read off the authors' figure (WRN-28-10, CIFAR-100);
* ``TEST_ACCURACY``, ``SHARPNESS``, ``SPARSITY``, ``VIT_S32_IMAGENET_LION``: the results the
  Home page reports (WRN-28-10 on CIFAR-100, mean +/- std of three seeds unless noted);
* ``STEP_COST_F``: the cost of one training step in forward-pass units.

Plain data and one pure function; no torch, no pydantic.
"""

from __future__ import annotations

from typing import Any, NamedTuple

CITATION = (
    "Mueller, Vlaar, Rolnick & Hein, Normalization Layers Are All That Sharpness-Aware "
    "Minimization Needs, NeurIPS 2023"
)


class Stat(NamedTuple):
    """A reported value: mean and standard deviation over the paper's seeds."""

    mean: float
    std: float


# ---------------------------------------------------------------------------------------------
# training recipe (RunConfig field values)
# ---------------------------------------------------------------------------------------------

# The paper's CIFAR setup: SGD with momentum, cosine schedule, label smoothing, crop + flip. Keys
# are RunConfig field names, so a preset is ``RunConfig(**TRAINING_SETUP, **SHARPNESS_PROBE)``.
TRAINING_SETUP: dict[str, Any] = {
    "model": "wrn28_10",
    "dataset": "cifar100",
    "epochs": 200,
    "batch_size": 128,
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "lr_schedule": "cosine",
    "augment": "crop_flip",
}

# Logit-normalised adaptive l_inf m-sharpness: 1024 un-augmented training images in batches of
# m = 128; 1 ascent step at rho 0.01 (also reported: 0.03) and 20 steps at rho 0.003 (also 0.007).
SHARPNESS_PROBE: dict[str, Any] = {
    "sharpness_samples": 1024,
    "sharpness_m": 128,
    "sharpness_rho": 0.01,
    "sharpness_steps": 1,
    "sharpness_rho_multi": 0.003,
    "sharpness_multi_steps": 20,
}
SHARPNESS_RHOS_1STEP: tuple[float, float] = (0.01, 0.03)
SHARPNESS_RHOS_MULTI: tuple[float, float] = (0.003, 0.007)

# ---------------------------------------------------------------------------------------------
# best rho per SAM variant
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
RHO_COLUMN: dict[str, str] = {"all": "all", "norm": "norm", "no-norm": "all", "random": "norm"}


def paper_rho(adaptive: str, ball: str, scope: str) -> tuple[float, str]:
    """Default rho for a SAM variant (``adaptive``, ``ball``) and ``scope``, with its source:
    'paper' (read off the paper's figure) or 'guess' (the paper gives none; our choice).

    SAM-all and no-norm use the SAM-all column, SAM-ON and random mask the SAM-ON column.
    """
    key = (adaptive, ball)
    if key not in DEFAULT_RHO:
        adaptives = dict.fromkeys(a for a, _ in DEFAULT_RHO)  # first-seen order, no duplicates
        balls = dict.fromkeys(b for _, b in DEFAULT_RHO)
        raise ValueError(
            f"no rho default for adaptive={adaptive!r}, ball={ball!r}; adaptive must be "
            f"one of {', '.join(adaptives)} and ball one of {', '.join(balls)}"
        )
    if scope not in RHO_COLUMN:
        raise ValueError(f"scope must be one of {', '.join(RHO_COLUMN)}; got {scope!r}")
    return DEFAULT_RHO[key][RHO_COLUMN[scope]], RHO_SOURCE[key]


# ---------------------------------------------------------------------------------------------
# results (WRN-28-10 on CIFAR-100, three seeds)
# ---------------------------------------------------------------------------------------------

# Test accuracy in percent. "random mask" perturbs a random 0.05% of the parameters (as many as
# SAM-ON); SSAM-F is Fisher-masked sparse SAM at 50% sparsity.
TEST_ACCURACY: dict[str, Stat] = {
    "SGD": Stat(80.71, 0.2),
    "SAM-all": Stat(83.11, 0.3),
    "SAM-ON": Stat(84.19, 0.2),
    "random mask": Stat(80.97, 0.2),
    "SSAM-F": Stat(83.94, 0.1),
}

# Final sharpness (lower = flatter) per probe (ascent steps, rho): SAM-ON is the sharpest of the
# three and still the most accurate, so flatness alone does not explain SAM's success.
SHARPNESS: dict[tuple[int, float], dict[str, Stat]] = {
    (20, 0.003): {"SGD": Stat(0.071, 0.000), "SAM-all": Stat(0.048, 0.001),
                  "SAM-ON": Stat(0.090, 0.005)},
    (20, 0.007): {"SGD": Stat(0.433, 0.002), "SAM-all": Stat(0.309, 0.011),
                  "SAM-ON": Stat(0.585, 0.018)},
    (1, 0.01): {"SGD": Stat(0.204, 0.005), "SAM-all": Stat(0.183, 0.002),
                "SAM-ON": Stat(0.315, 0.010)},
    (1, 0.03): {"SGD": Stat(0.809, 0.003), "SAM-all": Stat(0.769, 0.017),
                "SAM-ON": Stat(0.843, 0.007)},
}

# Share of the parameters NOT perturbed (the WRN-28-10's gamma/beta are 0.05% of its weights).
SPARSITY: dict[str, float] = {"SAM": 0.0, "SAM-ON": 0.9995, "random mask": 0.9995, "SSAM-F": 0.5}

# Beyond ResNets: ViT-S/32 on ImageNet with Lion as the base optimizer, test accuracy in percent.
VIT_S32_IMAGENET_LION: dict[str, float] = {"Lion": 68.20, "SAM-all": 71.90, "SAM-ON": 72.64}

# Cost of one training step in forward-pass units F (a backward pass costs about 2F): SGD one
# forward+backward; SAM-all two; SAM-ON's ascent pass needs the gradients of the norm parameters
# only (no conv/linear weight gradients), about 1F less.
STEP_COST_F: dict[str, float] = {"SGD": 3.0, "SAM-all": 6.0, "SAM-ON": 5.0}
