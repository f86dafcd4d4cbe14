"""What a laptop showed, for Home's lead and the order of Live's verdict card: the lab's measured
verdicts at the cpu size (``samon_core.claims.laptop``) told comparison by comparison.

Every sentence is built from the recorded numbers: the direction from the effect's sign, the
interval printed so rounding never moves it across the claim's bound (``stats.fmt_interval``),
the status word from the interval (the record refuses a status its interval contradicts), the
claims listed as open or unmeasured from the record and the claims' ``cpu_shows``. Nothing here
says what a student's own runs will show: the card judges those. No streamlit, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from samon_app.claim_lines import cost_phrase, gap_phrase, topic
from samon_core.claims import CLAIMS, stats
from samon_core.claims.laptop import BadLaptopRecord, LaptopPart, LaptopRecord, LaptopVerdict, load
from samon_core.claims.results import method_name
from samon_core.claims.rules import METRICS
from samon_core.claims.runsets import SIZE_TEXT

STATUS_WORD = {stats.HOLDS: "holds", stats.REFUTED: "refuted"}
TITLE = "What a laptop shows"


@dataclass(frozen=True)
class Finding:
    """One claim with comparisons the measurement settled: ``text`` the markdown line (topic,
    what was compared, the seeds, each settled comparison, what is still open); ``parts`` the
    settled parts in the order told."""

    claim: str
    text: str
    parts: tuple[LaptopPart, ...]
    held: int  # comparisons that hold
    refuted: int


@dataclass(frozen=True)
class Lead:
    """Home's lead: the findings (those with a comparison that holds first, each group clearest
    first), the claims left open and those not measured (topics), where and how it was
    measured, or the record's problem."""

    findings: tuple[Finding, ...] = ()
    open_claims: tuple[str, ...] = ()
    unmeasured: tuple[str, ...] = ()
    basis: str = ""
    problem: str = ""


def comparison(p: LaptopPart, metric: bool = False) -> str:
    """What the part claims, in words: 'SAM-ON sharper than SGD', 'SAM-ON at least as good as
    SAM-all', "SAM-ON's step cheaper than SAM-all's" (``metric``: 'in final test accuracy'
    added)."""
    a, b = method_name(p.a), method_name(p.b)
    if p.step_time:
        return f"{a}'s step cheaper than {b}'s"
    m = METRICS[p.metric]
    what = f" in {m.name}" if metric else ""
    if p.kind == stats.NON_INFERIORITY:
        return f"{a} at least as good as {b}{what}"
    return f"{a} {m.up.removeprefix('ended ')} {b}{what}"


def part_text(p: LaptopPart) -> str:
    """'SAM-all ended 51.0 points ahead of SGD (95% interval 47.4 to 54.5 points): holds' (the
    interval of the first named minus the second), "SAM-ON's steps took 13% less time than
    SAM-all's (0.87x; 95% interval of the ratio 0.85 to 0.90): holds"."""
    a, b = method_name(p.a), method_name(p.b)
    word = STATUS_WORD.get(p.status, "open")
    if p.step_time:
        phrase = cost_phrase(p.effect, a, b)
        ratio = phrase.shown[0] if phrase.shown else ""
        lo, hi = stats.fmt_interval(p.low, p.high, 1.0, 2)
        return (f"{phrase.text.removesuffix(f' ({ratio}x)')} ({ratio}x; 95% interval of the "
                f"ratio {lo} to {hi}): {word}")
    m = METRICS[p.metric]
    phrase = gap_phrase(a, b, p.effect, p.margin, p.metric)
    if p.effect >= 0:  # A named first: the interval of A - B
        lo, hi = stats.fmt_interval(p.low, p.high, -p.margin, m.digits)
    else:  # B named first: the interval of B - A
        lo, hi = stats.fmt_interval(-p.high, -p.low, p.margin, m.digits)
    unit = f" {m.unit}" if m.unit else ""
    if p.status == stats.REFUTED:  # say what is refuted: the claim, not the sentence's order
        word = f"'{comparison(p)}' refuted"
    return f"{phrase.text} (95% interval {lo} to {hi}{unit}): {word}"


