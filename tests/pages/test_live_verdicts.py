"""Live's lines under the charts read the user's runs: the verdict follows them, not the paper."""

from __future__ import annotations

from support.apptest import app, page, texts
from support.configs import tiny_config
from support.fakes import fake_run


def _group(store, group, accs):
    cfg = tiny_config()
    for seed in range(3):
        for changes, acc in zip(({"method": "base"}, {"scope": "all"}, {"scope": "norm"}), accs,
                                strict=True):
            fake_run(store, cfg.replace(seed=seed, **changes), group=group,
                     acc=acc + 0.002 * seed)


def test_live_says_when_the_users_runs_contradict_the_paper(runs):
    _group(runs, "gsgd", (0.60, 0.40, 0.40))  # SGD far ahead, as in the CPU quick demo
    body = texts(page(app(group="gsgd"), "app_pages/live.py"))
    assert "Your runs: not consistent with the paper" in body
    assert "equal or better" not in body


def test_live_says_when_the_users_runs_agree(runs):
    _group(runs, "gok", (0.40, 0.50, 0.55))
    body = texts(page(app(group="gok"), "app_pages/live.py"))
    assert "Your runs: consistent with the paper" in body
