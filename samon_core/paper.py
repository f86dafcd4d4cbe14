"""The paper's numbers, in one place: Mueller, Vlaar, Rolnick & Hein, "Normalization Layers Are
All That Sharpness-Aware Minimization Needs", NeurIPS 2023.

Everything the lab takes from the paper lives here, so that the run defaults, the presets, the
field help and the pages quote the same values:

* ``TRAINING_SETUP`` and ``SHARPNESS_PROBE``: the paper's CIFAR training recipe and sharpness
  measurement, as ``RunConfig`` field values; ``TABLE_SETTINGS``: the augmentation the poster's
  WRN-28-10 numbers were (by inference) trained with, basic crop + flip (``TABLE_AUGMENT_NOTE``
  says why), in plain fp32; ``AUTHORS_COMMAND_SETTINGS`` (and ``ADAPTIVE_COMMAND_SETTINGS`` for
  ASAM) where the authors' published command differs from the defaults (AutoAugment, T_w on the
  biases, plain fp32);
* ``DEFAULT_RHO`` / ``paper_rho``: the best perturbation radius per SAM variant for SAM-all and
  SAM-ON, read off the authors' figure (WRN-28-10 with SGD, CIFAR-100), ``FIGURE_ACCURACY`` the
  accuracies read there, ``rho_ratios`` how many times SAM-all's rho SAM-ON's is, and
  ``rho_source`` which says how far a run's default rho is the paper's;
* ``TEST_ACCURACY``, ``SHARPNESS``, ``SPARSE_PERTURBATION``, ``VIT_S32_IMAGENET``: the results
  the Home page reports (WRN-28-10 on CIFAR-100, mean +/- std of three seeds; ViT-S/32 on
  ImageNet), as printed in the poster; ``VIT_ROBUSTNESS_BUDGETS`` / ``vit_robustness``: its
  adversarial-robustness rows by attack budget (the Robustness tab's reference);
  ``TABLE_RHO_NOTE`` (the poster does not say which rho its table used) and
  ``SSAM_F_INFERRED_NOTE`` (one column label is inferred) say what it leaves open.

Every per-method table is keyed by the method family's ``MethodSpec.key``
(``samon_core.catalog.methods``: 'base', 'all', 'norm', 'no-norm', 'random'), the key the claims
and their run sets use; the ViT table's "vanilla" (AdamW or Lion alone) is 'base' too.
``method_name`` gives the name a text shows for a key (the MethodSpec's name, or the base
optimizer's): the tables hold no display names, so no reader translates.

The cost of a step in forward-pass units is the lab's own FLOP estimate, not the paper's number:
it lives in ``samon_core.runs.estimate`` (``STEP_COST_F``).

Plain data and pure functions (the method families from ``samon_core.catalog.methods``); no
torch, no pydantic.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from samon_core.catalog import methods

CITATION = (
    "Mueller, Vlaar, Rolnick & Hein, Normalization Layers Are All That Sharpness-Aware "
    "Minimization Needs, NeurIPS 2023"
)


class Stat(NamedTuple):
    """A reported value: mean and standard deviation over the paper's seeds."""

    mean: float
    std: float


# The poster's ViT table's name for the base optimizer alone (AdamW or Lion without SAM).
VANILLA = "vanilla"


def method_name(key: str, base: str = "") -> str:
    """The name a text shows for method family ``key`` (a ``MethodSpec.key``): the MethodSpec's
    name ('SGD', 'SAM-all', 'SAM-ON', 'random mask'); for 'base' ``base`` where given: the base
    optimizer's name ('Lion') or the ViT table's ``VANILLA``."""
    if key == "base" and base:
        return base
    return methods.BY_KEY[key].name


# ---------------------------------------------------------------------------------------------
# training recipe (RunConfig field values)
# ---------------------------------------------------------------------------------------------

# The paper's CIFAR setup, the defaults of the authors' train.py: SGD with momentum, cosine
# schedule, label smoothing, crop + flip. Keys are RunConfig field names, so a preset is
# ``RunConfig(**TRAINING_SETUP, **SHARPNESS_PROBE)``.
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

