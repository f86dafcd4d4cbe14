"""The verdict card's lines cannot contradict their verdicts: every word that compares ("ahead",
"sharper", "higher", "less") follows the numbers printed beside it, rounding never makes two
different values look equal or flips them, a line says "the paper's opposite" exactly when its
gap runs against the claim, its verdict word is the verdict's and its reason fits it, one seed
never reads as agreeing or disagreeing, and a line stays within ``MAX_WORDS`` words.

The checker (``support/card_check.py``): ``check_line_text`` reads a line as a student sees
it (plain text, also the browser test's rendered card), ``check_line`` the view model against
its verdict's own numbers. Random numbers drive the property tests (a fixed seed: a failure
is reproducible).
"""

from __future__ import annotations

import random

import pytest
from support.card_check import check_line, check_line_text, numbers_ok
from support.claim_results import CONFIG
from support.records import records

from samon_app.claim_lines import (
    SO_FAR,
    cost_phrase,
    fmt_pair,
    from_step_times,
    gap_phrase,
    values_phrase,
)
from samon_app.reader import RunInfo, build_run_data
from samon_app.verdict_card import verdict_card
from samon_core.claims import CONSISTENT, INCONCLUSIVE, NO_VERDICT

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
        assert not numbers_ok(p.text), (a, b, p.text)
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
        assert not numbers_ok(p.text), (effect, p.text)
        if effect == 0:
            assert p.relation == "level" and not p.against
            continue
        assert p.first == ("SAM-ON" if effect > 0 else "SGD")
        assert float(p.gap) > 0 and "behind" not in p.text
        assert p.against == (effect < -margin)
        assert ("margin" in p.text) == (margin > 0 and -margin <= effect < 0)
    for metric in ("sharpness@1", "gamma"):  # the same words for a gap of other metrics
        p = gap_phrase("SAM-ON", "SGD", -3e-5, 0.0, metric)
        assert p.first == "SGD" and p.against and float(p.gap) > 0 and not numbers_ok(p.text)


def test_cost_phrase_less_and_more_follow_the_ratio():
    rng = random.Random(2)
    for _ in range(3000):
        ratio = rng.choice([rng.uniform(0.5, 1.5), 1 + rng.uniform(-2e-3, 2e-3),
                            2754 / 3235, 1.0])
        p = cost_phrase(ratio)
        assert not numbers_ok(p.text), (ratio, p.text)
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
