"""The Launch form's error messages: placed by the field the error names, in words."""

from __future__ import annotations

import pytest

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
