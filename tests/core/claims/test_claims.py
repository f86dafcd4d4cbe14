"""samon_core.claims: the rule (t quantiles, paired and Welch estimates, superiority and
non-inferiority, Bonferroni refutation, no verdict from one seed), each claim judged by the
paper's comparisons on constructed records (consistent, not consistent, inconclusive, partial),
sentences generated from their numbers, the cost ratio from step windows, the run sets of every
size, label noise, and the ``claim`` commands of the CLI on a fake store."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from support.claim_results import cost_results, results, verdict
from support.fakes import fake_claim_runs, write_fake_run
from support.records import records

from samon_core import claims, paper
from samon_core.claim_cli import plan_seed
from samon_core.claims import stats
from samon_core.claims.collect import collect
from samon_core.claims.results import RunResult
from samon_core.claims.runsets import CPU_LABEL_NOISE, SIZES, run_set, size_of
from samon_core.cli import main
from samon_core.runs.config import RunConfig
from samon_core.runs.presets import preset_configs
from samon_core.runs.store import RunStore


def part(v, a: str, b: str, metric: str = "final test accuracy") -> dict:
    return next(p for p in v.parts if (p["a"], p["b"], p["metric"]) == (a, b, metric))


# ---------------------------------------------------------------------------------------------
# the rule
# ---------------------------------------------------------------------------------------------


def test_t_quantiles_and_tails_are_students():
    assert float(stats.t_quantile(0.975, 1)) == pytest.approx(12.7062, abs=1e-4)
    assert float(stats.t_quantile(0.975, 2)) == pytest.approx(4.3027, abs=1e-4)
    assert float(stats.t_quantile(0.975, 4)) == pytest.approx(2.7764, abs=1e-4)
    assert float(stats.t_quantile(0.975, 1e6)) == pytest.approx(1.95996, abs=1e-4)
    assert float(stats.t_quantile(0.5, 3)) == 0.0
    assert float(stats.t_sf(2.7764451, 4)) == pytest.approx(0.025, abs=1e-7)
    assert float(stats.t_sf(0.0, 7)) == 0.5  # half-integer dfs (Welch) too:
    q = float(stats.t_quantile(0.975, 2.5))
    assert 3.18 < q < 4.30 and float(stats.t_sf(q, 2.5)) == pytest.approx(0.025, abs=1e-9)


def test_paired_and_welch_estimates_by_hand():
    d = np.array([[1.0, 2.0, 3.0]])
    est = stats.paired(d, floor=0.1)
    assert est.effect[0] == 2.0 and est.df[0] == 2.0
    assert est.se[0] == pytest.approx(1.0 / math.sqrt(3))
    same = stats.paired(np.array([[0.5, 0.5, 0.5]]), floor=0.2)  # identical seeds: the floor
    assert same.se[0] == pytest.approx(0.2 / math.sqrt(3))
    w = stats.welch(np.array([[1.0, 2.0, 3.0]]), np.array([[0.0, 0.0, 2.0, 2.0]]), floor=0.0)
    va, vb = 1.0 / 3, (4 / 3) / 4
    assert w.effect[0] == pytest.approx(1.0)
    assert w.se[0] == pytest.approx(math.sqrt(va + vb))
    assert w.df[0] == pytest.approx((va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3))
    assert np.isnan(stats.paired(np.array([[1.0]]), 0.1).df[0])  # one seed: no interval


def test_decide_superiority_non_inferiority_and_bonferroni():
    def est(effect, se, df=4.0):
        return stats.Estimates(np.array(effect), np.array(se), np.array(df), np.array(se))
    t = float(stats.t_quantile(0.975, 4))
    assert stats.decide(est(1.01 * t, 1.0)).status == stats.HOLDS
    assert stats.decide(est(0.99 * t, 1.0)).status == stats.OPEN
    assert stats.decide(est(-1.01 * t, 1.0)).status == stats.REFUTED
    # non-inferiority: SAM-ON 0.2 behind with a narrow interval holds within a 0.5 margin ...
    assert stats.decide(est(-0.2, 0.05), margin=0.5).status == stats.HOLDS
    # ... but a point behind is refuted, and a wide interval stays open
    assert stats.decide(est(-1.0, 0.05), margin=0.5).status == stats.REFUTED
    assert stats.decide(est(0.0, 1.0), margin=0.5).status == stats.OPEN
    # refuting one of 3 parts needs the 1 - 0.05/3 interval: between the two it is open
    t3 = float(stats.t_quantile(1 - 0.025 / 3, 4))
    mid = -(t + t3) / 2
    assert stats.decide(est(mid, 1.0), parts=1).status == stats.REFUTED
    assert stats.decide(est(mid, 1.0), parts=3).status == stats.OPEN
    d = stats.decide(est(0.0, 1.0))
    assert float(d.p_hold) == pytest.approx(0.5) and float(d.p_refute) == pytest.approx(0.5)
    untested = stats.decide(est(5.0, 1.0, df=np.nan))
    assert untested.status == stats.UNTESTED and np.isnan(untested.p_hold)


def test_combine_parts():
    h, r, o, u = stats.HOLDS, stats.REFUTED, stats.OPEN, stats.UNTESTED
    got = stats.combine([np.array([h, h, h, u, h]), np.array([h, o, r, u, u])])
    assert list(got) == [stats.CONSISTENT, stats.INCONCLUSIVE, stats.NOT_CONSISTENT,
                         stats.NO_VERDICT, stats.INCONCLUSIVE]


def test_fmt_side_never_rounds_across_the_bound():
    rng = np.random.default_rng(0)
    for value in [0.9996, 1.0004, 0.851, -0.49996, *rng.normal(1.0, 0.002, 300)]:
        for bound in (1.0, -0.5, 0.0):
            text = stats.fmt_side(float(value), bound, 2)
            assert (float(text) > bound) == (value > bound)
            assert (float(text) < bound) == (value < bound)
    assert stats.fmt_side(0.851, 1.0, 2) == "0.85" and stats.fmt_side(0.9996, 1.0, 2) == "0.9996"
    assert stats.fmt_percent(0.0004) == "< 0.1%" and stats.fmt_percent(0.012) == "1.2%"
    assert stats.fmt_interval(0.8512, 0.8538, 1.0, 2) == ("0.851", "0.854")
    assert stats.fmt_interval(0.84, 0.86, 1.0, 2) == ("0.84", "0.86")


# ---------------------------------------------------------------------------------------------
# accuracy
# ---------------------------------------------------------------------------------------------

GOOD_ACC = {"base": [50.0, 50.5, 49.5], "all": [53.0, 53.5, 52.5], "norm": [54.0, 54.4, 53.6]}


def test_accuracy_consistent_paired_with_every_part_reported():
    v = verdict("accuracy", results(GOOD_ACC))
    assert v.verdict == claims.CONSISTENT and not v.provisional and v.settle == ""
    assert v.evidence["methods"]["SAM-ON"]["mean"] == pytest.approx(54.0)
    assert [p["status"] for p in v.parts] == ["holds"] * 3
    ni = part(v, "SAM-ON", "SAM-all")
    assert ni["kind"] == stats.NON_INFERIORITY and ni["margin"] == 0.5
    assert ni["test"] == stats.PAIRED and ni["paired_seeds"] == [0, 1, 2]
    assert ni["effect"] == pytest.approx(1.0) and ni["ci95"][0] > -0.5
    assert "84.19" in ni["paper"] and "83.11" in ni["paper"]
    assert "SAM-ON ended ahead of SGD by 4.0 points" in v.sentence
    assert v.chance == max(p["chance_alone"] for p in v.parts) < 0.025
    assert "Noise alone gives this in at most" in v.sentence


def test_accuracy_a_tie_is_not_at_least_as_good():
    """The issue's failure: a tie counted as holding. SAM-ON 1 point behind SAM-all with a wide
    interval stays open; the claim is inconclusive, never consistent."""
    v = verdict("accuracy", results({"base": [40.0, 40.2, 39.8], "all": [53.0, 55.0, 51.0],
                                     "norm": [52.0, 55.0, 49.0]}))
    ni = part(v, "SAM-ON", "SAM-all")
    assert ni["status"] == stats.OPEN and ni["ci95"][0] < -0.5
    assert v.verdict == claims.INCONCLUSIVE and "2 of 3 parts hold" in v.sentence
    assert "reaches -0.5, the margin the claim allows: open" in v.sentence


def test_accuracy_not_consistent_when_sgd_really_wins():
    v = verdict("accuracy", results({
        "base": [55.0, 55.3, 54.7], "all": [50.0, 50.4, 49.6], "norm": [50.2, 50.6, 49.8]}))
    assert v.verdict == claims.NOT_CONSISTENT
    assert "SAM-all ended behind SGD by 5.0 points" in v.sentence and "refuted" in v.sentence
    assert v.chance is not None and v.chance < 0.025


def test_accuracy_inconclusive_when_noise_exceeds_the_effect():
    v = verdict("accuracy", results({
        "base": [50.0, 53.0, 47.0], "all": [51.0, 48.0, 54.0], "norm": [52.0, 49.0, 55.0]}))
    assert v.verdict == claims.INCONCLUSIVE and v.chance is None
    comp = part(v, "SAM-all", "SGD")
    assert comp["ci95"][0] < 0 < comp["ci95"][1] and comp["status"] == "open"
    assert "more seeds" in v.settle


def test_one_seed_gives_no_verdict_only_the_direction():
    for accs in ({"base": [50.0], "all": [52.0], "norm": [53.0]},
                 {"base": [40.0], "all": [50.0], "norm": [60.0]}):  # even a 10-point gap
        v = verdict("accuracy", results(accs))
        assert v.verdict == claims.NO_VERDICT and v.chance is None
        assert v.sentence.startswith("No verdict: one seed shows a direction, not a result.")
        assert "From one seed: SAM-ON ended ahead of SAM-all by" in v.sentence
        assert "seeds differ by about 0.8-5.0 points (measured)" in v.sentence
        assert "3 or more seeds" in v.settle
        assert all(p["status"] == stats.UNTESTED and p["ci95"] is None for p in v.parts)


def test_unpaired_runs_fall_back_to_welch_and_say_so():
    v = verdict("accuracy", results(GOOD_ACC, paired=False))
    assert {p["test"] for p in v.parts} == {stats.WELCH}
    assert "Welch two-sample t-test, 3 and 3 seeds" in v.sentence
    # runs of one group and seed pair too (the page's runs without their configs)
    grouped = [RunResult(r.run_id, r.method, r.seed, r.state, r.records, group="g")
               for r in results(GOOD_ACC, paired=False)]
    assert {p["test"] for p in verdict("accuracy", grouped).parts} == {stats.PAIRED}


def test_pairing_is_more_powerful_when_seeds_move_together():
    """Seeds that are good or bad for every method (shared data and init): the paired test sees
    the constant gap, the two-sample test only the seed spread."""
    accs = {"base": [45.0, 60.0, 52.0], "all": [47.0, 62.1, 54.0], "norm": [48.0, 63.0, 55.1]}
    assert verdict("accuracy", results(accs)).verdict == claims.CONSISTENT
    assert verdict("accuracy", results(accs, paired=False)).verdict == claims.INCONCLUSIVE


def test_partial_runs_give_a_provisional_verdict_from_their_latest_epoch():
    rs = results(GOOD_ACC, state="running")
    v = verdict("accuracy", rs)
    assert v.provisional and v.sentence.startswith("So far (runs still training;")
    assert v.evidence["methods"]["SAM-ON"]["partial_seeds"] == [0, 1, 2]
    behind = [RunResult("slow", "norm", 3, "running", tuple(records(54.0, epochs=1)))]
    v = verdict("accuracy", results(GOOD_ACC) + behind)
    assert v.evidence["epoch"] == 1 and "compared at epoch 1" in v.sentence
    assert v.evidence["methods"]["SGD"]["mean"] == pytest.approx(50.0 - 4.0)  # epoch 1 of 3
    queued = [RunResult("q", "norm", 0, "queued")] + [r for r in rs if r.method != "norm"]
    v = verdict("accuracy", queued)
    assert v.verdict == claims.INCONCLUSIVE and "no test accuracy yet for SAM-ON" in v.sentence


# ---------------------------------------------------------------------------------------------
# the other claims
# ---------------------------------------------------------------------------------------------


def test_no_norm_is_judged_against_sam_all():
    harm = verdict("no-norm", results({"all": [53.0, 53.2, 52.8], "norm": [54.0, 54.2, 53.8],
                                       "no-norm": [50.0, 50.2, 49.8]}))
    assert harm.verdict == claims.CONSISTENT
    assert [p["decides"] for p in harm.parts] == [True, False]
    assert "For information (does not decide): SAM-ON ended ahead of no-norm" in harm.sentence
    helps = verdict("no-norm", results({"all": [53.0, 53.2, 52.8], "norm": [54.0, 54.2, 53.8],
                                        "no-norm": [57.0, 57.2, 56.8]}))
    assert helps.verdict == claims.NOT_CONSISTENT
    # the failure: no-norm = SAM-all and only SAM-ON better decided it; now it does not
    only_on = verdict("no-norm", results({"all": [53.0, 53.9, 52.1], "norm": [60.0, 60.2, 59.8],
                                          "no-norm": [53.2, 53.7, 52.3]}))
    assert part(only_on, "SAM-ON", "no-norm")["status"] == stats.HOLDS
    assert only_on.verdict == claims.INCONCLUSIVE


def test_sharper_needs_sam_all_and_sgd_on_every_recorded_probe():
    claim_acc = {"base": [50.0, 50.2, 49.8], "all": [53.0, 53.2, 52.8],
                 "norm": [54.0, 54.2, 53.8]}
    on = [{"sharp": v, "sharp20": v / 3} for v in (0.30, 0.31, 0.29)]
    al = [{"sharp": v, "sharp20": v / 3} for v in (0.18, 0.19, 0.17)]
    sgd = [{"sharp": v, "sharp20": v / 3} for v in (0.20, 0.21, 0.19)]
    ok = verdict("sharper", results(claim_acc, norm=on, all=al, base=sgd), "gpu")
    assert ok.verdict == claims.CONSISTENT and len(ok.parts) == 5
    assert {p["metric"] for p in ok.parts} == {"1-step adaptive m-sharpness",
                                              "20-step adaptive m-sharpness",
                                              "final test accuracy"}
    assert "SAM-ON ended sharper than SGD by" in ok.sentence
    # SAM-ON sharper than SAM-all but not than SGD: not consistent any more
    sharp_sgd = [{"sharp": v, "sharp20": v} for v in (0.50, 0.51, 0.49)]
    worse = verdict("sharper", results(claim_acc, norm=on, all=al, base=sharp_sgd), "gpu")
    assert worse.verdict == claims.NOT_CONSISTENT
    assert "SAM-ON ended flatter than SGD" in worse.sentence
    # without the 20-step probe (the cpu size) its parts are left out and said so
    one_probe = verdict("sharper", results(claim_acc, norm=[{"sharp": 0.30}] * 3,
                                           all=[{"sharp": 0.18}] * 3, base=[{"sharp": 0.2}] * 3))
    assert len(one_probe.parts) == 3 and one_probe.verdict == claims.CONSISTENT
    assert "20-step adaptive m-sharpness: not recorded by these runs." in one_probe.sentence
    no_probe = verdict("sharper", results({"base": [50.0], "all": [53.0], "norm": [55.0]},
                                          norm={"sharp": None}, all={"sharp": None}))
    assert no_probe.verdict == claims.INCONCLUSIVE and "sharpness" in no_probe.sentence


def test_sharper_uses_the_sizes_sharpness_units():
    """The issue: a one-seed threshold of 0.1 at values ~0.008 let no sharpness gap count. At
    the cpu size a 0.004 gap with seeds differing by 0.0005 now counts."""
    acc = {"base": [50.0, 50.2, 49.8], "all": [53.0, 53.2, 52.8], "norm": [54.0, 54.2, 53.8]}
    v = verdict("sharper", results(acc, norm=[{"sharp": x} for x in (0.0120, 0.0125, 0.0115)],
                                   all=[{"sharp": x} for x in (0.0080, 0.0085, 0.0075)],
                                   base=[{"sharp": x} for x in (0.0082, 0.0087, 0.0077)]))
    assert part(v, "SAM-ON", "SAM-all", "1-step adaptive m-sharpness")["status"] == "holds"
    assert "SAM-ON ended sharper than SAM-all by 0.0040" in v.sentence


def test_sparsity_verdicts():
    assert verdict("sparsity", results({"norm": [54.0, 54.2, 53.8], "random": [50.0, 50.3, 49.7],
                                        "all": [53.0, 53.0, 53.0]})).verdict == claims.CONSISTENT
    assert verdict("sparsity", results({"norm": [50.0, 50.2, 49.8], "random": [54.0, 54.3, 53.7],
                                        "all": [53.0, 53.0, 53.0]})).verdict \
        == claims.NOT_CONSISTENT


def test_gamma_shift_is_decided_by_sgd_with_sam_all_and_beta_shown():
    acc = {"base": [50.0] * 3, "all": [53.0] * 3, "norm": [54.0] * 3}
    base = [{"gamma_end": g, "beta_end": 0.01} for g in (0.95, 0.96, 0.94)]
    # SAM-ON above SGD, below SAM-all: consistent (SAM-all does not decide)
    up = verdict("gamma-shift", results(
        acc, norm=[{"gamma_end": g, "beta_end": 0.03} for g in (1.10, 1.12, 1.08)],
        all=[{"gamma_end": g} for g in (1.20, 1.21, 1.19)], base=base))
    assert up.verdict == claims.CONSISTENT
    assert up.evidence["methods"]["SAM-ON"]["mean"] == pytest.approx(0.10)
    assert part(up, "SAM-ON", "SAM-all", "shift of the mean gamma since initialisation")[
        "decides"] is False
    beta = part(up, "SAM-ON", "SGD", "shift of the mean beta since initialisation")
    assert beta["decides"] is False and beta["effect"] == pytest.approx(0.02)
    assert ("SAM-ON ended with a higher mean gamma, relative to its start, than SGD by 0.150"
            in up.sentence)
    assert "SAM-ON ended with a lower mean gamma, relative to its start, than SAM-all" in \
        up.sentence
    down = verdict("gamma-shift", results(
        acc, norm=[{"gamma_end": g} for g in (0.90, 0.91, 0.89)],
        all=[{"gamma_end": g} for g in (1.02, 1.03, 1.01)], base=base))
    assert down.verdict == claims.NOT_CONSISTENT
    assert "SAM-all" not in claims.get_claim("gamma-shift").paper_text.split("(")[0]


# ---------------------------------------------------------------------------------------------
# cost: from step windows
# ---------------------------------------------------------------------------------------------


def test_cost_one_lockstep_seed_gives_a_tight_interval():
    """The issue: a measured 0.851 was inconclusive with one seed; its step windows decide."""
    v = verdict("cost", cost_results({"base": [0.05], "all": [0.100], "norm": [0.0851]},
                                      lockstep=True, noise=0.005))
    assert v.verdict == claims.CONSISTENT and not v.provisional
    p = v.parts[0]
    assert p["ci95"][1] < 1 and p["effect"] == pytest.approx(0.851, abs=0.01)
    assert "a SAM-ON step took 0.85x a SAM-all step" in v.sentence
    assert "below 1: holds" in v.sentence and "inconclusive" not in v.sentence.lower()
    assert v.evidence["flop_ratio"] == pytest.approx(5 / 6)


def test_cost_needs_lockstep_and_reads_step_times():
    times = {"base": [0.05] * 3, "all": [0.10, 0.11, 0.10], "norm": [0.08, 0.09, 0.08]}
    v = verdict("cost", cost_results(times, lockstep=True))
    assert v.verdict == claims.CONSISTENT and "FLOP estimate is 0.83x" in v.sentence
    unfair = verdict("cost", cost_results(times, lockstep=False))
    assert unfair.verdict == claims.INCONCLUSIVE and "lockstep" in unfair.sentence
    assert "together" in unfair.settle
    dearer = {"base": [0.05] * 3, "all": [0.10] * 3, "norm": [0.12, 0.125, 0.115]}
    d = verdict("cost", cost_results(dearer, lockstep=True))
    assert d.verdict == claims.NOT_CONSISTENT and "above 1: refuted" in d.sentence
    # equal costs: the rule errs 2.5% of the time either way (seed 1's draw is not one of them)
    same = verdict("cost", cost_results({"base": [0.05], "all": [0.1], "norm": [0.1]},
                                         lockstep=True, noise=0.3, seed=1))
    assert same.verdict == claims.INCONCLUSIVE and "includes 1: open" in same.sentence
    few = verdict("cost", cost_results({"base": [0.05], "all": [0.1], "norm": [0.08]},
                                        lockstep=True, windows=1, epochs=1))
    assert few.verdict == claims.NO_VERDICT


def test_cost_ratio_estimate_by_hand():
    from samon_core.claims.cost import ratio_estimates

    y = np.array([[[1.0, 2.0, 3.0]]])
    x = np.array([[[2.0, 2.0, 4.0]]])
    est = ratio_estimates(y, x)
    r = 6.0 / 8.0
    resid = y[0, 0] - r * x[0, 0]
    se = math.sqrt((resid ** 2).sum() / (3 * 2)) / (8.0 / 3)
    assert float(est.effect[0]) == pytest.approx(1 - r) and float(est.se[0]) == pytest.approx(se)
    assert float(est.df[0]) == 2.0


# ---------------------------------------------------------------------------------------------
# sentences follow the numbers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("claim_id", ["accuracy", "no-norm", "sharper", "sparsity",
                                      "gamma-shift"])
def test_every_part_sentence_matches_its_numbers(claim_id):
    """For random runs: the sign word follows the effect, the printed interval ends are on the
    side of the boundary the status says, and the status word is the part's."""
    rng = np.random.default_rng(hash(claim_id) % 1000)
    methods = claims.get_claim(claim_id).methods
    for _ in range(40):
        n = int(rng.integers(1, 5))
        accs = {m: list(rng.normal(50, 2, n)) for m in methods}
        opts = {m: [{"sharp": float(rng.normal(0.01, 0.003)),
                     "sharp20": float(rng.normal(0.05, 0.01)),
                     "gamma_end": float(rng.normal(1.05, 0.02)),
                     "beta_end": float(rng.normal(0.0, 0.01))} for _ in range(n)]
                for m in methods}
        v = verdict(claim_id, results(accs, **opts), str(rng.choice(["cpu", "gpu", "paper"])))
        for p in v.parts:
            text = p["sentence"]
            if p["effect"] > 0:
                assert any(w in text for w in ("ahead of", "sharper than", "higher mean"))
            elif p["effect"] < 0:
                assert any(w in text for w in ("behind", "flatter than", "lower mean"))
            if p["status"] == stats.UNTESTED:
                assert text.startswith("From one seed:")
                continue
            assert text.endswith(f": {p['status']}.")
            lo, hi = (float(x) for x in
                      text.split("95% interval ")[1].split(")")[0].split(" to "))
            bound = -p["margin"]
            assert (lo > bound) == (p["status"] == stats.HOLDS)
            if p["status"] == stats.REFUTED:
                assert hi < bound or "Bonferroni" in text
            if p["status"] == stats.OPEN:
                assert (hi >= bound) == ("the interval reaches" in text)


