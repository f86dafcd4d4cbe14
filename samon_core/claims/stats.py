"""The statistics behind every verdict, in one place: the estimate of a comparison, its 95%
interval, the decision of one part of a claim and the combination of a claim's parts. Every
function takes numpy arrays (one row per simulated experiment, or a single row for the user's
runs), so ``bench/verdict_calibration.py`` simulates exactly the rule the verdicts apply.

The rule, stated so a student can check it by hand:

* **The effect** of a part is ``A - B`` on its metric (e.g. SAM-ON's minus SAM-all's final test
  accuracy, in points). Where the runs of A and B share seed and data draw (a claim's runs at one
  size do: same initialisation, same batch order, same noisy labels), the seeds are **paired**:
  the effect is the mean of the per-seed differences ``d_i``, its standard error ``sd(d) /
  sqrt(n)`` with ``n - 1`` degrees of freedom (the paired t-test). Otherwise the **Welch
  two-sample** test: ``mean_A - mean_B`` with ``sqrt(s_A^2/n_A + s_B^2/n_B)`` and the
  Welch-Satterthwaite degrees of freedom.
* A standard deviation is never taken below the metric's **floor** at that size (a tenth of the
  seed spread measured there, ``claims.calibration``): identical seeds cannot make a gap real.
* **The 95% interval** is ``effect +/- t(0.975, df) x se``.
* A part **holds** when the interval's lower end is above ``-margin``: ``margin = 0`` for
  "A beats B" (superiority), ``margin = delta`` for "A is at least as good as B" (non-inferiority:
  A may be worse by less than delta). Noise alone passes it at most 2.5% of the time.
* A part is **refuted** when the interval's upper end is below ``-margin`` at the Bonferroni level
  ``1 - 0.05 / k`` (``k`` the claim's parts): noise alone refutes some part of a claim at most
  2.5% of the time. Otherwise the part is **open**; with fewer than two seeds (paired) or two
  values a side (Welch) it is **untested**: the direction only, no verdict.
* A claim is **consistent** when every part holds (an intersection-union test: still at most 2.5%
  by chance), **not consistent** when some part is refuted, **inconclusive** otherwise, and gets
  **no verdict** when no part could be tested (one seed).
* **Chance alone**: the one-sided p-value of what was observed, i.e. how often noise alone, with
  the effect at the claim's boundary (0, or -delta), gives a gap at least this far in the
  observed direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import stdtr, stdtrit

LEVEL = 0.95  # the interval shown with every effect
ALPHA_SIDE = (1 - LEVEL) / 2  # one side of it: the most a part holds (or is refuted) by chance

HOLDS, REFUTED, OPEN, UNTESTED = "holds", "refuted", "open", "untested"
CONSISTENT, NOT_CONSISTENT, INCONCLUSIVE, NO_VERDICT = (
    "consistent", "not consistent", "inconclusive", "no verdict")
PAIRED, WELCH = "paired t-test", "Welch two-sample t-test"
SUPERIORITY, NON_INFERIORITY = "superiority", "non-inferiority"


def t_quantile(p: float | np.ndarray, df: float | np.ndarray) -> np.ndarray:
    """The ``p`` quantile of Student's t with ``df`` (real, > 0) degrees of freedom."""
    return stdtrit(np.asarray(df, dtype=float), np.asarray(p, dtype=float))


def t_sf(x: float | np.ndarray, df: float | np.ndarray) -> np.ndarray:
    """P(T > x) for Student's t with ``df`` degrees of freedom."""
    return stdtr(np.asarray(df, dtype=float), -np.asarray(x, dtype=float))


# ---------------------------------------------------------------------------------------------
# estimates (arrays: the last axis holds the seeds)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimates:
    """Effects with standard errors and degrees of freedom (arrays of one shape); ``df`` is NaN
    where the data cannot give an interval (too few values)."""

    effect: np.ndarray
    se: np.ndarray
    df: np.ndarray
    spread: np.ndarray  # the sd behind ``se`` (of the differences, or the pooled one)


def _sd(x: np.ndarray) -> np.ndarray:
    n = x.shape[-1]
    if n < 2:
        return np.full(x.shape[:-1], np.nan)
    return x.std(axis=-1, ddof=1)


def paired(diffs: np.ndarray, floor: float) -> Estimates:
    """The paired estimate from per-seed differences ``diffs`` (..., n)."""
    d = np.asarray(diffs, dtype=float)
    n = d.shape[-1]
    sd = np.maximum(_sd(d), floor)
    df = np.full(d.shape[:-1], float(n - 1) if n >= 2 else np.nan)
    return Estimates(d.mean(axis=-1), sd / math.sqrt(max(n, 1)), df, sd)


