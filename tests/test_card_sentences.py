"""The verdict card's lines cannot contradict their verdicts: every word that compares ("ahead",
"sharper", "higher", "less") follows the numbers printed beside it, rounding never makes two
different values look equal or flips them, a line says "the paper's opposite" exactly when its
gap runs against the claim, its verdict word is the verdict's and its reason fits it, one seed
never reads as agreeing or disagreeing, and a line stays within ``MAX_WORDS`` words.

``check_line_text`` reads a line as a student sees it (plain text, also the browser test's
rendered card), ``check_line`` the view model against its verdict's own numbers. Random
numbers drive the property tests (a fixed seed: a failure is reproducible).
"""

from __future__ import annotations

import random
import re

import pytest
from test_claims import records
from test_verdict_card import CONFIG

from samon_app.claim_lines import (
    MAX_WORDS,
    OPPOSITE,
    SO_FAR,
    WORD,
    ClaimLine,
    cost_phrase,
    fmt_pair,
    from_step_times,
    gap_phrase,
    values_phrase,
    word_count,
)
from samon_app.reader import RunInfo, build_run_data
from samon_app.verdict_card import verdict_card
from samon_core.claims import CONSISTENT, INCONCLUSIVE, NO_VERDICT, NOT_CONSISTENT, Verdict

NUM = r"[-+]?\d+(?:\.\d+)?"
# Material icon names, which the browser renders as text before a card row.
ICONS = ("check_circle", "cancel", "help", "explore")
VERDICT_RE = re.compile(
    r"\. (Not consistent with the paper|Consistent with the paper|Inconclusive|No verdict)"
    rf"( {re.escape(SO_FAR)})?: (.+)\.$")


def _numbers_ok(text: str) -> list[str]:
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
    bad = _numbers_ok(text)
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


# ---------------------------------------------------------------------------------------------
# properties of the phrases over random numbers
# ---------------------------------------------------------------------------------------------


def _near(rng: random.Random, scale: float) -> tuple[float, float]:
    """Two values, often a rounding step apart (where a sentence can go wrong)."""
    a = rng.uniform(0, scale)
    kind = rng.random()
    if kind < 0.4:
        b = a + rng.choice([-1, 1]) * scale * 10 ** rng.uniform(-7, -3)
    elif kind < 0.5:
        b = a
    else:
        b = rng.uniform(0, scale)
    return a, b


@pytest.mark.parametrize("metric,scale", [("sharpness@1", 0.01), ("sharpness@20", 0.05),
                                          ("gamma", 1.2), ("beta", 0.1)])
def test_values_phrase_words_follow_the_printed_numbers(metric, scale):
    rng = random.Random(metric)
    for _ in range(3000):
        a, b = _near(rng, scale)
        p = values_phrase(metric, "SAM-ON", "SGD", a, b)
        assert not _numbers_ok(p.text), (a, b, p.text)
        if a == b:
            assert p.relation == "level"
            continue
        hi, lo = float(p.shown[0]), float(p.shown[1])
        assert hi > lo, (a, b, p.shown)  # never '0.008 vs 0.008'
        assert p.first == ("SAM-ON" if a > b else "SGD")
        assert p.against == (a < b)
        if metric.startswith("sharpness"):
            assert "sharper than" in p.text and "flatter" not in p.text
        else:
            assert "ended higher than" in p.text and "shifted" not in p.text


def test_gap_phrase_ahead_follows_the_sign_and_the_margin():
    rng = random.Random(1)
    for _ in range(3000):
        effect = rng.choice([rng.uniform(-20, 20), rng.uniform(-1e-3, 1e-3), 0.0])
        margin = rng.choice([0.0, 0.5])
        p = gap_phrase("SAM-ON", "SGD", effect, margin)
        assert not _numbers_ok(p.text), (effect, p.text)
        if effect == 0:
            assert p.relation == "level" and not p.against
            continue
        assert p.first == ("SAM-ON" if effect > 0 else "SGD")
        assert float(p.gap) > 0 and "behind" not in p.text
        assert p.against == (effect < -margin)
        assert ("margin" in p.text) == (margin > 0 and -margin <= effect < 0)
    for metric in ("sharpness@1", "gamma"):  # the same words for a gap of other metrics
        p = gap_phrase("SAM-ON", "SGD", -3e-5, 0.0, metric)
        assert p.first == "SGD" and p.against and float(p.gap) > 0 and not _numbers_ok(p.text)


def test_cost_phrase_less_and_more_follow_the_ratio():
    rng = random.Random(2)
    for _ in range(3000):
        ratio = rng.choice([rng.uniform(0.5, 1.5), 1 + rng.uniform(-2e-3, 2e-3),
                            2754 / 3235, 1.0])
        p = cost_phrase(ratio)
        assert not _numbers_ok(p.text), (ratio, p.text)
        if ratio == 1:
            assert p.relation == "level"
            continue
        shown = float(p.shown[0])
        assert (shown < 1) == (ratio < 1) and (shown > 1) == (ratio > 1), (ratio, p.shown)
        assert p.relation == ("less" if ratio < 1 else "more")
        assert float(p.gap) > 0 and p.against == (ratio > 1)


