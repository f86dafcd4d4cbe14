"""The error rates and the power of every claim's rule, by simulation: the rule of
``claims.stats`` applied to the parts of ``claims.rules`` (and ``cost.ratio_estimates`` for the
cost claim) on values drawn with the spread recorded for the size (``claims.calibration``).

Scenarios (``SCENARIOS``):

* ``null``: no effect, every method's mean equal: a "consistent" or "not consistent" verdict is
  then a false one.
* ``boundary``: the paper's effect on every part, except that SAM-ON is worse than SAM-all by
  exactly the non-inferiority margin (claims with such a part): "consistent" is false there too.
* ``paper``: the paper's effect (the means of ``paper.py``, sharpness scaled to the size's
  typical value; the lab's FLOP estimate for cost): "consistent" is the power, "not consistent"
  a false one. The gamma shift has no paper number: no ``paper`` scenario.

The methods' seed values are drawn independently (the calibration's ``paired_sd`` with correlation
0: the seeds needed are then an upper bound) and the parts analysed as paired, as a claim's runs
are. ``seeds_needed`` is the smallest number of seeds whose power reaches 80%. numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from samon_core import paper
from samon_core.claims import calibration, cost, stats
from samon_core.claims.rules import (
    ROBUST_OPTIMIZER,
    ROBUST_ROW,
    VARIANT_FIGURE,
    PartSpec,
    deciding,
)
from samon_core.claims.runsets import BASES

SEED_COUNTS: tuple[int, ...] = (1, 2, 3, 5, 10)
SCENARIOS: tuple[str, ...] = ("null", "boundary", "paper")
POWER = 0.8
# the seed counts ``seeds_needed`` tries (beyond the last: "more than 200")
SEARCH: tuple[int, ...] = (*range(1, 11), 12, 15, 20, 25, 30, 40, 50, 70, 100, 150, 200)

_VIT_CLAIMS = {"vit-adamw": "AdamW", "vit-lion": "Lion"}
# Claims judged from lockstep step times (cost.py), not from seeds' values.
COST_CLAIMS = ("cost", "blocks")
_RANDOM = paper.SPARSE_BY_KEY["random"]


def parts_at(claim: str, size: str) -> tuple[PartSpec, ...]:
    """The deciding parts a claim's runs at ``size`` can give (the 20-step probe only where the
    size's runs record it)."""
    multi = BASES[size].sharpness_multi_steps > 0
    return tuple(p for p in deciding(claim) if p.metric != "sharpness@20" or multi)


def _accuracy_means(claim: str, size: str) -> dict[str, float]:
    if claim in _VIT_CLAIMS:  # the poster's ImageNet row, on the claim's method keys
        row = paper.VIT_S32_IMAGENET[_VIT_CLAIMS[claim]]["ImageNet"]
        return {f"{k}@{claim}": stat.mean for k, stat in row.items()}
    if claim == "variants":
        out = {}
        for tag, variant in VARIANT_FIGURE.items():
            for k in ("all", "norm"):
                out[f"{k}@{tag}" if tag else k] = paper.FIGURE_ACCURACY[variant][k]
        return out
    if claim == "no-norm":
        variant = ("elementwise", "l2") if size in ("gpu", "paper") else ("none", "l2")
        return dict(paper.FIGURE_ACCURACY[variant])
    means = {k: stat.mean for k, stat in paper.TEST_ACCURACY.items()}
    return {**means, "random": _RANDOM.accuracy.mean}


