"""The statistics behind every verdict, in one place: per-method summaries over seeds and the
comparison of two methods. Pure functions on plain numbers (no torch, no numpy).

The rule (a two-sample t-test at 95%, stated so a student can check it by hand):

* Each method's value per seed (e.g. final test accuracy in points) gives a mean and a sample
  standard deviation ``s`` (n - 1 in the denominator).
* The **effect** of A over B is ``mean_A - mean_B``.
* The **noise** it is compared with is the pooled standard error of that difference,
  ``s_p * sqrt(1/n_A + 1/n_B)`` with ``s_p^2 = ((n_A-1) s_A^2 + (n_B-1) s_B^2) / (n_A+n_B-2)``,
  never below the metric's ``floor`` (identical seeds would otherwise make any gap "real").
* The gap is **real** when ``|effect| > t * noise``, ``t`` the 97.5% quantile of Student's t with
  ``n_A + n_B - 2`` degrees of freedom (4.30 for 2+2 seeds, 2.78 for 3+3, 1.96 for many): A is
  then ``better`` or ``worse``; otherwise it is a ``tie`` (within the noise).
* With **one seed** of either method there is no spread to compare with: the gap counts only when
  it is at least the metric's ``huge`` threshold (e.g. 5 accuracy points, far beyond the 1-2
  points seeds of a small run differ by), and the verdict stays provisional; smaller gaps are
  ``unknown`` (more seeds would settle them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# 97.5% quantiles of Student's t (two-sided 95%) by degrees of freedom; 1.96 beyond the table.
_T975: dict[int, float] = {
    1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23,
    12: 2.18, 15: 2.13, 20: 2.09, 30: 2.04,
}

BETTER, WORSE, TIE, UNKNOWN = "better", "worse", "tie", "unknown"


def t_critical(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (table, rounded down to
    the nearest tabulated df: conservative); 1.96 above 30."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1; got {df}")
    if df > 30:
        return 1.96
    return _T975[max(k for k in _T975 if k <= df)]


@dataclass(frozen=True)
class Metric:
    """What a comparison measures: name, unit, the noise floor and the one-seed threshold."""

    name: str
    unit: str
    floor: float  # the smallest noise assumed (the measurement's own resolution)
    huge: float  # with one seed, a gap this large counts (provisionally)
    digits: int = 1


@dataclass(frozen=True)
class Summary:
    """One method's values over its seeds."""

    method: str
    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1); 0 for one value."""
        if self.n < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (self.n - 1))

    def as_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "n": self.n, "values": list(self.values)}


@dataclass(frozen=True)
class Comparison:
    """A against B on one metric: effect, noise, threshold and the outcome for A."""

    a: str
    b: str
    effect: float  # mean_A - mean_B
    noise: float  # pooled standard error of the difference (0 with one seed)
    threshold: float  # |effect| must exceed this for a real gap
    outcome: str  # better / worse / tie / unknown (A relative to B)
    n_a: int
    n_b: int
    spread: float = 0.0  # the seed-to-seed standard deviation (pooled; 0 with one seed)

    @property
    def one_seed(self) -> bool:
        return min(self.n_a, self.n_b) < 2

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "effect": self.effect, "noise": self.noise,
                "threshold": self.threshold, "outcome": self.outcome, "spread": self.spread,
                "seeds": [self.n_a, self.n_b]}


def pooled_se(a: Summary, b: Summary) -> float:
    """Pooled standard error of ``mean_a - mean_b`` (needs two values on each side)."""
    df = a.n + b.n - 2
    var = ((a.n - 1) * a.std ** 2 + (b.n - 1) * b.std ** 2) / df
    return math.sqrt(var) * math.sqrt(1 / a.n + 1 / b.n)


def compare(a: Summary, b: Summary, metric: Metric) -> Comparison:
    """A against B by the module's rule (``better`` = A's mean is really higher)."""
    if not a.n or not b.n:
        raise ValueError("compare needs at least one value of each method")
    effect = a.mean - b.mean
    if min(a.n, b.n) < 2:
        return _one_seed(a.method, b.method, effect, metric, a.n, b.n)
    se = pooled_se(a, b)
    noise = max(se, metric.floor)
    threshold = t_critical(a.n + b.n - 2) * noise
    outcome = (BETTER if effect > 0 else WORSE) if abs(effect) > threshold else TIE
    spread = se / math.sqrt(1 / a.n + 1 / b.n)
    return Comparison(a.method, b.method, effect, noise, threshold, outcome, a.n, b.n, spread)


def compare_to(a: Summary, reference: float, metric: Metric, name: str = "reference") -> Comparison:
    """A's mean against a fixed ``reference`` (a one-sample t-test: noise = s / sqrt(n), t with
    n - 1 degrees of freedom; the one-seed rule as in ``compare``)."""
    if not a.n:
        raise ValueError("compare_to needs at least one value")
    effect = a.mean - reference
    if a.n < 2:
        return _one_seed(a.method, name, effect, metric, a.n, a.n)
    noise = max(a.std / math.sqrt(a.n), metric.floor)
    threshold = t_critical(a.n - 1) * noise
    outcome = (BETTER if effect > 0 else WORSE) if abs(effect) > threshold else TIE
    return Comparison(a.method, name, effect, noise, threshold, outcome, a.n, a.n, a.std)


def _one_seed(a: str, b: str, effect: float, metric: Metric, n_a: int, n_b: int) -> Comparison:
    """No spread to compare with: only a gap of at least ``metric.huge`` counts."""
    real = abs(effect) >= metric.huge
    outcome = (BETTER if effect > 0 else WORSE) if real else UNKNOWN
    return Comparison(a, b, effect, 0.0, metric.huge, outcome, n_a, n_b)


def summarize(method: str, values: Sequence[float]) -> Summary:
    return Summary(method, tuple(float(v) for v in values if math.isfinite(v)))


def fmt(value: float, metric: Metric) -> str:
    return f"{value:.{metric.digits}f}"
