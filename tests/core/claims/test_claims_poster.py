"""The poster's claims beyond the WRN-28-10 table (issue 22): adversarial robustness, corruption,
the ViT with AdamW and with Lion, the SAM variants, selected blocks. Each judged on constructed
records (consistent, not consistent, inconclusive), its sentences checked against its numbers,
its paper numbers against ``samon_core.paper``, its run sets, spreads and simulated rule."""

from __future__ import annotations

import numpy as np
import pytest
from support.claim_results import GOOD, cost_results, group, group_per_seed, results, verdict
from support.records import records

from samon_core import claims, paper
from samon_core.claims import calibration, power, stats
from samon_core.claims.results import RunResult, corruption_acc, method_name, robust_acc
from samon_core.claims.rules import MARGINS, RULES
from samon_core.claims.runsets import SIZES, split_key

NEW = ("robustness", "corruption", "vit-adamw", "vit-lion", "variants", "blocks")
SEEDED = ("robustness", "corruption", "vit-adamw", "vit-lion", "variants")
# The option of ``records`` a claim's metric reads (None: the final test accuracy).
OPTION = {"robust-l2": "robust", "corruption": "corruption", "accuracy": None}


def judged(claim_id: str, values: dict[str, list[float]], size: str | None = "cpu"):
    """The claim's verdict on runs whose claim metric is ``values[method][seed]``."""
    metric = RULES[claim_id][0].metric
    key = OPTION[metric]
    if key is None:
        return verdict(claim_id, results(values), size)
    accs = {m: [70.0] * len(v) for m, v in values.items()}
    opts = {m: [{key: x} for x in v] for m, v in values.items()}
    return verdict(claim_id, results(accs, **opts), size)


def _keys(claim_id: str) -> dict[str, str]:
    """Role -> the claim's method key: 'base', 'all', 'norm' (with the claim's tag)."""
    return {split_key(m)[0]: m for m in claims.get_claim(claim_id).methods}


@pytest.mark.parametrize("claim_id", ["robustness", "corruption", "vit-adamw"])
def test_three_method_claims_consistent_refuted_inconclusive(claim_id):
    k = _keys(claim_id)
    good = {k["base"]: [20.0, 21.0, 19.5], k["all"]: [50.0, 51.0, 49.0],
            k["norm"]: [51.0, 52.2, 50.1]}
    v = judged(claim_id, good)
    assert v.verdict == claims.CONSISTENT, v.sentence
    assert all(p["status"] == stats.HOLDS for p in v.parts if p["decides"])
    # SAM-ON far behind SAM-all: the "at least as good" part is refuted
    bad = {**good, k["norm"]: [40.0, 41.0, 39.5]}
    v = judged(claim_id, bad)
    assert v.verdict == claims.NOT_CONSISTENT and "is refuted" in v.sentence
    # seeds that disagree: nothing settled
    noisy = {k["base"]: [40.0, 60.0, 50.0], k["all"]: [55.0, 45.0, 50.0],
             k["norm"]: [45.0, 58.0, 47.0]}
    assert judged(claim_id, noisy).verdict == claims.INCONCLUSIVE


def test_robustness_reads_the_l2_attack_and_the_margin_is_half_the_posters_lead():
    lead = min(paper.VIT_S32_IMAGENET[o]["l2 eps=0.25"]["norm"].mean
               - paper.VIT_S32_IMAGENET[o]["l2 eps=0.25"]["all"].mean for o in ("AdamW",
                                                                                   "Lion"))
    assert MARGINS["robust-l2"] == pytest.approx(round(lead / 2, 1)) == 1.8
    # SAM-ON 1 point behind SAM-all with tight seeds: within the margin, holds
    v = judged("robustness", {"base": [5.0, 6.0, 5.5], "all": [55.0, 56.0, 55.4],
                              "norm": [54.0, 55.1, 54.3]})
    ni = next(p for p in v.parts if p["kind"] == stats.NON_INFERIORITY)
    assert ni["margin"] == 1.8 and ni["status"] == stats.HOLDS and v.verdict == "consistent"
    assert "SAM-ON ended behind SAM-all by 1.0 points" in v.sentence
    assert "41.16" in ni["paper"] and "37.53" in ni["paper"]
    assert v.evidence["metric"] == "accuracy under an l2 PGD attack of radius 0.25"


