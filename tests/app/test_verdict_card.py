"""samon_app.verdict_card: the card that ends a comparison counts the verdicts of the group's own
runs (never "agree" / "disagree" from one seed: no verdict there), tells each in one line of at
most 25 words with the details behind it, gives every verdict its caveats (how the runs differ
from the paper's), and says "so far" while runs train (constructed records, no store, no
streamlit). ``test_card_sentences`` checks the lines against their verdicts."""

from __future__ import annotations

from support.claim_results import GOOD, group

from samon_app import laptop
from samon_app.claim_lines import MAX_WORDS, topic, word_count
from samon_app.verdict_card import card_claims, verdict_card
from samon_core.claims import CONSISTENT, NO_VERDICT, NOT_CONSISTENT


def test_all_consistent_runs_still_show_their_caveats():
    card = verdict_card(*group(GOOD))
    # what a laptop settled first (samon_app.laptop), the rest in the paper's order
    assert [r.claim.id for r in card.rows] == laptop.order(["accuracy", "sharper", "gamma-shift",
                                                            "cost"])
    assert all(r.verdict.verdict == CONSISTENT for r in card.rows)
    # the issue: a consistent verdict hid the caveats; now every row says how the runs differ
    for r in card.rows:
        assert r.why.startswith("Caveats, as these runs differ from the paper's:"), r.why
    accuracy = next(r.why for r in card.rows if r.claim.id == "accuracy")
    assert "3 epochs, not the paper's 200" in accuracy and "tiny ResNet" in accuracy
    assert card.headline == "Your 9 runs: consistent with the paper on all 4 claims."
    assert all("Noise alone gives this in" in r.verdict.sentence for r in card.rows)
    assert not card.provisional
    # one line per claim, the rest behind its expander: the caveats, the rule, the chance
    for r in card.rows:
        assert word_count(r.line.text()) <= MAX_WORDS and r.line.text().count(". ") == 1
        details = "\n".join(r.line.details)
        assert r.why in details and "Noise alone gives this in" in details
        assert r.why not in r.line.text()
    assert [r.line.topic for r in card.rows] == [topic(r.claim.id) for r in card.rows]
    assert {r.line.topic for r in card.rows} == {"Accuracy", "Sharpness", "Gammas", "Cost"}


def test_one_seed_never_agrees_or_disagrees():
    """The quick demo's card (one seed): the seed-judged claims get no verdict, only the
    direction, whatever the gap; only cost (judged from its step times) may have one."""
    spec = {**GOOD, "base": ([60.0], GOOD["base"][1])}  # SGD far ahead, as on a laptop
    card = verdict_card(*group(spec, seeds=1))
    for row in card.rows:
        if row.claim.id != "cost":
            assert row.verdict.verdict == NO_VERDICT
            assert "direction, not a result" in row.verdict.sentence
            assert "one seed" in row.why
    row = next(r for r in card.rows if r.claim.id == "accuracy")
    assert "From one seed: SAM-all ended behind SGD by 15.0 points" in row.verdict.sentence
    for fact in ("3 epochs, not the paper's 200", "synthetic images, not CIFAR-100",
                 "tiny ResNet, not WRN-28-10"):
        assert fact in row.why
    assert row.note == row.claim.cpu_note
    assert row.line.text() == ("Accuracy: SGD ended 15.0 points ahead of SAM-all, the paper's "
                               "opposite. No verdict: one seed shows a direction, not a result.")
    head = card.headline
    assert "agree" not in head and "consistent with the paper on" not in head
    assert head == ("Your 3 runs: 3 of 4 claims show a direction, not a verdict (one seed); cost, "
                    "judged from its step times: consistent with the paper. Run 3 or more seeds "
                    "for a verdict.")


def test_sgd_ahead_over_three_seeds_is_not_consistent_and_says_why():
    spec = {**GOOD, "base": ([60.0, 60.2, 59.9], GOOD["base"][1])}
    row = next(r for r in verdict_card(*group(spec)).rows if r.claim.id == "accuracy")
    assert row.verdict.verdict == NOT_CONSISTENT
    assert row.why.startswith("Why your runs may differ from the paper:")
    assert row.claim.hint in row.why  # what would get closer to the paper


def test_headline_counts_the_verdicts():
    # SAM-ON below SAM-all: accuracy and sharper refuted; the rest still hold
    spec = {**GOOD, "norm": ([40.0, 40.3, 39.8], GOOD["norm"][1])}
    card = verdict_card(*group(spec))
    verdicts = [r.verdict.verdict for r in card.rows]
    agree = verdicts.count(CONSISTENT)
    assert card.headline.startswith(
        f"Your 9 runs: consistent with the paper on {agree} of 4 claims")
    assert f"{verdicts.count(NOT_CONSISTENT)} not consistent" in card.headline


def test_paper_sized_runs_are_not_blamed_on_their_size():
    spec = {**GOOD, "base": ([60.0, 60.1, 59.9], GOOD["base"][1])}
    paper_like = {"model": "wrn28_10", "dataset": "cifar100", "epochs": 200}
    row = next(r for r in verdict_card(*group(spec, config=paper_like)).rows
               if r.claim.id == "accuracy")
    assert row.verdict.verdict == NOT_CONSISTENT
    assert "differ from the paper" not in row.why  # only the claim's hint is left


def test_cost_not_in_lockstep_says_so_and_not_the_epochs():
    card = verdict_card(*group(GOOD, lockstep=False))
    row = next(r for r in card.rows if r.claim.id == "cost")
    assert row.verdict.verdict != CONSISTENT
    assert "not trained in lockstep" in row.why and "epochs" not in row.why


def test_runs_still_training_give_a_provisional_card():
    card = verdict_card(*group(GOOD, state="running", lockstep=False))
    assert card.provisional
    assert card.headline.startswith("So far, 9 of 9 runs are still training. Your 9 runs")
    assert all(r.verdict.provisional for r in card.rows)
    # "so far", as the Claims page says it; "provisional" is no longer a word on the card
    assert all("so far (runs still training)" in r.line.text() for r in card.rows)
    assert not any("rovisional" in " ".join((r.line.text(), *r.line.details))
                   for r in card.rows)


def test_a_group_without_sam_on_lists_no_sam_on_claim():
    card = verdict_card(*group({k: GOOD[k] for k in ("base", "all")}))
    assert card.rows == ()
    assert "none of the paper's claims compares just these methods" in card.headline


def test_no_norm_and_random_runs_add_their_claims():
    assert [c.id for c in card_claims(["all", "norm", "no-norm", "random"])] == [
        "no-norm", "sparsity"]
    assert [c.id for c in card_claims(["base", "all"])] == []


def test_missing_records_are_not_blamed_on_the_setup():
    no_gamma = {k: (accs, {**opts, "gamma_end": 1.0}) for k, (accs, opts) in GOOD.items()}
    infos, data = group(no_gamma)
    for d in data.values():  # runs without gamma statistics (the probe was off)
        d.records[:] = [r for r in d.records if r.get("kind") != "norm_stats"]
    row = next(r for r in verdict_card(infos, data).rows if r.claim.id == "gamma-shift")
    assert "no gamma statistics" in row.verdict.sentence and row.why == ""
    assert row.line.text() == ("Gammas: not recorded for SAM-ON and SGD. "
                               "Inconclusive: nothing to compare.")


def test_runs_that_ended_unfinished_are_named():
    infos, data = group(GOOD)
    infos[0].state = "cancelled"
    assert verdict_card(infos, data).headline.startswith(
        "1 run did not finish (cancelled). Your 9 runs")
