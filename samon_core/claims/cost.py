"""The cost claim: SAM-ON costs less per step than SAM-all, judged from fair step-time samples.

Step times measured at different times on a shared machine differ by the machine's load, not by
the method. So the verdict uses only seeds whose SAM-ON and SAM-all runs trained in ONE lockstep
group (``samon_core.train.lockstep``: interleaved step by step, each run's ``step_time`` its
own): finished runs must name each other in their summaries' ``lockstep`` lists; runs still
training must share their comparison group (provisional).

The noise of a cost ratio is the spread of step times, not of seeds: one lockstep run records a
step window every couple of seconds, hundreds in all. Per seed the common step range is cut into
``BLOCKS`` blocks of consecutive steps; a block's mean step time per run (its windows weighted by
their steps) is one paired sample, since both runs' steps of a block ran at the same time. The
estimate is the **ratio of means** ``R = mean(SAM-ON) / mean(SAM-all)`` over the blocks of every
lockstep seed, its standard error by the delta method ``sqrt(sum (y_b - R x_b)^2 / (B (B-1))) /
mean(x)`` (batch means: blocks of consecutive steps absorb the windows' correlation), never
below ``SE_FLOOR``, with ``B - 1`` degrees of freedom. With three or more seeds the spread of the
per-seed ratios is used where it is larger (``S - 1`` degrees of freedom): groups that ran under
different loads then count. The part holds when the 95% interval of R lies below 1, is refuted
when it lies above 1 (the rule of ``stats``; effect = the saving ``1 - R``). Beside it: the lab's
FLOP estimate ``estimate.STEP_COST_F`` (5F/6F).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from samon_core.claims import stats
from samon_core.claims.results import RunResult, step_windows
from samon_core.claims.stats import CONSISTENT, INCONCLUSIVE, NO_VERDICT
from samon_core.claims.verdicts import Verdict
from samon_core.runs.estimate import STEP_COST_F, STEP_COST_LABEL

FLOP_RATIO = STEP_COST_F["norm"] / STEP_COST_F["all"]
BLOCKS = 10  # per lockstep seed
# The smallest standard error of the ratio: a tenth of a percent, the resolution of the step
# timings (identical step times would otherwise give an interval of width 0).
SE_FLOOR = 0.001
TEST = "ratio of mean step times over paired blocks of steps (delta method, batch means)"
NOT_LOCKSTEP = (
    "Your SAM-ON and SAM-all runs did not train in one lockstep group, so their step times were "
    "measured under different loads and comparing them would not be fair."
)
LOCKSTEP_HINT = ("Train SAM-ON and SAM-all together: `python -m samon_core claim run cost`, or "
                 "one launch of the claim's card.")
PAPER = (f"{STEP_COST_LABEL} (not the paper's): {STEP_COST_F['norm']:.0f}F vs "
         f"{STEP_COST_F['all']:.0f}F per step ({FLOP_RATIO:.2f}x); the poster reports "
         "measured savings without a ratio")


def in_lockstep(runs: Sequence[RunResult]) -> bool:
    """Whether ``runs`` trained together: finished ones name every other run in their
    ``lockstep`` list; runs still training share a non-empty comparison group."""
    ids = {r.run_id for r in runs}
    for r in runs:
        if r.finished and not ids <= set(r.lockstep) | {r.run_id}:
            return False
        if not r.finished and (not r.group or any(o.group != r.group for o in runs)):
            return False
    return True


def block_means(windows: Sequence[tuple[int, float, int]], edges: np.ndarray) -> np.ndarray:
    """Mean step time per block of steps ``(edges[i], edges[i+1]]`` (NaN for an empty one)."""
    out = np.full(len(edges) - 1, np.nan)
    if not windows:
        return out
    steps, times, n = (np.array(x, dtype=float) for x in zip(*windows, strict=True))
    for i in range(len(edges) - 1):
        m = (steps > edges[i]) & (steps <= edges[i + 1])
        if n[m].sum():
            out[i] = float((times[m] * n[m]).sum() / n[m].sum())
    return out


def paired_blocks(on: RunResult, all_: RunResult) -> tuple[np.ndarray, np.ndarray]:
    """(SAM-ON, SAM-all) block means over their common steps: as many blocks (up to
    ``BLOCKS``) as leave none empty."""
    w_on, w_all = step_windows(on.records), step_windows(all_.records)
    if not w_on or not w_all:
        return np.empty(0), np.empty(0)
    last = min(w_on[-1][0], w_all[-1][0])
    for b in range(min(BLOCKS, len(w_on), len(w_all)), 0, -1):
        edges = np.linspace(0, last, b + 1)
        y, x = block_means(w_on, edges), block_means(w_all, edges)
        if np.isfinite(y).all() and np.isfinite(x).all():
            return y, x
    return np.empty(0), np.empty(0)


def ratio_estimates(y: np.ndarray, x: np.ndarray) -> stats.Estimates:
    """The saving ``1 - R`` (module doc) from block means ``y`` (SAM-ON) and ``x`` (SAM-all), of
    shape (..., seeds, blocks): every leading index one experiment."""
    y, x = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    n_seeds = y.shape[-2]
    yf, xf = y.reshape(*y.shape[:-2], -1), x.reshape(*x.shape[:-2], -1)
    total = yf.shape[-1]
    ratio = yf.mean(-1) / xf.mean(-1)
    resid = yf - ratio[..., None] * xf
    se = np.maximum(np.sqrt((resid ** 2).sum(-1) / (total * max(total - 1, 1))) / xf.mean(-1),
                    SE_FLOOR)
    df = np.full(ratio.shape, float(total - 1) if total >= 2 else np.nan)
    if n_seeds >= 3:
        per_seed = y.mean(-1) / x.mean(-1)
        se_seed = per_seed.std(-1, ddof=1) / math.sqrt(n_seeds)
        wider = se_seed > se
        se = np.where(wider, se_seed, se)
        df = np.where(wider, float(n_seeds - 1), df)
    return stats.Estimates(1 - ratio, se, df, se)


def _seeds(results: Sequence[RunResult], a: str = "norm",
           b: str = "all") -> tuple[dict, list[int], bool, list]:
    """Per lockstep seed its ratio (``a``'s step time over ``b``'s: SAM-ON / SAM-all by
    default) and block means; seeds left out; any partial run."""
    fair: dict[int, dict] = {}
    unfair: list[int] = []
    blocks: list[tuple[np.ndarray, np.ndarray]] = []
    partial = False
    for seed in sorted({r.seed for r in results}):
        runs = {r.method: r for r in results if r.seed == seed}
        if a not in runs or b not in runs:
            continue
        y, x = paired_blocks(runs[a], runs[b])
        if not y.size:
            continue
        if not in_lockstep(list(runs.values())):
            unfair.append(seed)
            continue
        partial = partial or not all(r.finished for r in runs.values())
        blocks.append((y, x))
        fair[seed] = {"step_time_s": {a: float(y.mean()), b: float(x.mean())},
                      "ratio": float(y.mean() / x.mean()), "blocks": int(y.size)}
    return fair, unfair, partial, blocks


def _estimate(blocks: list) -> tuple[stats.Estimates, stats.Decisions | None]:
    b = min(y.size for y, _ in blocks)
    y = np.stack([yy[:b] if yy.size == b else _rebin(yy, b) for yy, _ in blocks])[None]
    x = np.stack([xx[:b] if xx.size == b else _rebin(xx, b) for _, xx in blocks])[None]
    est = ratio_estimates(y, x)
    est = stats.Estimates(*(np.asarray(v).reshape(()) for v in
                            (est.effect, est.se, est.df, est.spread)))
    if not np.isfinite(est.df):
        return est, None
    dec = stats.decide(est, 0.0, 1)
    return est, stats.Decisions(*(np.asarray(v).reshape(()) for v in
                                  (dec.low, dec.high, dec.status, dec.p_hold, dec.p_refute)))


def _rebin(v: np.ndarray, b: int) -> np.ndarray:
    """``v``'s blocks merged into ``b`` (a seed with more blocks than the others)."""
    return np.array([c.mean() for c in np.array_split(v, b)])