def test_robust_and_corruption_values_come_from_the_latest_robustness_record():
    recs = records(60.0, robust=30.0, corruption=55.0)
    assert robust_acc(recs, "l2", 0.25) == pytest.approx(30.0)
    assert robust_acc(recs, "l2", 0.3) is None and robust_acc(recs, "linf", 0.25) is None
    assert corruption_acc(recs) == pytest.approx(55.0)
    later = {**recs[-1], "attacks": [{"norm": "l2", "eps": 0.25, "acc": 0.4}]}
    assert robust_acc([*recs, later], "l2", 0.25) == pytest.approx(40.0)  # `robustness RUN`
    assert robust_acc(records(60.0), "l2", 0.25) is None and corruption_acc(records(60.0)) is None


def test_runs_without_a_robustness_record_are_named():
    rs = results({"base": [50.0, 51.0], "all": [52.0, 53.0], "norm": [52.0, 53.0]},
                 all={"robust": 40.0}, norm={"robust": 41.0})
    v = verdict("robustness", rs)
    assert v.verdict == claims.INCONCLUSIVE and v.evidence["missing"] == ["SGD"]
    assert "no robustness measurement yet for SGD" in v.sentence


def test_one_seed_is_no_verdict_for_every_seeded_new_claim():
    for claim_id in SEEDED:
        values = {m: [50.0 + i] for i, m in enumerate(claims.get_claim(claim_id).methods)}
        assert judged(claim_id, values).verdict == claims.NO_VERDICT


def test_vit_lion_needs_sam_on_above_sam_all():
    k = _keys("vit-lion")
    tie = {k["base"]: [60.0, 60.5, 59.8], k["all"]: [65.0, 65.4, 64.8],
           k["norm"]: [65.1, 65.3, 64.9]}
    v = judged("vit-lion", tie)
    assert v.verdict == claims.INCONCLUSIVE  # superiority, not "at least as good"
    lead = {**tie, k["norm"]: [66.5, 66.9, 66.4]}
    assert judged("vit-lion", lead).verdict == claims.CONSISTENT
    assert method_name(k["norm"]) == "SAM-ON (Lion)" and method_name(k["base"]) == "Lion"
    assert "72.64" in RULES["vit-lion"][0].paper and "71.9" in RULES["vit-lion"][0].paper


def test_variants_judge_sam_on_against_sam_all_in_each_variant():
    methods = claims.get_claim("variants").methods
    assert len(RULES["variants"]) == 4 and all(p.decides for p in RULES["variants"])
    better = {m: [50.0 + (2.0 if m.startswith("norm") else 0.0) + d for d in (0.0, 0.3, -0.2)]
              for m in methods}
    v = judged("variants", better)
    assert v.verdict == claims.CONSISTENT
    one_worse = {**better, "norm@linf": [45.0, 45.2, 44.9]}
    v = judged("variants", one_worse)
    assert v.verdict == claims.NOT_CONSISTENT
    assert "SAM-ON (p=inf elementwise) above SAM-all (p=inf elementwise)" in v.sentence
    names = [method_name(m) for m in methods]
    assert len(set(names)) == len(names) and "SAM-ON (ASAM layerwise)" in names


def test_blocks_judged_from_lockstep_step_times():
    fast = {"norm": [0.10, 0.10, 0.10], "norm@b3": [0.08, 0.082, 0.079]}
    v = verdict("blocks", cost_results(fast, lockstep=True))
    assert v.verdict == claims.CONSISTENT and v.claim == "blocks"
    assert "a SAM-ON (B3 only) step took 0.80x a SAM-ON step" in v.sentence
    assert "FLOP" not in v.sentence and "selected blocks" in v.parts[0]["paper"]
    unfair = verdict("blocks", cost_results(fast, lockstep=False))
    assert unfair.verdict == claims.INCONCLUSIVE and "claim run blocks" in unfair.settle
    slower = {"norm": [0.10] * 3, "norm@b3": [0.12, 0.125, 0.118]}
    assert verdict("blocks", cost_results(slower, lockstep=True)).verdict == \
        claims.NOT_CONSISTENT


