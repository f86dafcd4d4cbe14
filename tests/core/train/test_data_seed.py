"""``data_seed``: the seeds of a comparison can share one dataset draw (subsets and noisy labels),
as the paper's seeds do, while an unset data_seed keeps the old behaviour and hashes."""

from __future__ import annotations

import pytest
from support.configs import tiny_config

import samon_core.train.setup as setup
from samon_core.runs.config import RunConfig


def _data_seed_used(monkeypatch, config: RunConfig) -> int:
    seen = {}

    def fake_load(name, data_dir, **kw):
        seen.update(kw)
        raise RuntimeError("stop after the data call")

    monkeypatch.setattr(setup, "load_dataset", fake_load)
    with pytest.raises(RuntimeError, match="stop after"):
        setup.build_run(config, "unused")
    return seen["seed"]


def test_the_data_follow_the_seed_unless_data_seed_is_set(monkeypatch):
    cfg = tiny_config(device="cpu")
    assert _data_seed_used(monkeypatch, cfg.replace(seed=3)) == 3
    assert _data_seed_used(monkeypatch, cfg.replace(seed=3, data_seed=7)) == 7
    assert _data_seed_used(monkeypatch, cfg.replace(seed=4, data_seed=7)) == 7


def test_an_unset_data_seed_leaves_the_hash_alone_and_a_set_one_changes_it():
    cfg = tiny_config()
    assert "data_seed" not in cfg.canonical_dict()
    assert cfg.replace(data_seed=0).config_hash() != cfg.config_hash()
    assert cfg.replace(data_seed=0).canonical_dict()["data_seed"] == 0