# Which augmentation the poster's WRN-28-10 numbers (TEST_ACCURACY, SHARPNESS, the sparse table)
# and the rho figure were trained with. The paper's Table 1 reports each CIFAR model twice, with
# basic augmentation (random crop + flip) and with AutoAugment; the poster does not say which of
# the two it shows, and the paper's text was not available to the lab. Its SGD 80.71% (the
# figure's SGD line: ~80.7%) fits basic augmentation: SAM's own paper (Foret et al., ICLR 2021,
# Table 1) reports about 81.2% for SGD on a WRN-28-10 with basic augmentation on CIFAR-100, and
# AutoAugment raises that number. So the lab reads the poster as the basic column: inferred, not
# printed, and said so wherever the choice shows.
# (TABLE_AUGMENT_NOTE, with the results below, says so in words.)
TABLE_AUGMENT = "crop_flip"
# SGD's test accuracy (%) on a WRN-28-10, CIFAR-100, basic augmentation, in Foret et al.'s Table 1.
FORET_SGD_BASIC_ACCURACY = 81.2
# The settings of the runs that reproduce the poster's numbers (the paper presets and the claims'
# paper size), as RunConfig values beyond TRAINING_SETUP: that augmentation, and plain fp32
# (train.py has no autocast; on CUDA the lab allows TF32 matmuls, see docs/fidelity.md).
TABLE_SETTINGS: dict[str, Any] = {"augment": TABLE_AUGMENT, "precision": "fp32"}

# The authors' published command (README of github.com/mueller-mp/SAM-ON; its train.py imports
# the optimizers SAM_ON and ASAM_ON from sam_on.py), for ASAM-ON:
AUTHORS_COMMAND = (
    "python train.py --dataset=CIFAR100 --minimizer=ASAM_ON --p=2 --elementwise "
    "--normalize_bias --autoaugment --rho=10. --only_norm"
)
# Where that command (and the train.py it runs) differs from the lab's defaults, as RunConfig
# values: AutoAugment's CIFAR-10 policy after crop + flip (--autoaugment), and plain fp32. The
# AutoAugment paper preset (``cifar100-wrn-paper-autoaugment``) uses these; the small presets keep
# crop + flip and bf16.
AUTHORS_COMMAND_SETTINGS: dict[str, Any] = {"augment": "autoaugment", "precision": "fp32"}
# ... and, for the adaptive variants (ASAM elementwise / layerwise), T_w on the biases (beta
# included) too (--normalize_bias).
ADAPTIVE_COMMAND_SETTINGS: dict[str, Any] = {"normalize_bias": True}

# ---------------------------------------------------------------------------------------------
# best rho per SAM variant
# ---------------------------------------------------------------------------------------------

# Best rho per (adaptive, ball) variant, for perturbing all parameters ("all") and only the
# normalization parameters ("norm"). "paper" entries are read off the authors' figure (WRN-28-10
# trained with SGD, CIFAR-100); the paper gives no value for the "guess" entries (p=inf without the
# elementwise T_w), which are our own choice: 10x below the elementwise p=inf values, because
# without T_w = |w| the step rho * sign(g) is not scaled down by the (mostly small) weights.
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
# Test accuracy (%) read off the same figure at those rhos (approximate, "~" in the figure):
# SAM-all and SAM-ON at their best rho, and the no-norm control. The table results below
# (TEST_ACCURACY: SAM-all 83.11%) are separate runs: at rho 0.2 the figure reads about 83.6%.
FIGURE_ACCURACY: dict[tuple[str, str], dict[str, float]] = {
    ("none", "l2"): {"all": 83.6, "norm": 84.2, "no-norm": 83.4},
    ("elementwise", "l2"): {"all": 83.8, "norm": 84.7, "no-norm": 81.4},
    ("layerwise", "l2"): {"all": 83.55, "norm": 84.35},  # no-norm: about SAM-all's
    ("elementwise", "linf"): {"all": 83.25, "norm": 84.75, "no-norm": 82.7},
}
FIGURE_SGD_ACCURACY = 80.7  # the SGD line of the figure

# What ``rho_source`` says about a default rho: taken from the paper for the setting it was tuned
# in, the paper's value carried over to another model or base optimizer, or our own guess.
RHO_FROM_PAPER = "paper (WRN-28-10, SGD)"
RHO_CARRIED_OVER = "paper value for WRN-28-10/SGD"
RHO_GUESS = "guess"
# The setting the figure's rhos were tuned in.
RHO_TUNED_ON = {"model": "wrn28_10", "optimizer": "sgd"}