@pytest.mark.parametrize("claim_id", SEEDED)
def test_every_new_part_sentence_matches_its_numbers(claim_id):
    """For random runs: the sign word follows the effect, the printed interval ends lie on the
    side of the boundary the status says, the status word is the part's."""
    rng = np.random.default_rng(len(claim_id))
    methods = claims.get_claim(claim_id).methods
    for _ in range(30):
        n = int(rng.integers(1, 5))
        values = {m: list(rng.normal(50, 2, n)) for m in methods}
        v = judged(claim_id, values, str(rng.choice(SIZES)))
        for p in v.parts:
            text = p["sentence"]
            if p["effect"] > 0:
                assert "ahead of" in text
            elif p["effect"] < 0:
                assert "behind" in text
            shown = float(text.split(" by ")[1].split(" points")[0])
            assert shown == pytest.approx(abs(p["effect"]), abs=0.051)
            if p["status"] == stats.UNTESTED:
                assert text.startswith("From one seed:")
                continue
            assert text.endswith(f": {p['status']}.")
            lo, _ = (float(x) for x in text.split("95% interval ")[1].split(")")[0].split(" to "))
            assert (lo > -p["margin"]) == (p["status"] == stats.HOLDS)


def test_paper_numbers_are_the_posters():
    rob = paper.VIT_S32_IMAGENET["AdamW"]["l2 eps=0.25"]
    c = claims.get_claim("robustness")
    assert c.paper_numbers == {"base": 19.67, "all": 37.53, "norm": 41.16}
    assert all(f"{x.mean}±{x.std}%" in c.paper_text for x in rob.values())
    ood = paper.vit_ood_mean("AdamW")
    assert ood["norm"] == pytest.approx((53.67 + 32.98 + 5.19 + 19.35 + 13.55) / 5)
    assert f"SAM-ON {ood['norm']:.2f}%" in claims.get_claim("corruption").paper_text
    assert f"vanilla {ood['base']:.2f}%" in claims.get_claim("corruption").paper_text
    for opt, cid in (("AdamW", "vit-adamw"), ("Lion", "vit-lion")):
        row = paper.VIT_S32_IMAGENET[opt]["ImageNet"]
        got = claims.get_claim(cid).paper_numbers
        assert got == {f"{k}@{cid}": v.mean for k, v in row.items()}
        assert all(f"{v}%" in claims.get_claim(cid).paper_text or f"{v}±" in
                   claims.get_claim(cid).paper_text for v in got.values())
    fig = paper.FIGURE_ACCURACY
    text = claims.get_claim("variants").paper_text
    assert all(f"~{fig[v]['norm']}%" in text and f"~{fig[v]['all']}%" in text
               for v in (("none", "l2"), ("elementwise", "l2"), ("layerwise", "l2"),
                         ("elementwise", "linf")))
    assert claims.get_claim("variants").paper_numbers == {
        "norm": fig[("none", "l2")]["norm"], "norm@asam": fig[("elementwise", "l2")]["norm"],
        "norm@asam-layerwise": fig[("layerwise", "l2")]["norm"],
        "norm@linf": fig[("elementwise", "linf")]["norm"]}


def test_paper_numbers_are_keyed_by_the_claims_method_keys():
    """A claim's paper numbers name the method keys its runs use (no display names), so the
    numbers and the runs they stand beside cannot be paired wrongly."""
    for c in claims.CLAIMS:
        assert set(c.paper_numbers) <= set(c.methods), c.id
    assert claims.get_claim("sparsity").paper_numbers == {
        "norm": 84.19, "random": 80.97, "all": 83.11}
    assert claims.get_claim("cost").paper_numbers == {"base": 3.0, "all": 6.0, "norm": 5.0}


