"""Live ends a finished comparison on one card: a line per claim the group can test (at most 25
words, never contradicting its verdict), the details behind an expander per claim, and a link
to the Claims page; while a run still trains there is no final card, and the lines under the
charts say "so far" (AppTest on a fake store)."""

from __future__ import annotations

from support.apptest import app, page, texts
from support.card_check import check_line_text
from support.configs import tiny_config
from support.fakes import fake_run

from app_pages.live_card import DETAILS
from samon_app import laptop
from samon_app.claim_lines import MAX_WORDS, SO_FAR, topic, word_count
from samon_app.verdicts import VERDICT_ICONS
from samon_core.claims import BY_ID

TITLE = "What your comparison shows"
CARD_CLAIMS = ("accuracy", "sharper", "gamma-shift", "cost")


def _group(store, group: str, states=("finished", "finished", "finished")) -> None:
    cfg = tiny_config()
    for changes, acc, state in zip(({"method": "base"}, {"scope": "all"}, {"scope": "norm"}),
                                   (0.40, 0.50, 0.55), states, strict=True):
        fake_run(store, cfg.replace(**changes), group=group, acc=acc, state=state)


def _plain(markdown: str) -> str:
    """A line as the browser shows it: no icon markup, no bold."""
    return markdown.split("] ", 1)[-1].replace("**", "")


def test_a_finished_group_ends_on_the_verdict_card(runs):
    _group(runs, "gdone")
    at = page(app(group="gdone"), "app_pages/live.py")
    body = texts(at)
    assert [s.value for s in at.subheader].count(TITLE) == 1
    icons = tuple(VERDICT_ICONS.values())
    rows = [m.value for m in at.markdown if m.value.startswith(icons)]
    assert len(rows) == len(CARD_CLAIMS)  # one row per claim the three methods can test
    # what a laptop settled first (samon_app.laptop), the rest in the paper's order
    for claim_id, row in zip(laptop.order(list(CARD_CLAIMS)), rows, strict=True):
        text = _plain(row)
        assert text.startswith(f"{topic(claim_id)}: ")
        assert word_count(text) <= MAX_WORDS, text
        # one seed: no verdict on the seed-judged claims, whatever the line says
        assert not check_line_text(text, one_seed=claim_id != "cost"), text
    # the claim's statement, the rule and the caveats are behind each row's expander
    card_expanders = [e for e in at.expander if e.label == DETAILS]
    assert len(card_expanders) >= len(CARD_CLAIMS)
    details = " ".join(m.value for e in card_expanders for m in e.markdown)
    for claim_id in CARD_CLAIMS:
        assert BY_ID[claim_id].statement in details
    assert "The rule:" in details and "Why your runs may differ from the paper" in details
    for absent in ("no-norm", "sparsity"):  # their methods are not in the group
        assert BY_ID[absent].statement not in body
    # one seed: no verdict on the seed-judged claims, never "agree" / "disagree"
    assert "Your 3 runs: 2 of 4 claims show a direction, not a verdict (one seed)" in body
    assert " agree" not in body and "disagree" not in body
    links = [link.value for link in at.page_link]
    assert any("more seeds" in label for label in links), links
    assert "Your runs:" in body  # the verdict line under the chart stays


def test_no_final_card_while_a_run_trains(runs):
    _group(runs, "gbusy", states=("finished", "running", "finished"))
    at = page(app(group="gbusy"), "app_pages/live.py")
    body = texts(at)
    assert TITLE not in body
    # the per-chart verdict says what the runs show so far (not "provisional")
    assert f"Your runs: no verdict {SO_FAR}." in body or \
        f"Your runs: inconclusive {SO_FAR}." in body, body
    assert "(provisional)" not in body and "Provisional" not in body