def paper_rho(adaptive: str, ball: str, scope: str) -> tuple[float, str]:
    """Default rho for a SAM variant (``adaptive``, ``ball``) and ``scope``, with its source:
    'paper' (read off the paper's figure) or 'guess' (the paper gives none; our choice).

    Each SAM family takes the column its ``MethodSpec.rho_like`` names (``catalog.methods``):
    SAM-all and no-norm the SAM-all column, SAM-ON and random mask the SAM-ON column.
    """
    key = (adaptive, ball)
    if key not in DEFAULT_RHO:
        adaptives = dict.fromkeys(a for a, _ in DEFAULT_RHO)  # first-seen order, no duplicates
        balls = dict.fromkeys(b for _, b in DEFAULT_RHO)
        raise ValueError(
            f"no rho default for adaptive={adaptive!r}, ball={ball!r}; adaptive must be "
            f"one of {', '.join(adaptives)} and ball one of {', '.join(balls)}"
        )
    if scope not in methods.BY_SCOPE:
        raise ValueError(f"scope must be one of {', '.join(methods.BY_SCOPE)}; got {scope!r}")
    return DEFAULT_RHO[key][methods.BY_SCOPE[scope].rho_like], RHO_SOURCE[key]


def rho_ratios() -> dict[tuple[str, str], float]:
    """SAM-ON's best rho over SAM-all's, per variant whose rhos are read off the paper's figure
    (the guessed variants left out): SAM 5x, ASAM elementwise 2x, the others 10x."""
    return {key: col["norm"] / col["all"] for key, col in DEFAULT_RHO.items()
            if RHO_SOURCE[key] == "paper"}


def rho_source(adaptive: str, ball: str, model: str, optimizer: str) -> str:
    """Where the default rho of a run comes from: ``RHO_FROM_PAPER`` when the paper gives a value
    for the variant and the run is the setting it was tuned in (WRN-28-10 with SGD),
    ``RHO_CARRIED_OVER`` for the paper's value on another model or base optimizer (the best rho
    need not carry over), ``RHO_GUESS`` when the paper gives none for the variant."""
    _, source = paper_rho(adaptive, ball, "all")  # the scope does not change the source
    if source == "guess":
        return RHO_GUESS
    if model == RHO_TUNED_ON["model"] and optimizer == RHO_TUNED_ON["optimizer"]:
        return RHO_FROM_PAPER
    return RHO_CARRIED_OVER


# ---------------------------------------------------------------------------------------------
# results (WRN-28-10 on CIFAR-100, three seeds)
# ---------------------------------------------------------------------------------------------

# Test accuracy in percent, with the sharpness table below (the poster's "Sharpness" table).
# Which rho these runs used is not printed: the figure's best rhos (SAM-all 0.2, SAM-ON 1.0) read
# ~83.6% / ~84.2% there, not 83.11% / 84.19%, so the table's runs are other runs, maybe at other
# rhos or augmentation (TABLE_AUGMENT); the lab pairs them with its runs at the figure's rhos.
TEST_ACCURACY: dict[str, Stat] = {
    "base": Stat(80.71, 0.2),
    "all": Stat(83.11, 0.3),
    "norm": Stat(84.19, 0.2),
}
TABLE_AUGMENT_NOTE = (
    "The poster does not say which of the paper's two augmentations (basic crop + flip, or "
    f"AutoAugment) its WRN-28-10 numbers used; its {method_name('base')} "
    f"{TEST_ACCURACY['base'].mean:.2f}% fits "
    f"basic augmentation (SAM's own paper reports about {FORET_SGD_BASIC_ACCURACY:.1f}% for SGD "
    "on a WRN-28-10 with basic augmentation), so the lab infers crop + flip."
)

_SAM_RHO, _SAM_FIG = DEFAULT_RHO[("none", "l2")], FIGURE_ACCURACY[("none", "l2")]
TABLE_RHO_NOTE = (
    "The poster does not say which rho its table's SAM-all and SAM-ON runs used. At the "
    f"figure's best rhos ({_SAM_RHO['all']} and {_SAM_RHO['norm']}) the figure reads about "
    f"{_SAM_FIG['all']:.1f}% and {_SAM_FIG['norm']:.1f}%, not {TEST_ACCURACY['all'].mean:.2f}% "
    f"and {TEST_ACCURACY['norm'].mean:.2f}%: the table's runs may have used other settings. "
    "The lab compares them with runs at the figure's rhos."
)

