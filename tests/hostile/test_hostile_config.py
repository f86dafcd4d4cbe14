"""Hostile input for run configs: every way in (RunConfig kwargs, JSON text and files, --set
``key=value`` overrides) must refuse a bad value with one clear ``ValueError``.

Clear means: a ``ValueError`` (no ``RecursionError``, ``OverflowError``, ``TypeError`` or
``UnicodeError`` escapes), its message names the field (or the key, or says what is wrong with
the text as a whole) and is short (the value is quoted cut, never echoed whole). No torch; the
whole file runs in about a second.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from samon_core.runs.config import FIELD_NAMES, MAX_JSON_CHARS, RunConfig, field_info
from samon_core.runs.fieldspec import quote
from samon_core.runs.strictjson import json_depth, loads_strict

MAX_MESSAGE = 300
LONG = "x" * 100_000
NUMERIC = [n for n in FIELD_NAMES if field_info(n)["type"] in ("int", "float")]
DEEP = "[" * 100_000 + "]" * 100_000


def _refused(call: Callable[[], Any], needle: str) -> str:
    """Run ``call``; it must raise one clear ValueError whose message contains ``needle``."""
    with pytest.raises(Exception) as info:
        call()
    exc = info.value
    assert isinstance(exc, ValueError) and not isinstance(exc, UnicodeError), repr(exc)[:300]
    message = str(exc)
    assert needle in message, message[:300]
    assert len(message) <= MAX_MESSAGE, f"{len(message)} characters: {message[:300]}"
    return message


def _hostile_numbers(name: str) -> list[tuple[str, Any]]:
    """(label, value) pairs that no numeric field may accept."""
    info = field_info(name)
    cases = [("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf), ("bool", True),
             ("huge int", 10**30), ("5000 digits", 10**5000), ("1e308", 1e308),
             ("string", "1"), ("list", [1])]
    if info["type"] == "int":
        cases.append(("float", 1.5))
    low = info.get("ge", info.get("gt"))
    if low is not None:
        cases.append(("below", low - 1))
    return cases


KWARG_CASES = [
    pytest.param(name, value, id=f"{name}-{label}")
    for name in NUMERIC
    for label, value in _hostile_numbers(name)
]


@pytest.mark.parametrize(("name", "value"), KWARG_CASES)
def test_numeric_fields_refuse_overflow_nan_inf_bool_and_negatives(name, value):
    message = _refused(lambda: RunConfig(**{name: value}), f"RunConfig.{name}")
    assert "\n" not in message


STRING_CASES = {
    "device trailing newline": ("device", "cpu\n"),
    "device cuda trailing newline": ("device", "cuda:0\n"),
    "device leading space": ("device", " cpu"),
    "device NUL": ("device", "cpu\x00"),
    "device arabic digit": ("device", "cuda:\u0661"),
    "device fullwidth": ("device", "\uff43pu"),
    "device long": ("device", LONG),
    "model trailing newline": ("model", "tiny_resnet\n"),
    "model cyrillic e": ("model", "tiny_r\u0435snet"),
    "model NUL": ("model", "tiny\x00resnet"),
    "model long": ("model", LONG),
    "model zero-width space": ("model", "tiny\u200bresnet"),
    "enum trailing newline": ("dataset", "synthetic\n"),
    "enum long": ("optimizer", LONG),
    "enum case": ("method", "SAM"),
    "blocks deep list": ("blocks", json.loads("[" * 500 + "]" * 500)),
    "blocks huge list": ("blocks", list(range(1_000_000))),
    "blocks of strings": ("blocks", ["1"]),
    "blocks huge int": ("blocks", [10**5000]),
    "bool as int": ("normalize_bias", 1),
    "bool as string": ("normalize_bias", "true"),
}


@pytest.mark.parametrize(("name", "value"), list(STRING_CASES.values()), ids=list(STRING_CASES))
def test_text_and_list_fields_refuse_hostile_values(name, value):
    _refused(lambda: RunConfig(**{name: value}), f"RunConfig.{name}")


def test_unknown_keys_get_a_suggestion_and_long_keys_are_cut():
    assert "epoch -> epochs?" in _refused(lambda: RunConfig(epoch=3), "epoch")
    _refused(lambda: RunConfig(**{LONG: 1}), "unknown RunConfig field")
    many = {f"junk{i}": i for i in range(10_000)}
    assert "more" in _refused(lambda: RunConfig.from_dict(many), "unknown RunConfig field")


def _json(**values: Any) -> str:
    return json.dumps(values)


JSON_CASES = {
    "duplicate key": ('{"epochs": 1, "epochs": 400}', "'epochs' twice"),
    "duplicate key far apart": ('{"epochs": 1, "lr": 0.1, "epochs": 2}', "'epochs' twice"),
    "deep nesting": (DEEP, "nested too deep"),
    "deep object nesting": ('{"a":' * 50_000 + "1" + "}" * 50_000, "nested too deep"),
    "deep value": (_json(blocks=json.loads("[" * 30 + "]" * 30)), "RunConfig.blocks"),
    "huge integer literal": ('{"epochs": ' + "9" * 5000 + "}", "RunConfig.epochs"),
    "huge float literal": ('{"lr": 1e999}', "RunConfig.lr"),
    "NaN literal": ('{"lr": NaN}', "RunConfig.lr"),
    "Infinity literal": ('{"weight_decay": Infinity}', "RunConfig.weight_decay"),
    "weight_decay 1e300": (_json(weight_decay=1e300), "RunConfig.weight_decay"),
    "rho 1e6": (_json(rho=1e6), "RunConfig.rho"),
    "subset beyond the dataset": (_json(train_subset=20_000), "RunConfig.train_subset"),
    "batch beyond the subset": (_json(train_subset=100, batch_size=128), "RunConfig.batch_size"),
    "escaped trailing newline": ('{"device": "cpu\\n"}', "RunConfig.device"),
    "escaped NUL": ('{"model": "tiny\\u0000resnet"}', "RunConfig.model"),
    "string for int": (_json(epochs="10"), "RunConfig.epochs"),
    "null for int": (_json(epochs=None), "RunConfig.epochs"),
    "object for float": (_json(lr={"value": 1}), "RunConfig.lr"),
    "unknown key": (_json(epoch=3), "epoch -> epochs?"),
    "not an object": ("[1, 2]", "mapping"),
    "malformed": ('{"epochs": }', "malformed"),
    "empty": ("", "malformed"),
    "huge text": ('{"model": "' + "a" * MAX_JSON_CHARS + '"}', "characters long"),
}


@pytest.mark.parametrize(("text", "needle"), list(JSON_CASES.values()), ids=list(JSON_CASES))
def test_json_text_is_refused_with_one_clear_message(text, needle):
    _refused(lambda: RunConfig.from_json(text), needle)


def test_json_bytes_that_are_not_utf8_are_refused():
    _refused(lambda: RunConfig.from_json(b'{"model": "\xff"}'), "UTF-8")


def test_load_refuses_devices_fifos_and_huge_files(tmp_path: Path):
    _refused(lambda: RunConfig.load("/dev/zero"), "not a regular file")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    _refused(lambda: RunConfig.load(fifo), "not a regular file")  # and does not hang
    big = tmp_path / "big.json"
    big.write_text('{"model": "' + "a" * (MAX_JSON_CHARS + 10) + '"}')
    _refused(lambda: RunConfig.load(big), "too large")
    dup = tmp_path / "dup.json"
    dup.write_text('{"epochs": 1, "epochs": 400}')
    _refused(lambda: RunConfig.load(dup), "'epochs' twice")


OVERRIDE_CASES = {
    "underscore int": ("epochs=1_0", "RunConfig.epochs"),
    "underscore float": ("lr=1_0e-3", "RunConfig.lr"),
    "nan": ("lr=nan", "RunConfig.lr"),
    "inf": ("lr=inf", "RunConfig.lr"),
    "-inf": ("momentum=-inf", "RunConfig.momentum"),
    "huge exponent": ("lr=1e999", "RunConfig.lr"),
    "hex": ("seed=0x10", "RunConfig.seed"),
    "arabic digit": ("epochs=\u0663", "RunConfig.epochs"),
    "fullwidth digit": ("epochs=\uff15", "RunConfig.epochs"),
    "trailing newline int": ("epochs=5\n", "RunConfig.epochs"),
    "leading tab": ("lr=\t0.1", "RunConfig.lr"),
    "junk after number": ("epochs=5 junk", "RunConfig.epochs"),
    "float for int": ("seed=1e3", "RunConfig.seed"),
    "5000 digits": ("epochs=" + "9" * 5000, "RunConfig.epochs"),
    "underscore block": ("blocks=1_2", "RunConfig.blocks"),
    "device newline": ("device=cpu\n", "RunConfig.device"),
    "model NUL": ("model=tiny\x00resnet", "RunConfig.model"),
    "weight_decay 1e300": ("weight_decay=1e300", "RunConfig.weight_decay"),
    "rho 1e6": ("rho=1e6", "RunConfig.rho"),
    "eta huge": ("eta=1e300", "RunConfig.eta"),
    "subset huge": ("test_subset=99999999", "RunConfig.test_subset"),
    "long value": ("model=" + LONG, "RunConfig.model"),
    "unknown key": ("epoch=3", "epoch"),
    "long key": (LONG + "=1", "unknown RunConfig field"),
    "no equals": ("epochs", "key=value"),
}


@pytest.mark.parametrize(("item", "needle"), list(OVERRIDE_CASES.values()),
                         ids=list(OVERRIDE_CASES))
def test_overrides_are_refused_with_one_clear_message(item, needle):
    _refused(lambda: RunConfig().with_overrides([item]), needle)


def test_plain_numbers_still_parse():
    c = RunConfig().with_overrides(["lr=1e-3", "epochs= 12 ", "momentum=.5", "seed=+7"])
    assert (c.lr, c.epochs, c.momentum, c.seed) == (0.001, 12, 0.5, 7)


def test_every_numeric_field_has_an_upper_bound():
    """An unbounded number passes validation and fails (or overflows) in the trainer."""
    unbounded = [n for n in NUMERIC if "le" not in field_info(n) and "lt" not in field_info(n)]
    assert unbounded == []


def test_pattern_fields_end_at_the_very_end():
    """pydantic's Rust regex engine (pinned in RunConfig.model_config): '$' does not match
    before a trailing newline, as Python's re.match would."""
    assert RunConfig.model_config.get("regex_engine") == "rust-regex"
    for name, good in (("device", "cuda:1"), ("model", "resnet20")):
        assert getattr(RunConfig(**{name: good}), name) == good
        _refused(lambda n=name, g=good: RunConfig(**{n: g + "\n"}), f"RunConfig.{name}")


def test_json_depth_counts_brackets_outside_strings_without_recursion():
    assert json_depth('{"a": "[[[[", "b": [[1]]}') == 3
    assert json_depth(DEEP) == 100_000
    assert loads_strict('{"a": "\\"[["}') == {"a": '"[['}


def test_quote_cuts_long_deep_and_huge_values():
    assert len(quote(LONG)) < 120 and "100000 characters" in quote(LONG)
    assert quote(10**5000).startswith("<an integer of about")
    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    assert len(quote(nested)) <= 80
