"""From run results to a ``Verdict``: one pure function per claim of the paper.

Every verdict follows the rule of ``samon_core.claims.stats`` (a gap is real when it exceeds
t x its pooled standard error over the seeds; with one seed only a ``huge`` gap counts) and
combines the parts of its claim:

* a part that the claim needs *better* (``gt``) holds when A really beats B, is refuted when B
  really beats A, and is open when they tie within the noise or one seed cannot tell;
* a part that needs *at least as good* (``ge``) also holds on a tie;
* ``consistent`` when every part holds, ``not consistent`` when a part is refuted, else
  ``inconclusive`` (with what would settle it).

A verdict from runs still training, or from a single seed, is ``provisional``. No torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from samon_core.claims import stats
from samon_core.claims.results import (
    RunResult,
    Values,
    common_epoch,
    final_sharpness,
    gamma_shift,
    method_name,
    test_acc_at,
    values_of,
)

CONSISTENT, NOT_CONSISTENT, INCONCLUSIVE = "consistent", "not consistent", "inconclusive"
VERDICTS = (CONSISTENT, NOT_CONSISTENT, INCONCLUSIVE)

ACCURACY = stats.Metric("final test accuracy", "points", floor=0.1, huge=5.0, digits=1)
SHARPNESS = stats.Metric("1-step adaptive m-sharpness", "", floor=1e-4, huge=0.1, digits=3)
GAMMA = stats.Metric("shift of the mean gamma since initialisation", "", floor=1e-4, huge=0.05,
                     digits=3)
COST = stats.Metric("step time SAM-ON / SAM-all", "", floor=0.005, huge=0.15, digits=2)

SEEDS_HINT = "Run 3 or more seeds (with one seed only a huge gap counts)."
NOISE_HINT = ("The gap is within the seed-to-seed noise: more seeds shrink the noise, and more "
              "epochs or real data (the gpu size, CIFAR-100) let the methods separate.")


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one claim against the user's runs."""

    claim: str
    verdict: str  # consistent / not consistent / inconclusive
    sentence: str  # one or two plain sentences a student understands
    evidence: Mapping[str, Any] = field(default_factory=dict)
    provisional: bool = False  # runs still training, or one seed
    settle: str = ""  # what would settle an inconclusive verdict

    def as_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "verdict": self.verdict, "evidence": dict(self.evidence),
                "sentence": self.sentence, "provisional": self.provisional,
                "settle": self.settle}


@dataclass(frozen=True)
class Part:
    """One comparison a claim needs: A against B, ``need`` 'gt' (better) or 'ge' (as good)."""

    comparison: stats.Comparison
    need: str
    metric: stats.Metric

    @property
    def status(self) -> str:
        """'holds', 'refuted' or 'open'."""
        outcome = self.comparison.outcome
        if outcome == stats.BETTER or (outcome == stats.TIE and self.need == "ge"):
            return "holds"
        return "refuted" if outcome == stats.WORSE else "open"


# ---------------------------------------------------------------------------------------------
# sentences
# ---------------------------------------------------------------------------------------------


def _amount(value: float, metric: stats.Metric) -> str:
    unit = f" {metric.unit}" if metric.unit else ""
    return f"{stats.fmt(abs(value), metric)}{unit}"


def describe(comp: stats.Comparison, metric: stats.Metric, higher: str = "beat") -> str:
    """One plain sentence about a comparison, with its numbers (``higher``: the verb for A's
    value being larger, e.g. 'beat', 'ended sharper than')."""
    a, b = method_name(comp.a), method_name(comp.b)
    gap = _amount(comp.effect, metric)
    lead = f"{a} {higher} {b}" if comp.effect >= 0 else f"{b} {higher} {a}"
    if comp.one_seed:
        if comp.outcome == stats.UNKNOWN:
            return (f"From a single seed {lead} by {gap}; with one seed only a gap of "
                    f"{_amount(metric.huge, metric)} or more counts.")
        return (f"From a single seed {lead} by {gap}, too large (over "
                f"{_amount(metric.huge, metric)}) to be seed noise, but one seed is provisional.")
    n = min(comp.n_a, comp.n_b)
    spread = stats.fmt(comp.spread, metric)
    if comp.outcome == stats.TIE:
        return (f"In your {n} seeds {lead} by {gap}; the seeds differ by about {spread}, so a "
                f"gap under {stats.fmt(comp.threshold, metric)} is within the noise.")
    return (f"In your {n} seeds {lead} by {gap}; the seeds differ by about {spread}, so the gap "
            f"(over {stats.fmt(comp.threshold, metric)}) is real.")


