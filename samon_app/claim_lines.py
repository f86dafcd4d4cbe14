"""A claim's verdict on the user's runs in one line a student reads in seconds, and its details.

The line is: the claim in a word or two, the runs' numbers in words ("SGD ended 2.6 points ahead
of SAM-ON"; "SAM-ON's gammas ended higher than SGD's, 0.998 vs 0.951"), the verdict and its
reason in one short clause (at most ``MAX_WORDS`` words in all). Everything else (the rule, each
comparison's test and interval, how often noise alone gives the verdict, what would settle it,
how the runs differ from the paper's) is ``details``, for an expander.

Nothing here judges: the verdict, its status per comparison and the effect come from the
claim's own ``Verdict`` (``samon_core.claims``). The line describes the comparison that decided
it (a refuted one; else one still open; else the one that cleared its boundary by the least),
with words that follow the numbers printed beside them:

* the method named first is the one with the higher value ("ahead of", "sharper than", "higher
  than", never "behind" / "flatter" / "lower"), so a reader never has to flip a sign;
* values are printed with as many decimals as it takes for the printed numbers to differ in the
  same direction as the values ("0.0081 vs 0.0079", never "0.008 vs 0.008"), and a gap is never
  printed as 0 (``stats.fmt_side``);
* "the paper's opposite" is said exactly when the gap points against the claim (beyond the
  margin of an "at least as good" comparison).

Pure: no streamlit, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from samon_core.claims import CONSISTENT, INCONCLUSIVE, NO_VERDICT, NOT_CONSISTENT, Verdict, stats
from samon_core.claims.cost import STEP_TIME_PAIRS
from samon_core.claims.results import RunResult, gamma_means, method_name
from samon_core.claims.rules import METRICS, RULES, PartSpec
from samon_core.claims.verdicts import gather

MAX_WORDS = 25  # the line before its expander: read in a few seconds

# The claim in a word or two (the line's first words; the Claims page has the full statement).
TOPIC = {"accuracy": "Accuracy", "no-norm": "No-norm", "sharper": "Sharpness",
         "sparsity": "Sparsity", "gamma-shift": "Gammas", "cost": "Cost",
         "robustness": "Robustness", "corruption": "Corruptions", "vit-adamw": "ViT with AdamW",
         "vit-lion": "ViT with Lion", "variants": "SAM variants", "blocks": "Selected blocks"}


def from_step_times(claim: str) -> bool:
    """Whether ``claim`` is judged from lockstep step times (cost, blocks: ``cost.
    STEP_TIME_PAIRS``), not from seeds (one seed can then have a verdict)."""
    return claim in STEP_TIME_PAIRS


def topic(claim: str) -> str:
    """The claim in a word or two (its id where ``TOPIC`` has none)."""
    return TOPIC.get(claim) or claim.replace("-", " ").capitalize()


# Said after the numbers of a part that is not on the claim's main metric (the sharper claim's
# accuracy part, its 20-step probe).
QUALIFIER = {"accuracy": " in accuracy", "sharpness@20": " on the 20-step probe"}
# The verdict's word on the line.
WORD = {CONSISTENT: "Consistent with the paper", NOT_CONSISTENT: "Not consistent with the paper",
        INCONCLUSIVE: "Inconclusive", NO_VERDICT: "No verdict"}
SO_FAR = "so far (runs still training)"
OPPOSITE = "the paper's opposite"
ONE_SEED = "one seed shows a direction, not a result"

# Where the noise a verdict is judged against comes from.
SEED_NOISE, STEP_NOISE = "the seed-to-seed noise", "the step-time noise"
# Per metric: the word for "A's value is higher", and how a value is named on the line.
# Metrics in points of accuracy (clean, under attack, under corruptions): told as a gap in points.
_POINTS = frozenset(k for k, m in METRICS.items() if m.unit == "points")
_UP = {"accuracy": "ahead of", "sharpness@1": "sharper than", "sharpness@20": "sharper than",
       "gamma": "higher than", "beta": "higher than"}


def _possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


# ---------------------------------------------------------------------------------------------
# numbers in words (pure functions of the numbers they print: the property tests call them)
# ---------------------------------------------------------------------------------------------


def fmt_pair(a: float, b: float, digits: int) -> tuple[str, str]:
    """``a`` and ``b`` with at least ``digits`` decimals and as many more as it takes for the
    printed numbers to compare as the values do (equal only when they are equal)."""
    for d in range(digits, digits + 10):
        sa, sb = f"{a:.{d}f}", f"{b:.{d}f}"
        fa, fb = float(sa), float(sb)
        if (fa > fb) == (a > b) and (fa < fb) == (a < b):
            return sa, sb
    return repr(a), repr(b)


@dataclass(frozen=True)
class Phrase:
    """The numbers of one comparison in words, and what the words claim (for the tests):
    ``higher`` is named first with the relation ``relation``; ``shown`` the printed values of
    (first, second), or ``gap`` the printed distance; ``against`` whether it runs against the
    paper (the line then says so)."""

    text: str
    first: str = ""
    second: str = ""
    relation: str = ""  # "ahead of", "sharper than", "higher than", "less", "more", "level"
    shown: tuple[str, str] | None = None
    gap: str = ""
    against: bool = False


def gap_phrase(a: str, b: str, effect: float, margin: float = 0.0,
               metric: str = "accuracy") -> Phrase:
    """'SGD ended 2.6 points ahead of SAM-ON' from ``effect`` = A - B (accuracy in points; other
    metrics: 'SAM-all ended sharper than SAM-ON by 0.0002', "SAM-ON's mean gamma ended 0.047
    higher, relative to its start, than SGD's"); the claim is that A is higher (by more than
    -``margin``)."""
    if not math.isfinite(effect):
        return Phrase(f"{a} and {b}: nothing to compare yet")
    if effect == 0:
        return Phrase(f"{a} and {b} ended level", a, b, "level")
    first, second = (a, b) if effect > 0 else (b, a)
    gap = stats.fmt_side(abs(effect), 0.0, METRICS[metric].digits)
    against = effect < -margin
    if metric in _POINTS:
        text = f"{first} ended {gap} points ahead of {second}"
        if margin and -margin <= effect < 0:
            text += f", within the {margin:g}-point margin"
        return Phrase(text, first, second, "ahead of", gap=gap, against=against)
    if metric in ("gamma", "beta"):  # "rose" would be wrong where every mean fell
        return Phrase(f"{_possessive(first)} mean {metric} ended {gap} higher, relative to its "
                      f"start, than {_possessive(second)}", first, second, "higher than",
                      gap=gap, against=against)
    up = _UP.get(metric, "higher than")
    return Phrase(f"{first} ended {up} {second} by {gap}", first, second, up,
                  gap=gap, against=against)


def values_phrase(metric: str, a: str, b: str, mean_a: float, mean_b: float) -> Phrase:
    """Sharpness and gammas: 'SAM-all ended sharper than SAM-ON, 0.0081 vs 0.0079', "SAM-ON's
    gammas ended higher than SGD's, 0.998 vs 0.951" (the higher named first, the final values);
    the claim is that A is higher."""
    if not (math.isfinite(mean_a) and math.isfinite(mean_b)):
        return Phrase(f"{a} and {b}: nothing to compare yet")
    m = METRICS[metric]
    hi, lo = (a, b) if mean_a >= mean_b else (b, a)
    shown = fmt_pair(max(mean_a, mean_b), min(mean_a, mean_b), m.digits)
    if mean_a == mean_b:
        return Phrase(f"{a} and {b} ended level, {shown[0]}", a, b, "level", shown)
    if metric in ("gamma", "beta"):
        param = "betas" if metric == "beta" else "gammas"
        text = (f"{_possessive(hi)} {param} ended higher than {_possessive(lo)}, "
                f"{shown[0]} vs {shown[1]}")
        rel = "higher than"
    else:
        rel = _UP.get(metric, "higher than")
        text = f"{hi} ended {rel} {lo}, {shown[0]} vs {shown[1]}"
    return Phrase(text, hi, lo, rel, shown, against=mean_a < mean_b)


def cost_phrase(ratio: float, a: str = "SAM-ON", b: str = "SAM-all") -> Phrase:
    """"SAM-ON's steps took 15% less time than SAM-all's (0.85x)" from ``ratio`` = A's mean step
    time / B's; the claim is that it is below 1."""
    if not math.isfinite(ratio):
        return Phrase("no step times to compare yet")
    shown = stats.fmt_side(ratio, 1.0, 2)
    if ratio == 1:
        return Phrase(f"{_possessive(a)} steps took as long as {_possessive(b)} ({shown}x)", a,
                      b, "level", (shown, "1"))
    what = "less" if ratio < 1 else "more"
    share = stats.fmt_side(abs(1 - ratio) * 100, 0.0, 0)
    return Phrase(f"{_possessive(a)} steps took {share}% {what} time than {_possessive(b)} "
                  f"({shown}x)", a, b, what, (shown, "1"), gap=share, against=ratio > 1)