def test_an_interval_below_the_margin_that_bonferroni_leaves_open_says_so():
    """The 95% interval printed lies wholly below -0.5, but refuting takes the wider Bonferroni
    interval: the sentence must not claim 'the interval reaches -0.5' (it does not)."""
    accs = {"base": [40, 41, 40.5], "all": [52.0, 52.6, 51.4], "norm": [50.0, 50.0, 50.0]}
    p = part(verdict("accuracy", results(accs), "paper"), "SAM-ON", "SAM-all")
    assert p["status"] == stats.OPEN and p["ci95"][1] < -0.5
    assert "the interval reaches" not in p["sentence"]
    assert "lies below -0.5" in p["sentence"] and "Bonferroni over 3 parts) reaches it" in \
        p["sentence"]


# ---------------------------------------------------------------------------------------------
# run sets and label noise
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_every_claim_builds_valid_configs_at_every_size(size):
    for claim in claims.CLAIMS:
        configs = claim.runs(size)
        assert len(configs) == len(claim.methods)
        for label, cfg in configs.items():
            assert isinstance(cfg, RunConfig) and cfg.method_label() == label
            assert RunConfig.from_json(cfg.to_json()) == cfg
        assert claim.statement.endswith(".") and claim.paper_text


def test_no_norm_trains_the_authors_asam_at_the_gpu_and_paper_sizes():
    claim = claims.get_claim("no-norm")
    for size in ("gpu", "paper"):
        configs = claim.method_configs(size)
        for m, cfg in configs.items():
            assert (cfg.adaptive, cfg.ball, cfg.normalize_bias) == ("elementwise", "l2", True)
            assert cfg.rho is None and cfg.resolved_rho() == \
                paper.paper_rho("elementwise", "l2", m)[0]
    assert {c.resolved_rho() for c in claim.method_configs("gpu").values()} == {5.0, 10.0}
    cpu = claim.method_configs("cpu")
    assert cpu["all"] == claims.get_claim("accuracy").method_configs("cpu")["all"]  # shared
    assert all(c.adaptive == "none" for c in cpu.values())


