"""The Robustness tab of Live and Compare, its view model and the sentence that reads the runs."""

from __future__ import annotations

import json
import re

import pytest
from support.apptest import app, page, texts
from support.configs import tiny_config
from support.fakes import ROBUST_LEVELS, add_record, fake_run, robust_three
from support.records import robust_record

from samon_app.reader import RunData, RunInfo
from samon_app.robustness import (
    corruption_bars,
    curves,
    poster_rows,
    reading_sentence,
    standard_error,
)
from samon_core import paper
from samon_core.catalog import methods
from samon_core.catalog import robustness as suite


def _info(run_id: str, key: str, config: dict) -> RunInfo:
    spec = methods.BY_KEY[key]
    return RunInfo(run_id, spec.name, spec.name, key, spec.color, "finished", config)


def _data(run_id: str, *records: dict) -> RunData:
    return RunData(run_id, 1, list(records), [], [])


def test_curves_average_seeds_per_method_in_the_method_colour():
    sgd = tiny_config(method="base")
    infos = [_info("a", "base", sgd.to_dict()), _info("b", "base", sgd.replace(seed=1).to_dict()),
             _info("c", "norm", tiny_config().to_dict())]
    data = {"a": _data("a", robust_record(0.70, 0.20)), "b": _data("b", robust_record(0.60, 0.10)),
            "c": _data("c", robust_record(0.66, 0.02))}
    linf = curves(infos, data, "linf")
    assert [c.label for c in linf] == ["SGD", "SAM-ON"]
    sgd_curve, on_curve = linf
    assert sgd_curve.color == methods.BY_KEY["base"].color and on_curve.runs == 1
    assert sgd_curve.eps[0] == 0.0 and len(sgd_curve.eps) == 5  # clean + four l_inf budgets
    assert sgd_curve.acc[0] == pytest.approx(0.65) and sgd_curve.acc[1] == pytest.approx(0.5)
    assert sgd_curve.acc[2] == pytest.approx(0.35) and on_curve.std[2] == 0.0
    assert sgd_curve.std[2] == pytest.approx(0.0707107, rel=1e-5)  # sample std of 0.3, 0.4
    assert [len(c.eps) for c in curves(infos, data, "l2")] == [3, 3]
    bars = corruption_bars(infos, data)
    assert len(bars) == 2 * 4 * 3 and {b.color for b in bars} == {sgd_curve.color, on_curve.color}


def test_a_record_measured_again_counts_with_its_latest():
    info = _info("a", "norm", tiny_config().to_dict())
    (curve,) = curves([info], {"a": _data("a", robust_record(0.2, 0.1), robust_record(0.8, 0.1))},
                      "l2")
    assert curve.acc[0] == 0.8


def test_the_sentence_follows_the_numbers_it_reads():
    """Highest first, each number the curve's own, rounded as shown; the noise of one run."""
    infos = [_info("a", "base", tiny_config(method="base").to_dict()),
             _info("c", "norm", tiny_config().to_dict())]
    for sgd_drop, on_drop in ((0.2, 0.02), (0.01, 0.15)):  # either order
        data = {"a": _data("a", robust_record(0.70, sgd_drop)),
                "c": _data("c", robust_record(0.66, on_drop))}
        found = curves(infos, data, "linf")
        text = reading_sentence(found)
        named = re.findall(r"(SGD|SAM-ON) (\d+\.\d)% \(clean (\d+\.\d)%", text)
        at_top = {c.label: c.acc[-1] for c in found}
        assert [n for n, _, _ in named] == sorted(at_top, key=lambda k: -at_top[k])
        for name, robust, clean in named:
            curve = next(c for c in found if c.label == name)
            assert robust == f"{100 * curve.acc[-1]:.1f}" and clean == f"{100 * curve.acc[0]:.1f}"
        assert "eps 2/255" in text
        worst = max(standard_error(a, 512) for a in at_top.values())
        assert f"±{100 * worst:.1f} points" in text
    assert "No robustness results yet" in reading_sentence([])
    assert standard_error(0.5, 400) == pytest.approx(0.025)