def welch(a: np.ndarray, b: np.ndarray, floor: float) -> Estimates:
    """The Welch estimate from A's values (..., n_a) and B's (..., n_b)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    na, nb = a.shape[-1], b.shape[-1]
    effect = a.mean(axis=-1) - b.mean(axis=-1)
    va = np.maximum(_sd(a), floor) ** 2 / na
    vb = np.maximum(_sd(b), floor) ** 2 / nb
    se = np.sqrt(va + vb)
    if min(na, nb) < 2:
        nan = np.full(effect.shape, np.nan)
        return Estimates(effect, nan, nan, nan)
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    return Estimates(effect, se, df, se / math.sqrt(1 / na + 1 / nb))


# ---------------------------------------------------------------------------------------------
# one part, and a claim's parts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decisions:
    """What the rule makes of estimates (arrays of their shape)."""

    low: np.ndarray  # the 95% interval
    high: np.ndarray
    status: np.ndarray  # HOLDS / REFUTED / OPEN / UNTESTED
    p_hold: np.ndarray  # chance alone of a gap this far in the claim's direction
    p_refute: np.ndarray  # ... in the opposite direction (Bonferroni: times k, at most 1)


def decide(est: Estimates, margin: float = 0.0, parts: int = 1) -> Decisions:
    """The status of one part (module doc): holds when the 95% interval's lower end is above
    ``-margin``; refuted when the upper end at level 1 - 0.05/``parts`` is below it."""
    df = np.asarray(est.df, dtype=float)
    tested = np.isfinite(df) & np.isfinite(est.se) & (est.se > 0)
    safe_df = np.where(tested, df, 1.0)
    safe_se = np.where(tested, est.se, 1.0)
    t_half = t_quantile(1 - ALPHA_SIDE, safe_df)
    t_refute = t_quantile(1 - ALPHA_SIDE / parts, safe_df)
    low = est.effect - t_half * safe_se
    high = est.effect + t_half * safe_se
    holds = low > -margin
    refuted = est.effect + t_refute * safe_se < -margin
    status = np.where(holds, HOLDS, np.where(refuted, REFUTED, OPEN)).astype(object)
    status = np.where(tested, status, UNTESTED)
    z = (est.effect + margin) / safe_se
    p_hold = np.where(tested, t_sf(z, safe_df), np.nan)
    p_refute = np.where(tested, np.minimum(1.0, parts * t_sf(-z, safe_df)), np.nan)
    return Decisions(np.where(tested, low, np.nan), np.where(tested, high, np.nan), status,
                     p_hold, p_refute)


def combine(statuses: Sequence[np.ndarray]) -> np.ndarray:
    """The claim's verdict from its deciding parts' statuses (module doc)."""
    s = np.stack([np.asarray(x, dtype=object) for x in statuses])
    all_hold = (s == HOLDS).all(axis=0)
    any_refuted = (s == REFUTED).any(axis=0)
    none_tested = (s == UNTESTED).all(axis=0)
    out = np.where(any_refuted, NOT_CONSISTENT, np.where(all_hold, CONSISTENT, INCONCLUSIVE))
    return np.where(none_tested, NO_VERDICT, out).astype(object)


def chance_alone(verdict: str, decisions: Sequence[Decisions]) -> float | None:
    """How often noise alone gives this verdict's evidence: for consistent the largest one-sided
    p-value of the parts (each had to pass), for not consistent the smallest Bonferroni p-value
    of a refuted part; None for inconclusive and no verdict (nothing was concluded)."""
    if verdict == CONSISTENT:
        return max(float(d.p_hold) for d in decisions)
    if verdict == NOT_CONSISTENT:
        return min(float(d.p_refute) for d in decisions if d.status == REFUTED)
    return None


# ---------------------------------------------------------------------------------------------
# per-method summaries and the numbers in sentences
# ---------------------------------------------------------------------------------------------


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


def summarize(method: str, values: Sequence[float]) -> Summary:
    return Summary(method, tuple(float(v) for v in values if math.isfinite(v)))


def fmt_side(value: float, bound: float, digits: int) -> str:
    """``value`` rounded to ``digits`` decimals, or more where that rounding would land on or
    across ``bound`` (so "0.9996 < 1" never reads "1.00"): the printed number is always on
    the same side of ``bound`` as the value (equal only when it is equal)."""
    for d in range(digits, digits + 8):
        text = f"{value:.{d}f}"
        shown = float(text)
        if (shown > bound) == (value > bound) and (shown < bound) == (value < bound):
            return text
    return repr(value)


def fmt_interval(low: float, high: float, bound: float, digits: int) -> tuple[str, str]:
    """An interval's ends by ``fmt_side`` against ``bound``, with more decimals where the two
    would otherwise print alike ('0.85 to 0.85' reads as no interval at all)."""
    for d in range(digits, digits + 4):
        lo, hi = fmt_side(low, bound, d), fmt_side(high, bound, d)
        if lo != hi or low == high:
            break
    return lo, hi


def fmt_percent(p: float) -> str:
    """A chance in percent, never rounded to 0 ('< 0.1%')."""
    if p < 0.001:
        return "< 0.1%"
    return f"{100 * p:.1f}%" if p < 0.1 else f"{100 * p:.0f}%"
