"""The verdict card's sentence checker: what is wrong with a card line against its verdict.

``check_line_text`` reads a line as a student sees it (plain text, also the browser test's
rendered card), ``check_line`` the view model against its verdict's own numbers, ``numbers_ok``
the comparing words ("ahead", "sharper", "higher", "less") against the numbers beside them.
``test_card_sentences`` shows that it catches contradictions.
"""

from __future__ import annotations

import re

from samon_app.claim_lines import (
    MAX_WORDS,
    OPPOSITE,
    SO_FAR,
    WORD,
    ClaimLine,
    from_step_times,
    word_count,
)
from samon_core.claims import CONSISTENT, INCONCLUSIVE, NO_VERDICT, NOT_CONSISTENT, Verdict

NUM = r"[-+]?\d+(?:\.\d+)?"
# Material icon names, which the browser renders as text before a card row.
ICONS = ("check_circle", "cancel", "help", "explore")
VERDICT_RE = re.compile(
    r"\. (Not consistent with the paper|Consistent with the paper|Inconclusive|No verdict)"
    rf"( {re.escape(SO_FAR)})?: (.+)\.$")


def numbers_ok(text: str) -> list[str]:
    """What is wrong with the comparing words of ``text`` against the numbers beside them."""
    bad = []
    for gap in re.findall(rf"ended ({NUM}) points ahead of", text):
        if not float(gap) > 0:
            bad.append(f"a gap printed as {gap}")
    for m in re.finditer(rf"ended (sharper|flatter|higher|lower) than [^,]+, ({NUM}) vs ({NUM})",
                         text):
        a, b = float(m[2]), float(m[3])
        if not (a > b if m[1] in ("sharper", "higher") else a < b):
            bad.append(f"'{m[0]}': the numbers do not say {m[1]}")
    for m in re.finditer(rf"ended (?:sharper|higher) than .*?by ({NUM})|ended ({NUM}) higher",
                         text):
        if not float(m[1] or m[2]) > 0:
            bad.append(f"'{m[0]}': a gap printed as 0")
    for m in re.finditer(rf"took ({NUM})% (less|more) time than [^(]+'s? \(({NUM})x\)",
                         text):
        ratio = float(m[3])
        if not (float(m[1]) > 0 and (ratio < 1 if m[2] == "less" else ratio > 1)):
            bad.append(f"'{m[0]}': the ratio does not say {m[2]}")
    return bad


def check_line_text(text: str, verdict: str | None = None, one_seed: bool = False) -> list[str]:
    """What is wrong with a card line as shown (plain text, icon name allowed in front): its
    verdict word (``verdict`` when given), its reason, its comparing words and its length.
    ``one_seed``: the line's claim is judged from seeds and its runs have one each."""
    text = " ".join(text.split())
    for icon in ICONS:
        text = text.removeprefix(icon).strip()
    m = VERDICT_RE.search(text)
    if not m:
        return [f"no verdict word in {text!r}"]
    word, so_far, why = m[1], bool(m[2]), m[3]
    found = next(v for v, w in WORD.items() if w == word)
    bad = numbers_ok(text)
    if verdict is not None and found != verdict:
        bad.append(f"says {word!r}, the verdict is {verdict!r}")
    if one_seed and found in (CONSISTENT, NOT_CONSISTENT):
        bad.append("one seed reads as a verdict")
    fits = {CONSISTENT: ("larger than", "clear of"), NOT_CONSISTENT: ("larger than",),
            INCONCLUSIVE: ("within", "one seed", "nothing to compare", "do not compare",
                           "short of the stricter level"),
            NO_VERDICT: ("one seed", "too few step windows")}[found]
    if not why.startswith(fits) and not any(f in why for f in fits):
        bad.append(f"the reason {why!r} does not fit {word!r}")
    if found == CONSISTENT and OPPOSITE in text:
        bad.append("consistent, yet the paper's opposite")
    if found == NOT_CONSISTENT and OPPOSITE not in text:
        bad.append("not consistent, yet not against the paper")
    limit = MAX_WORDS + (4 if so_far else 0)
    if word_count(text) > limit:
        bad.append(f"{word_count(text)} words (at most {limit}): {text!r}")
    return bad


def _focus(line: ClaimLine, v: Verdict) -> tuple[float, bool] | None:
    """(the effect of the part the line tells, read so that > 0 is the claim's direction;
    whether it runs against the paper), from the verdict's own numbers; None if none."""
    part = line.part
    if part is None or part.get("effect") is None:
        return None
    assert any(part is p for p in v.parts) and part.get("decides")  # one of the verdict's own
    if from_step_times(line.claim):  # the effect is the ratio; the claim: below 1
        return 1 - float(part["effect"]), float(part["effect"]) > 1
    effect = float(part["effect"])
    return effect, effect < -float(part.get("margin") or 0.0)


def check_line(line: ClaimLine, v: Verdict, one_seed: bool = False) -> list[str]:
    """What is wrong with the view model's line against its verdict ``v``: the words of the
    shown text (``check_line_text``), the order of the methods against the verdict's own
    effect (the first named is ahead exactly when the effect says so) and "the paper's
    opposite" exactly when the effect runs against the claim."""
    bad = check_line_text(line.text(), v.verdict, one_seed)
    if line.verdict != v.verdict:
        bad.append(f"line verdict {line.verdict!r} != {v.verdict!r}")
    part = line.part
    if part is not None:  # the reason names the part's own status
        status, ci = part["status"], part.get("ci95")
        margin = float(part.get("margin") or 0.0)
        if from_step_times(line.claim) and ci:  # the ratio's interval; the boundary is 1
            ci, margin = [1 - ci[1], 1 - ci[0]], 0.0
        want = {CONSISTENT: "holds", NOT_CONSISTENT: "refuted"}.get(v.verdict)
        if want and status != want:
            bad.append(f"{v.verdict} told by a part that is {status}")
        if "within" in line.why and not (status == "open" and ci and ci[0] <= -margin <= ci[1]):
            bad.append(f"'within' said of a part {status} with interval {ci}")
        if "stricter" in line.why and not (status == "open" and ci and ci[1] < -margin):
            bad.append(f"'stricter' said of a part {status} with interval {ci}")
    found = _focus(line, v)
    p = line.numbers
    if found is None or p.relation in ("", "level"):
        return bad
    effect, against = found
    if from_step_times(line.claim):
        ok = (effect > 0) == (p.relation == "less")
    else:
        ok = {p.first, p.second} == {line.part["a"], line.part["b"]} and \
            (p.first == line.part["a"]) == (effect > 0)
    if not ok:
        bad.append(f"{p.text!r} against the effect {effect}")
    if p.against != against:
        bad.append(f"'{OPPOSITE}' said {p.against}, the effect {effect} says {against}")
    return bad

