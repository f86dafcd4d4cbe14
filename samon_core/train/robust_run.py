"""The robustness suite for a finished run: ``python -m samon_core robustness RUN``.

A run trained with ``robustness="off"`` (every run before the field existed) can be measured
later: its model is rebuilt from its config, its final weights loaded from its checkpoint (with
``weights_only``: nothing in the file is executed), the suite run on the same first test images
the trainer would use (robustness.py), and the result appended to its ``metrics.jsonl`` as a
``robustness`` record (readers take the latest) and put into its ``summary.json`` as
``robustness``. The config is not changed: it says how the run was trained and what the trainer
measured, and ``config.json`` is never rewritten.
"""

from __future__ import annotations

import os

from samon_core.runs.files import CHECKPOINT_FILE
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore
from samon_core.train.callbacks import robustness_record
from samon_core.train.checkpoint import load_checkpoint
from samon_core.train.setup import build_run
from samon_core.train.telemetry import RunClock


def measure_finished_run(store: RunStore, run_id: str, *, suite: str = "standard",
                         images: int | None = None,
                         data_dir: str | os.PathLike = "data") -> dict:
    """Run ``suite`` on the final weights of finished run ``run_id`` (``images``: the first N
    test images; None = the run's ``robustness_images``); returns the result, also written to
    the run's metrics and summary. ``ValueError`` for a run that has not finished or has no
    checkpoint, or a bad suite or image count."""
    stored = store.read_config(run_id)
    config = stored.replace(robustness=suite,
                            robustness_images=stored.robustness_images if images is None
                            else images)
    if config.robustness == "off":
        raise ValueError("the robustness suite to measure must not be 'off'")
    if store.read_status(run_id).get("state") != RunState.FINISHED:
        raise ValueError(f"run {run_id} has not finished: robustness is measured at the final "
                         "weights")
    ckpt_path = store.run_dir(run_id) / CHECKPOINT_FILE
    if not ckpt_path.is_file():
        raise ValueError(f"run {run_id} has no checkpoint with its final weights")
    setup = build_run(config, data_dir)
    setup.model.load_state_dict(load_checkpoint(ckpt_path)["model"])
    summary = store.read_summary(run_id) or {}
    with store.metrics_writer(run_id) as writer:
        clock = RunClock(float(store.read_status(run_id).get("elapsed") or 0.0))
        result, record = robustness_record(setup.model, setup.test_loader, config,
                                           step=int(summary.get("steps") or 0), clock=clock)
        writer.write(record)
    store.write_summary(run_id, {**summary, "robustness": result})
    return result
