"""The test fakes' record builder (``tests/support/records.py``) holds them to the trainer's
types: a renamed, missing or extra field, or a wrong kind, fails where the fake is built."""

from __future__ import annotations

import pytest
from support.records import EPOCH_METRICS, record, records, run_records

from samon_core.records import EpochRecord, ResumeRecord, StepRecord

STEP = dict(epoch=1, step=2, time=0.5, loss=2.0, acc=0.5, lr=0.1, step_time=0.05,
            images_per_s=100.0, load=None)


def test_a_record_has_exactly_its_types_fields_kind_first():
    rec = record(StepRecord, **STEP)
    assert list(rec) == ["kind", *STEP] and rec["kind"] == "step"
    assert record(ResumeRecord, epoch=2, step=20, time=2.0) == {
        "kind": "resume", "epoch": 2, "step": 20, "time": 2.0}


@pytest.mark.parametrize(("fields", "without", "words"), [
    ({**STEP, "steptime": 0.05}, (), "unknown fields ['steptime']"),  # a renamed field
    ({k: v for k, v in STEP.items() if k != "lr"}, (), "missing fields ['lr']"),
    ({k: v for k, v in STEP.items() if k != "load"}, ("lod",), "unknown fields ['lod']"),
    ({**STEP, "kind": "epoch"}, (), "kind 'epoch'"),
])
def test_a_fake_that_strays_from_the_type_fails_when_built(fields, without, words):
    with pytest.raises(TypeError, match=words.replace("[", r"\[").replace("]", r"\]")):
        record(StepRecord, without=without, **fields)


def test_fields_left_out_on_purpose_are_named():
    rec = record(EpochRecord, without=EPOCH_METRICS, epoch=1, step=3, time=1.0)
    assert rec == {"kind": "epoch", "epoch": 1, "step": 3, "time": 1.0}
    assert set(EPOCH_METRICS) | {"kind", "epoch", "step", "time"} == set(
        EpochRecord.__annotations__)


def test_the_shared_runs_records_are_whole_records_of_their_kinds():
    recs = records(50.0, beta_end=0.1, sharp20=0.3, robust=40.0, corruption=30.0) \
        + run_records(70.0, 3)
    assert {r["kind"] for r in recs} == {"step", "epoch", "norm_stats", "sharpness",
                                         "robustness"}
    epochs = [r for r in recs if r["kind"] == "epoch"]
    assert all(set(r) == set(EpochRecord.__annotations__) for r in epochs)
