"""The class verdict as the pages show it: every seed of the class experiment pooled into the
claim's verdict, how many seeds and which size it rests on, each deciding comparison's effect
with its 95% interval as the seeds arrived, the power reached for the paper's effect, and every
seed as a dot (the viewer's own highlighted).

The pool and the verdict are the library's (``samon_core.claims.classroom.pooled_verdict``: the
claim's own verdict on exactly the experiment's runs), so the class verdict follows the claims'
rules whatever they become; the interval "as the seeds arrived" is the claim's verdict function
applied to the first k seeds (in seed order: seeds are handed out in turn). The power comes from
``claims.power`` in one place (``power_status``). Every sentence is built from the numbers it
states. No streamlit, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from samon_core.catalog import methods
from samon_core.claims import CONSISTENT, NOT_CONSISTENT, Verdict, get_claim, power
from samon_core.claims.classroom import Pool, pooled_verdict
from samon_core.claims.collect import StoredRun, results_of
from samon_core.claims.cost import STEP_TIME_PAIRS, step_time_metric
from samon_core.claims.results import (
    RunResult,
    final_sharpness,
    gamma_shift,
    method_name,
    test_acc_at,
)
from samon_core.claims.rules import METRICS, RULES
from samon_core.claims.runsets import SIZE_TEXT, split_key
from samon_core.claims.verdicts import metric_reader
from samon_core.runs.store import RunStore
from samon_core.service.room import ClassExperiment

DECIDED = (CONSISTENT, NOT_CONSISTENT)
MAX_HISTORY_POINTS = 40  # the interval chart's points (seed counts) at most
POWER_SIMS = 2000  # as many simulated classes as claims.power.seeds_needed uses


@dataclass(frozen=True)
class Dot:
    """One run's value on the claim's main metric (one dot of the strip chart)."""

    method: str  # the method's display name
    seed: int
    value: float
    mine: bool
    color: str


@dataclass(frozen=True)
class Step:
    """A deciding comparison after the first ``seeds`` seeds."""

    seeds: int
    effect: float
    low: float
    high: float


@dataclass(frozen=True)
class History:
    """One deciding comparison's effect and 95% interval as the seeds arrived; the claim holds
    where the interval lies on the ``holds`` side ('above' / 'below') of ``bound``."""

    comparison: str
    label: str  # short, for a legend: 'SAM-ON - SAM-all (margin 0.5)'
    metric: str
    unit: str
    bound: float
    holds: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class PowerStatus:
    """The chance (simulated with the claims' rule) that ``seeds`` seeds give 'consistent' when
    the paper's effect is true; ``needed``: the seeds for 80% (0: the paper gives no number;
    None: more than the simulation tries); ``more``: seeds still to add (0: reached)."""

    seeds: int
    reached: float | None
    needed: int | None
    more: int | None
    text: str


@dataclass(frozen=True)
class ClassVerdict:
    """Everything the class verdict's page section shows."""

    experiment: ClassExperiment
    pool: Pool
    verdict: Verdict | None
    students: int
    mine: tuple[int, ...]  # the viewer's seeds among those counted
    metric: str
    dots: tuple[Dot, ...]
    history: tuple[History, ...]
    power: PowerStatus
    rests_on: str  # the sentence: seeds, students, size, what was left out
    # seed -> who requested its runs (never shown: ``for_viewer`` picks the viewer's seeds)
    people: Mapping[int, frozenset[str]] = field(default_factory=dict, repr=False)

    @property
    def seeds(self) -> int:
        return len(self.pool.seeds)

    @property
    def decided(self) -> bool:
        """Consistent or not consistent, from finished runs only."""
        return self.verdict is not None and self.verdict.verdict in DECIDED \
            and not self.verdict.provisional


# ---------------------------------------------------------------------------------------------
# sentences
# ---------------------------------------------------------------------------------------------


