"""The Claims page (app_pages/claims.py) with AppTest: it renders every claim's card and the
summary, a card's button queues exactly the runs it lists (the real job service, SQLite queue, no
worker), and a finished fake set shows its verdict."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest
from support.fakes import fake_claim_runs
from support.paths import REPO

from samon_core import claims
from samon_core.catalog.choices import MAX_SEEDS
from samon_core.claims.runsets import with_seeds

PAGE = str(REPO / "app_pages" / "claims.py")
TIMEOUT = 60




def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_page_renders_every_claims_card_and_the_summary(runs):
    at = page()
    assert [s.value for s in at.subheader] == [c.title for c in claims.CLAIMS]
    assert len(claims.CLAIMS) == 12  # the table's six and the poster's others (issue 22)
    assert len(at.button) == len(claims.CLAIMS)
    assert at.dataframe[0].value.shape[0] == len(claims.CLAIMS)
    assert "not run yet" in set(at.dataframe[0].value["verdict"])
    notes = [w.value for w in at.warning] + [i.value for i in at.info]
    assert any("shows the direction, not a verdict" in n for n in notes)  # the cpu note, up front
    # a visitor asks fewer seeds per claim run here than a request may (the form, `claim run`)
    assert at.number_input(key="seeds_accuracy").max == 5 < MAX_SEEDS


def test_a_card_launches_exactly_the_runs_it_lists(runs):
    at = page()
    at.session_state["owner"] = "carol"  # the sidebar's name (guest only browses)
    at.number_input(key="seeds_accuracy").set_value(2).run()
    at.button(key="launch_accuracy").click().run()
    assert not at.exception, [e.message for e in at.exception]
    expected = sorted(c.config_hash() for _, c in
                      with_seeds(claims.get_claim("accuracy").runs("cpu"), 2))
    got = sorted(runs.read_config(r).config_hash() for r in runs.run_ids())
    assert got == expected and len(got) == 6
    assert {runs.read_meta(r)["preset"] for r in runs.run_ids()} == {"claim:accuracy"}
    assert len({runs.read_meta(r)["group"] for r in runs.run_ids()}) == 1  # one lockstep group
    assert any("Queued 6 runs" in s.value for s in at.success)


def test_a_finished_fake_set_shows_its_verdict(runs):
    fake_claim_runs(runs, "accuracy", {"base": [50.0, 50.5, 49.5], "all": [53.0, 53.5, 52.5],
                                       "norm": [54.0, 54.4, 53.6]})
    at = page()
    assert any("CONSISTENT." in s.value and "paired t-test over seeds 0, 1, 2" in s.value
               and "Noise alone gives this in" in s.value for s in at.success)
    table = at.dataframe[0].value.set_index("claim")
    assert table.loc[claims.get_claim("accuracy").title, "verdict"] == "consistent"


def test_each_card_says_how_many_seeds_its_size_needs(runs):
    from samon_core.claims import power

    at = page()
    captions = [c.value for c in at.caption]
    for claim in claims.CLAIMS:
        want = f"the {claim.id} claim {power.seeds_needed_text(claim.id, 'cpu')}"
        assert any(want in c for c in captions), claim.id
    assert any("the accuracy claim needs about" in c and "(seed spread: measured" in c
               for c in captions)
    at.radio(key="size_accuracy").set_value("gpu").run()
    assert any("the accuracy claim needs about 4 seeds" in c and "assumed" in c
               for c in (c.value for c in at.caption))


def test_one_seed_shows_no_verdict(runs):
    fake_claim_runs(runs, "accuracy", {"base": [40.0], "all": [50.0], "norm": [60.0]})
    at = page()
    at.number_input(key="seeds_accuracy").set_value(1).run()
    assert any(i.value.startswith("**NO VERDICT.** No verdict: one seed shows a direction")
               for i in at.info)
