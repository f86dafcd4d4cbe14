"""The paper's claims as data: what each says, the runs it needs per size, the paper's numbers
beside it (from ``samon_core.paper``), what the CPU size can show, and its verdict function. The
WRN-28-10 table's six (accuracy, no-norm, sharper, sparsity, gamma-shift, cost) and the rest of
the poster (issue 22): adversarial robustness, corruption (the small-image analogue of its OOD
rows), the ViT with AdamW and with Lion, the SAM variants of its figure, and selected blocks.
No torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from samon_core import paper
from samon_core.catalog.methods import variant_name
from samon_core.claims import calibration, cost, stats, verdicts
from samon_core.claims.parts import evaluate
from samon_core.claims.results import RunResult, Values
from samon_core.claims.rules import MARGINS, ROBUST_OPTIMIZER, ROBUST_ROW, RULES, VARIANT_FIGURE
from samon_core.claims.runsets import check_size, method_config
from samon_core.runs.config import RunConfig
from samon_core.runs.estimate import STEP_COST_F, STEP_COST_LABEL

_ACC = paper.TEST_ACCURACY
_SHARP = paper.SHARPNESS[(1, 0.01)]
_SHARP20 = paper.SHARPNESS[(20, 0.003)]
_SPARSE = paper.SPARSE_BY_KEY
_SAM, _ASAM = ("none", "l2"), ("elementwise", "l2")  # the figure's plain SAM and ASAM
_FIG, _FIG_ASAM = paper.FIGURE_ACCURACY[_SAM], paper.FIGURE_ACCURACY[_ASAM]
_ROB = paper.VIT_S32_IMAGENET[ROBUST_OPTIMIZER][ROBUST_ROW]
_ROB_LION = paper.VIT_S32_IMAGENET["Lion"][ROBUST_ROW]
_OOD = paper.vit_ood_mean(ROBUST_OPTIMIZER)
_VIT_IN = {o: paper.VIT_S32_IMAGENET[o]["ImageNet"] for o in ("AdamW", "Lion")}
# The sparsity claim's numbers, in the order its text gives them.
_SPARSE_NUMBERS = {k: _SPARSE[k].accuracy.mean for k in ("norm", "random", "all")}
_NAME = {k: paper.method_name(k) for k in ("base", "all", "norm", "no-norm")}
# The figure's variants, named as the catalog names them: 'SAM', 'ASAM elementwise', ...
_VARIANT_NAMES = [variant_name(v) for v in VARIANT_FIGURE.values()]


def _stats(table: Mapping[str, paper.Stat], base: str = "") -> str:
    """'SGD 80.71±0.2%, SAM-all 83.11±0.3%, SAM-ON 84.19±0.2%': a paper table's row, each
    family named by ``paper.method_name`` (``base``: the base optimizer's name there)."""
    return ", ".join(f"{paper.method_name(k, base)} {s.mean}±{s.std}%" for k, s in table.items())


def _means(table: Mapping[str, float | paper.Stat], unit: str = "", fmt: str = "",
           base: str = "") -> str:
    """'SGD 0.204, SAM-all 0.183, SAM-ON 0.315': the means of a paper table's row, named."""
    return ", ".join(f"{paper.method_name(k, base)} "
                     f"{format(v.mean if isinstance(v, paper.Stat) else v, fmt)}{unit}"
                     for k, v in table.items())


def _vit_text(opt: str) -> str:
    return (f"ViT-S/32 on ImageNet with {opt} (poster table): "
            f"{_stats(_VIT_IN[opt], paper.VANILLA)}. The lab has no ImageNet: its runs train "
            "the small ViT (vit_tiny) on each size's data, rho carried over from the WRN figure "
            "(the poster prints the ViT's rho nowhere).")


def _vit_numbers(opt: str, claim_id: str) -> dict[str, float]:
    """The poster's ImageNet row with ``opt`` on the claim's method keys ('base@vit-lion')."""
    return {f"{k}@{claim_id}": v.mean for k, v in _VIT_IN[opt].items()}


def _at(family: str, tag: str) -> str:
    return f"{family}@{tag}" if tag else family


def cpu_measured(claim_id: str) -> tuple[str, int, tuple[str, ...]]:
    """(verdict, seeds, the deciding parts' sentences) of the claim's rule on the cpu size's
    per-seed values measured here (``calibration.CPU_SEEDS``, paired by seed as the claim's runs
    are): the cpu notes quote these, so a note cannot disagree with the numbers it states. Parts
    whose metric was not recorded are left out, as the verdict leaves them out."""
    def values(metric: str, method: str) -> Values:
        v = calibration.CPU_SEEDS[metric][method]
        return Values(method, dict(enumerate(v)), (), dict.fromkeys(range(len(v)), "cpu"))

    specs = [p for p in RULES[claim_id] if p.decides
             and {p.a, p.b} <= set(calibration.CPU_SEEDS.get(p.metric, {}))]
    judged = [evaluate(p, values(p.metric, p.a), values(p.metric, p.b), "cpu", len(specs))
              for p in specs]
    seeds = min(len(calibration.CPU_SEEDS[p.metric][m]) for p in specs for m in (p.a, p.b))
    return (str(stats.combine([j.status for j in judged])[()]), seeds,
            tuple(j.sentence for j in judged))


def _cpu_measured_text(claim_id: str) -> str:
    """'Measured on the cpu size, 3 seeds (...): inconclusive. <the parts' sentences>'."""
    verdict, seeds, sentences = cpu_measured(claim_id)
    return (f"Measured on the cpu size, {seeds} seeds (issue 22, 2-core Xeon, torch 2.14.1): "
            f"{verdict}. " + " ".join(sentences))


def cpu_ratio_text(claim_id: str, a: str, b: str) -> str:
    """The cost claims' measured cpu result (``calibration.CPU_RATIOS``) as a sentence whose
    verdict follows the interval's place against 1, as the verdict's rule does."""
    ratio, low, high, seeds = calibration.CPU_RATIOS[claim_id]
    verdict = (stats.CONSISTENT if high < 1 else stats.NOT_CONSISTENT if low > 1
               else stats.INCONCLUSIVE)
    lo, hi = stats.fmt_interval(low, high, 1.0, 2)
    return (f"Measured on the cpu size, {seeds} lockstep seeds (issue 22, 2-core Xeon, torch "
            f"2.14.1): {verdict}: a {a} step took {ratio:.2f}x a {b} step (95% interval {lo} "
            f"to {hi}).")


_VIT_NOT_MEASURED = ("Not measured on a CPU: the three ViT runs of a seed train at 42-49 s per "
                     "epoch on 2 free cores (issue 22, epochs 1-3 of seed 0; 75-160 s under "
                     "load 6-9), about 25 min per seed, so the 2 seeds of a first verdict take "
                     "about 50 min; that session measured the ResNet claims instead.")


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and how the lab checks it."""

    id: str
    title: str
    statement: str  # one sentence
    methods: tuple[str, ...]  # method families whose runs the claim needs
    paper_text: str  # the paper's numbers, as a sentence
    # the paper's number per method key (one of ``methods``); its names come from paper_text
    paper_numbers: Mapping[str, float] = field(default_factory=dict)
    cpu_note: str = ""  # what the cpu size can (not) show, said up front
    # whether the cpu size shows the claim: True / False (measured), None (not measured)
    cpu_shows: bool | None = None
    hint: str = ""  # what else would settle an inconclusive verdict
    verdict_fn: Callable[..., verdicts.Verdict] | None = None
    # the SAM variant of the claim's runs per size (runsets.VARIANTS; "sam" where not named)
    variants: Mapping[str, str] = field(default_factory=dict)
    # a record kind the claim reads beyond the training records ("robustness": measured after the
    # last epoch only when the run's config asks for it, or later by `robustness RUN`)
    record: str = ""

    def recorded_by(self, config: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> bool:
        """Whether a run (its config dict and records) has, or will have, what the claim reads:
        a page leaves the claim out for runs that never measure it."""
        if self.record != "robustness":
            return True
        return config.get("robustness", "off") != "off" or \
            any(r.get("kind") == self.record for r in records)

    def variant(self, size: str) -> str:
        return self.variants.get(check_size(size), "sam")

    def runs(self, size: str) -> dict[str, RunConfig]:
        """Label -> config (seed 0) of the runs the claim needs at ``size``."""
        configs = self.method_configs(size).values()
        return {c.method_label(): c for c in configs}

    def method_configs(self, size: str) -> dict[str, RunConfig]:
        """Method family key -> config (seed 0) of the claim's runs at ``size``."""
        return {m: method_config(size, m, self.variant(size)) for m in self.methods}

    def verdict(self, results: Sequence[RunResult], size: str | None = None) -> verdicts.Verdict:
        """The verdict on ``results`` (``size``: the size they were trained at, None = not a
        claim size: the most careful floors)."""
        assert self.verdict_fn is not None
        return self.verdict_fn(results, self.hint, size)


_CPU_SAME_RUNS = ("The cpu size uses the same three runs as the accuracy claim, so one launch "
                  "serves accuracy, sharper, gamma-shift and cost.")

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "accuracy", "SAM-ON is at least as accurate as SAM-all, and both beat SGD",
        "SAM-ON matches or beats SAM-all, and both beat the base optimizer.",
        ("base", "all", "norm"),
        f"WRN-28-10 on CIFAR-100, 3 seeds: {_stats(_ACC)}.",
        {k: v.mean for k, v in _ACC.items()},
        cpu_note="The cpu size shows the direction, not a verdict. "
                 + _cpu_measured_text("accuracy") + " SGD memorizes the noisy labels here, "
                 "which is where SAM is known to help (Foret et al. 2021), but the paper's 1-3 "
                 "point gaps are far below the seed spread of this size: the gpu size is where "
                 "to settle it.",
        cpu_shows=False,
        hint="The gpu size (CIFAR-100, 30 epochs) is closer to the paper.",
        verdict_fn=verdicts.accuracy_verdict,
    ),
    Claim(
        "no-norm", "Leaving the norm layers out can harm training",
        f"Perturbing every parameter except the normalization layers ({_NAME['no-norm']}) can "
        f"do worse than perturbing all of them ({_NAME['all']}).",
        ("all", "norm", "no-norm"),
        f"Figure (WRN-28-10, CIFAR-100): plain {variant_name(_SAM)}: {_means(_FIG, '%')}; "
        f"{variant_name(_ASAM)}: {_FIG_ASAM['all']}%, {_FIG_ASAM['norm']}%, "
        f"{_FIG_ASAM['no-norm']}%. The gpu and paper sizes train {variant_name(_ASAM)} with the "
        "authors' settings (T_w on the biases, their rho), where the gap shows; the cpu size "
        f"trains plain {variant_name(_SAM)}.",
        dict(_FIG_ASAM),
        cpu_note=f"For plain {variant_name(_SAM)} the paper's own gap is under 1 point, below "
                 "what a few CPU seeds can resolve. " + _cpu_measured_text("no-norm"),
        cpu_shows=False,
        hint=f"The paper's clear case is {variant_name(_ASAM)} ({_FIG_ASAM['no-norm']}% vs "
             f"{_FIG_ASAM['all']}%): the gpu size trains it.",
        verdict_fn=verdicts.no_norm_verdict,
        variants={"gpu": "asam", "paper": "asam"},
    ),
    Claim(
        "sharper", "SAM-ON ends sharper, yet generalizes at least as well",
        "SAM-ON ends sharper than SAM-all and SGD (higher adaptive m-sharpness, on every probe "
        "measured) yet is at least as accurate as SAM-all.",
        ("base", "all", "norm"),
        f"1-step l_inf m-sharpness at rho 0.01: {_means(_SHARP)}; 20 steps at rho 0.003: "
        f"{_means(_SHARP20)} (higher = sharper; the other two probes agree), with "
        f"test accuracy {_ACC['all'].mean}% vs {_ACC['norm'].mean}%.",
        {k: v.mean for k, v in _SHARP.items()},
        cpu_note=_cpu_measured_text("sharper") + " At the cpu size SGD memorizes the noisy "
                 "labels and ended the sharpest here (the paper's WRN on clean CIFAR-100 has "
                 "SAM-ON sharpest). The cpu size runs the 1-step probe only. " + _CPU_SAME_RUNS,
        cpu_shows=False,
        hint="More epochs let the sharpness of the methods part.",
        verdict_fn=verdicts.sharper_verdict,
    ),
    Claim(
        "sparsity", "It is the norm layers, not sparsity",
        "A random mask as sparse as SAM-ON does worse than SAM-ON.",
        ("all", "norm", "random"),
        f"Sparse perturbations at 99.95% sparsity (WRN-28-10): "
        f"{_means(_SPARSE_NUMBERS, '%')}.",
        _SPARSE_NUMBERS,
        cpu_note=_cpu_measured_text("sparsity") + " The tiny ResNet has few parameters, so "
                 "a mask of SAM-ON's size is a large share of them; the paper's 99.95%-sparse "
                 "mask is the gpu size's test.",
        cpu_shows=False,
        verdict_fn=verdicts.sparsity_verdict,
    ),
    Claim(
        "gamma-shift", "SAM-ON shifts the gammas up",
        "Under SAM-ON the distribution of the normalization layers' gamma shifts towards larger "
        "values.",
        ("base", "all", "norm"),
        "Poster figure: the gamma histogram of SAM-ON moves to larger values than under SGD "
        "(no number printed). SAM-ON against SAM-all and the betas are shown beside it, never "
        "decide.",
        {},
        cpu_note=_cpu_measured_text("gamma-shift") + f" Mean shifts: "
                 f"{calibration.cpu_means('gamma', 3)} (against SAM-all, which the paper does "
                 "not compare, the gap does not decide). " + _CPU_SAME_RUNS,
        cpu_shows=False,
        verdict_fn=verdicts.gamma_shift_verdict,
    ),
    Claim(
        "cost", "SAM-ON costs less per step",
        "A SAM-ON step costs less than a SAM-all step.",
        ("base", "all", "norm"),
        f"Forward-pass units per step, {STEP_COST_LABEL} (not the paper's): "
        f"{_means(STEP_COST_F, 'F', '.0f')} "
        f"(ratio {cost.FLOP_RATIO:.2f}); the poster reports measured savings.",
        dict(STEP_COST_F),
        cpu_note="Only step times measured side by side count: the runs must train in one "
                 "lockstep group (a card's launch, or `claim run`). "
                 + cpu_ratio_text("cost", "SAM-ON", "SAM-all")
                 + f" The FLOP estimate is {cost.FLOP_RATIO:.2f}x. " + _CPU_SAME_RUNS,
        cpu_shows=True,
        verdict_fn=cost.cost_verdict,
    ),
)

