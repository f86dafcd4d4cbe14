"""What a laptop shows (issue 22, item 4): the lab's recorded cpu-size verdicts
(``samon_core.claims.laptop``) are checked when loaded (a status its interval contradicts is
refused), Home's lead is built from them sentence by sentence (each word follows the numbers it
prints: random parts drive the property test, a fixed seed), the claims left open or unmeasured
come from the record and the claims' ``cpu_shows``, and Live's card leads with what a laptop
settled, with the user's own numbers on those comparisons. Home renders with the lab's record
and with a damaged one (AppTest)."""

from __future__ import annotations

import copy
import json
import random
import re

import pytest
from support.apptest import app, page, texts
from support.claim_results import GOOD, group_per_seed, results, verdict
from support.fakes import robust_three

from samon_app import laptop as view
from samon_core.claims import CLAIMS, CONSISTENT, get_claim, laptop
from samon_core.claims.laptop import BadLaptopRecord, LaptopPart, LaptopRecord, parse, record_of
from samon_core.runs.presets import get_preset

NUM = r"-?\d+(?:\.\d+)?"


def _part(**kw) -> dict:
    return {"metric": "robust-l2", "a": "all", "b": "base", "kind": "superiority",
            "margin": 0.0, "effect": 51.0, "low": 47.4, "high": 54.5, "status": "holds",
            "test": "paired t-test", **kw}


def _record(**claims) -> dict:
    return {"size": "cpu", "measured": "2026-01-01", "machine": "a test CPU, 2 cores",
            "command": "python bench/laptop_verdicts.py", "runs": "fake runs",
            "claims": claims or {
                "robustness": {"verdict": "inconclusive", "seeds": [0, 1, 2], "parts": [
                    _part(a="norm", b="all", kind="non-inferiority", margin=1.8, effect=-2.0,
                          low=-8.1, high=4.1, status="open"),
                    _part(), _part(a="norm", effect=49.0, low=41.4, high=56.5)]},
                "cost": {"verdict": "consistent", "seeds": [0, 1, 2], "parts": [
                    _part(metric="step-time", a="norm", b="all", effect=0.87, low=0.85,
                          high=0.90)]},
                "accuracy": {"verdict": "inconclusive", "seeds": [0, 1, 2], "parts": [
                    _part(metric="accuracy", effect=2.0, low=-5.5, high=9.4, status="open")]},
            }}


def _load(record: dict) -> LaptopRecord:
    return parse(json.dumps(record))


# ---------------------------------------------------------------------------------------------
# the record
# ---------------------------------------------------------------------------------------------


def test_the_labs_record_loads_and_agrees_with_the_claims_cpu_flags():
    """The shipped record passes its checks, and a claim the record calls consistent is one the
    claims' data says a CPU shows (and the reverse, where both speak)."""
    record = laptop.load()
    assert record.claims and record.size == "cpu"
    for claim_id, v in record.claims.items():
        shows = get_claim(claim_id).cpu_shows
        if v.verdict == CONSISTENT:
            assert shows is True, claim_id
        if shows is True:
            assert v.verdict == CONSISTENT, claim_id
        assert len(v.seeds) >= 2
    # the claims judged from seeds come from the per-seed values the cpu notes quote
    from samon_core.claims.cost import STEP_TIME_PAIRS
    from samon_core.claims.data import cpu_measured

    for claim_id, v in record.claims.items():
        if claim_id not in STEP_TIME_PAIRS:
            outcome, seeds, _ = cpu_measured(claim_id)
            assert (outcome, seeds) == (v.verdict, len(v.seeds)), claim_id
    assert {"robustness", "cost"} <= set(record.claims)


def test_seeded_verdicts_follow_the_recorded_values(monkeypatch):
    """Put SAM-all's robust values 2.6 points below SGD's in every seed: its part is refuted,
    the claim not consistent; a claim whose values were never recorded (the ViT runs) has no
    laptop verdict; the gammas' recorded shifts give theirs (SAM-ON vs SGD: open)."""
    from samon_core.claims import calibration

    before = laptop.seeded("robustness")
    assert [p.status for p in before.parts] == ["open", "holds", "holds"]
    assert before.parts[1].effect == pytest.approx(50.95, abs=1e-4)
    seeds = {**calibration.CPU_SEEDS, "robust-l2": {
        **calibration.CPU_SEEDS["robust-l2"], "all": (0.05, 4.25, 0.0)}}
    monkeypatch.setattr(calibration, "CPU_SEEDS", seeds)
    after = laptop.seeded("robustness")
    assert after.verdict == "not consistent" and after.parts[1].status == "refuted"
    assert laptop.seeded("vit-adamw") is None
    gamma = laptop.seeded("gamma-shift")
    assert gamma.verdict == "inconclusive" and [p.status for p in gamma.parts] == ["open"]
    assert gamma.parts[0].effect == pytest.approx(0.0012, abs=1e-4)
    assert laptop.seeded("cost") is None  # judged from step times: the JSON's