def paper_means(claim: str, size: str, metric: str) -> dict[str, float] | None:
    """The paper's mean per method family on ``metric``, in the size's units (None: the paper
    gives no number)."""
    if metric == "accuracy":
        return _accuracy_means(claim, size)
    if metric == "robust-l2":  # the poster's ViT numbers, in points as they are
        row = paper.VIT_S32_IMAGENET[ROBUST_OPTIMIZER][ROBUST_ROW]
        return {k: stat.mean for k, stat in row.items()}
    if metric == "corruption":  # the poster's OOD mean (the lab's analogue: corruptions)
        return paper.vit_ood_mean(ROBUST_OPTIMIZER)
    if metric.startswith("sharpness@"):
        steps = int(metric.split("@")[1])
        table = paper.SHARPNESS[(steps, paper.SHARPNESS_RHOS_1STEP[0] if steps == 1
                                 else paper.SHARPNESS_RHOS_MULTI[0])]
        spread = calibration.spread(size, metric)
        scale = 1.0 if spread is None or spread.typical is None else \
            spread.typical / table["all"].mean
        return {k: stat.mean * scale for k, stat in table.items()}
    return None


def scenario_means(claim: str, size: str, scenario: str) -> dict[str, dict[str, float]] | None:
    """metric -> method -> mean under ``scenario`` (None where it does not apply)."""
    parts = parts_at(claim, size)
    methods = {p.metric: sorted({m for q in parts if q.metric == p.metric for m in (q.a, q.b)})
               for p in parts}
    if scenario == "null":
        return {metric: dict.fromkeys(ms, 0.0) for metric, ms in methods.items()}
    out = {}
    for metric in methods:
        means = paper_means(claim, size, metric)
        if means is None:
            return None
        out[metric] = dict(means)
    if scenario == "boundary":
        ni = [p for p in parts if p.test == stats.NON_INFERIORITY]
        if not ni:
            return None
        for p in ni:
            out[p.metric][p.a] = out[p.metric][p.b] - p.margin
    return out


def _rates(verdicts: np.ndarray) -> dict[str, float]:
    return {v: float(np.mean(verdicts == v)) for v in
            (stats.CONSISTENT, stats.NOT_CONSISTENT, stats.INCONCLUSIVE, stats.NO_VERDICT)}


def simulate(claim: str, size: str, n: int, means: Mapping[str, Mapping[str, float]],
             sims: int, rng: np.random.Generator, sd_scale: float = 1.0) -> dict[str, float]:
    """The share of each verdict over ``sims`` experiments of ``n`` seeds with ``means``."""
    if claim in COST_CLAIMS:
        return _simulate_cost(size, n, means, sims, rng, claim)
    parts = parts_at(claim, size)
    draws: dict[tuple[str, str], np.ndarray] = {}
    for metric, per_method in means.items():
        spread = calibration.SPREADS[size][metric]
        for m, mu in per_method.items():
            draws[(metric, m)] = rng.normal(mu, spread.of(m) * sd_scale, (sims, n))
    statuses = []
    for p in parts:
        diffs = draws[(p.metric, p.a)] - draws[(p.metric, p.b)]
        est = stats.paired(diffs, calibration.floor(size, p.metric))
        statuses.append(stats.decide(est, p.margin, len(parts)).status)
    return _rates(stats.combine(statuses))


def cost_means(size: str, scenario: str,
               claim: str = "cost") -> dict[str, dict[str, float]] | None:
    """The cost claims' 'means': the true ratio of the step times (SAM-ON / SAM-all; for blocks
    SAM-ON on B3 / SAM-ON, for which the poster prints no number: no paper scenario)."""
    if scenario == "boundary" or (scenario == "paper" and claim != "cost"):
        return None
    return {"cost": {"ratio": 1.0 if scenario == "null" else cost.FLOP_RATIO}}


def _simulate_cost(size: str, n: int, means: Mapping, sims: int,
                   rng: np.random.Generator, claim: str = "cost") -> dict[str, float]:
    """Lockstep seeds of ``cost.BLOCKS`` paired blocks: a shared load per block, the windows'
    own noise averaged over a block's windows, and (away from the null) the seeds' own ratio."""
    c = (calibration.BLOCKS_COST_SPREADS if claim == "blocks" else calibration.COST_SPREADS)[size]
    ratio = means["cost"]["ratio"]
    b = cost.BLOCKS
    block_sd = c.window_cv / np.sqrt(max(c.windows / b, 1.0))
    load = np.exp(rng.normal(0.0, 0.2, (sims, n, b)))
    seed_ratio = ratio * (np.exp(rng.normal(0.0, c.seed_sd, (sims, n, 1))) if ratio != 1.0
                          else 1.0)
    x = load * np.exp(rng.normal(0.0, block_sd, (sims, n, b)))
    y = seed_ratio * load * np.exp(rng.normal(0.0, block_sd, (sims, n, b)))
    est = cost.ratio_estimates(y, x)
    return _rates(stats.combine([stats.decide(est, 0.0, 1).status]))