def test_size_of_a_runs_config():
    for size in SIZES:
        for cfg in claims.get_claim("accuracy").runs(size).values():
            assert size_of(cfg.replace(seed=4).to_dict()) == size
    assert size_of(RunConfig(model="tiny_resnet", dataset="synthetic", epochs=6).to_dict()) is None


def test_size_of_the_vit_claims_runs():
    """The ViT claims' runs change the model (runsets.SETTINGS): still their size's runs, so
    their verdicts take that size's floors; a ViT run of no claim size is of none."""
    for size in SIZES:
        for claim_id in ("vit-adamw", "vit-lion"):
            for cfg in claims.get_claim(claim_id).runs(size).values():
                assert cfg.model == "vit_tiny"
                assert size_of(cfg.replace(seed=3).to_dict()) == size, (claim_id, size)
    vit = claims.get_claim("vit-adamw").runs("cpu")
    off = next(iter(vit.values())).replace(epochs=7)
    assert size_of(off.to_dict()) is None


def test_run_sets_are_shared_and_the_paper_size_is_the_paper_preset():
    acc, sharp = claims.get_claim("accuracy").runs("cpu"), claims.get_claim("sharper").runs("cpu")
    assert {c.config_hash() for c in sharp.values()} <= {c.config_hash() for c in acc.values()}
    assert all(c.label_noise == CPU_LABEL_NOISE for c in acc.values())
    paper_runs = run_set(("base", "all", "norm"), "paper")
    preset = preset_configs("cifar100-wrn-paper")
    assert [c.config_hash() for c in paper_runs.values()] == \
        [c.config_hash() for c in preset.values()]
    assert claims.get_claim("accuracy").paper_numbers["norm"] == \
        paper.TEST_ACCURACY["norm"].mean