def test_the_file_holds_only_the_step_time_claims(monkeypatch, tmp_path):
    bad = tmp_path / "laptop_verdicts.json"
    bad.write_text(json.dumps(_record()))  # robustness and accuracy in the file
    monkeypatch.setattr(laptop, "PATH", bad)
    laptop.load.cache_clear()
    try:
        with pytest.raises(BadLaptopRecord, match="only the step-time claims"):
            laptop.load()
    finally:
        laptop.load.cache_clear()


@pytest.mark.parametrize("change, message", [
    (lambda r: r["claims"]["cost"]["parts"][0].update(high=1.01), "clear of"),
    (lambda r: r["claims"]["accuracy"]["parts"][0].update(status="holds"), "clear of"),
    (lambda r: r["claims"]["accuracy"]["parts"][0].update(status="refuted"), "refuted"),
    (lambda r: r["claims"]["robustness"].update(verdict="consistent"), "parts make it"),
    (lambda r: r["claims"]["cost"]["parts"][0].update(effect=0.95), "outside its interval"),
    (lambda r: r["claims"]["accuracy"]["parts"][0].update(metric="speed"), "unknown metric"),
    (lambda r: r["claims"]["accuracy"]["parts"][0].update(a="no-norm"), "not its methods"),
    (lambda r: r["claims"].update(nope=r["claims"]["cost"]), "unknown claim"),
    (lambda r: r["claims"]["accuracy"]["parts"][0].update(metric="step-time"), "step-time"),
    (lambda r: r["claims"]["cost"].update(seeds=[0]), "at least 2"),
    (lambda r: r.update(extra=1), "Extra inputs"),
])
def test_a_record_whose_words_disagree_with_its_numbers_is_refused(change, message):
    bad = copy.deepcopy(_record())
    change(bad)
    with pytest.raises(BadLaptopRecord, match=message):
        _load(bad)
    with pytest.raises(BadLaptopRecord, match="laptop_verdicts.json"):
        parse("{not json")


def test_record_of_keeps_a_verdicts_deciding_parts_as_measured():
    """What bench/laptop_verdicts.py writes: the verdict function's own parts, by method key."""
    accs = {"base": [60.0, 60.5, 59.0], "all": [62.0, 62.4, 61.5], "norm": [62.1, 62.3, 61.6]}
    robust = {"base": [5.0, 6.0, 4.0], "all": [50.0, 52.0, 51.0], "norm": [49.0, 52.5, 50.0]}
    rs = results(accs, **{m: [{"robust": x} for x in v] for m, v in robust.items()})
    v = verdict("robustness", rs)
    rec = record_of(v.as_dict(), [0, 1, 2])
    assert rec is not None and rec.verdict == v.verdict and rec.seeds == (0, 1, 2)
    assert [(p.a, p.b, p.metric) for p in rec.parts] == [
        ("norm", "all", "robust-l2"), ("all", "base", "robust-l2"), ("norm", "base", "robust-l2")]
    for p, q in zip(rec.parts, v.parts, strict=True):
        assert (p.effect, [p.low, p.high], p.status) == (q["effect"], q["ci95"], q["status"])
    assert record_of(verdict("robustness", results({m: a[:1] for m, a in accs.items()}))
                     .as_dict(), [0]) is None  # one seed: no verdict, nothing measured


# ---------------------------------------------------------------------------------------------
# Home's sentences follow their numbers
# ---------------------------------------------------------------------------------------------

POINTS_RE = re.compile(rf"^(?P<first>.+?) ended (?P<gap>{NUM}) points ahead of (?P<second>.+?)"
                       rf"(?:, within the {NUM}-point margin)? \(95% interval (?P<lo>{NUM}) to "
                       rf"(?P<hi>{NUM}) points\): (?P<word>.+)$")
RATIO_RE = re.compile(rf"^SAM-ON's steps took (?P<share>{NUM})% (?P<what>less|more) time than "
                      rf"SAM-all's \((?P<ratio>{NUM})x; 95% interval of the ratio (?P<lo>{NUM}) "
                      rf"to (?P<hi>{NUM})\): (?P<word>.+)$")


