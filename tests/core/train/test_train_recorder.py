"""The run store's record of a training, compared with what the trainer wrote before its loop
moved to callbacks (tests/support/train_golden.json, captured from commit c00f256)."""

from __future__ import annotations

import json

import pytest
from support.trainlog import GOLDEN, SCENARIOS, capture

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_store_gets_the_records_statuses_and_summary_it_got_before(
        tmp_path, monkeypatch, scenario):
    """Same record kinds, epochs, steps and fields in the same order; the same status writes
    and heartbeats (state and field names) in the same order; the same summary keys."""
    expected = json.loads(GOLDEN.read_text())[scenario]
    got = capture(scenario, tmp_path, monkeypatch)
    assert got["records"] == expected["records"]
    assert got["calls"] == expected["calls"]
    assert got["summaries"] == expected["summaries"]
    assert got["summary_file"] == expected["summary_file"]