def test_label_noise_field_hash_and_label():
    c = RunConfig()
    assert c.label_noise == 0.0 and "label_noise" not in c.canonical_dict()
    noisy = c.replace(label_noise=0.2)
    assert noisy.config_hash() != c.config_hash() and noisy.canonical_dict()["label_noise"] == 0.2
    assert noisy.method_label() == "SAM-ON (20% noisy labels)"
    assert noisy.replace(method="base").method_label() == "SGD (20% noisy labels)"
    with pytest.raises(ValueError, match="label_noise"):
        RunConfig(label_noise=0.95)


def test_label_noise_rate_is_exact_and_the_test_set_untouched():
    import torch

    from samon_core.train.data.datasets import load_dataset, noisy_labels

    y = torch.arange(1000) % 10
    noisy = noisy_labels(y, 0.2, 10, seed=3)
    assert int((noisy != y).sum()) == 200  # exactly 20%, never the same class
    assert torch.equal(noisy, noisy_labels(y, 0.2, 10, seed=3))
    assert not torch.equal(noisy, noisy_labels(y, 0.2, 10, seed=4))
    clean = load_dataset("synthetic", train_subset=500, test_subset=200, seed=1)
    dirty = load_dataset("synthetic", train_subset=500, test_subset=200, seed=1, label_noise=0.3)
    assert int((dirty.train_y != clean.train_y).sum()) == 150
    assert torch.equal(dirty.test_y, clean.test_y) and torch.equal(dirty.test_x, clean.test_x)
    assert torch.equal(dirty.train_x, clean.train_x) and "label_noise: 30%" in dirty.source


