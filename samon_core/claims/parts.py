"""One part of a claim judged on the user's runs: the design (paired by seed, or two samples),
the estimate with its 95% interval, the status, and the sentence that states them.

Every word of the sentence follows from the numbers it prints: "ahead" / "behind" from the sign
of the effect, the interval's ends printed so that rounding never moves them across the claim's
boundary (``stats.fmt_side``), and the status named from the same comparison the rule made. No
torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from samon_core.claims import calibration, stats
from samon_core.claims.results import Values, method_name
from samon_core.claims.rules import METRICS, PartSpec

NONE = "none (fewer than two seeds)"


def finite_or_none(x: float) -> float | None:
    """``x``, or None where it is NaN or infinite (JSON has neither)."""
    return float(x) if np.isfinite(x) else None


@dataclass(frozen=True)
class PartResult:
    """A part's outcome: ``decisions`` None when it could not be tested."""

    spec: PartSpec
    test: str  # stats.PAIRED / stats.WELCH / NONE
    seeds: tuple[int, ...]  # the seeds paired (paired test), else ()
    n: tuple[int, int]  # values of A and of B
    estimates: stats.Estimates
    decisions: stats.Decisions | None
    parts: int  # k: the claim's deciding parts (the refutation's Bonferroni factor)
    size: str | None

    @property
    def status(self) -> str:
        return stats.UNTESTED if self.decisions is None else str(self.decisions.status)

    @property
    def effect(self) -> float:
        return float(self.estimates.effect)

    @property
    def p_hold(self) -> float | None:
        return None if self.decisions is None else float(self.decisions.p_hold)

    @property
    def p_refute(self) -> float | None:
        return None if self.decisions is None else float(self.decisions.p_refute)

    @property
    def title(self) -> str:
        """'SAM-ON at least as accurate as SAM-all' in words."""
        a, b = method_name(self.spec.a), method_name(self.spec.b)
        what = self.spec.spec.name
        if self.spec.test == stats.NON_INFERIORITY:
            return f"{a} at least as good as {b} in {what} (within {self._margin_text()})"
        return f"{a} above {b} in {what}"

    def _margin_text(self) -> str:
        unit = f" {self.spec.spec.unit}" if self.spec.spec.unit else ""
        return f"{self.spec.margin:g}{unit}"

    def comparison(self) -> str:
        kind = (f"non-inferiority, margin {self._margin_text()}"
                if self.spec.test == stats.NON_INFERIORITY else "superiority")
        return f"{self.title} ({kind})"

    @property
    def sentence(self) -> str:
        return sentence(self)

    def as_dict(self) -> dict[str, Any]:
        d = self.decisions
        return {
            "comparison": self.comparison(), "paper": self.spec.paper,
            "a": method_name(self.spec.a), "b": method_name(self.spec.b),
            "metric": self.spec.spec.name, "unit": self.spec.spec.unit,
            "test": self.test, "kind": self.spec.test, "margin": self.spec.margin,
            "decides": self.spec.decides, "seeds": list(self.n), "paired_seeds": list(self.seeds),
            "effect": finite_or_none(self.effect),
            "ci95": None if d is None else [float(d.low), float(d.high)],
            "se": finite_or_none(float(self.estimates.se)),
            "df": finite_or_none(float(self.estimates.df)),
            "status": self.status,
            "chance_alone": None if d is None else
            (self.p_refute if self.status == stats.REFUTED else self.p_hold),
            "sentence": self.sentence,
        }


def design(va: Values, vb: Values) -> tuple[str, list[int]]:
    """Paired on the seeds both have with the same ``pair_key`` (at least two), else Welch."""
    common = sorted(set(va.by_seed) & set(vb.by_seed))
    paired = [s for s in common if va.keys.get(s) and va.keys.get(s) == vb.keys.get(s)]
    if len(paired) >= 2:
        return stats.PAIRED, paired
    if min(len(va.by_seed), len(vb.by_seed)) >= 2:
        return stats.WELCH, []
    return NONE, paired or common


