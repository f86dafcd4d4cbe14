"""From run results to a ``Verdict``: each claim judged by the comparisons the paper makes.

A claim's parts are data (``rules.RULES``); each part is tested by the rule of
``samon_core.claims.stats`` (paired t-test where the runs are paired by seed, else Welch; the 95%
interval against 0, or against -delta for "at least as good"), and the deciding parts combine to

* ``consistent``: every part holds;
* ``not consistent``: a part is refuted (Bonferroni over the claim's parts);
* ``inconclusive``: neither;
* ``no verdict``: no part could be tested (one seed): the direction is shown, and said not to be
  a result.

Every sentence is generated from the numbers it states (``parts.py``), the verdict says how often
noise alone would have given it, and a verdict from runs still training is ``provisional``
(its sentence says "so far").
The cost claim is judged from step times (``cost.py``). No torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from samon_core.claims import calibration, stats
from samon_core.claims.parts import PartResult, evaluate, spread_text
from samon_core.claims.results import (
    RunResult,
    Values,
    common_epoch,
    corruption_acc,
    final_sharpness,
    gamma_shift,
    method_name,
    robust_acc,
    test_acc_at,
    values_of,
)
from samon_core.claims.rules import METRICS, ROBUST_ATTACKS, RULES, SHARPNESS_STEPS, PartSpec
from samon_core.claims.stats import CONSISTENT, INCONCLUSIVE, NO_VERDICT, NOT_CONSISTENT

VERDICTS = (CONSISTENT, NOT_CONSISTENT, INCONCLUSIVE, NO_VERDICT)
# Metrics whose parts count only where the runs recorded them (the 20-step probe is off at the
# cpu size); any other metric a claim needs must be there.
OPTIONAL_METRICS = frozenset({"sharpness@20"})

SEEDS_HINT = "Run 3 or more seeds: one seed shows a direction, never a verdict."
NOISE_HINT = ("The 95% intervals are wider than the gaps: more seeds narrow them, and more "
              "epochs or real data (the gpu size, CIFAR-100) let the methods separate.")
RULE_TEXT = ("per part: paired t-test on the per-seed differences where the runs share seed and "
             "data draw, else Welch's two-sample t-test; holds when the 95% interval of A - B "
             "lies above 0 (above -margin for 'at least as good'), refuted when the interval at "
             "1 - 0.05/k (k deciding parts) lies below it; consistent = every part holds, not "
             "consistent = a part refuted, no verdict from one seed")


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one claim against the user's runs."""

    claim: str
    verdict: str  # consistent / not consistent / inconclusive / no verdict
    sentence: str  # plain sentences a student understands, from the numbers below
    evidence: Mapping[str, Any] = field(default_factory=dict)
    provisional: bool = False  # runs still training
    settle: str = ""  # what would settle an inconclusive verdict (or give one)
    parts: tuple[Mapping[str, Any], ...] = ()  # per comparison: test, effect, interval, status
    chance: float | None = None  # how often noise alone gives this verdict (consistent / not)

    def as_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "verdict": self.verdict, "sentence": self.sentence,
                "chance_alone": self.chance, "parts": [dict(p) for p in self.parts],
                "evidence": dict(self.evidence), "provisional": self.provisional,
                "settle": self.settle}


# ---------------------------------------------------------------------------------------------
# the numbers each part reads
# ---------------------------------------------------------------------------------------------


def metric_reader(metric: str,
                  epoch: int) -> Callable[[Sequence[Mapping[str, Any]]], float | None]:
    """The function that reads a run's value on ``metric`` (``rules.METRICS``) from its records,
    compared at ``epoch`` where the metric has one (accuracy, gamma, beta)."""
    return _extractor(metric, epoch)


