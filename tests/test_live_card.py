"""Live ends a finished comparison on one card: a row per claim the group can test and a link to
the Claims page; while a run still trains there is no final card (AppTest on a fake store)."""

from __future__ import annotations

from support.configs import tiny_config
from test_app_pages import app, fake_run, page, texts

from samon_app.verdicts import VERDICT_ICONS
from samon_core.claims import BY_ID

TITLE = "What your comparison shows"
CARD_CLAIMS = ("accuracy", "sharper", "gamma-shift", "cost")


def _group(store, group: str, states=("finished", "finished", "finished")) -> None:
    cfg = tiny_config()
    for changes, acc, state in zip(({"method": "base"}, {"scope": "all"}, {"scope": "norm"}),
                                   (0.40, 0.50, 0.55), states, strict=True):
        fake_run(store, cfg.replace(**changes), group=group, acc=acc, state=state)


def test_a_finished_group_ends_on_the_verdict_card(runs):
    _group(runs, "gdone")
    at = page(app(group="gdone"), "app_pages/live.py")
    body = texts(at)
    assert [s.value for s in at.subheader].count(TITLE) == 1
    icons = tuple(VERDICT_ICONS.values())
    rows = [m.value for m in at.markdown if m.value.startswith(icons)]
    assert len(rows) == len(CARD_CLAIMS)  # one row per claim the three methods can test
    for claim_id in CARD_CLAIMS:
        assert any(BY_ID[claim_id].statement in row for row in rows)
    for absent in ("no-norm", "sparsity"):  # their methods are not in the group
        assert BY_ID[absent].statement not in body
    # one seed: no verdict on the seed-judged claims, never "agree" / "disagree"
    assert "Your 3 runs: " in body and "no verdict on 2 of 4 claims" in body
    assert " agree" not in body and "disagree" not in body
    links = [link.value for link in at.page_link]
    assert any("more seeds" in label for label in links), links
    assert "Your runs:" in body  # the verdict line under the chart stays


def test_no_final_card_while_a_run_trains(runs):
    _group(runs, "gbusy", states=("finished", "running", "finished"))
    at = page(app(group="gbusy"), "app_pages/live.py")
    assert TITLE not in texts(at)
    assert "Your runs:" in texts(at)  # the per-chart verdict says what they show so far