def evaluate(spec: PartSpec, va: Values, vb: Values, size: str | None, parts: int) -> PartResult:
    """Test ``spec`` on A's values ``va`` and B's ``vb`` (``parts``: the claim's deciding parts)."""
    test, seeds = design(va, vb)
    floor = calibration.floor(size, spec.metric)
    n = (len(va.by_seed), len(vb.by_seed))
    if test == stats.PAIRED:
        est = stats.paired(np.array([[va.by_seed[s] - vb.by_seed[s] for s in seeds]]), floor)
    else:
        a = np.array([[va.by_seed[s] for s in sorted(va.by_seed)]])
        b = np.array([[vb.by_seed[s] for s in sorted(vb.by_seed)]])
        est = stats.welch(a, b, floor) if a.size and b.size else \
            stats.Estimates(*(np.array([np.nan]),) * 4)
    est = stats.Estimates(*(np.asarray(x).reshape(()) for x in
                            (est.effect, est.se, est.df, est.spread)))
    dec = None
    if test != NONE:
        dec = stats.decide(est, spec.margin, max(parts, 1))
        dec = stats.Decisions(*(np.asarray(x).reshape(()) for x in
                                (dec.low, dec.high, dec.status, dec.p_hold, dec.p_refute)))
    return PartResult(spec, test, tuple(seeds) if test == stats.PAIRED else (), n, est, dec,
                      parts, size)


# ---------------------------------------------------------------------------------------------
# the sentence
# ---------------------------------------------------------------------------------------------


def _gap(r: PartResult) -> str:
    """'SAM-ON ended ahead of SAM-all by 1.2 points' (the words follow the sign)."""
    m = r.spec.spec
    a, b = method_name(r.spec.a), method_name(r.spec.b)
    if not np.isfinite(r.effect):
        return f"{a} against {b}: no values to compare"
    if r.effect == 0:
        return f"{a} and {b} ended level"
    words = m.up if r.effect > 0 else m.down
    unit = f" {m.unit}" if m.unit else ""
    return f"{a} {words} {b} by {stats.fmt_side(abs(r.effect), 0.0, m.digits)}{unit}"


def spread_text(size: str | None, metric: str) -> str:
    """'at the cpu size seeds differ by about 0.8-5.0 points (measured)', or '' for runs of no
    claim size."""
    s = calibration.spread(size, metric) if size else None
    if s is None:
        return ""
    lo, hi = min(s.sd.values()), max(s.sd.values())
    m = METRICS[metric]
    span = stats.fmt_side(lo, 0, m.digits) if lo == hi else \
        f"{stats.fmt_side(lo, 0, m.digits)}-{stats.fmt_side(hi, 0, m.digits)}"
    unit = f" {m.unit}" if m.unit else ""
    return f"at the {size} size seeds differ by about {span}{unit} ({s.source})"


def _interval(r: PartResult) -> str:
    d, m = r.decisions, r.spec.spec
    assert d is not None
    bound = -r.spec.margin
    lo, hi = stats.fmt_interval(float(d.low), float(d.high), bound, m.digits)
    how = (f"{r.test} over seeds {', '.join(map(str, r.seeds))}" if r.test == stats.PAIRED
           else f"{r.test}, {r.n[0]} and {r.n[1]} seeds")
    return f"{how}; 95% interval {lo} to {hi}"


def _status_text(r: PartResult) -> str:
    d = r.decisions
    assert d is not None
    digits = r.spec.spec.digits
    bound = stats.fmt_side(-r.spec.margin, 0.0, digits) if r.spec.margin else "0"
    allowed = ", the margin the claim allows" if r.spec.margin else ""
    if r.status == stats.HOLDS:
        return f"the interval lies above {bound}{allowed}: holds"
    if r.status == stats.REFUTED:
        if r.parts == 1:
            return f"the interval lies below {bound}{allowed}: refuted"
        level, shown = _bonferroni_top(r)
        return (f"even the {level} interval (Bonferroni over {r.parts} parts) ends below "
                f"{bound}{allowed}, at {shown}: refuted")
    if r.parts > 1 and float(d.high) < -r.spec.margin:
        # The 95% interval shown lies below the bound, yet refuting needs the wider Bonferroni
        # interval: say so, or the sentence would contradict the interval it prints.
        level, shown = _bonferroni_top(r)
        return (f"the interval lies below {bound}{allowed}, but the {level} interval (Bonferroni "
                f"over {r.parts} parts) reaches it, at {shown}: open")
    return f"the interval reaches {bound}{allowed}: open"


def _bonferroni_top(r: PartResult) -> tuple[str, str]:
    """The Bonferroni level of a part's refutation ('98.3%') and that interval's upper end."""
    level = 100 * (1 - 2 * stats.ALPHA_SIDE / r.parts)
    t = stats.t_quantile(1 - stats.ALPHA_SIDE / r.parts, float(r.estimates.df))
    top = float(r.estimates.effect + t * r.estimates.se)
    return f"{level:.3g}%", stats.fmt_side(top, -r.spec.margin, r.spec.spec.digits)


def sentence(r: PartResult) -> str:
    """One sentence with the part's numbers (module doc)."""
    if r.decisions is None:
        return f"From one seed: {_gap(r)}."
    return f"{_gap(r)} ({_interval(r)}): {_status_text(r)}."