def _extractor(metric: str, epoch: int) -> Callable[[Sequence[Mapping[str, Any]]], float | None]:
    if metric == "accuracy":
        return lambda recs: test_acc_at(recs, epoch)
    if metric in SHARPNESS_STEPS:
        return lambda recs: final_sharpness(recs, SHARPNESS_STEPS[metric])
    if metric in ROBUST_ATTACKS:  # measured once, on the final weights
        return lambda recs: robust_acc(recs, *ROBUST_ATTACKS[metric])
    if metric == "corruption":
        return corruption_acc
    return lambda recs: gamma_shift(recs, epoch, metric)  # gamma / beta


def gather(results: Sequence[RunResult], parts: Sequence[PartSpec]) -> tuple[dict, int]:
    """(metric, method) -> ``Values`` of every part's methods, and the epoch compared at (the
    latest every run has reached: runs still training are compared where all of them are)."""
    keys = sorted({m for p in parts for m in (p.a, p.b)})
    epoch = common_epoch(results, keys) or 0
    out: dict[tuple[str, str], Values] = {}
    for p in parts:
        for m in (p.a, p.b):
            if (p.metric, m) not in out:
                out[(p.metric, m)] = values_of(results, m, _extractor(p.metric, epoch))
    return out, epoch


# ---------------------------------------------------------------------------------------------
# sentences
# ---------------------------------------------------------------------------------------------


def _lead(verdict: str, parts: Sequence[PartResult], chance: float | None,
          size: str | None) -> str:
    k = len(parts)
    if verdict == CONSISTENT:
        held = "the part holds" if k == 1 else f"all {k} parts hold"
        return (f"Consistent with the paper: {held} at 95%. Noise alone gives this in at most "
                f"{stats.fmt_percent(chance or 0)} of repeats.")
    if verdict == NOT_CONSISTENT:
        bad = next(p for p in parts if p.status == stats.REFUTED and p.p_refute == chance)
        return (f"Not consistent with the paper: {bad.title} is refuted. Noise alone refutes a "
                f"part this clearly in {stats.fmt_percent(chance or 0)} of repeats.")
    if verdict == NO_VERDICT:
        spread = spread_text(size, parts[0].spec.metric)
        why = f"{spread[0].upper()}{spread[1:]}" if spread else \
            "One seed cannot tell a gap from seed-to-seed noise"
        return f"No verdict: one seed shows a direction, not a result. {why}."
    held = sum(p.status == stats.HOLDS for p in parts)
    return f"Inconclusive: {held} of {k} parts hold, none is refuted."


def _provisional(text: str, partial: bool, epoch: int) -> str:
    if not partial:
        return text
    at = f"; compared at epoch {epoch}, the latest all have reached" if epoch else ""
    return f"So far (runs still training{at}): {text}"


def _missing(claim: str, values: Mapping[tuple[str, str], Values],
             parts: Sequence[PartSpec]) -> Verdict | None:
    need = [(p.metric, m) for p in parts if p.decides and p.metric not in OPTIONAL_METRICS
            for m in (p.a, p.b)]
    empty = list(dict.fromkeys(k for k in need if not values[k].by_seed))
    if not empty:
        return None
    what = {"accuracy": "test accuracy", "gamma": "gamma statistics", "beta": "beta statistics",
            "robust-l2": "robustness measurement", "corruption": "robustness measurement"}
    text = "; ".join(f"no {what.get(metric, METRICS[metric].name + ' measurement')} yet for "
                     f"{method_name(m)}" for metric, m in empty)
    return Verdict(claim, INCONCLUSIVE, f"Inconclusive: {text}.",
                   {"missing": [method_name(m) for _, m in empty]}, provisional=True,
                   settle="Launch (or wait for) the runs the claim lists.")


# ---------------------------------------------------------------------------------------------
# judging a claim
# ---------------------------------------------------------------------------------------------