def test_fmt_pair_shows_enough_digits_to_differ():
    assert fmt_pair(0.00812, 0.00788, 4) == ("0.0081", "0.0079")
    assert fmt_pair(0.00814, 0.00811, 3) == ("0.00814", "0.00811")
    assert fmt_pair(0.998, 0.951, 3) == ("0.998", "0.951")
    assert fmt_pair(0.5, 0.5, 3) == ("0.500", "0.500")
    a, b = fmt_pair(0.0081, 0.0079, 3)  # the issue: 'SAM-all 0.008 vs SAM-ON 0.008'
    assert float(a) > float(b)


def test_the_checker_catches_contradictions():
    """The check itself can fail: each of these lines contradicts its verdict or numbers."""
    wrong = [
        ("Cost: SAM-ON's steps took 15% less time than SAM-all's (1.02x). Consistent "
         "with the paper: larger than the step-time noise.", CONSISTENT),
        ("Sharpness: SAM-all ended sharper than SAM-ON, 0.008 vs 0.008. No verdict: one seed "
         "shows a direction, not a result.", NO_VERDICT),
        ("Gammas: SAM-ON's gammas ended higher than SGD's, 0.951 vs 0.998. No verdict: one "
         "seed shows a direction, not a result.", NO_VERDICT),
        ("Accuracy: SGD ended 0.0 points ahead of SAM-ON. Inconclusive: within the "
         "seed-to-seed noise.", INCONCLUSIVE),
        ("Accuracy: SGD ended 2.6 points ahead of SAM-ON, the paper's opposite. Consistent "
         "with the paper: larger than the seed-to-seed noise.", CONSISTENT),
        ("Accuracy: SGD ended 2.6 points ahead of SAM-ON. Inconclusive: larger than the "
         "seed-to-seed noise.", INCONCLUSIVE),
        ("Accuracy: SGD ended 2.6 points ahead of SAM-ON. Inconclusive: within the noise.",
         CONSISTENT),
    ]
    for text, verdict in wrong:
        assert check_line_text(text, verdict), text
    assert check_line_text("Accuracy: SAM-ON ended 2.6 points ahead of SGD. Consistent with "
                           "the paper: larger than the seed-to-seed noise.", CONSISTENT,
                           one_seed=True)
    assert check_line_text("Accuracy: " + "very " * 30 + "ahead. Inconclusive: within the "
                           "seed-to-seed noise.", INCONCLUSIVE)


# ---------------------------------------------------------------------------------------------
# whole cards from random runs: every line against its verdict
# ---------------------------------------------------------------------------------------------


def _random_group(rng: random.Random, seeds: int, state: str = "finished"):
    """RunInfos and RunData of SGD, SAM-all and SAM-ON with random accuracies, sharpness, gamma
    and step times per seed (often close: where rounding can mislead), in lockstep."""
    infos, data = [], {}
    base = {m: (rng.uniform(30, 80), rng.uniform(0.005, 0.012), rng.uniform(0.9, 1.1),
                rng.uniform(0.02, 0.06)) for m in ("base", "all", "norm")}
    if rng.random() < 0.3:  # near ties
        base["norm"] = tuple(x * (1 + rng.uniform(-1e-3, 1e-3)) for x in base["all"])
    for seed in range(seeds):
        for method, (acc, sharp, gamma, step) in base.items():
            rid = f"{method}-{seed}"
            mates = [f"{m}-{seed}" for m in base]
            infos.append(RunInfo(rid, method, method, method, "#000000", state,
                                 {**CONFIG, "seed": seed}, {"group": "g"}, {"state": state},
                                 {"lockstep": mates}))
            times = [step * (1 + rng.gauss(0, 0.05)) for _ in range(3 * 5)]
            data[rid] = build_run_data(rid, records(
                acc + rng.gauss(0, 2), sharp=sharp * (1 + rng.gauss(0, 0.05)),
                gamma_end=gamma + rng.gauss(0, 0.01), step_time=times, windows=5))
    return infos, data


@pytest.mark.parametrize("seeds", [1, 3])
def test_random_cards_never_contradict_their_verdicts(seeds):
    rng = random.Random(seeds)
    seen = set()
    for _ in range(40):
        card = verdict_card(*_random_group(rng, seeds))
        for row in card.rows:
            one_seed = seeds == 1 and row.claim.id != "cost"
            problems = check_line(row.line, row.verdict, one_seed)
            assert not problems, (row.line.text(), problems)
            seen.add(row.verdict.verdict)
        assert "agree" not in card.headline
        if seeds == 1:
            assert "consistent with the paper on" not in card.headline
    assert len(seen) >= 2  # the random runs reached more than one verdict


def test_runs_still_training_say_so_far():
    card = verdict_card(*_random_group(random.Random(5), 3, state="running"))
    assert card.headline.startswith("So far, 9 of 9 runs are still training.")
    for row in card.rows:
        assert SO_FAR in row.line.text() and not check_line(row.line, row.verdict)
        assert "Provisional" not in " ".join(row.line.details)


