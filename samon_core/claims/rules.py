"""Each claim's rule as data: the comparisons the paper makes (``PartSpec``), on which metric,
which test (superiority or non-inferiority with its margin), whether the part decides the verdict
or is shown for information, and the paper's numbers for it. ``verdicts.py`` judges the user's
runs by these parts and ``claims.power`` simulates the very same parts, so the error rates and
the seeds needed belong to the rule that is applied. No torch.

The parts, per claim (A - B; the claim is that A is higher):

* accuracy: SAM-ON at least as good as SAM-all (non-inferiority, margin ``MARGINS['accuracy']``),
  SAM-all above SGD, SAM-ON above SGD;
* no-norm: SAM-all above no-norm (the harm of leaving the norm layers out, judged against the
  method it is a variant of); SAM-ON above no-norm is shown, never decides;
* sharper: SAM-ON sharper than SAM-all and than SGD, on each sharpness probe the runs recorded
  (1 step; 20 steps where recorded), and SAM-ON at least as accurate as SAM-all (the sharper
  method does not generalize worse; "better" is the accuracy claim's part);
* sparsity: SAM-ON above the random mask;
* gamma-shift: SAM-ON's mean gamma shifts further up than SGD's (the paper's comparison); SAM-ON
  against SAM-all and the betas are shown, never decide.
* robustness: accuracy under an l2 PGD attack of radius 0.25 (the poster's budget): SAM-ON at
  least as robust as SAM-all (margin ``MARGINS['robust-l2']``), SAM-all and SAM-ON above the base
  optimizer (the poster's AdamW column: its smaller SAM-ON lead);
* corruption: the mean accuracy under the robustness suite's corruptions, the same three parts
  (the poster's OOD rows averaged);
* vit-adamw: SAM-ON above AdamW, at least as good as SAM-all; vit-lion: SAM-ON above SAM-all and
  above Lion (the poster's words for each optimizer);
* variants: SAM-ON above SAM-all in each of the figure's four variants.

The cost and blocks claims are judged from step times (``cost.py``), not from seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

from samon_core import paper
from samon_core.catalog.methods import variant_name
from samon_core.claims.stats import NON_INFERIORITY, SUPERIORITY


@dataclass(frozen=True)
class MetricSpec:
    """What a part measures, and the words for A's value being higher or lower than B's."""

    key: str
    name: str
    unit: str
    digits: int
    up: str
    down: str


METRICS: dict[str, MetricSpec] = {m.key: m for m in (
    MetricSpec("accuracy", "final test accuracy", "points", 1, "ended ahead of", "ended behind"),
    MetricSpec("sharpness@1", "1-step adaptive m-sharpness", "", 4, "ended sharper than",
               "ended flatter than"),
    MetricSpec("sharpness@20", "20-step adaptive m-sharpness", "", 4, "ended sharper than",
               "ended flatter than"),
    # "higher, relative to its start": true whatever the signs ("shifted further up" misread as
    # a rise when every mean fell)
    MetricSpec("gamma", "shift of the mean gamma since initialisation", "", 3,
               "ended with a higher mean gamma, relative to its start, than",
               "ended with a lower mean gamma, relative to its start, than"),
    MetricSpec("beta", "shift of the mean beta since initialisation", "", 3,
               "ended with a higher mean beta, relative to its start, than",
               "ended with a lower mean beta, relative to its start, than"),
    MetricSpec("robust-l2", "accuracy under an l2 PGD attack of radius 0.25", "points", 1,
               "ended ahead of", "ended behind"),
    MetricSpec("corruption", "mean accuracy under the corruptions", "points", 1,
               "ended ahead of", "ended behind"),
)}
SHARPNESS_STEPS: dict[str, int] = {"sharpness@1": 1, "sharpness@20": 20}
# The attack a robust-accuracy metric reads from a run's robustness record: the poster's l2
# budget of radius 0.25 (pixel units), one of the suite's (catalog.robustness).
ROBUST_ROW = "l2 eps=0.25"
ROBUST_ATTACKS: dict[str, tuple[str, float]] = {
    "robust-l2": paper.VIT_ROBUSTNESS_BUDGETS[ROBUST_ROW][:2]}
# The poster's numbers the robustness claims are measured against: AdamW's column, where
# SAM-ON's lead over SAM-all is the smaller of the two optimizers' (the careful choice).
ROBUST_OPTIMIZER = "AdamW"
_ROB = paper.VIT_S32_IMAGENET[ROBUST_OPTIMIZER][ROBUST_ROW]
_OOD = paper.vit_ood_mean(ROBUST_OPTIMIZER)

# The non-inferiority margin per metric, in its unit: "at least as good" means "worse by less
# than this" (0.5 points: half the paper's SAM-ON - SAM-all gap of 1.08, twice its seeds' spread;
# robust accuracy: half the poster's smallest SAM-ON - SAM-all gap at l2 eps 0.25, AdamW's 3.63
# points, so 1.8; corruption accuracy is accuracy on shifted images: the accuracy margin).
MARGINS: dict[str, float] = {
    "accuracy": 0.5,
    "robust-l2": round(min(paper.VIT_S32_IMAGENET[o][ROBUST_ROW]["norm"].mean
                           - paper.VIT_S32_IMAGENET[o][ROBUST_ROW]["all"].mean
                           for o in paper.VIT_S32_IMAGENET) / 2, 1),
    "corruption": 0.5,
}


@dataclass(frozen=True)
class PartSpec:
    """One comparison of a claim: A - B on ``metric`` by ``test``; ``decides`` False = shown
    for information only; ``paper`` the paper's comparison in words, with its numbers."""

    metric: str
    a: str
    b: str
    test: str = SUPERIORITY
    decides: bool = True
    paper: str = ""

    @property
    def margin(self) -> float:
        return MARGINS[self.metric] if self.test == NON_INFERIORITY else 0.0

    @property
    def spec(self) -> MetricSpec:
        return METRICS[self.metric]