# ---------------------------------------------------------------------------------------------
# assembling a verdict
# ---------------------------------------------------------------------------------------------


def _summary(values: Values) -> stats.Summary:
    return stats.summarize(values.method, [values.by_seed[s] for s in sorted(values.by_seed)])


def _evidence(metric: stats.Metric, values: Sequence[Values], parts: Sequence[Part],
              extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metric": metric.name,
        "unit": metric.unit,
        "methods": {method_name(v.method): {**_summary(v).as_dict(),
                                            "partial_seeds": list(v.partial_seeds)}
                    for v in values},
        "comparisons": [{**p.comparison.as_dict(), "a": method_name(p.comparison.a),
                         "b": method_name(p.comparison.b), "need": p.need,
                         "status": p.status} for p in parts],
        "rule": "a gap is real when it exceeds t(95%) x the pooled standard error over seeds; "
                f"with one seed only a gap of {stats.fmt(metric.huge, metric)} counts",
        **(extra or {}),
    }


def _combine(parts: Sequence[Part], any_part: bool = False) -> str:
    """all parts hold -> consistent (``any_part``: one holding part is enough); a refuted part
    -> not consistent; else inconclusive."""
    statuses = [p.status for p in parts]
    if any_part:
        if "holds" in statuses:
            return CONSISTENT
        return NOT_CONSISTENT if all(s == "refuted" for s in statuses) else INCONCLUSIVE
    if "refuted" in statuses:
        return NOT_CONSISTENT
    return CONSISTENT if all(s == "holds" for s in statuses) else INCONCLUSIVE


def _settle(parts: Sequence[Part], hint: str) -> str:
    if any(p.comparison.one_seed and p.status == "open" for p in parts):
        return f"{SEEDS_HINT} {hint}".strip()
    return f"{NOISE_HINT} {hint}".strip()


def _lead(verdict: str, provisional: bool, partial: bool, epoch: int = 0) -> str:
    text = {CONSISTENT: "Consistent with the paper.",
            NOT_CONSISTENT: "Not consistent with the paper.",
            INCONCLUSIVE: "Inconclusive."}[verdict]
    if partial:
        at = f"; compared at epoch {epoch}, the latest all have reached" if epoch else ""
        return f"Provisional (runs still training{at}): {text}"
    return f"Provisional: {text}" if provisional else text


def _missing(claim: str, values: Sequence[Values], what: str) -> Verdict | None:
    empty = [method_name(v.method) for v in values if not v.by_seed]
    if not empty:
        return None
    return Verdict(claim, INCONCLUSIVE,
                   f"Inconclusive: no {what} yet for {', '.join(empty)}.",
                   {"missing": empty}, provisional=True,
                   settle="Launch (or wait for) the runs the claim lists.")


def assemble(claim: str, metric: stats.Metric, values: Sequence[Values], parts: Sequence[Part],
             *, hint: str, any_part: bool = False, extra: Mapping[str, Any] | None = None,
             verbs: Mapping[int, str] | None = None) -> Verdict:
    """The verdict of ``parts`` (module doc), its sentence, evidence and provisional flag."""
    verdict = _combine(parts, any_part)
    partial = any(v.partial_seeds for v in values)
    provisional = partial or any(p.comparison.one_seed for p in parts)
    verbs = verbs or {}
    told = [describe(p.comparison, p.metric, verbs.get(i, "beat")) for i, p in enumerate(parts)]
    epoch = int((extra or {}).get("epoch") or 0)
    sentence = " ".join([_lead(verdict, provisional, partial, epoch), *told])
    return Verdict(claim, verdict, sentence, _evidence(metric, values, parts, extra),
                   provisional, _settle(parts, hint) if verdict == INCONCLUSIVE else "")


def _part(values: Mapping[str, Values], a: str, b: str, need: str,
          metric: stats.Metric) -> Part:
    return Part(stats.compare(_summary(values[a]), _summary(values[b]), metric), need, metric)


def _gather(results: Sequence[RunResult], keys: Sequence[str],
            extract: Callable[[Sequence[Mapping[str, Any]]], float | None]) -> dict[str, Values]:
    return {k: values_of(results, k, extract) for k in keys}


def _accuracies(results: Sequence[RunResult], keys: Sequence[str]) -> tuple[dict, int]:
    """Test accuracy of every run at the latest epoch all of them reached (the final one when
    they have finished), and that epoch (0 while none has one)."""
    epoch = common_epoch(results, keys) or 0
    return _gather(results, keys, lambda recs: test_acc_at(recs, epoch)), epoch