# ---------------------------------------------------------------------------------------------
# which comparison the line tells, and its numbers
# ---------------------------------------------------------------------------------------------


def _specs(claim: str) -> dict[tuple[str, str, str], PartSpec]:
    """A claim's parts by how a verdict's part names them (metric name, A, B)."""
    return {(s.spec.name, method_name(s.a), method_name(s.b)): s for s in RULES[claim]}


def _severity(part: Mapping[str, Any]) -> int:
    """Which part to tell: a refuted one, then one against the paper, then one open, then one
    that holds."""
    effect = part.get("effect")
    against = effect is not None and effect < -float(part.get("margin") or 0.0)
    return {stats.REFUTED: 0}.get(part["status"], 3 if part["status"] == stats.HOLDS
                                  else 1 if against else 2)


def focus(claim: str, verdict: Verdict) -> tuple[Mapping[str, Any], PartSpec] | None:
    """The deciding part the line tells (module doc), and its rule; None without parts."""
    specs = _specs(claim)
    parts = [(p, specs[(p["metric"], p["a"], p["b"])]) for p in verdict.parts
             if p.get("decides") and (p["metric"], p["a"], p["b"]) in specs]
    if not parts:
        return None
    main = parts[0][1].metric

    def rank(item):
        p, s = item
        margin = float(p.get("margin") or 0.0)
        effect = p.get("effect")
        room = math.inf if effect is None else effect + margin
        return (_severity(p), s.metric != main, room)

    return min(parts, key=rank)