def _what(v: LaptopVerdict, parts: Sequence[LaptopPart]) -> str:
    metrics = dict.fromkeys("step time " + " / ".join(method_name(x) for x in (p.a, p.b))
                            if p.step_time else METRICS[p.metric].name for p in parts)
    seeds = len(v.seeds)
    lockstep = "lockstep " if any(p.step_time for p in parts) else ""
    return f"{' and '.join(metrics)}, {seeds} {lockstep}seeds"


def finding(claim_id: str, v: LaptopVerdict) -> Finding:
    """The markdown line of a claim with settled comparisons (module doc)."""
    settled = v.decided
    told = "; ".join(part_text(p) for p in settled)
    metrics = {p.metric for p in settled}
    open_parts = [comparison(p, p.metric not in metrics) for p in v.parts if not p.decided]
    rest = f" Still open: {', '.join(open_parts)}." if open_parts else ""
    text = f"**{topic(claim_id)}** ({_what(v, settled)}): {told}.{rest}"
    held = sum(p.status == stats.HOLDS for p in settled)
    return Finding(claim_id, text, settled, held, len(settled) - held)


def basis_text(record: LaptopRecord) -> str:
    """Where, on what and by which rule the record was measured."""
    size = SIZE_TEXT[record.size].split(" (")[0]
    return (f"Measured by the lab on {record.measured} on {record.machine}, at the claims' "
            f"{record.size} size ({size}): {record.runs}. Each comparison is judged by the "
            f"claims' rule (95% interval): noise alone settles one at most "
            f"{stats.ALPHA_SIDE:.1%} of the time.")


def lead(record: LaptopRecord | None = None) -> Lead:
    """Home's lead from ``record`` (the lab's, by default); a record that fails its checks
    gives a lead with only its ``problem``."""
    if record is None:
        try:
            record = load()
        except BadLaptopRecord as exc:
            return Lead(problem=str(exc))
    shown = record.shown()
    findings = tuple(sorted((finding(c, v) for c, v in shown), key=lambda f: f.held == 0))
    settled = {c for c, _ in shown}
    open_claims = tuple(topic(c.id) for c in CLAIMS if c.id not in settled and (
        c.id in record.claims or c.cpu_shows is False))
    unmeasured = tuple(topic(c.id) for c in CLAIMS
                       if c.id not in record.claims and c.cpu_shows is None)
    return Lead(findings, open_claims, unmeasured, basis_text(record))


def order(claim_ids: Sequence[str], record: LaptopRecord | None = None) -> list[str]:
    """``claim_ids`` with the claims a laptop settled first (``lead``'s order: those with a
    comparison that holds, clearest first), the rest in their order: Live's card leads with what
    a laptop can show."""
    try:
        shown = [f.claim for f in lead(record or load()).findings]
    except BadLaptopRecord:
        shown = []
    first = [c for c in shown if c in claim_ids]
    return first + [c for c in claim_ids if c not in first]


def held_on_laptop(claim_id: str, record: LaptopRecord | None = None) -> list[LaptopPart]:
    """The comparisons of ``claim_id`` that hold in the lab's record (none without one)."""
    try:
        v = (record or load()).claims.get(claim_id)
    except BadLaptopRecord:
        return []
    return [p for p in v.parts if p.status == stats.HOLDS] if v else []


def same_part(part: Mapping[str, Any], p: LaptopPart) -> bool:
    """Whether a verdict's part (``Verdict.parts``) compares what the laptop part compares."""
    if (part.get("a"), part.get("b")) != (method_name(p.a), method_name(p.b)):
        return False
    return p.step_time or part.get("metric") == METRICS[p.metric].name


def card_text(claim_id: str, verdict_parts: Sequence[Mapping[str, Any]],
              record: LaptopRecord | None = None) -> str:
    """For Live's card: the user's own numbers on the comparisons of ``claim_id`` that hold in
    the lab's laptop record (their parts' sentences, by the claim's rule on the user's runs),
    or '' when none does."""
    held = held_on_laptop(claim_id, record)
    mine = [str(p["sentence"]) for p in verdict_parts
            if p.get("sentence") and any(same_part(p, lp) for lp in held)]
    if not mine:
        return ""
    seeds = len((record or load()).claims[claim_id].seeds)
    what = ", ".join(comparison(lp) for lp in held)
    return (f"On a laptop the lab's {seeds} seeds settled {what} ('{TITLE}' on Home). Your "
            f"runs on {'it' if len(held) == 1 else 'them'}: {' '.join(mine)}")