# ---------------------------------------------------------------------------------------------
# the six claims
# ---------------------------------------------------------------------------------------------


def accuracy_verdict(results: Sequence[RunResult], hint: str = "") -> Verdict:
    """SAM-ON matches or beats SAM-all (``ge``), and both beat the base optimizer (``gt``), in
    final test accuracy (paper, WRN-28-10 on CIFAR-100: 84.19 / 83.11 / 80.71%)."""
    vals, epoch = _accuracies(results, ("norm", "all", "base"))
    if (missing := _missing("accuracy", list(vals.values()), "test accuracy")) is not None:
        return missing
    parts = [_part(vals, "norm", "all", "ge", ACCURACY),
             _part(vals, "all", "base", "gt", ACCURACY),
             _part(vals, "norm", "base", "gt", ACCURACY)]
    return assemble("accuracy", ACCURACY, list(vals.values()), parts, hint=hint,
                    extra={"epoch": epoch})


def no_norm_verdict(results: Sequence[RunResult], hint: str = "") -> Verdict:
    """Leaving the norm layers out of the perturbation can harm training: consistent when no-norm
    ends really below SAM-ON or SAM-all (either part), not consistent when it ends really above
    both, else inconclusive (final test accuracy)."""
    vals, epoch = _accuracies(results, ("norm", "all", "no-norm"))
    if (missing := _missing("no-norm", list(vals.values()), "test accuracy")) is not None:
        return missing
    parts = [_part(vals, "norm", "no-norm", "gt", ACCURACY),
             _part(vals, "all", "no-norm", "gt", ACCURACY)]
    return assemble("no-norm", ACCURACY, list(vals.values()), parts, hint=hint, any_part=True,
                    extra={"epoch": epoch})


def sharper_verdict(results: Sequence[RunResult], hint: str = "") -> Verdict:
    """SAM-ON ends sharper than SAM-all (higher final 1-step adaptive m-sharpness, ``gt``) yet
    generalizes better (higher final test accuracy, ``gt``); paper: 0.315 vs 0.183, 84.19 vs
    83.11%."""
    sharp = _gather(results, ("norm", "all"), final_sharpness)
    acc, epoch = _accuracies(results, ("norm", "all"))
    for what, vals in (("sharpness measurement", sharp), ("test accuracy", acc)):
        if (missing := _missing("sharper", list(vals.values()), what)) is not None:
            return missing
    parts = [_part(sharp, "norm", "all", "gt", SHARPNESS),
             _part(acc, "norm", "all", "gt", ACCURACY)]
    extra = {"accuracy": {method_name(k): _summary(v).as_dict() for k, v in acc.items()},
             "epoch": epoch}
    return assemble("sharper", SHARPNESS, list(sharp.values()), parts, hint=hint, extra=extra,
                    verbs={0: "ended sharper than"})


def sparsity_verdict(results: Sequence[RunResult], hint: str = "") -> Verdict:
    """A random mask as sparse as SAM-ON does worse than SAM-ON (final test accuracy, ``gt``);
    paper: 84.19 vs 80.97%."""
    vals, epoch = _accuracies(results, ("norm", "random"))
    if (missing := _missing("sparsity", list(vals.values()), "test accuracy")) is not None:
        return missing
    parts = [_part(vals, "norm", "random", "gt", ACCURACY)]
    return assemble("sparsity", ACCURACY, list(vals.values()), parts, hint=hint,
                    extra={"epoch": epoch})


def gamma_shift_verdict(results: Sequence[RunResult], hint: str = "") -> Verdict:
    """Under SAM-ON the gammas shift towards larger values: the mean gamma's shift since
    initialisation (norm_stats, epoch 0 vs the latest epoch) is larger under SAM-ON than under
    SAM-all and than under the base optimizer (both ``gt``)."""
    epoch = common_epoch(results, ("norm", "all", "base")) or 0
    vals = _gather(results, ("norm", "all", "base"), lambda recs: gamma_shift(recs, epoch))
    if (missing := _missing("gamma-shift", list(vals.values()), "gamma statistics")) is not None:
        return missing
    parts = [_part(vals, "norm", "all", "gt", GAMMA), _part(vals, "norm", "base", "gt", GAMMA)]
    verbs = dict.fromkeys((0, 1), "shifted its gammas more than")
    return assemble("gamma-shift", GAMMA, list(vals.values()), parts, hint=hint,
                    extra={"epoch": epoch}, verbs=verbs)
