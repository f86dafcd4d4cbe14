"""The Launch form's error messages: placed by the field the error names, in words."""

from __future__ import annotations

import pytest
from support.paths import REPO

from samon_app.forms import config_errors
from samon_core.runs.config import RunConfig


def _errors(**kwargs):
    with pytest.raises(ValueError) as info:
        RunConfig(**kwargs)
    return config_errors(info.value, fallback="methods")


def test_each_message_goes_to_its_field_in_words():
    errs = _errors(lr=0.0, epochs=0)
    assert set(errs) == {"lr", "epochs"}
    assert errs["lr"].startswith("Learning rate must be") and "RunConfig" not in errs["lr"]
    assert errs["epochs"].startswith("Epochs must be")


def test_a_rule_between_fields_lands_on_the_field_it_names():
    errs = _errors(epochs=3, warmup_epochs=3)
    assert list(errs) == ["warmup_epochs"] and errs["warmup_epochs"].startswith("Warmup epochs")


def test_unknown_keys_go_to_the_fallback():
    assert list(_errors(bogus=1)) == ["methods"]


def test_a_lockstep_group_is_one_worker_job():
    """A worker trains a comparison's runs together (their times add up): more workers do not
    shorten a 3-run group, they do shorten 12 runs (two lockstep chunks of 6)."""
    from samon_app.estimates import calibration, estimate_group
    from samon_core.runs.presets import preset_configs

    configs = preset_configs("cpu-quick-demo")
    one = estimate_group(configs, 1, "cpu", workers=1)
    assert estimate_group(configs, 1, "cpu", workers=4)["wall_s"] == one["wall_s"]
    four = estimate_group(configs, 4, "cpu", workers=4)  # 12 runs: two chunks
    assert four["wall_s"] == pytest.approx(four["total_s"] / 2)
    # a lockstep run's wall clock is shared by its group: its share counts for calibration
    cfg = next(iter(configs.values())).to_dict()
    alone = calibration([{"config": cfg, "summary": {"train_time_s": 30.0, "device": "cpu"}}])
    grouped = calibration([{"config": cfg, "summary": {"train_time_s": 90.0, "device": "cpu",
                                                        "lockstep": ["a", "b", "c"]}}])
    assert grouped["cpu"][0] == pytest.approx(alone["cpu"][0])


def test_sidebar_says_starting_while_the_apps_own_worker_starts(tmp_path, monkeypatch):
    """Right after the app started its pool no worker has a heartbeat yet: the sidebar says the
    worker is starting, not that none is alive."""
    from streamlit.testing.v1 import AppTest

    from app_pages import workers

    monkeypatch.setenv("SAMON_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("SAMON_START_WORKERS", "0")
    monkeypatch.setattr(workers, "ensure_workers",
                        lambda: {"enabled": True, "started": 1, "alive": 0, "pids": [123]})
    monkeypatch.setattr(workers, "workers_status", lambda: [])
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not at.exception
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "starting a local worker" in captions and "no worker alive" not in captions


@pytest.mark.parametrize(
    ("method", "variant", "value", "where"),
    [
        ("SAM-all", "SAM (p=2)", 0.2, "WRN-28-10, CIFAR-100"),
        ("SAM-ON", "SAM (p=2)", 1.0, "WRN-28-10, CIFAR-100"),
        ("no-norm", "SAM (p=2)", 0.2, "SAM-all's value"),
        ("random mask", "ASAM elementwise", 10.0, "SAM-ON's value"),
        ("random mask", "p=inf (no T_w)", 0.01, "our guess: the paper gives none"),
    ],
)
def test_rho_hint_names_where_a_methods_rho_comes_from(method, variant, value, where):
    from samon_app.forms import rho_hint

    got, source = rho_hint(method, variant)
    assert got == value and source.startswith(where)


def test_every_request_takes_at_most_max_seeds_per_method():
    """The Launch form and ``claim run --seeds`` share one bound (catalog.choices.MAX_SEEDS)."""
    import argparse

    from samon_app.forms import form_configs, form_defaults
    from samon_core.catalog.choices import MAX_SEEDS
    from samon_core.claim_cli import _seeds

    def seeds_error(n):
        return form_configs({**form_defaults(), "seeds": n}).errors.get("seeds")

    assert seeds_error(MAX_SEEDS) is None
    assert seeds_error(MAX_SEEDS + 1) == (
        f"Number of seeds must be a whole number from 1 to {MAX_SEEDS}.")
    assert _seeds(str(MAX_SEEDS)) == MAX_SEEDS
    with pytest.raises(argparse.ArgumentTypeError, match=rf"1\.\.{MAX_SEEDS}; got {MAX_SEEDS + 1}"):
        _seeds(str(MAX_SEEDS + 1))