def _random_part(rng: random.Random, step_time: bool) -> LaptopPart:
    if step_time:
        effect, half, margin, bound = rng.uniform(0.5, 1.5), rng.uniform(1e-4, 0.2), 0.0, 1.0
    else:
        margin = rng.choice((0.0, 0.5, 1.8))
        effect, half, bound = rng.uniform(-12, 12), rng.uniform(1e-4, 8), -margin
    if rng.random() < 0.3:  # an end just beside the bound: rounding must not cross it
        effect = bound + half + rng.choice((1, -1)) * rng.uniform(1e-6, 1e-3)
    low, high = effect - half, effect + half
    clear = high < 1 if step_time else low > -margin
    wrong = low > 1 if step_time else high < -margin
    status = "holds" if clear else "refuted" if wrong and rng.random() < 0.7 else "open"
    return LaptopPart(metric="step-time" if step_time else "robust-l2", a="norm",
                      b="all" if step_time else rng.choice(("all", "base")),
                      kind="non-inferiority" if margin else "superiority", margin=margin,
                      effect=effect, low=low, high=high, status=status, test="t")


@pytest.mark.parametrize("step_time", [False, True])
def test_every_part_sentence_says_what_its_numbers_say(step_time):
    from samon_core.claims.results import method_name

    rng = random.Random(22)
    for _ in range(400):
        p = _random_part(rng, step_time)
        text = view.part_text(p)
        m = (RATIO_RE if step_time else POINTS_RE).match(text)
        assert m, text
        word = m["word"]
        assert (word == "holds") == (p.status == "holds"), text
        assert ("refuted" in word) == (p.status == "refuted"), text
        lo, hi = float(m["lo"]), float(m["hi"])
        if step_time:
            assert (m["what"] == "less") == (p.effect < 1), text
            assert (float(m["ratio"]) < 1) == (p.effect < 1), text
            assert abs(lo - p.low) < 0.006 and abs(hi - p.high) < 0.006, text
            assert (hi < 1) == (p.status == "holds"), text  # the printed interval shows it
            continue
        a, b = method_name(p.a), method_name(p.b)
        first_is_a = m["first"] == a
        assert {m["first"], m["second"]} == {a, b} and first_is_a == (p.effect >= 0), text
        assert abs(float(m["gap"]) - abs(p.effect)) < 0.051, text
        a_minus_b = (lo, hi) if first_is_a else (-hi, -lo)  # the printed interval is first - second
        assert abs(a_minus_b[0] - p.low) < 0.051 and abs(a_minus_b[1] - p.high) < 0.051, text
        assert (a_minus_b[0] > -p.margin) == (p.status == "holds"), text


def test_a_refuted_part_names_the_comparison_it_refutes():
    p = LaptopPart(metric="sharpness@1", a="norm", b="base", kind="superiority", margin=0.0,
                   effect=-0.1054, low=-0.1181, high=-0.0927, status="refuted", test="t")
    assert view.part_text(p) == ("SGD ended sharper than SAM-ON by 0.1054 (95% interval 0.0927 "
                                 "to 0.1181): 'SAM-ON sharper than SGD' refuted")


def test_the_lead_tells_what_settled_and_lists_the_rest_from_the_data():
    lead = view.lead(_load(_record()))
    assert [f.claim for f in lead.findings] == ["robustness", "cost"]  # clearest first
    rob = lead.findings[0]
    assert rob.held == 2 and rob.refuted == 0 and len(rob.parts) == 2
    assert rob.text.startswith("**Robustness** (accuracy under an l2 PGD attack of radius 0.25, "
                               "3 seeds): SAM-all ended 51.0 points ahead of SGD (95% interval "
                               "47.4 to 54.5 points): holds; SAM-ON ended 49.0 points ahead")
    assert rob.text.endswith("Still open: SAM-ON at least as good as SAM-all.")
    assert "(0.87x; 95% interval of the ratio 0.85 to 0.90): holds" in lead.findings[1].text
    assert "3 lockstep seeds" in lead.findings[1].text
    # open: recorded with nothing settled, or a CPU measured not to show it (cpu_shows False)
    shows_false = {c.id for c in CLAIMS if c.cpu_shows is False}
    from samon_app.claim_lines import topic
    assert set(lead.open_claims) == {topic(c) for c in ({"accuracy"} | shows_false) - {
        "robustness", "cost"}}
    assert set(lead.unmeasured) == {topic(c.id) for c in CLAIMS if c.cpu_shows is None
                                    and c.id not in ("robustness", "cost", "accuracy")}
    assert "a test CPU, 2 cores" in lead.basis and "2.5%" in lead.basis and not lead.problem