def _sentence(est: stats.Estimates, dec: stats.Decisions | None, fair: dict,
              names: tuple[str, str] = ("SAM-ON", "SAM-all"), flop: bool = True) -> str:
    ratio = 1 - float(est.effect)
    n = len(fair)
    blocks = sum(s["blocks"] for s in fair.values())
    shown = stats.fmt_side(ratio, 1.0, 2)
    what = "less" if ratio < 1 else "more"
    share = stats.fmt_side(abs(1 - ratio) * 100, 0.0, 0)
    estimate = f"; the FLOP estimate is {FLOP_RATIO:.2f}x" if flop else ""
    base = (f"In {n} lockstep seed{'s' if n != 1 else ''} a {names[0]} step took {shown}x a "
            f"{names[1]} step ({share}% {what}{estimate})")
    if dec is None:
        return f"{base}: too few step windows for an interval (at least two blocks of steps)."
    lo, hi = stats.fmt_interval(1 - float(dec.high), 1 - float(dec.low), 1.0, 2)
    status = {stats.HOLDS: "below 1: holds", stats.REFUTED: "above 1: refuted"}.get(
        str(dec.status), "it includes 1: open")
    return (f"{base}; {TEST}, {blocks} blocks: 95% interval of the ratio {lo} to {hi}, "
            f"{status}.")


def cost_verdict(results: Sequence[RunResult], hint: str = "", size: str | None = None) -> Verdict:
    """SAM-ON's step is cheaper than SAM-all's (module doc for the rule)."""
    return step_time_verdict(results, hint, size)


