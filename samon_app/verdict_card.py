"""The verdict card: what one comparison shows about the paper's claims, on one card.

A session ends on a conclusion a teacher can point at, read in ten seconds. The card reads the
group's own runs: every claim of ``samon_core.claims`` whose methods the group contains gets its
verdict (by the claim's own verdict function, as under Live's charts) told in one line
(``samon_app.claim_lines``: the numbers in words, the verdict, its reason), and details for an
expander, among them how these runs differ from the paper's, built from what is true of them
(seeds, epochs, data, model, lockstep), whatever the verdict (a consistent one from 6 epochs of
synthetic data has the same caveats), and the claim's own hint where it does not hold. The
headline only counts the verdicts: nothing here says what the runs ought to show, and with one
seed it says there is no verdict, only a direction (never "agree" or "disagree"; only the cost
claim, judged from blocks of step times rather than seeds, can have one). The claims a laptop
settled in the lab's own measurement come first (``samon_app.laptop``: robustness, cost), each
with the user's numbers on those very comparisons; the rest follow in the paper's order. Pure
(no streamlit, no torch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from samon_app import claim_lines, laptop
from samon_app.claim_lines import ClaimLine
from samon_app.progress import is_active
from samon_app.reader import RunData, RunInfo
from samon_app.verdicts import run_results, runs_size
from samon_core import paper
from samon_core.catalog.datasets import DATASETS
from samon_core.catalog.models import MODELS
from samon_core.claims import (
    CLAIMS,
    CONSISTENT,
    INCONCLUSIVE,
    NO_VERDICT,
    NOT_CONSISTENT,
    Claim,
    Verdict,
)
from samon_core.claims.cost import STEP_TIME_PAIRS
from samon_core.claims.results import method_name
from samon_core.runs.states import RunState

_PAPER = paper.TRAINING_SETUP


@dataclass(frozen=True)
class CardRow:
    """One claim on the card: its verdict on these runs, its line (``line.details`` for the
    expander), and how the runs differ from the paper's (for every verdict; empty only when
    records are missing); ``note``: what the lab measured at its CPU size."""

    claim: Claim
    verdict: Verdict
    why: str = ""
    note: str = ""
    line: ClaimLine | None = None
    laptop: str = ""  # the user's numbers on the comparisons a laptop settled (samon_app.laptop)


@dataclass(frozen=True)
class Card:
    """The card: a headline counting the verdicts, one row per claim the group can test."""

    headline: str
    rows: tuple[CardRow, ...]
    provisional: bool  # some run has not finished: its verdicts may still change


# ---------------------------------------------------------------------------------------------
# what is true of the runs (each a short phrase, or "" when the runs match the paper there)
# ---------------------------------------------------------------------------------------------


def _short(label: str) -> str:
    """A catalog label's name, lower-cased as a word in a sentence ('Tiny ResNet (~23k ...)' ->
    'tiny ResNet'; 'CIFAR-10 (...)' stays 'CIFAR-10')."""
    name = label.split(" (")[0]
    return name[0].lower() + name[1:] if name[1:2].islower() else name


def seeds_fact(infos: Sequence[RunInfo], verdict: Verdict) -> str:
    """'one seed' when a method of the claim has a single seed: no verdict then."""
    seeds: dict[str, set] = {}
    for info in infos:
        seeds.setdefault(info.key, set()).add(info.seed)
    return "one seed" if seeds and min(len(s) for s in seeds.values()) == 1 else ""


def epochs_fact(infos: Sequence[RunInfo], verdict: Verdict) -> str:
    """The runs' epochs beside the paper's, when fewer."""
    epochs = sorted({int(i.config.get("epochs") or 0) for i in infos})
    if not epochs or epochs[-1] >= _PAPER["epochs"]:
        return ""
    span = str(epochs[0]) if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}"
    return f"{span} epochs, not the paper's {_PAPER['epochs']}"


def _catalog_fact(infos: Sequence[RunInfo], field: str, catalog: Mapping) -> str:
    """The runs' ``field`` (dataset, model) beside the paper's, when it differs."""
    paper_value = _PAPER[field]
    names = sorted({str(i.config.get(field)) for i in infos} - {paper_value})
    if not names:
        return ""
    label = " and ".join(_short(catalog[n].label) if n in catalog else n for n in names)
    return f"{label}, not {_short(catalog[paper_value].label)}"


def data_fact(infos: Sequence[RunInfo], verdict: Verdict) -> str:
    return _catalog_fact(infos, "dataset", DATASETS)


def model_fact(infos: Sequence[RunInfo], verdict: Verdict) -> str:
    return _catalog_fact(infos, "model", MODELS)


def lockstep_fact(infos: Sequence[RunInfo], verdict: Verdict) -> str:
    """Step times not measured side by side (a step-time verdict left those seeds out)."""
    if not verdict.evidence.get("not_lockstep_seeds"):
        return ""
    a, b = (method_name(m) for m in STEP_TIME_PAIRS.get(verdict.claim, ("norm", "all")))
    return f"{a} and {b} not trained in lockstep, so their step times are not comparable"


Fact = Callable[[Sequence[RunInfo], Verdict], str]
# What can make a claim's outcome differ from the paper's: the cost of a step (the claims judged
# from step times) does not depend on epochs or data, but on whether the runs were timed side by
# side.
STEP_TIME_FACTS: tuple[Fact, ...] = (seeds_fact, lockstep_fact, model_fact)
DEFAULT_FACTS: tuple[Fact, ...] = (seeds_fact, epochs_fact, data_fact, model_fact)


def facts_of(claim: Claim) -> tuple[Fact, ...]:
    """The facts that can make ``claim``'s outcome differ from the paper's."""
    return STEP_TIME_FACTS if claim_lines.from_step_times(claim.id) else DEFAULT_FACTS


def why_line(claim: Claim, verdict: Verdict, infos: Sequence[RunInfo]) -> str:
    """How these runs differ from the paper's (the caveats of every verdict: a consistent one
    from a tiny net on synthetic data is no less caveated), and the claim's hint where it is not
    consistent (an inconclusive verdict already says what would settle it, hint included).
    Nothing when records are missing: then the records, not the paper's setup, are missing."""
    if verdict.evidence.get("missing"):
        return ""
    runs = [i for i in infos if i.key in claim.methods]
    facts = [f for fact in facts_of(claim) if (f := fact(runs, verdict))]
    parts = []
    if facts:
        lead = ("Caveats, as these runs differ from the paper's" if verdict.verdict == CONSISTENT
                else "Why your runs may differ from the paper")
        parts.append(f"{lead}: {'; '.join(facts)}.")
    if claim.hint and verdict.verdict == NOT_CONSISTENT:
        parts.append(claim.hint)
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# the card
# ---------------------------------------------------------------------------------------------