def claim_scenario(claim: str, size: str, scenario: str):
    return cost_means(size, scenario, claim) if claim in COST_CLAIMS else \
        scenario_means(claim, size, scenario)


@dataclass(frozen=True)
class Row:
    """One line of the calibration table."""

    claim: str
    size: str
    n: int
    false_consistent: float  # under the null
    false_not_consistent: float  # under the null
    boundary_consistent: float | None  # at the non-inferiority margin (None: no such part)
    power: float | None  # consistent under the paper's effect (None: no paper number)
    paper_not_consistent: float | None  # not consistent under the paper's effect


def table_row(claim: str, size: str, n: int, sims: int, seed: int = 0) -> Row:
    """The rates of ``claim`` at ``size`` with ``n`` seeds (``sims`` experiments each)."""
    rng = np.random.default_rng([seed, n, hash_text(claim + size)])
    null = simulate(claim, size, n, claim_scenario(claim, size, "null"), sims, rng)
    edge = claim_scenario(claim, size, "boundary")
    at_edge = simulate(claim, size, n, edge, sims, rng) if edge else None
    effect = claim_scenario(claim, size, "paper")
    at_paper = simulate(claim, size, n, effect, sims, rng) if effect else None
    return Row(claim, size, n, null[stats.CONSISTENT], null[stats.NOT_CONSISTENT],
               None if at_edge is None else at_edge[stats.CONSISTENT],
               None if at_paper is None else at_paper[stats.CONSISTENT],
               None if at_paper is None else at_paper[stats.NOT_CONSISTENT])


def hash_text(text: str) -> int:
    """A stable small integer of ``text`` (Python's ``hash`` changes between processes)."""
    return sum((i + 1) * ord(ch) for i, ch in enumerate(text)) % 100_003


@lru_cache(maxsize=64)
def seeds_needed(claim: str, size: str, sims: int = 2000) -> int | None:
    """The fewest seeds (of ``SEARCH``) whose power at the paper's effect reaches ``POWER``;
    0 when the paper gives no effect to aim at, None beyond ``SEARCH``'s last."""
    effect = claim_scenario(claim, size, "paper")
    if effect is None:
        return 0
    for n in SEARCH:
        rng = np.random.default_rng([n, hash_text(claim + size)])
        if simulate(claim, size, n, effect, sims, rng)[stats.CONSISTENT] >= POWER:
            return n
    return None


def seeds_needed_text(claim: str, size: str) -> str:
    """'needs about 8 seeds for 80% power at the cpu size' (from ``seeds_needed``)."""
    n = seeds_needed(claim, size)
    if n == 0:
        return (f"the paper prints no number for it, so the seeds needed at the {size} size "
                "cannot be computed")
    if n is None:
        return (f"needs more than {SEARCH[-1]} seeds for {POWER:.0%} power at the paper's "
                f"effect at the {size} size (the paper's gap is far below the seed spread there)")
    seeds = "1 seed" if n == 1 else f"about {n} seeds"
    effect = (f"the lab's FLOP estimate ({cost.FLOP_RATIO:.2f}x)" if claim == "cost"
              else "the paper's effect")
    return f"needs {seeds} for {POWER:.0%} power at {effect} at the {size} size"


def parts_metrics(claim: str, size: str) -> list[str]:
    """The metrics of the claim's deciding parts at ``size`` (none for cost: step times)."""
    if claim in COST_CLAIMS:
        return []
    return list(dict.fromkeys(p.metric for p in parts_at(claim, size)))