@pytest.mark.parametrize("size", SIZES)
def test_new_claims_run_sets(size):
    acc = claims.get_claim("accuracy").runs(size)
    rob = claims.get_claim("robustness").runs(size)
    assert list(rob.values()) == list(acc.values())  # one launch serves both
    assert all(c.robustness == "standard" for c in rob.values())
    vit = claims.get_claim("vit-lion").method_configs(size)
    assert {(c.model, c.optimizer) for c in vit.values()} == {("vit_tiny", "lion")}
    assert vit["base@vit-lion"].method == "base" and vit["norm@vit-lion"].scope == "norm"
    var = claims.get_claim("variants").method_configs(size)
    assert (var["norm@linf"].adaptive, var["norm@linf"].ball) == ("elementwise", "linf")
    assert var["all@asam-layerwise"].adaptive == "layerwise" and var["norm"].adaptive == "none"
    blocks = claims.get_claim("blocks").method_configs(size)
    assert blocks["norm@b3"].blocks == (3,) and blocks["norm"].blocks == ()
    with pytest.raises(ValueError, match="unknown variant or setting"):
        split_key("norm@nope")


@pytest.mark.parametrize("size", SIZES)
def test_every_claims_runs_pass_the_model_check(size):
    """`claim run vit-adamw` once stopped at submit: the ViT with the bases' BatchNorm."""
    from samon_core.service.preflight import _check_model
    for claim in claims.CLAIMS:
        for config in claim.method_configs(size).values():
            _check_model(config)


def test_spreads_of_the_new_metrics_say_where_they_come_from():
    for size in SIZES:
        for metric in ("robust-l2", "corruption"):
            s = calibration.spread(size, metric)
            assert s is not None and s.source in (calibration.MEASURED, calibration.ASSUMED)
            assert s.how and min(s.sd.values()) > 0
        assert calibration.BLOCKS_COST_SPREADS[size].source == calibration.ASSUMED


@pytest.mark.parametrize("claim_id", ["robustness", "corruption"])
def test_the_simulation_applies_the_verdict_functions_rule(claim_id):
    """The same draws judged by power's vectorized rule and by the verdict function on records."""
    rng = np.random.default_rng(5)
    parts = power.parts_at(claim_id, "cpu")
    for _ in range(25):
        n = int(rng.integers(1, 5))
        values = {m: list(rng.normal(50, 2.0, n)) for m in ("base", "all", "norm")}
        got = judged(claim_id, values).verdict
        statuses = []
        for p in parts:
            diffs = np.array([[values[p.a][i] - values[p.b][i] for i in range(n)]])
            est = stats.paired(diffs, calibration.floor("cpu", p.metric))
            statuses.append(stats.decide(est, p.margin, len(parts)).status)
        assert got == stats.combine(statuses)[0]


def test_claim_list_shows_every_new_claim_with_its_numbers(capsys):
    from samon_core.cli import main

    assert main(["claim", "list"]) == 0
    out = capsys.readouterr().out
    for cid in NEW:
        assert f"{cid}: " in out
    assert "41.16" in out and "72.64" in out


def test_method_names_of_unknown_keys_are_shown_as_they_are():
    assert method_name("norm") == "SAM-ON" and method_name("norm@asam") == \
        "SAM-ON (ASAM elementwise)"
    assert method_name("x@y") == "x@y" and method_name("norm@y") == "norm@y"
    assert RunResult("r", "norm@b3", 0, "finished").method == "norm@b3"


# ---------------------------------------------------------------------------------------------
# the verdict card (samon_app.verdict_card): robustness rows where the runs measure it
# ---------------------------------------------------------------------------------------------


def test_the_card_judges_robustness_only_for_runs_that_measure_it():
    from samon_app.claim_lines import MAX_WORDS, word_count
    from samon_app.verdict_card import verdict_card

    plain = verdict_card(*group(GOOD))
    assert "robustness" not in [r.claim.id for r in plain.rows]  # robustness off: left out
    levels = {"base": (5.0, 40.0), "all": (50.0, 44.0), "norm": (51.0, 44.5)}
    robust = {m: (accs, [{**opts, "robust": levels[m][0] + d, "corruption": levels[m][1] + d}
                         for d in (0.0, 0.4, -0.3)])
              for m, (accs, opts) in GOOD.items()}
    infos, data = group_per_seed(robust, {"robustness": "standard"})
    card = verdict_card(infos, data)
    rows = {r.claim.id: r for r in card.rows}
    assert {"robustness", "corruption"} <= set(rows)
    line = rows["robustness"].line
    assert line.topic == "Robustness" and rows["robustness"].verdict.verdict == "consistent"
    assert "points ahead of" in line.text() and word_count(line.text()) <= MAX_WORDS
    assert rows["corruption"].line.topic == "Corruptions"