def card_claims(methods: Iterable[str]) -> list[Claim]:
    """The claims whose methods are all among ``methods`` (method family keys), in the paper's
    order."""
    have = set(methods)
    return [c for c in CLAIMS if set(c.methods) <= have]


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _unfinished(infos: Sequence[RunInfo]) -> str:
    """'2 of 3 runs are still training' (and those that ended without finishing), or ''."""
    training = sum(is_active(i.state) for i in infos)
    ended = sorted({i.state for i in infos
                    if i.state != RunState.FINISHED and not is_active(i.state)})
    n_ended = sum(i.state in ended for i in infos)
    parts = []
    if training:
        parts.append(f"{training} of {len(infos)} runs {_plural(training, 'is', 'are')} still "
                     "training")
    if n_ended:
        parts.append(f"{n_ended} {_plural(n_ended, 'run', 'runs')} did not finish "
                     f"({', '.join(ended)})")
    return " and ".join(parts)


def _count_text(verdicts: Sequence[Verdict]) -> str:
    """'consistent with the paper on 2 of 4 claims (1 inconclusive, 1 not consistent)' (no
    verdict told apart, first: ``_direction_text``)."""
    count = {v: sum(x.verdict == v for x in verdicts) for v in
             (CONSISTENT, INCONCLUSIVE, NOT_CONSISTENT)}
    judged = sum(count.values())
    on = f"{count[CONSISTENT]} of {judged} {_plural(judged, 'claim', 'claims')}"
    if count[CONSISTENT] == judged and judged > 1:
        on = f"all {judged} claims"
    rest = [f"{count[v]} {v}" for v in (INCONCLUSIVE, NOT_CONSISTENT) if count[v]]
    return f"consistent with the paper on {on}" + (f" ({', '.join(rest)})" if rest else "")