# Final sharpness (lower = flatter) per probe (ascent steps, rho): SAM-ON is the sharpest of the
# three and still the most accurate, so flatness alone does not explain SAM's success.
SHARPNESS: dict[tuple[int, float], dict[str, Stat]] = {
    (20, 0.003): {"base": Stat(0.071, 0.000), "all": Stat(0.048, 0.001),
                  "norm": Stat(0.090, 0.005)},
    (20, 0.007): {"base": Stat(0.433, 0.002), "all": Stat(0.309, 0.011),
                  "norm": Stat(0.585, 0.018)},
    (1, 0.01): {"base": Stat(0.204, 0.005), "all": Stat(0.183, 0.002),
                "norm": Stat(0.315, 0.010)},
    (1, 0.03): {"base": Stat(0.809, 0.003), "all": Stat(0.769, 0.017),
                "norm": Stat(0.843, 0.007)},
}


class SparseResult(NamedTuple):
    """One column of the poster's "Other sparse perturbation approaches" table."""

    key: str  # the method family (MethodSpec.key); "" for a method the lab does not train
    sparsity: float  # share of the parameters NOT perturbed
    accuracy: Stat  # test accuracy in percent
    label: str = ""  # the column's label where it is not the family's name
    inferred: bool = False  # the method's label is the lab's reading, not printed over the column

    @property
    def method(self) -> str:
        """The column's label: ``label``, else the family's name (``method_name``)."""
        return self.label or method_name(self.key)


# SAM-ON against other sparse perturbations at the same (or lower) sparsity: a random mask as
# sparse as SAM-ON (the WRN-28-10's gamma/beta are 0.05% of its weights) and SSAM-F (Fisher-masked
# sparse SAM) at 50% and at 99.95%. In table order. The poster's header names four methods (SAM,
# SAM-ON, Random Mask, SSAM-F) over five columns: that SSAM-F spans the last two (50% and 99.95%)
# is the lab's reading, so that column's label is marked ``inferred``. SAM's column (SAM-all) keeps
# the poster's label; SSAM-F is no family of the lab's (key "").
SPARSE_PERTURBATION: tuple[SparseResult, ...] = (
    SparseResult("all", 0.0, Stat(83.11, 0.3), label="SAM"),
    SparseResult("norm", 0.9995, Stat(84.19, 0.2)),
    SparseResult("random", 0.9995, Stat(80.97, 0.2)),
    SparseResult("", 0.5, Stat(83.94, 0.1), label="SSAM-F"),
    SparseResult("", 0.9995, Stat(83.14, 0.1), label="SSAM-F", inferred=True),
)
# The columns of the lab's method families, by key (each family has one column).
SPARSE_BY_KEY: dict[str, SparseResult] = {r.key: r for r in SPARSE_PERTURBATION if r.key}
SSAM_F_INFERRED_NOTE = (
    "The poster's header names four methods for five columns; that the last one (99.95%) is "
    "SSAM-F too, like the 50% column before it, is the lab's reading."
)

# ---------------------------------------------------------------------------------------------
# results beyond ResNets: ViT-S/32 on ImageNet
# ---------------------------------------------------------------------------------------------

# Test accuracy (%) per base optimizer, evaluation set and method family ("base": the poster's
# vanilla, the base optimizer alone), as in the poster's table. Robust accuracy under l2 / l_inf
# attacks of radius eps.
# (The poster prints AdamW SAM-ON on ImageNet as 71.37 +/- 0.026; kept as printed.)
VIT_EVAL_SETS: tuple[str, ...] = (
    "ImageNet", "ImageNetV2", "ImageNetR", "ImageNetA", "ImageNetSketch", "ObjectNet",
    "l2 eps=0.25", "l2 eps=0.50", "linf eps=0.25/255", "linf eps=0.5/255",
)
_VIT_ROWS: dict[str, tuple[tuple[float, float], ...]] = {
    # AdamW vanilla, SAM-all, SAM-ON, then Lion vanilla, SAM-all, SAM-ON: (mean, std) each
    "ImageNet": ((66.89, 0.04), (71.47, 0.12), (71.37, 0.026),
                 (68.20, 0.02), (71.90, 0.19), (72.64, 0.14)),
    "ImageNetV2": ((48.43, 0.48), (53.61, 0.11), (53.67, 0.29),
                   (50.20, 0.01), (54.20, 0.27), (55.38, 0.09)),
    "ImageNetR": ((25.04, 0.04), (31.56, 0.48), (32.98, 0.10),
                  (25.61, 0.04), (32.17, 0.41), (33.87, 0.47)),
    "ImageNetA": ((4.72, 0.15), (5.21, 0.05), (5.19, 0.18),
                  (5.45, 0.19), (5.01, 0.22), (5.77, 0.21)),
    "ImageNetSketch": ((13.68, 0.24), (18.50, 0.44), (19.35, 0.17),
                       (14.47, 0.02), (18.22, 0.34), (20.48, 0.12)),
    "ObjectNet": ((11.32, 0.39), (13.75, 0.12), (13.55, 0.25),
                  (12.06, 0.02), (13.93, 0.40), (15.35, 0.13)),
    "l2 eps=0.25": ((19.67, 0.47), (37.53, 0.69), (41.16, 0.24),
                    (22.01, 0.78), (38.52, 0.66), (43.12, 0.97)),
    "l2 eps=0.50": ((5.47, 0.18), (17.71, 0.61), (22.72, 0.25),
                    (6.63, 0.46), (19.03, 0.92), (24.27, 1.34)),
    "linf eps=0.25/255": ((33.45, 0.80), (48.08, 0.14), (49.34, 0.08),
                          (35.31, 0.08), (49.57, 0.60), (51.37, 0.99)),
    "linf eps=0.5/255": ((14.98, 0.18), (29.68, 0.09), (32.46, 0.15),
                         (15.86, 0.13), (31.68, 0.62), (34.23, 1.73)),
}
_VIT_COLUMNS = (("AdamW", "base"), ("AdamW", "all"), ("AdamW", "norm"),
                ("Lion", "base"), ("Lion", "all"), ("Lion", "norm"))
