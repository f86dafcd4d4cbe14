"""The cost claim: SAM-ON costs less per step than SAM-all, read only from fair timings.

Step times measured at different times on a shared machine differ by the machine's load, not by
the method. So the verdict uses only seeds whose SAM-ON and SAM-all runs trained in ONE lockstep
group (``samon_core.train.lockstep``: interleaved step by step, each run's ``step_time`` its
own): finished runs must name each other in their summaries' ``lockstep`` lists; runs still
training must share their comparison group (provisional). Per such seed the ratio
``median step_time(SAM-ON) / median step_time(SAM-all)`` is one value; the saving ``1 - ratio``
is compared with 0 by a one-sample t-test (``stats.compare_to``; one seed: a saving of 15% or
more counts, provisionally). Beside it: the lab's FLOP estimate ``estimate.STEP_COST_F`` (5F/6F).
"""

from __future__ import annotations

from collections.abc import Sequence

from samon_core.claims import stats
from samon_core.claims.results import RunResult, median_step_time
from samon_core.claims.verdicts import (
    CONSISTENT,
    COST,
    INCONCLUSIVE,
    NOT_CONSISTENT,
    SEEDS_HINT,
    Verdict,
    _lead,
)
from samon_core.runs.estimate import STEP_COST_F

FLOP_RATIO = STEP_COST_F["SAM-ON"] / STEP_COST_F["SAM-all"]
NOT_LOCKSTEP = (
    "Your SAM-ON and SAM-all runs did not train in one lockstep group, so their step times were "
    "measured under different loads and comparing them would not be fair."
)
LOCKSTEP_HINT = ("Train SAM-ON and SAM-all together: `python -m samon_core claim run cost`, or "
                 "one launch of the claim's card.")


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


def _seed_ratios(results: Sequence[RunResult]) -> tuple[dict[int, dict], list[int], bool]:
    """Per lockstep seed: median step times and the ratio; seeds left out; any partial run."""
    seeds = sorted({r.seed for r in results})
    fair: dict[int, dict] = {}
    unfair: list[int] = []
    partial = False
    for seed in seeds:
        runs = {r.method: r for r in results if r.seed == seed}
        if "norm" not in runs or "all" not in runs:
            continue
        times = {k: median_step_time(r.records) for k, r in runs.items()}
        if times["norm"] is None or times["all"] is None:
            continue
        if not in_lockstep(list(runs.values())):
            unfair.append(seed)
            continue
        partial = partial or not all(r.finished for r in runs.values())
        fair[seed] = {"step_time_s": times, "ratio": times["norm"] / times["all"]}
    return fair, unfair, partial


def _sentence(comp: stats.Comparison, ratios: list[float]) -> str:
    mean = sum(ratios) / len(ratios)
    share = f"{abs(1 - mean):.0%}"
    what = "less" if mean < 1 else "more"
    n = len(ratios)
    base = (f"In {n} lockstep seed{'s' if n != 1 else ''} a SAM-ON step took {mean:.2f}x a "
            f"SAM-all step ({share} {what}; the FLOP estimate is {FLOP_RATIO:.2f}x)")
    if comp.one_seed:
        counts = "too large to be timing noise" if comp.outcome != stats.UNKNOWN else \
            f"with one seed only a difference of {COST.huge:.0%} or more counts"
        return f"{base}; {counts}."
    if comp.outcome == stats.TIE:
        return f"{base}; the seeds differ by about {comp.spread:.2f}, so that is within the noise."
    return f"{base}; the seeds differ by about {comp.spread:.2f}, so the difference is real."


def cost_verdict(results: Sequence[RunResult], hint: str = "") -> Verdict:
    """SAM-ON's step is cheaper than SAM-all's (module doc for the rule)."""
    fair, unfair, partial = _seed_ratios(results)
    evidence = {"metric": COST.name, "flop_ratio": FLOP_RATIO, "paper_step_cost_f":
                dict(STEP_COST_F), "seeds": fair, "not_lockstep_seeds": unfair}
    if not fair:
        why = NOT_LOCKSTEP if unfair else "No step times of SAM-ON and SAM-all yet."
        return Verdict("cost", INCONCLUSIVE, f"Inconclusive. {why}", evidence, provisional=True,
                       settle=LOCKSTEP_HINT if unfair else "Launch (or wait for) the runs.")
    ratios = [fair[s]["ratio"] for s in sorted(fair)]
    comp = stats.compare_to(stats.summarize("norm", [1 - r for r in ratios]), 0.0, COST,
                            "equal cost")
    verdict = {stats.BETTER: CONSISTENT, stats.WORSE: NOT_CONSISTENT}.get(comp.outcome,
                                                                          INCONCLUSIVE)
    provisional = partial or comp.one_seed
    evidence["comparisons"] = [{**comp.as_dict(), "a": "saving 1 - SAM-ON/SAM-all"}]
    evidence["mean_ratio"] = sum(ratios) / len(ratios)
    sentence = f"{_lead(verdict, provisional, partial)} {_sentence(comp, ratios)}"
    if unfair:
        sentence += f" Seeds {unfair} were left out: not trained in lockstep."
    settle = ""
    if verdict == INCONCLUSIVE:
        settle = SEEDS_HINT if comp.one_seed else "More lockstep seeds or longer runs. " + hint
    return Verdict("cost", verdict, sentence, evidence, provisional, settle.strip())
