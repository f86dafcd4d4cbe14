"""Landscape slices for a run that has already finished: ``python -m samon_core landscape RUN``.

A run trained without ``landscape_points`` (or with too few) can get its slices later: the
run's model is rebuilt from its config, its final weights loaded from its checkpoint (with
``weights_only``: nothing in the file is executed), and the same slices the trainer computes
(``callbacks.LandscapeSlices``: random and gradient direction, train and test images) appended to
its ``metrics.jsonl`` as ``landscape`` records, replacing none (readers take the latest).
"""

from __future__ import annotations

import os

from samon_core.runs.files import CHECKPOINT_FILE
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore
from samon_core.train.callbacks import landscape_record, slice_sets
from samon_core.train.checkpoint import load_checkpoint
from samon_core.train.landscape import loss_slice, offsets, random_direction
from samon_core.train.setup import build_run
from samon_core.train.telemetry import RunClock


def slice_finished_run(store: RunStore, run_id: str, *, points: int = 21, radius: float = 1.0,
                       data_dir: str | os.PathLike = "data", two_d: bool = False) -> int:
    """Compute and append the run's slices; returns how many records were written. ``two_d``
    adds a 2D slice on the test images along two random filter-normalised directions (seeds 0
    and 1): points x points evaluations."""
    config = store.read_config(run_id).replace(landscape_points=points, landscape_radius=radius)
    if store.read_status(run_id).get("state") != RunState.FINISHED:
        raise ValueError(f"run {run_id} has not finished: slices are taken at the final weights")
    ckpt_path = store.run_dir(run_id) / CHECKPOINT_FILE
    if not ckpt_path.is_file():
        raise ValueError(f"run {run_id} has no checkpoint with its final weights")
    setup = build_run(config, data_dir)
    setup.model.load_state_dict(load_checkpoint(ckpt_path)["model"])
    done = {"n": 0}
    with store.metrics_writer(run_id) as writer:
        def emit(record) -> None:
            writer.write(record)
            done["n"] += 1

        clock = RunClock(float(store.read_status(run_id).get("elapsed") or 0.0))
        sets = slice_sets(setup)
        step = int((store.read_summary(run_id) or {}).get("steps") or 0)
        for split, (x, y) in sets.items():
            for direction in ("random", "gradient"):
                emit(landscape_record(setup.model, x, y, config, direction=direction,
                                      split=split, step=step, clock=clock))
        if two_d:
            emit(plane_record(setup.model, *sets["test"], points=points, radius=radius,
                              epoch=config.epochs, step=step, time=clock()))
    return done["n"]


def plane_record(model, x, y, *, points: int, radius: float, epoch: int, step: int,
                 time: float) -> dict:
    """A ``landscape2d`` record: the loss on a points x points grid of offsets (a, b) along two
    random filter-normalised directions; ``losses[i][j]`` is at (offsets[i], offsets[j])."""
    d1, d2 = random_direction(model, seed=0), random_direction(model, seed=1)
    grid = offsets(points, radius)
    flat = loss_slice(model, x, y, [d1, d2], [(a, b) for a in grid for b in grid])
    losses = [flat[i * points:(i + 1) * points] for i in range(points)]
    return {"kind": "landscape2d", "epoch": epoch, "step": step, "time": time, "split": "test",
            "offsets": grid, "losses": losses, "n": len(y), "seeds": [0, 1]}