def _present(parts: Sequence[PartSpec], values: Mapping) -> tuple[list[PartSpec], list[str]]:
    """The parts whose metric the runs recorded, and the names of the optional ones they did
    not (the 20-step probe at the cpu size)."""
    kept, dropped = [], []
    for p in parts:
        a, b = values[(p.metric, p.a)].by_seed, values[(p.metric, p.b)].by_seed
        if (p.metric in OPTIONAL_METRICS and not (a or b)) or (not p.decides and not (a and b)):
            dropped.append(f"{METRICS[p.metric].name}: not recorded by these runs")
        else:
            kept.append(p)
    return kept, list(dict.fromkeys(dropped))


def _settle(verdict: str, parts: Sequence[PartResult], hint: str) -> str:
    if verdict == NO_VERDICT or any(p.status == stats.UNTESTED for p in parts):
        return f"{SEEDS_HINT} {hint}".strip()
    return f"{NOISE_HINT} {hint}".strip() if verdict == INCONCLUSIVE else ""


def judge(claim: str, results: Sequence[RunResult], hint: str = "",
          size: str | None = None) -> Verdict:
    """The verdict of ``claim`` (one of ``RULES``) on ``results`` at ``size`` (None: runs of no
    known size, the most careful floors)."""
    values, epoch = gather(results, RULES[claim])
    if (missing := _missing(claim, values, RULES[claim])) is not None:
        return missing
    specs, dropped = _present(RULES[claim], values)
    k = sum(p.decides for p in specs)
    judged = [evaluate(p, values[(p.metric, p.a)], values[(p.metric, p.b)], size, k)
              for p in specs]
    deciding = [j for j in judged if j.spec.decides]
    verdict = str(stats.combine([j.status for j in deciding])[()])
    chance = stats.chance_alone(verdict, [j.decisions for j in deciding if j.decisions])
    partial = any(v.partial_seeds for v in values.values())
    told = [j.sentence for j in deciding]
    info = [j.sentence for j in judged if not j.spec.decides]
    text = " ".join([_provisional(_lead(verdict, deciding, chance, size), partial, epoch), *told,
                     *(["For information (does not decide):", *info] if info else []),
                     *(f"{d[0].upper()}{d[1:]}." for d in dropped)])
    main = specs[0].metric
    evidence = {
        "metric": METRICS[main].name, "unit": METRICS[main].unit, "size": size,
        "floor": calibration.floor(size, main), "epoch": epoch, "rule": RULE_TEXT,
        "methods": {method_name(m): {**_summary(v).as_dict(),
                                     "partial_seeds": list(v.partial_seeds)}
                    for (metric, m), v in values.items() if metric == main},
        "not_recorded": dropped,
    }
    if claim == "sharper":
        evidence["accuracy"] = {method_name(m): _summary(v).as_dict()
                                for (metric, m), v in values.items() if metric == "accuracy"}
    return Verdict(claim, verdict, text, evidence, partial, _settle(verdict, deciding, hint),
                   tuple(j.as_dict() for j in judged), chance)


def _summary(values: Values) -> stats.Summary:
    return stats.summarize(values.method, [values.by_seed[s] for s in sorted(values.by_seed)])


def _verdict_fn(claim: str) -> Callable[..., Verdict]:
    def verdict(results: Sequence[RunResult], hint: str = "", size: str | None = None) -> Verdict:
        return judge(claim, results, hint, size)
    verdict.__name__ = f"{claim.replace('-', '_')}_verdict"
    verdict.__doc__ = f"The {claim} claim's verdict (``rules.RULES['{claim}']``)."
    return verdict


accuracy_verdict = _verdict_fn("accuracy")
no_norm_verdict = _verdict_fn("no-norm")
sharper_verdict = _verdict_fn("sharper")
sparsity_verdict = _verdict_fn("sparsity")
gamma_shift_verdict = _verdict_fn("gamma-shift")
robustness_verdict = _verdict_fn("robustness")
corruption_verdict = _verdict_fn("corruption")
vit_adamw_verdict = _verdict_fn("vit-adamw")
vit_lion_verdict = _verdict_fn("vit-lion")
variants_verdict = _verdict_fn("variants")