def _seed_means(values: Mapping, spec: PartSpec, part: Mapping[str, Any]) -> tuple[float, float]:
    """A's and B's mean over the seeds the part compared (its paired seeds, else all)."""
    va, vb = values[(spec.metric, spec.a)].by_seed, values[(spec.metric, spec.b)].by_seed
    seeds = part.get("paired_seeds") or []
    sa = seeds if seeds else sorted(va)
    sb = seeds if seeds else sorted(vb)
    if not sa or not sb:
        return math.nan, math.nan
    return (sum(va[s] for s in sa) / len(sa), sum(vb[s] for s in sb) / len(sb))


def _end_means(results: Sequence[RunResult], spec: PartSpec, epoch: int,
               part: Mapping[str, Any]) -> tuple[float, float]:
    """The final mean gamma (or beta) of A and B over the part's seeds, at ``epoch``."""
    seeds = set(part.get("paired_seeds") or [])
    out = []
    for method in (spec.a, spec.b):
        ends = []
        for r in results:
            if r.method != method or (seeds and r.seed not in seeds):
                continue
            recs = [x for x in r.records if x.get("kind") != "norm_stats"
                    or (x.get("epoch") or 0) <= epoch]
            means = gamma_means(recs, spec.metric)
            if means is not None:
                ends.append(means[1])
        out.append(sum(ends) / len(ends) if ends else math.nan)
    return out[0], out[1]


def _same_sign(x: float, effect: float) -> bool:
    return (x > 0) == (effect > 0) and (x < 0) == (effect < 0)