_ACC = paper.TEST_ACCURACY
_WRN = "WRN-28-10, CIFAR-100, 3 seeds"


def _versus(a: str, b: str, table: dict[str, paper.Stat], base: str = "") -> str:
    """'SAM-ON 84.19±0.2% vs SAM-all 83.11±0.3%': families ``a`` and ``b`` of a paper table,
    named by ``paper.method_name`` (``base``: the base optimizer's name there)."""
    return " vs ".join(f"{paper.method_name(k, base)} {table[k].mean}±{table[k].std}%"
                       for k in (a, b))


def _acc(a: str, b: str) -> str:
    return f"{_versus(a, b, _ACC)} ({_WRN})"


def _sharp(steps: int, rho: float) -> str:
    s = paper.SHARPNESS[(steps, rho)]
    return (f"{steps}-step probe at rho {rho}: "
            + ", ".join(f"{paper.method_name(k)} {v.mean}" for k, v in s.items())
            + f" (higher = sharper; {_WRN})")


_SAM, _ASAM = ("none", "l2"), ("elementwise", "l2")  # the figure's plain SAM and ASAM
_FIG, _FIG_ASAM = paper.FIGURE_ACCURACY[_SAM], paper.FIGURE_ACCURACY[_ASAM]
_NO_NORM = (f"figure (WRN-28-10, CIFAR-100): {variant_name(_ASAM)} {paper.method_name('all')} "
            f"{_FIG_ASAM['all']}% vs {paper.method_name('no-norm')} {_FIG_ASAM['no-norm']}%; "
            f"plain {variant_name(_SAM)} {_FIG['all']}% vs {_FIG['no-norm']}%")
_RANDOM = paper.SPARSE_BY_KEY["random"]
_GAMMA = ("poster figure: SAM-ON's gamma histogram moves to larger values than under SGD "
          "(no number printed)")

_VIT = "ViT-S/32 on ImageNet, poster table"


def _vit(opt: str, row: str, a: str, b: str) -> str:
    return f"{opt} {row}: {_versus(a, b, paper.VIT_S32_IMAGENET[opt][row], paper.VANILLA)} ({_VIT})"


def _rob(a: str, b: str) -> str:
    return _vit(ROBUST_OPTIMIZER, ROBUST_ROW, a, b)


def _ood(a: str, b: str) -> str:
    name = {k: paper.method_name(k, paper.VANILLA) for k in (a, b)}
    return (f"{ROBUST_OPTIMIZER}, mean of the five OOD sets ({', '.join(paper.VIT_OOD_SETS)}): "
            f"{name[a]} {_OOD[a]:.2f}% vs {name[b]} {_OOD[b]:.2f}% ({_VIT}; the lab's analogue: "
            "corruptions of its own test images)")


def _fig(variant: tuple[str, str]) -> str:
    f = paper.FIGURE_ACCURACY[variant]
    return (f"figure ({variant_name(variant)}, WRN-28-10, CIFAR-100): "
            + " vs ".join(f"{paper.method_name(k)} ~{f[k]}%" for k in ("norm", "all")))