def test_a_claim_with_only_a_refutation_comes_after_those_that_hold():
    rec = _record()
    rec["claims"]["sharper"] = {"verdict": "not consistent", "seeds": [0, 1, 2], "parts": [
        _part(metric="sharpness@1", a="norm", b="base", effect=-0.1, low=-0.2, high=-0.09,
              status="refuted")]}  # the clearest of all, yet against the paper
    lead = view.lead(_load(rec))
    assert [f.claim for f in lead.findings] == ["robustness", "cost", "sharper"]
    assert view.order(["accuracy", "sharper", "cost"], _load(rec)) == ["cost", "sharper",
                                                                     "accuracy"]


def test_a_damaged_record_gives_a_lead_with_its_problem(monkeypatch, tmp_path):
    bad = tmp_path / "laptop_verdicts.json"
    bad.write_text('{"size": "cpu"}')
    monkeypatch.setattr(laptop, "PATH", bad)
    laptop.load.cache_clear()
    try:
        lead = view.lead()
        assert lead.findings == () and "laptop_verdicts.json" in lead.problem
        assert view.order(["accuracy", "cost"]) == ["accuracy", "cost"]
        assert view.card_text("robustness", []) == ""
    finally:
        laptop.load.cache_clear()


# ---------------------------------------------------------------------------------------------
# the pages
# ---------------------------------------------------------------------------------------------


def test_home_leads_with_what_a_laptop_shows(runs):
    at = page(app(), "app_pages/home.py")
    body = texts(at)
    lead = view.lead()
    assert [s.value for s in at.subheader][0] == view.TITLE
    for f in lead.findings:
        assert f"- {f.text}" in body
    assert lead.basis in body and ", ".join(lead.open_claims) in body
    assert any("check each claim" in link.label for link in at.page_link)
    # the quick demo measures robustness, as the caption says (its card can lead with it)
    configs = list(get_preset("cpu-quick-demo").configs.values())
    assert all(c.robustness != "off" for c in configs)
    assert f"({configs[0].robustness_images:,} images), so its verdict card can lead with " \
        "robustness" in body


def test_home_survives_a_damaged_record(runs, monkeypatch, tmp_path):
    bad = tmp_path / "laptop_verdicts.json"
    bad.write_text("[]")
    monkeypatch.setattr(laptop, "PATH", bad)
    laptop.load.cache_clear()
    try:
        at = page(app(), "app_pages/home.py")
        assert "could not be read (laptop_verdicts.json" in texts(at)
        assert "SAM-ON Lab" in texts(at)  # the rest of the page is there
    finally:
        laptop.load.cache_clear()


def test_the_card_leads_with_robustness_and_gives_the_users_numbers_on_it():
    """A quick-demo-like group (one seed, robustness measured): the robustness claim is the
    card's first row, and beside it the user's own numbers on the comparisons a laptop settled
    (the verdict's part sentences), never the lab's."""
    from samon_app.verdict_card import verdict_card

    levels = {"base": (5.0, 40.0), "all": (35.0, 44.0), "norm": (33.0, 44.5)}
    spec = {m: (accs[:1], [{**opts, "robust": levels[m][0], "corruption": levels[m][1]}])
            for m, (accs, opts) in GOOD.items()}
    card = verdict_card(*group_per_seed(spec, {"robustness": "standard"}))
    ids = [r.claim.id for r in card.rows]
    assert ids[0] == "robustness" and ids == view.order(ids)
    row = card.rows[0]
    held = view.held_on_laptop("robustness")
    assert len(held) == 2  # SAM-all and SAM-ON above SGD, in the lab's record
    assert "From one seed: SAM-all ended ahead of SGD by 30.0 points." in row.laptop
    assert "From one seed: SAM-ON ended ahead of SGD by 28.0 points." in row.laptop
    assert "SAM-ON ended behind SAM-all" not in row.laptop  # not settled on a laptop
    assert f"the lab's {len(laptop.load().claims['robustness'].seeds)} seeds" in row.laptop
    assert next(r for r in card.rows if r.claim.id == "accuracy").laptop == ""


def test_live_ends_a_robustness_group_on_the_robustness_row(runs):
    """Live's closing card (AppTest): a finished group with robustness results leads with the
    robustness claim's row, the user's numbers on the laptop's comparisons beneath it."""
    from samon_app.verdicts import VERDICT_ICONS

    robust_three(runs, "rob3")
    at = page(app(group="rob3"), "app_pages/live.py")
    assert not at.exception, [e.message for e in at.exception]
    rows = [m.value for m in at.markdown if m.value.startswith(tuple(VERDICT_ICONS.values()))]
    assert rows and "**Robustness:**" in rows[0], rows
    captions = [c.value for c in at.caption if c.value.startswith("On a laptop the lab's")]
    assert len(captions) == 1 and "From one seed: SAM-all ended ahead of SGD by" in captions[0]