def test_the_class_verdict_plots_the_metric_its_claim_compares():
    from samon_app.class_verdict import METRIC_NAMES, _value

    recs = records(70.0, robust=30.0, corruption=55.0)
    assert _value("robustness", recs, 3) == pytest.approx(30.0)
    assert _value("corruption", recs, 3) == pytest.approx(55.0)
    assert _value("accuracy", recs, 3) == pytest.approx(70.0)
    assert METRIC_NAMES["robustness"].startswith("accuracy under an l2 PGD attack")


def test_the_class_verdict_shows_every_step_time_claim_as_ratios_per_seed():
    """The blocks claim is judged from step times like the cost claim: one dot per lockstep seed
    (its ratio, as the verdict computed it), its two methods named, and the interval's bound at
    a ratio of 1 (not a difference above 0)."""
    from samon_app.class_verdict import METRIC_NAMES, _dots, _history
    from samon_core.claims.cost import STEP_TIME_PAIRS

    res = cost_results({"norm": [0.10] * 3, "norm@b3": [0.080, 0.083, 0.078]}, lockstep=True)
    v = verdict("blocks", res)
    dots = _dots(v, res, {1})
    assert [d.seed for d in dots] == [0, 1, 2] and [d.mine for d in dots] == [False, True, False]
    assert {d.method for d in dots} == {"SAM-ON (B3 only) / SAM-ON"}
    for d in dots:
        assert d.value == pytest.approx(v.evidence["seeds"][d.seed]["ratio"])
        assert 0.7 < d.value < 0.9  # B3's steps are cheaper: every ratio below 1
    assert METRIC_NAMES["blocks"] == v.evidence["metric"] == "step time SAM-ON (B3 only) / SAM-ON"
    history = _history("blocks", "cpu", [0, 1, 2], res)
    assert [len(h.steps) for h in history] == [2]  # 2 and 3 seeds
    h = history[0]
    assert (h.bound, h.holds, h.label) == (1.0, "below", "SAM-ON (B3 only) / SAM-ON")
    assert all(s.low <= s.effect <= s.high < 1.0 for s in h.steps)
    # every claim judged from step times is one without seeded parts, and the reverse
    assert set(STEP_TIME_PAIRS) == {c.id for c in claims.CLAIMS} - set(RULES)
    cost = cost_results({"base": [0.05] * 2, "all": [0.10] * 2, "norm": [0.085] * 2}, True)
    assert {d.method for d in _dots(verdict("cost", cost), cost, set())} == {"SAM-ON / SAM-all"}


def test_the_card_gives_the_blocks_claim_the_caveats_of_a_step_time_claim():
    """Epochs and data do not change a step's cost: the blocks claim, like the cost claim, is
    caveated by its lockstep and model, naming its own two methods."""
    from samon_app.verdict_card import STEP_TIME_FACTS, epochs_fact, facts_of, lockstep_fact

    assert facts_of(claims.get_claim("blocks")) == facts_of(claims.get_claim("cost")) == \
        STEP_TIME_FACTS and epochs_fact not in STEP_TIME_FACTS
    assert epochs_fact in facts_of(claims.get_claim("robustness"))
    apart = verdict("blocks", cost_results({"norm": [0.1] * 2, "norm@b3": [0.08] * 2}, False))
    assert lockstep_fact([], apart) == ("SAM-ON (B3 only) and SAM-ON not trained in lockstep, so "
                                        "their step times are not comparable")
    apart = verdict("cost", cost_results({"all": [0.1] * 2, "norm": [0.08] * 2}, False))
    assert lockstep_fact([], apart).startswith("SAM-ON and SAM-all not trained in lockstep")