def test_poster_rows_are_the_posters_table():
    rows = poster_rows()
    assert [r["attack"] for r in rows] == ["l∞, eps 0.25/255", "l∞, eps 0.5/255", "l2, eps 0.25",
                                           "l2, eps 0.5"]
    assert rows[2]["Lion SAM-ON"] == "43.12 ± 0.97" and rows[0]["AdamW vanilla"] == "33.45 ± 0.80"
    stat = paper.VIT_S32_IMAGENET["AdamW"]["l2 eps=0.50"]["all"]
    assert rows[3]["AdamW SAM-all"] == f"{stat.mean:.2f} ± {stat.std:.2f}"
    poster = [(b.norm, b.eps) for b in suite.ATTACKS if b.poster]
    assert sorted(poster) == sorted((n, e) for n, e, _ in paper.VIT_ROBUSTNESS_BUDGETS.values())


def _chart(at, key):
    found = [c for c in at.get("plotly_chart") if key in (c.proto.id or "")]
    assert found, f"no chart {key}"
    return json.loads(found[0].proto.spec)


def test_live_robustness_view_draws_each_method_in_its_colour(runs):
    cfg = tiny_config()
    sgd = fake_run(runs, cfg.replace(method="base"), group="gr")
    on = fake_run(runs, cfg, group="gr")
    add_record(runs, sgd, robust_record(0.6, 0.15))
    add_record(runs, on, robust_record(0.62, 0.03))
    at = page(app(group="gr"), "app_pages/live.py")
    at.segmented_control(key="view").set_value("Robustness").run()
    assert not at.exception, [e.message for e in at.exception]
    spec = _chart(at, "live_robust")
    colors = {t["name"]: t["line"]["color"] for t in spec["data"]}
    assert colors == {"SGD": methods.BY_KEY["base"].color, "SAM-ON": methods.BY_KEY["norm"].color}
    body = texts(at)
    assert "Your runs, under l∞ PGD at eps 2/255: SAM-ON 50.0% (clean 62.0%)" in body
    assert "ViT-S/32 on ImageNet" in body and "not the levels" in body
    bars = _chart(at, "live_corrupt")
    assert {t["marker"]["color"] for t in bars["data"]} == set(colors.values())
    at.segmented_control(key="live_norm").set_value("l2").run()
    assert not at.exception
    assert "under l2 PGD at eps 0.5" in texts(at)


def test_live_and_compare_without_robustness_say_how_to_get_it(runs):
    cfg = tiny_config()
    rid = fake_run(runs, cfg, group="gn")
    bad = fake_run(runs, cfg.replace(method="base"), group="gn")
    # damaged: skipped by the reader
    add_record(runs, bad, {**robust_record(0.5, 0.1), "attacks": "x"})
    at = page(app(group="gn"), "app_pages/live.py")
    at.segmented_control(key="view").set_value("Robustness").run()
    assert not at.exception, [e.message for e in at.exception]
    body = texts(at)
    assert "No robustness results yet" in body
    assert f"python -m samon_core robustness {rid}" in body or \
        f"python -m samon_core robustness {bad}" in body
    assert "ViT-S/32 on ImageNet" in body  # the poster's reference stands on its own
    at = page(app(group="gn"), "app_pages/compare.py")
    assert not at.exception, [e.message for e in at.exception]
    assert "No robustness results yet" in texts(at)


def test_compare_shows_the_robustness_of_the_shown_runs(runs):
    cfg = tiny_config()
    for seed in (0, 1):
        rid = fake_run(runs, cfg.replace(seed=seed), group="gc")
        add_record(runs, rid, robust_record(0.6 + 0.02 * seed, 0.05))
    at = page(app(group="gc"), "app_pages/compare.py")
    assert not at.exception, [e.message for e in at.exception]
    spec = _chart(at, "compare_robust")
    (trace,) = spec["data"]
    assert trace["name"] == "SAM-ON" and trace["error_y"]["visible"] is True  # two seeds
    assert "2 seeds" in texts(at)