VIT_S32_IMAGENET: dict[str, dict[str, dict[str, Stat]]] = {
    opt: {
        row: {method: Stat(*_VIT_ROWS[row][i]) for i, (o, method) in enumerate(_VIT_COLUMNS)
              if o == opt}
        for row in VIT_EVAL_SETS
    }
    for opt in ("AdamW", "Lion")
}
# The headline row: Lion on ImageNet, mean per method family.
VIT_S32_IMAGENET_LION: dict[str, float] = {
    key: stat.mean for key, stat in VIT_S32_IMAGENET["Lion"]["ImageNet"].items()
}

# The poster's four adversarial-robustness rows: (norm, eps, eps as printed), eps in pixel units
# of images in [0, 1] ("l2, eps = 0.25", "l_inf, eps = 0.25/255"). The lab attacks its own runs
# at these budgets too (samon_core.catalog.robustness); the poster does not say which attack.
VIT_ROBUSTNESS_BUDGETS: dict[str, tuple[str, float, str]] = {
    "linf eps=0.25/255": ("linf", 0.25 / 255, "0.25/255"),
    "linf eps=0.5/255": ("linf", 0.5 / 255, "0.5/255"),
    "l2 eps=0.25": ("l2", 0.25, "0.25"),
    "l2 eps=0.50": ("l2", 0.5, "0.5"),
}
VIT_ROBUSTNESS_NOTE = (
    "The poster's robust accuracies are of a ViT-S/32 trained on ImageNet (224x224 images) "
    "with AdamW or Lion, mean ± std of its seeds; it does not say which attack. A different "
    "model and dataset than a run of this lab: compare the order of the methods, not the levels."
)


def vit_robustness(optimizer: str) -> dict[str, list[tuple[str, float, Stat]]]:
    """The poster's robust accuracy (%) of ViT-S/32 on ImageNet with base ``optimizer``
    ("AdamW" or "Lion"): method family ('base', 'all', 'norm') -> [(norm, eps, Stat)] in the order
    of ``VIT_ROBUSTNESS_BUDGETS``."""
    rows = VIT_S32_IMAGENET[optimizer]
    return {
        method: [(norm, eps, rows[row][method])
                 for row, (norm, eps, _) in VIT_ROBUSTNESS_BUDGETS.items()]
        for method in rows[VIT_EVAL_SETS[0]]
    }


# The poster's out-of-distribution rows (its table's "OOD" block): the lab's corruption claim
# compares the methods by their mean over these five, the order the poster reports.
VIT_OOD_SETS: tuple[str, ...] = (
    "ImageNetV2", "ImageNetR", "ImageNetA", "ImageNetSketch", "ObjectNet",
)


def vit_ood_mean(optimizer: str) -> dict[str, float]:
    """The mean test accuracy (%) of ViT-S/32 over ``VIT_OOD_SETS`` with base ``optimizer``
    ("AdamW" or "Lion"), per method family ('base', 'all', 'norm'): computed from the poster's
    table, not printed there."""
    rows = VIT_S32_IMAGENET[optimizer]
    return {method: sum(rows[s][method].mean for s in VIT_OOD_SETS) / len(VIT_OOD_SETS)
            for method in rows[VIT_EVAL_SETS[0]]}