# The figure's four variants: the claim's method-key tag (runsets.VARIANTS) -> (adaptive, ball).
VARIANT_FIGURE: dict[str, tuple[str, str]] = {
    "": ("none", "l2"), "asam": ("elementwise", "l2"), "asam-layerwise": ("layerwise", "l2"),
    "linf": ("elementwise", "linf")}


def _at(family: str, tag: str) -> str:
    return f"{family}@{tag}" if tag else family


RULES: dict[str, tuple[PartSpec, ...]] = {
    "accuracy": (
        PartSpec("accuracy", "norm", "all", NON_INFERIORITY, paper=_acc("norm", "all")),
        PartSpec("accuracy", "all", "base", paper=_acc("all", "base")),
        PartSpec("accuracy", "norm", "base", paper=_acc("norm", "base")),
    ),
    "no-norm": (
        PartSpec("accuracy", "all", "no-norm", paper=_NO_NORM),
        PartSpec("accuracy", "norm", "no-norm", decides=False,
                 paper=f"{variant_name(_ASAM)}: "
                       + " vs ".join(f"{paper.method_name(k)} {_FIG_ASAM[k]}%"
                                     for k in ("norm", "no-norm"))),
    ),
    "sharper": (
        PartSpec("sharpness@1", "norm", "all", paper=_sharp(1, 0.01)),
        PartSpec("sharpness@1", "norm", "base", paper=_sharp(1, 0.01)),
        PartSpec("sharpness@20", "norm", "all", paper=_sharp(20, 0.003)),
        PartSpec("sharpness@20", "norm", "base", paper=_sharp(20, 0.003)),
        PartSpec("accuracy", "norm", "all", NON_INFERIORITY, paper=_acc("norm", "all")),
    ),
    "sparsity": (
        PartSpec("accuracy", "norm", "random",
                 paper=f"{_versus('norm', 'random', {**_ACC, 'random': _RANDOM.accuracy})} "
                       f"at {_RANDOM.sparsity:.2%} sparsity ({_WRN})"),
    ),
    "gamma-shift": (
        PartSpec("gamma", "norm", "base", paper=_GAMMA),
        PartSpec("gamma", "norm", "all", decides=False, paper="not compared in the paper"),
        PartSpec("beta", "norm", "base", decides=False, paper="not reported in the paper"),
    ),
    "robustness": (
        PartSpec("robust-l2", "norm", "all", NON_INFERIORITY, paper=_rob("norm", "all")),
        PartSpec("robust-l2", "all", "base", paper=_rob("all", "base")),
        PartSpec("robust-l2", "norm", "base", paper=_rob("norm", "base")),
    ),
    "corruption": (
        PartSpec("corruption", "norm", "all", NON_INFERIORITY, paper=_ood("norm", "all")),
        PartSpec("corruption", "all", "base", paper=_ood("all", "base")),
        PartSpec("corruption", "norm", "base", paper=_ood("norm", "base")),
    ),
    # "SAM-ON improves strongly over the vanilla optimizer and either improves over SAM-all or
    # performs on par" (AdamW); "SAM-ON always improves over SAM-all and the vanilla optimizer"
    # (Lion): the poster's own words, part by part.
    "vit-adamw": (
        PartSpec("accuracy", "norm@vit-adamw", "base@vit-adamw",
                 paper=_vit("AdamW", "ImageNet", "norm", "base")),
        PartSpec("accuracy", "norm@vit-adamw", "all@vit-adamw", NON_INFERIORITY,
                 paper=_vit("AdamW", "ImageNet", "norm", "all")),
    ),
    "vit-lion": (
        PartSpec("accuracy", "norm@vit-lion", "all@vit-lion",
                 paper=_vit("Lion", "ImageNet", "norm", "all")),
        PartSpec("accuracy", "norm@vit-lion", "base@vit-lion",
                 paper=_vit("Lion", "ImageNet", "norm", "base")),
    ),
    "variants": tuple(
        PartSpec("accuracy", _at("norm", tag), _at("all", tag), paper=_fig(v))
        for tag, v in VARIANT_FIGURE.items()
    ),
}


def deciding(claim_id: str) -> tuple[PartSpec, ...]:
    """The parts of a claim that decide its verdict."""
    return tuple(p for p in RULES[claim_id] if p.decides)