def part_phrase(spec: PartSpec, part: Mapping[str, Any], values: Mapping,
                results: Sequence[RunResult], epoch: int) -> Phrase:
    """The numbers of one part in words (module doc), from the part's own effect; the values
    printed beside it are the means over the part's seeds, and are used only where their
    difference has the effect's sign."""
    a, b = method_name(spec.a), method_name(spec.b)
    effect = part.get("effect")
    effect = math.nan if effect is None else float(effect)
    if spec.metric in _POINTS or not math.isfinite(effect):
        return gap_phrase(a, b, effect, spec.margin, spec.metric)
    if spec.metric not in _UP:  # a metric with no words of its own: its gap, by name
        return gap_phrase(a, b, effect, spec.margin, spec.metric)
    if spec.metric in ("gamma", "beta"):
        ends = _end_means(results, spec, epoch, part)
        if _same_sign(ends[0] - ends[1], effect):
            return values_phrase(spec.metric, a, b, *ends)
        return gap_phrase(a, b, effect, spec.margin, spec.metric)  # starts differ: the shifts
    means = _seed_means(values, spec, part)
    if _same_sign(means[0] - means[1], effect):
        return values_phrase(spec.metric, a, b, *means)
    return gap_phrase(a, b, effect, spec.margin, spec.metric)  # means a rounding error apart


# ---------------------------------------------------------------------------------------------
# the reason, and the line
# ---------------------------------------------------------------------------------------------


STRICTER = "short of the stricter level needed to refute"


def reason(verdict: str, part: Mapping[str, Any] | None, held: int, parts: int,
           noise: str) -> str:
    """The verdict's reason in one short clause, from the part the line tells (its status and
    95% interval) and how many of the claim's ``parts`` hold."""
    status = part["status"] if part else stats.UNTESTED
    if verdict == NO_VERDICT:
        return ONE_SEED if noise == SEED_NOISE else "too few step windows for an interval"
    if verdict == CONSISTENT:
        return f"larger than {noise}" if parts == 1 else \
            f"all {parts} comparisons are clear of {noise}"
    if verdict == NOT_CONSISTENT:
        return f"larger than {noise}"
    if status == stats.UNTESTED:
        return "a method has one seed: a direction, not a result"
    ci = part.get("ci95") if part and noise == SEED_NOISE else None  # cost: a ratio's interval
    if ci and status == stats.OPEN and ci[1] < -float(part.get("margin") or 0.0):
        return STRICTER  # against the paper at 95%, not at the refutation's Bonferroni level
    if parts == 1:
        return f"within {noise}"
    return f"within {noise} ({held} of {parts} comparisons hold)"


@dataclass(frozen=True)
class ClaimLine:
    """One claim's line (module doc) and its details."""

    claim: str
    verdict: str
    topic: str
    numbers: Phrase
    word: str  # the verdict's word, with "so far" while runs train
    why: str  # the reason clause
    details: tuple[str, ...] = field(default=())  # markdown paragraphs for the expander
    part: Mapping[str, Any] | None = None  # the verdict's part the numbers tell (None: none)

    def text(self) -> str:
        """The line as plain text."""
        return f"{self.topic}: {self.numbers.text}{self._opposite()}. {self.word}: {self.why}."

    def markdown(self) -> str:
        """The line with the topic and the verdict in bold (no icon)."""
        return (f"**{self.topic}:** {self.numbers.text}{self._opposite()}. "
                f"**{self.word}:** {self.why}.")

    def _opposite(self) -> str:
        return f", {OPPOSITE}" if self.numbers.against else ""


def word_count(text: str) -> int:
    """Words of a line as a reader counts them (numbers and names are words)."""
    return len([w for w in text.replace("**", "").split() if any(c.isalnum() for c in w)])


def _word(verdict: str, training: bool) -> str:
    return f"{WORD[verdict]} {SO_FAR}" if training else WORD[verdict]


def _missing_line(claim: str, v: Verdict, training: bool) -> ClaimLine:
    names = list(dict.fromkeys(v.evidence.get("missing") or ()))
    who = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    what = f"not measured yet for {who}" if training else f"not recorded for {who}"
    return ClaimLine(claim, v.verdict, topic(claim), Phrase(what), _word(v.verdict, training),
                     "nothing to compare yet" if training else "nothing to compare")