def seed_ranges(seeds: Sequence[int]) -> str:
    """'0-4, 7, 9-10' for seeds 0, 1, 2, 3, 4, 7, 9, 10."""
    out: list[str] = []
    ordered = sorted(set(seeds))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(out)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def rests_on_text(p: Pool, students: int) -> str:
    """What the verdict rests on, in words, from the pool's numbers."""
    e = p.experiment
    size = SIZE_TEXT[e.size].split(":")[0]
    if not p.seeds:
        head = f"No seed is complete yet at the {e.size} size ({size})"
    else:
        head = (f"The class verdict rests on {_count(len(p.seeds), 'seed')} "
                f"({seed_ranges(p.seeds)}) from {_count(students, 'student')}, at the "
                f"{e.size} size ({size}) only")
    kept = "finished runs and runs still training (provisional)" if e.provisional else \
        "finished runs only"
    left = []
    if p.waiting:
        left.append(f"{_count(len(p.waiting), 'seed')} still training ({seed_ranges(p.waiting)})")
    if p.incomplete:
        left.append(f"{_count(len(p.incomplete), 'seed')} with a method's run missing, failed "
                    f"or cancelled ({seed_ranges(p.incomplete)})")
    if p.duplicates:
        left.append(f"{_count(p.duplicates, 'duplicate run')} of a seed counted once")
    tail = f" Not counted: {'; '.join(left)}." if left else ""
    return (f"{head}: {kept}, each seed with every method's run, and only runs with exactly "
            f"the experiment's settings (seeds aside).{tail}")


# ---------------------------------------------------------------------------------------------
# power (the one place the class verdict calls claims.power)
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _power_at(claim: str, size: str, seeds: int) -> float | None:
    effect = power.claim_scenario(claim, size, "paper")
    if effect is None or seeds < 1:
        return None
    rng = np.random.default_rng([seeds, power.hash_text(claim + size)])
    return float(power.simulate(claim, size, seeds, effect, POWER_SIMS, rng)[CONSISTENT])


def power_status(claim: str, size: str, seeds: int) -> PowerStatus:
    """The power ``seeds`` seeds reach for the paper's effect, and the seeds still to add for
    ``power.POWER`` (80%), with its sentence."""
    needed = power.seeds_needed(claim, size)
    aim = f"{power.POWER:.0%}"
    if needed == 0:
        return PowerStatus(seeds, None, 0, None, "The paper prints no number for this claim, so "
                           "the power to find its effect cannot be computed.")
    reached = _power_at(claim, size, seeds)
    if reached is None:
        return PowerStatus(seeds, None, needed, needed,
                           f"No seed yet: the paper's effect needs about {needed} seeds for "
                           f"{aim} power at the {size} size." if needed else
                           f"No seed yet: the paper's effect needs more than "
                           f"{power.SEARCH[-1]} seeds for {aim} power at the {size} size.")
    have = (f"With {_count(seeds, 'seed')} the class has {reached:.0%} power (simulated with the "
            f"seed spread recorded at the {size} size)")
    if reached >= power.POWER:
        return PowerStatus(seeds, reached, needed, 0,
                           f"{have} to find the paper's effect at the {size} size: {aim} "
                           "reached.")
    if needed is None:
        return PowerStatus(seeds, reached, None, None,
                           f"{have} for the paper's effect; more than {power.SEARCH[-1]} seeds "
                           f"would be needed for {aim} (the paper's gap is far below the seed "
                           f"spread at the {size} size).")
    more = max(needed - seeds, 1)
    return PowerStatus(seeds, reached, needed, more,
                       f"{have} for the paper's effect: {_count(more, 'more seed')} "
                       f"({seeds + more} in all) reach {aim}.")


# ---------------------------------------------------------------------------------------------
# the intervals as the seeds arrived, and the dots
# ---------------------------------------------------------------------------------------------


def _counts(n: int) -> list[int]:
    """The seed counts the interval chart shows: 2..n, thinned to ``MAX_HISTORY_POINTS``."""
    if n < 2:
        return []
    if n - 1 <= MAX_HISTORY_POINTS:
        return list(range(2, n + 1))
    picked = np.linspace(2, n, MAX_HISTORY_POINTS).round().astype(int)
    return sorted(set(int(k) for k in picked) | {n})


def _label(claim: str, part: Mapping[str, Any]) -> str:
    a, b = part.get("a", "A"), part.get("b", "B")
    if claim in STEP_TIME_PAIRS:  # a ratio of step times, not a difference
        return f"{a} / {b}"
    margin = float(part.get("margin") or 0.0)
    return f"{a} - {b}" + (f" (margin {margin:g})" if margin else "")


def _history(claim: str, size: str, seeds: Sequence[int],
             results: Sequence[RunResult]) -> tuple[History, ...]:
    judge = get_claim(claim)
    rows: dict[str, list[Step]] = {}
    meta: dict[str, tuple[str, str, str, float, str]] = {}
    for k in _counts(len(seeds)):
        first = set(seeds[:k])
        v = judge.verdict([r for r in results if r.seed in first], size)
        for part in v.parts:
            ci = part.get("ci95")
            if not part.get("decides", True) or not ci or part.get("effect") is None:
                continue
            name = str(part.get("comparison", ""))
            bound, holds = (1.0, "below") if claim in STEP_TIME_PAIRS else \
                (0.0 - float(part.get("margin") or 0.0), "above")
            meta[name] = (_label(claim, part), str(part.get("metric") or ""),
                          str(part.get("unit") or ""), bound, holds)
            rows.setdefault(name, []).append(
                Step(k, float(part["effect"]), float(ci[0]), float(ci[1])))
    return tuple(History(name, *meta[name], tuple(steps)) for name, steps in rows.items())