def _cost_group(on: float, all_: float, noise: float, seeds: int = 1):
    rng = random.Random(7)
    infos, data = [], {}
    for seed in range(seeds):
        for method, step in (("base", 0.02), ("all", all_), ("norm", on)):
            rid = f"{method}-{seed}"
            infos.append(RunInfo(rid, method, method, method, "#000000", "finished",
                                 {**CONFIG, "seed": seed}, {"group": "g"}, {},
                                 {"lockstep": [f"{m}-{seed}" for m in ("base", "all", "norm")]}))
            times = [step * (1 + rng.gauss(0, noise)) for _ in range(30)]
            data[rid] = build_run_data(rid, records(50.0, step_time=times, windows=10))
    return infos, data


@pytest.mark.parametrize("noise", [0.001, 0.02, 0.3])
def test_cost_0851_reads_as_its_verdict(noise):
    """The issue's case: 2754/3235 = 0.851 printed '0.85x (15% less)' beside 'inconclusive'. The
    line's word is the verdict's whatever the noise, and the ratio is printed below 1."""
    card = verdict_card(*_cost_group(2.754, 3.235, noise))
    row = next(r for r in card.rows if r.claim.id == "cost")
    assert not check_line(row.line, row.verdict), row.line.text()
    if noise <= 0.02:
        assert "(0.85x)" in row.line.text() and "15% less" in row.line.text()
        assert row.verdict.verdict == CONSISTENT
        assert "Consistent with the paper" in row.line.text()


def test_sgd_ahead_is_said_plainly():
    """Item 4 of the issue: SGD ahead of SAM-ON (the paper's opposite) is said in words."""
    infos, data = _random_group(random.Random(0), 1)
    for info in infos:  # SGD 6 points ahead of SAM-ON, 2.6 ahead of SAM-all
        acc = {"base": 75.0, "all": 72.4, "norm": 69.0}[info.key]
        data[info.run_id] = build_run_data(info.run_id, records(acc))
    row = next(r for r in verdict_card(infos, data).rows if r.claim.id == "accuracy")
    assert row.line.text().startswith(
        "Accuracy: SGD ended 6.0 points ahead of SAM-ON, the paper's opposite. No verdict: one "
        "seed shows a direction, not a result.")


def test_sharpness_near_008_shows_enough_digits():
    """Item 3: 'SAM-all ended sharper than SAM-ON by 0.000' for values of about 0.008."""
    infos, data = _random_group(random.Random(0), 1)
    for info in infos:
        sharp = {"base": 0.0070, "all": 0.0081, "norm": 0.0079}[info.key]
        data[info.run_id] = build_run_data(info.run_id, records(50.0, sharp=sharp))
    line = next(r for r in verdict_card(infos, data).rows if r.claim.id == "sharper").line
    assert "SAM-all ended sharper than SAM-ON, 0.0081 vs 0.0079, the paper's opposite" in \
        line.text()


def test_gammas_that_fell_are_said_to_end_higher_not_to_shift_more():
    """Item 2: all means fell below 1; SAM-ON's fell least: it 'ended higher', 0.998 vs 0.951."""
    infos, data = _random_group(random.Random(0), 1)
    for info in infos:
        end = {"base": 0.951, "all": 0.940, "norm": 0.998}[info.key]
        data[info.run_id] = build_run_data(info.run_id, records(50.0, gamma_end=end))
    line = next(r for r in verdict_card(infos, data).rows if r.claim.id == "gamma-shift").line
    assert "SAM-ON's gammas ended higher than SGD's, 0.998 vs 0.951." in line.text()
    assert "shift" not in line.text().split(". ")[0]


def test_every_claim_has_a_topic_and_step_time_claims_name_their_methods():
    """A claim added to the catalog gets its words on the card, and a claim judged from step
    times (the blocks claim) names its own two methods, not SAM-ON and SAM-all."""
    from samon_app.claim_lines import TOPIC, claim_line
    from samon_core.claims import CLAIM_IDS, RunResult, get_claim
    from samon_core.claims.results import method_name

    assert set(CLAIM_IDS) <= set(TOPIC)
    rng = random.Random(4)
    results = []
    for seed in range(2):
        mates = (f"norm-{seed}", f"norm@b3-{seed}")
        for method, step in (("norm", 0.040), ("norm@b3", 0.034)):
            times = [step * (1 + rng.gauss(0, 0.02)) for _ in range(30)]
            results.append(RunResult(f"{method}-{seed}", method, seed, "finished",
                                     tuple(records(50.0, step_time=times, windows=10)),
                                     lockstep=mates, group="g"))
    v = get_claim("blocks").verdict(results)
    line = claim_line("blocks", v, results)
    assert from_step_times("blocks") and not check_line(line, v), line.text()
    assert "SAM-all" not in line.text() and f"{method_name('norm@b3')}'" in line.text()
    assert line.text().startswith(f"{TOPIC['blocks']}: ") and "less time" in line.text()
