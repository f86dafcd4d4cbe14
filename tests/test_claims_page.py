"""The Claims page (app_pages/claims.py) with AppTest: it renders six cards and the summary,
a card's button queues exactly the runs it lists (the real job service, SQLite queue, no
worker), and a finished fake set shows its verdict."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest
from test_claims import fake_claim_runs

from samon_core import claims
from samon_core.claims.runsets import with_seeds

REPO = Path(__file__).resolve().parents[1]
PAGE = str(REPO / "app_pages" / "claims.py")
TIMEOUT = 60




def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_page_renders_six_cards_and_the_summary(runs):
    at = page()
    assert [s.value for s in at.subheader] == [c.title for c in claims.CLAIMS]
    assert len(at.button) == 6
    assert at.dataframe[0].value.shape[0] == 6
    assert "not run yet" in set(at.dataframe[0].value["verdict"])
    notes = [w.value for w in at.warning] + [i.value for i in at.info]
    assert any("shows the direction, not a verdict" in n for n in notes)  # the cpu note, up front


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
    assert any("CONSISTENT." in s.value and "In your 3 seeds" in s.value for s in at.success)
    table = at.dataframe[0].value.set_index("claim")
    assert table.loc[claims.get_claim("accuracy").title, "verdict"] == "consistent"