# The blocks claim: SAM-ON on the norm layers of the last stage only against SAM-ON on all.
BLOCKS_A, BLOCKS_B = "norm@b3", "norm"
BLOCKS_PAPER = ("the poster: 'further gains might be achieved by perturbing the normalization "
                "layers of selected blocks (B1-B3)', a figure without a printed ratio")
# The claims judged from lockstep step times, each with the two methods it times (A's step
# against B's; the claim: A's is cheaper): the one place a page learns that a claim is a
# step-time claim and what its ratio is of.
STEP_TIME_PAIRS: dict[str, tuple[str, str]] = {"cost": ("norm", "all"),
                                               "blocks": (BLOCKS_A, BLOCKS_B)}


def step_time_metric(claim: str) -> str:
    """'step time SAM-ON / SAM-all': what a step-time claim's ratio is of (its evidence's
    ``metric``)."""
    from samon_core.claims.results import method_name

    a, b = STEP_TIME_PAIRS[claim]
    return f"step time {method_name(a)} / {method_name(b)}"


def blocks_verdict(results: Sequence[RunResult], hint: str = "",
                   size: str | None = None) -> Verdict:
    """SAM-ON on B3's norm layers steps faster than SAM-ON on all of them (the cost rule)."""
    return step_time_verdict(results, hint, size, claim="blocks", a=BLOCKS_A, b=BLOCKS_B)


def step_time_verdict(results: Sequence[RunResult], hint: str = "", size: str | None = None, *,
                      claim: str = "cost", a: str = "norm", b: str = "all") -> Verdict:
    """``a``'s step is cheaper than ``b``'s, from lockstep step times (module doc)."""
    from samon_core.claims.results import method_name

    names = (method_name(a), method_name(b))
    is_cost = claim == "cost"
    fair, unfair, partial, blocks = _seeds(results, a, b)
    evidence = {"metric": f"step time {names[0]} / {names[1]}", "seeds": fair,
                "not_lockstep_seeds": unfair, "size": size}
    if is_cost:
        evidence |= {"flop_ratio": FLOP_RATIO,  # named as the rest of the evidence
                     "paper_step_cost_f": {method_name(k): f for k, f in STEP_COST_F.items()}}
    if not fair:
        why = (NOT_LOCKSTEP.replace("SAM-ON and SAM-all", f"{names[0]} and {names[1]}")
               if unfair else f"No step times of {names[0]} and {names[1]} yet.")
        return Verdict(claim, INCONCLUSIVE, f"Inconclusive. {why}", evidence, provisional=True,
                       settle=LOCKSTEP_HINT.replace(" cost`", f" {claim}`") if unfair
                       else "Launch (or wait for) the runs.")
    est, dec = _estimate(blocks)
    status = stats.UNTESTED if dec is None else str(dec.status)
    verdict = str(stats.combine([np.array(status, dtype=object)])[()])
    chance = stats.chance_alone(verdict, [dec] if dec is not None else [])
    evidence["mean_ratio"] = 1 - float(est.effect)
    part = {
        "comparison": f"{names[0]}'s step cheaper than {names[1]}'s (superiority: ratio below "
                      "1)",
        "paper": PAPER if is_cost else BLOCKS_PAPER, "a": names[0], "b": names[1],
        "metric": evidence["metric"], "unit": "",
        "test": TEST, "kind": stats.SUPERIORITY, "margin": 0.0, "decides": True,
        "seeds": [len(fair), len(fair)], "paired_seeds": sorted(fair),
        "effect": 1 - float(est.effect),
        "ci95": None if dec is None else [1 - float(dec.high), 1 - float(dec.low)],
        "se": float(est.se), "df": float(est.df) if np.isfinite(est.df) else None,
        "status": status, "chance_alone": None if dec is None else
        float(dec.p_refute if status == stats.REFUTED else dec.p_hold),
        "sentence": _sentence(est, dec, fair, names, flop=is_cost),
    }
    lead = {CONSISTENT: "Consistent with the paper.",
            NO_VERDICT: "No verdict: too few step windows."}.get(
        verdict, "Not consistent with the paper." if verdict == stats.NOT_CONSISTENT
        else "Inconclusive.")
    if chance is not None:
        lead += f" Noise alone gives this in {stats.fmt_percent(chance)} of repeats."
    if partial:
        lead = f"So far (runs still training): {lead}"
    sentence = f"{lead} {part['sentence']}"
    if unfair:
        sentence += f" Seeds {unfair} were left out: not trained in lockstep."
    settle = "" if verdict == CONSISTENT or verdict == stats.NOT_CONSISTENT else \
        f"More lockstep seeds or longer runs. {hint}".strip()
    return Verdict(claim, verdict, sentence, evidence, partial, settle, (part,), chance)