# ---------------------------------------------------------------------------------------------
# the robustness and corruption claims' verdicts under the tab
# ---------------------------------------------------------------------------------------------

def test_view_claims_are_the_tabs_claims_the_runs_can_be_judged_on():
    from samon_app.verdicts import view_claims, view_line

    cfg = tiny_config(robustness="standard")
    infos = [_info(k, k, (cfg.replace(method="base") if k == "base" else
                          cfg.replace(scope=k)).to_dict()) for k in ("base", "all", "norm")]
    data = {k: _data(k, robust_record(*ROBUST_LEVELS[k])) for k in ROBUST_LEVELS}
    assert view_claims("robustness", infos, data) == ["robustness", "corruption"]
    assert view_claims("robustness", infos[1:], data) == []  # no SGD: no claim compares them
    off = [_info(i.run_id, i.key, {**i.config, "robustness": "off"}) for i in infos]
    # never measured
    assert view_claims("robustness", off, {k: _data(k) for k in ROBUST_LEVELS}) == []
    assert view_claims("robustness", off, data) == ["robustness", "corruption"]  # added later
    assert view_claims("accuracy", infos, data) == ["accuracy"]
    line = view_line("robustness", infos, data, "corruption")
    assert line.claim == "corruption"
    with pytest.raises(ValueError, match="not one of the robustness view's"):
        view_line("robustness", infos, data, "accuracy")


def test_the_robustness_tab_tells_both_claims_verdicts_on_these_runs(runs):
    """Live's Robustness tab: the robustness and corruption claims' lines on the group's runs,
    each as the claim's verdict function gives it, and the way to their cards."""
    from samon_app.claim_lines import ONE_SEED
    from samon_app.reader import build_run_data
    from samon_app.verdicts import line_text, view_line
    from samon_core.claims.results import robust_acc
    from samon_core.claims.rules import ROBUST_ATTACKS

    ids = robust_three(runs, "gr3")
    at = page(app(group="gr3"), "app_pages/live.py")
    at.segmented_control(key="view").set_value("Robustness").run()
    assert not at.exception, [e.message for e in at.exception]
    body = texts(at)
    infos = _infos(runs, ids)
    data = {rid: build_run_data(rid, runs.read_records(rid)) for rid in ids.values()}
    for claim_id in ("robustness", "corruption"):
        assert line_text(view_line("robustness", infos, data, claim_id)) in body
    # the numbers are the records': the line tells the part against the paper (SAM-ON behind
    # SAM-all under the l2 attack), and says so
    rob = {k: robust_acc(data[rid].records, *ROBUST_ATTACKS["robust-l2"]) for k, rid in ids.items()}
    gap = rob["all"] - rob["norm"]
    assert gap > 0 and \
        f"SAM-all ended {gap:.1f} points ahead of SAM-ON, the paper's opposite" in body
    assert body.count("Your runs: no verdict.") == 2 and ONE_SEED in body
    links = [e.proto.label for e in at.get("page_link")]
    assert any("the robustness and corruption claims with more seeds" in x for x in links)


def test_the_robustness_tab_judges_no_claim_for_runs_with_robustness_off(runs):
    cfg = tiny_config()  # robustness off, and no record: nothing to judge
    for method in ("base", "all", "norm"):
        fake_run(runs, cfg.replace(method="base") if method == "base" else
                 cfg.replace(scope=method), group="off3")
    at = page(app(group="off3"), "app_pages/live.py")
    at.segmented_control(key="view").set_value("Robustness").run()
    assert not at.exception, [e.message for e in at.exception]
    assert "Your runs:" not in texts(at)
    assert not any("claims with more seeds" in e.proto.label for e in at.get("page_link"))


def _infos(store, ids: dict[str, str]) -> list[RunInfo]:
    """The runs as the page reads them."""
    from samon_app.reader import run_infos

    return run_infos({"run_id": rid, "config": store.read_config_dict(rid),
                      "meta": store.read_meta(rid), "status": store.read_status(rid),
                      "summary": store.read_summary(rid)} for rid in ids.values())