# ---------------------------------------------------------------------------------------------
# the store and the CLI
# ---------------------------------------------------------------------------------------------


def test_collect_matches_configs_up_to_the_seed(tmp_path):
    store = RunStore(tmp_path / "runs")
    fake_claim_runs(store, "accuracy", {"base": [50.0, 50.5], "all": [51.0, 51.5],
                                        "norm": [52.0, 52.5]})
    write_fake_run(store, claims.get_claim("accuracy").runs("cpu")["SGD (40% noisy labels)"]
                   .replace(lr=0.05), 90.0)  # another config: not the claim's
    got = collect(store, "accuracy", "cpu")
    assert got.missing == () and len(got.runs) == 6
    assert got.verdict.evidence["methods"]["SGD"]["mean"] == pytest.approx(50.25)
    assert len(collect(store, "accuracy", "cpu", seeds=1).runs) == 3
    assert collect(store, "sparsity", "cpu").missing == ("random mask",)


def test_cli_claim_list(capsys):
    assert main(["claim", "list"]) == 0
    out = capsys.readouterr().out
    for cid in claims.CLAIM_IDS:
        assert f"{cid}: " in out


def test_cli_claim_verdict_json_inconclusive_exits_0(tmp_path, capsys):
    store = RunStore(tmp_path / "runs")
    fake_claim_runs(store, "accuracy", {"base": [50.0, 53.0, 47.0], "all": [51.0, 48.0, 54.0],
                                        "norm": [52.0, 49.0, 55.0]})
    assert main(["claim", "verdict", "accuracy", "--runs-dir", str(store.root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["claim"] == "accuracy" and out["verdict"] == "inconclusive"
    assert set(out) >= {"claim", "verdict", "evidence", "sentence"}
    assert out["evidence"]["methods"]["SAM-ON"]["values"] == pytest.approx([52.0, 49.0, 55.0])
    # per part: the paper's comparison, the test, the effect with its 95% interval, the verdict
    # and the chance noise alone would give it
    assert len(out["parts"]) == 3
    for p in out["parts"]:
        assert {"comparison", "paper", "test", "kind", "effect", "ci95", "status",
                "chance_alone"} <= set(p)
        assert p["test"] == "paired t-test" and p["paired_seeds"] == [0, 1, 2]
        assert p["ci95"][0] < p["effect"] < p["ci95"][1]
    assert out["parts"][0]["kind"] == "non-inferiority" and out["chance_alone"] is None
    assert out["evidence"]["size"] == "cpu" and out["evidence"]["floor"] == pytest.approx(0.5)


def test_cli_claim_verdict_one_seed_is_no_verdict(tmp_path, capsys):
    store = RunStore(tmp_path / "runs")
    fake_claim_runs(store, "accuracy", {"base": [40.0], "all": [50.0], "norm": [60.0]})
    assert main(["claim", "verdict", "accuracy", "--runs-dir", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("accuracy: NO VERDICT") and "direction, not a result" in out


def test_cli_claim_verdict_missing_runs_exits_2_with_one_line(tmp_path, capsys):
    assert main(["claim", "verdict", "cost", "--runs-dir", str(tmp_path / "r"), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("samon: error:") and "\n" not in err and "claim run cost" in err
    assert main(["claim", "verdict", "nope"]) == 2
    assert "unknown claim" in capsys.readouterr().err


def test_claim_run_reuses_finished_runs_and_retrains_cost_out_of_lockstep(tmp_path):
    store = RunStore(tmp_path / "runs")
    claim = claims.get_claim("accuracy")
    configs = [(label, cfg) for label, cfg in claim.runs("cpu").items()]
    fake_claim_runs(store, "accuracy", {"base": [50.0], "all": [51.0], "norm": [52.0]})
    todo, reused = plan_seed(claim, configs, store)
    assert todo == [] and len(reused) == 3
    todo, reused = plan_seed(claims.get_claim("cost"), configs, store)  # not in lockstep
    assert len(todo) == 3 and reused == []
    todo, _ = plan_seed(claim, [(label, c.replace(seed=1)) for label, c in configs], store)
    assert len(todo) == 3


@pytest.mark.slow
def test_cli_claim_run_trains_one_lockstep_group_then_reuses_it(tmp_path, monkeypatch, capsys):
    """A real ``claim run`` on the tiny config: three runs trained together in one lockstep
    group, a verdict printed; a second call trains nothing. Marked slow: it trains for real
    (85 s on the 2 shared cores of issue 25's machine under load)."""
    from support.configs import tiny_config

    from samon_core.claims import runsets

    monkeypatch.setitem(runsets.BASES, "cpu", tiny_config(sharpness_samples=64,
                                                          sharpness_m=32,
                                                          sharpness_multi_steps=0))
    runs = str(tmp_path / "runs")
    args = ["claim", "run", "cost", "--seeds", "1", "--runs-dir", runs, "--progress", "none"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "0 finished run(s) reused, 3 to train together" in err
    assert out.startswith("cost: ") and "lockstep seed" in out
    store = RunStore(runs)
    ids = store.run_ids()
    assert len(ids) == 3 and all(set(store.read_summary(r)["lockstep"]) == set(ids) for r in ids)
    assert main(args) == 0
    assert "3 finished run(s) reused, 0 to train" in capsys.readouterr().err
    assert len(store.run_ids()) == 3