def _direction_text(rows: Sequence[CardRow]) -> str:
    """With one seed: '3 of 4 claims show a direction, not a verdict (one seed); cost per step,
    judged from its step times: consistent with the paper' (each claim that has a verdict
    named, with what it was judged from, so "consistent" never seems to come from one seed)."""
    n = len(rows)
    none = sum(r.verdict.verdict == NO_VERDICT for r in rows)
    text = (f"{none} of {n} {_plural(n, 'claim', 'claims')} "
            f"{_plural(none, 'shows', 'show')} a direction, not a verdict (one seed)")
    judged = [r for r in rows if r.verdict.verdict != NO_VERDICT]
    for r in judged:
        topic = claim_lines.topic(r.claim.id).lower()
        basis = ", judged from its step times" if claim_lines.from_step_times(r.claim.id) else ""
        text += f"; {topic}{basis}: {claim_lines.WORD[r.verdict.verdict].lower()}"
    return text


def headline(rows: Sequence[CardRow], infos: Sequence[RunInfo]) -> str:
    """'Your 9 runs: consistent with the paper on 2 of 4 claims (1 inconclusive, 1 not
    consistent).'; with one seed '3 of 4 claims show a direction, not a verdict (one seed); ...'
    and never a count of agreements; 'So far, 2 of 3 runs are still training.' before it while
    runs train."""
    n_runs = len(infos)
    runs = f"Your {n_runs} {_plural(n_runs, 'run', 'runs')}"
    verdicts = [r.verdict for r in rows]
    if not verdicts:
        text = (f"{runs}: none of the paper's claims compares just these methods; the Claims "
                "page lists the runs each one needs.")
    elif any(v.verdict == NO_VERDICT for v in verdicts):
        text = f"{runs}: {_direction_text(rows)}."
    else:
        text = f"{runs}: {_count_text(verdicts)}."
    if verdicts and seeds_fact(infos, verdicts[0]):
        text += " Run 3 or more seeds for a verdict."
    unfinished = _unfinished(infos)
    if not unfinished:
        return text
    lead = "So far, " if any(is_active(i.state) for i in infos) else ""
    return f"{lead}{unfinished}. {text}"


def verdict_card(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> Card:
    """The card of the group ``infos`` (with their records ``data``)."""
    results = run_results(infos, data)
    size = runs_size(infos)
    training = any(is_active(i.state) for i in infos)
    rows = []
    claims = {c.id: c for c in card_claims(i.key for i in infos)}
    for claim in (claims[c] for c in laptop.order(list(claims))):  # what a laptop shows first
        if not all(claim.recorded_by(i.config, data[i.run_id].records if i.run_id in data else ())
                   for i in infos if i.key in claim.methods):
            continue  # runs that never measure what it reads (robustness off): not on the card
        verdict = claim.verdict(results, size)
        why = why_line(claim, verdict, infos)
        note = claim.cpu_note if why else ""
        line = claim_lines.claim_line(claim.id, verdict, results, training,
                                      claim_lines.details(verdict, why, note, claim.statement))
        rows.append(CardRow(claim, verdict, why, note, line,
                            laptop.card_text(claim.id, verdict.parts)))
    provisional = any(i.state != RunState.FINISHED for i in infos)
    return Card(headline(rows, infos), tuple(rows), provisional)