CLAIMS += (
    Claim(
        "robustness", "SAM-ON is at least as robust to adversarial attacks as SAM-all, and both "
        "beat the base optimizer",
        "Under an l2 PGD attack of radius 0.25 (pixel units), SAM-ON keeps at least as much "
        "accuracy as SAM-all, and both keep more than the base optimizer.",
        ("base", "all", "norm"),
        f"ViT-S/32 on ImageNet (poster table), l2 eps=0.25: {ROBUST_OPTIMIZER} "
        f"{_stats(_ROB, paper.VANILLA)}; Lion "
        f"{' / '.join(str(v.mean) for v in _ROB_LION.values())}%; the poster's l2 eps=0.5 "
        "and l_inf rows keep that order. "
        f"The verdict takes AdamW's numbers (SAM-ON's smaller lead) and a non-inferiority margin "
        f"of {MARGINS['robust-l2']:g} points (half that lead); the lab attacks its own runs with "
        "a 10-step PGD after the last epoch (the Robustness tab shows every budget).",
        {k: v.mean for k, v in _ROB.items()},
        cpu_note=_cpu_measured_text("robustness") + " SAM's robustness gain over SGD is the "
                 "largest effect a laptop shows; whether SAM-ON keeps up with SAM-all needs more "
                 "seeds. The robust accuracy is measured on all 2,000 test images; about 3.5 "
                 "min per seed on 2 free cores.",
        cpu_shows=None,
        hint="A finished run without a robustness record gets one from `python -m samon_core "
             "robustness RUN`.",
        verdict_fn=verdicts.robustness_verdict,
        record="robustness",
    ),
    Claim(
        "corruption", "SAM-ON is at least as accurate on corrupted images as SAM-all, and both "
        "beat the base optimizer",
        "On the test images under common corruptions (Gaussian noise, blur, contrast, JPEG at "
        "three severities), SAM-ON keeps at least as much accuracy as SAM-all, and both keep "
        "more than the base optimizer.",
        ("base", "all", "norm"),
        f"The poster's out-of-distribution rows (ViT-S/32, AdamW; ImageNetV2, -R, -A, Sketch, "
        f"ObjectNet), averaged: {_means(_OOD, '%', '.2f', paper.VANILLA)} (the poster: "
        "SAM-ON >= SAM-all > vanilla in most rows). "
        "The lab's analogue for small images is CIFAR-10-C's corruptions computed from its own "
        "test images: a different shift, compared by the order of the methods.",
        dict(_OOD),
        cpu_note=_cpu_measured_text("corruption") + " The robustness claim's runs (one "
                 "launch serves both); the gaps under the 12 corruptions follow the clean ones, "
                 "within the seed noise.",
        cpu_shows=None,
        hint="A finished run without a robustness record gets one from `python -m samon_core "
             "robustness RUN`.",
        verdict_fn=verdicts.corruption_verdict,
        record="robustness",
    ),
    Claim(
        "vit-adamw", "With AdamW on a ViT, SAM-ON beats the vanilla optimizer and matches SAM-all",
        "On a Vision Transformer trained with AdamW, SAM-ON beats AdamW alone and is at least "
        "as accurate as SAM-all.",
        ("base@vit-adamw", "all@vit-adamw", "norm@vit-adamw"),
        _vit_text("AdamW"),
        _vit_numbers("AdamW", "vit-adamw"),
        cpu_note=_VIT_NOT_MEASURED + " The paper's SAM-ON vs SAM-all gap (-0.1 points) is "
                 "far below a CPU's seed spread.",
        hint="The gpu size trains the ViT on CIFAR-100.",
        verdict_fn=verdicts.vit_adamw_verdict,
    ),
    Claim(
        "vit-lion", "With Lion on a ViT, SAM-ON beats SAM-all and the vanilla optimizer",
        "On a Vision Transformer trained with Lion, SAM-ON beats both SAM-all and Lion alone.",
        ("base@vit-lion", "all@vit-lion", "norm@vit-lion"),
        _vit_text("Lion"),
        _vit_numbers("Lion", "vit-lion"),
        cpu_note=_VIT_NOT_MEASURED + " The paper's SAM-ON lead over SAM-all (0.74 points) is "
                 "far below a CPU's seed spread.",
        hint="The gpu size trains the ViT on CIFAR-100.",
        verdict_fn=verdicts.vit_lion_verdict,
    ),
    Claim(
        "variants", "SAM-ON beats SAM-all in every SAM variant",
        f"In each of {', '.join(_VARIANT_NAMES[:-1])} and {_VARIANT_NAMES[-1]}, perturbing "
        "only the normalization layers beats perturbing all parameters.",
        ("all", "norm", "all@asam", "norm@asam", "all@asam-layerwise",
         "norm@asam-layerwise", "all@linf", "norm@linf"),
        "Figure (WRN-28-10, CIFAR-100, each at its best rho): "
        + "; ".join(f"{variant_name(v)}: " + ", ".join(
            f"{_NAME[k]} ~{paper.FIGURE_ACCURACY[v][k]}%" for k in ("all", "norm"))
            for v in VARIANT_FIGURE.values())
        + f"; {_NAME['base']} ~{paper.FIGURE_SGD_ACCURACY}%. Leaving the norm layers out can "
        "harm (the "
        "no-norm claim). The variants-gpu preset runs the same comparison on a WRN-16-4.",
        {_at("norm", tag): paper.FIGURE_ACCURACY[v]["norm"] for tag, v in VARIANT_FIGURE.items()},
        cpu_note=_cpu_measured_text("variants") + " At this size ASAM elementwise with the "
                 "WRN figure's rho (5 for SAM-all, 10 for SAM-ON) does not train: both end at "
                 "chance (10-11%) in every seed, so that part compares two failures. The "
                 "figure's gaps (0.6-1.5 points) are below the cpu size's seed spread; 8 runs "
                 "per seed, about 15-18 min per seed on 2 cores at load 3-4.",
        hint="The gpu size (CIFAR-100) or the variants-gpu preset.",
        verdict_fn=verdicts.variants_verdict,
    ),
    Claim(
        "blocks", "SAM-ON on selected blocks costs less per step",
        "Perturbing the normalization layers of the last block (B3) only costs less per step "
        "than perturbing those of every block.",
        ("norm", "norm@b3"),
        "The poster: 'further gains might be achieved by perturbing the normalization layers of "
        "selected blocks (B1-B3)', shown in a figure without printed numbers; no accuracy is "
        "claimed for it. Only step times measured side by side count (one lockstep group).",
        {},
        cpu_note=cpu_ratio_text("blocks", "SAM-ON (B3 only)", "SAM-ON") + " Two runs per "
                 "seed trained side by side, about 11 min per seed on 2 cores busy with other "
                 "jobs (load 3-7).",
        cpu_shows=True,
        hint="Train both in one lockstep group: `python -m samon_core claim run blocks`.",
        verdict_fn=cost.blocks_verdict,
    ),
)

BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}
CLAIM_IDS: tuple[str, ...] = tuple(BY_ID)


def get_claim(claim_id: str) -> Claim:
    """The claim ``claim_id``; ``ValueError`` naming the claims otherwise."""
    try:
        return BY_ID[claim_id]
    except (KeyError, TypeError):
        raise ValueError(f"unknown claim {claim_id!r}; one of {', '.join(CLAIM_IDS)}") from None