def _value(claim: str, records: Sequence[Any], epoch: int) -> float | None:
    """The run's value on the claim's main metric (as its verdict compares it)."""
    if claim == "sharper":
        return final_sharpness(records, 1)
    if claim == "gamma-shift":
        return gamma_shift(records, epoch or None)
    if claim in RULES and (metric := RULES[claim][0].metric) in ("robust-l2", "corruption"):
        return metric_reader(metric, epoch)(records)  # measured once, after the last epoch
    return test_acc_at(records, epoch) if epoch else None


METRIC_NAMES = {"sharper": "1-step adaptive m-sharpness", "gamma-shift": "shift of the mean gamma",
                **{c: step_time_metric(c) for c in STEP_TIME_PAIRS},
                **{c: f"{METRICS[p[0].metric].name} (%)" for c, p in RULES.items()
                   if p[0].metric in ("robust-l2", "corruption")}}


def _dots(v: Verdict, results: Sequence[RunResult], mine: set[int]) -> tuple[Dot, ...]:
    if v.claim in STEP_TIME_PAIRS:  # one dot per lockstep seed: its ratio of step times
        a, b = STEP_TIME_PAIRS[v.claim]
        seeds = v.evidence.get("seeds") or {}
        color = methods.method_color(split_key(a)[0])
        return tuple(Dot(f"{method_name(a)} / {method_name(b)}", int(s), float(x["ratio"]),
                         int(s) in mine, color)
                     for s, x in seeds.items() if isinstance(x, dict) and "ratio" in x)
    epoch = int(v.evidence.get("epoch") or 0)
    out = []
    for r in results:
        value = _value(v.claim, r.records, epoch)
        if value is not None and np.isfinite(value):
            out.append(Dot(method_name(r.method), r.seed, float(value), r.seed in mine,
                           methods.method_color(r.method)))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# the view model
# ---------------------------------------------------------------------------------------------


def _people(store: RunStore, runs: Sequence[StoredRun]) -> tuple[int, dict[int, frozenset[str]]]:
    """(how many owners trained the runs, seed -> every owner who requested its runs)."""
    owners: set[str] = set()
    people: dict[int, set[str]] = {}
    for run in runs:
        try:
            meta = store.read_meta(run.run_id)
        except (OSError, ValueError):
            continue
        owner = str(meta.get("owner") or "")
        owners.add(owner)
        people.setdefault(run.config.seed, set()).update({owner} | {
            str(r.get("owner")) for r in meta.get("requesters") or () if isinstance(r, dict)})
    return len(owners - {""}), {s: frozenset(who - {""}) for s, who in people.items()}


def for_viewer(cv: ClassVerdict, viewer: str | None) -> ClassVerdict:
    """``cv`` as ``viewer`` (an owner name; None: the projector) sees it: their seeds marked."""
    mine = {s for s, who in cv.people.items() if viewer and viewer in who}
    return replace(cv, mine=tuple(sorted(mine & set(cv.pool.seeds))),
                   dots=tuple(replace(d, mine=d.seed in mine) for d in cv.dots))


def class_verdict(store: RunStore, experiment: ClassExperiment, viewer: str | None = None,
                  index: Sequence[StoredRun] | None = None) -> ClassVerdict:
    """The class verdict of ``experiment`` on ``store``'s runs, seen by ``viewer`` (an owner
    name, or None: the projector). The pages compute it once for everyone and apply
    ``for_viewer`` per session."""
    p, got = pooled_verdict(store, experiment, index)
    students, people = _people(store, list(got.runs.values()))
    v = got.verdict
    results = results_of(store, got.runs) if v is not None else []
    history = _history(experiment.claim, experiment.size, p.seeds, results) if v else ()
    dots = _dots(v, results, set()) if v is not None else ()
    metric = METRIC_NAMES.get(experiment.claim, "final test accuracy (%)")
    cv = ClassVerdict(experiment, p, v, students, (), metric, dots, history,
                      power_status(experiment.claim, experiment.size, len(p.seeds)),
                      rests_on_text(p, students), people)
    return for_viewer(cv, viewer)