def _step_time_line(claim: str, v: Verdict, training: bool) -> ClaimLine:
    """The line of a claim judged from lockstep step times (cost, blocks: ``claims.cost``)."""
    if not v.parts:
        a, b = (str(v.evidence.get("metric") or "step time A / B").removeprefix("step time ")
                .split(" / ", 1) + ["B"])[:2]
        unfair = bool(v.evidence.get("not_lockstep_seeds"))
        phrase = Phrase(f"{a} and {b} were not timed side by side" if unfair
                        else f"no step times of {a} and {b}" + (" yet" if training else ""))
        why = "step times under different loads do not compare" if unfair else \
            "nothing to compare yet" if training else "nothing to compare"
        return ClaimLine(claim, v.verdict, topic(claim), phrase, _word(v.verdict, training), why)
    part = v.parts[0]
    phrase = cost_phrase(float(part["effect"]), str(part["a"]), str(part["b"]))
    return ClaimLine(claim, v.verdict, topic(claim), phrase, _word(v.verdict, training),
                     reason(v.verdict, part, int(part["status"] == stats.HOLDS), 1,
                            STEP_NOISE), part=part)


def claim_line(claim: str, v: Verdict, results: Sequence[RunResult], training: bool = False,
               details: Sequence[str] = ()) -> ClaimLine:
    """The line of ``claim``'s verdict ``v`` on ``results`` (the runs it was judged on);
    ``training``: some of them still train ("so far"); ``details`` for the expander."""
    if from_step_times(claim):
        line = _step_time_line(claim, v, training)
    elif v.evidence.get("missing") or not v.parts:
        line = _missing_line(claim, v, training)
    else:
        picked = focus(claim, v)
        if picked is None:
            line = _missing_line(claim, v, training)
        else:
            part, spec = picked
            values, epoch = gather(results, RULES[claim])
            deciding = [p for p in v.parts if p.get("decides")]
            held = sum(p["status"] == stats.HOLDS for p in deciding)
            phrase = part_phrase(spec, part, values, results, epoch)
            if spec.metric != RULES[claim][0].metric and phrase.first:
                phrase = replace(phrase, text=phrase.text + QUALIFIER.get(spec.metric, ""))
            line = ClaimLine(claim, v.verdict, topic(claim), phrase,
                             _word(v.verdict, training),
                             reason(v.verdict, part, held, len(deciding), SEED_NOISE),
                             part=part)
    return replace(line, details=tuple(details))


# ---------------------------------------------------------------------------------------------
# the details (behind the expander)
# ---------------------------------------------------------------------------------------------


def _comparison(p: Mapping[str, Any]) -> str:
    """What a part tests, once ('SAM-ON at least as good as SAM-all in final test accuracy,
    within 0.5 points (non-inferiority)')."""
    if p.get("kind") == stats.NON_INFERIORITY:
        unit = f" {p['unit']}" if p.get("unit") else ""
        return (f"{p['a']} at least as good as {p['b']} in {p['metric']}, within "
                f"{float(p['margin']):g}{unit} (non-inferiority)")
    if p.get("kind") == stats.SUPERIORITY and p.get("metric") in {m.name for m in METRICS.values()}:
        return f"{p['a']} above {p['b']} in {p['metric']} (superiority)"
    return str(p.get("comparison") or "")


def details(v: Verdict, caveats: str = "", note: str = "", statement: str = "") -> tuple[str, ...]:
    """Markdown paragraphs: the claim's ``statement``, the verdict's own lead (with how often
    noise alone gives it), each comparison (its test, interval and status, and the paper's
    numbers), what would settle it, the rule, how the runs differ from the paper's
    (``caveats``) and what the lab measured (``note``)."""
    first = v.parts[0]["sentence"] if v.parts else ""
    lead = v.sentence.split(first)[0].strip() if first and first in v.sentence else v.sentence
    out = ([f"**The claim:** {statement}"] if statement else []) + [lead]
    for p in v.parts:
        role = "" if p.get("decides", True) else " (shown for information, does not decide)"
        paper = f" Paper: {p['paper']}." if p.get("paper") else ""
        out.append(f"- **{_comparison(p)}**{role}: {p['sentence']}{paper}")
    out += [f"{n[0].upper()}{n[1:]}." for n in v.evidence.get("not_recorded") or ()]
    if v.settle:
        out.append(f"**What would settle it:** {v.settle}")
    rule = v.evidence.get("rule") or (v.parts[0].get("test") if v.parts else "")
    if rule:
        out.append(f"**The rule:** {rule}.")
    if caveats:
        out.append(caveats)  # it says what it is ('Why your runs may differ ...: ...')
    if note:
        out.append(f"**What the lab measured at its CPU size:** {note}")
    return tuple(out)
