"""What a training writes to the run store, in a form two versions of the trainer can compare.

``capture(scenario, root)`` trains one of ``SCENARIOS`` (tiny configs: a full run with every
measurement, a cancel then a resume, an exploding loss, a setup that fails) into ``root`` and
returns the kinds, epochs, steps and field names of its metric records in order, every status
write and heartbeat (state and field names, in order) and the summary's keys. Values that depend
on timing are left out; the order and the names are what a reader depends on.
``train_golden.json`` holds the capture of the trainer before its loop moved to callbacks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from samon_core.runs.store import RunStore
from support.configs import tiny_config

GOLDEN = Path(__file__).with_name("train_golden.json")

# A step record after every step; 2 steps per epoch; every measurement on, at its smallest.
FULL = dict(epochs=2, train_subset=128, test_subset=64, log_every_s=1e-9, sharpness_samples=64,
            sharpness_m=32, sharpness_multi_steps=2, landscape_points=3, robustness="standard",
            robustness_images=16)
EXPLODES = dict(train_subset=64, test_subset=64, batch_size=16, epochs=4, augment="none",
                label_smoothing=0.0, method="base", optimizer="adamw", lr=1.0)
SCENARIOS = ("full", "cancel_resume", "exploded", "failed")


def _record_shape(path: Path) -> list[list[Any]]:
    lines = path.read_text().splitlines() if path.is_file() else []
    return [[r["kind"], r["epoch"], r["step"], sorted(r)] for r in map(json.loads, lines)]


def capture(scenario: str, root: Path, monkeypatch) -> dict[str, Any]:
    """Train ``scenario`` under ``root`` (module doc) and return what it wrote."""
    from samon_core.train.trainer import train

    calls: list[list[Any]] = []
    real_status, real_heartbeat = RunStore.write_status, RunStore.heartbeat

    def write_status(self, run_id, state, **fields):
        calls.append(["status", str(state), sorted(fields)])
        return real_status(self, run_id, state, **fields)

    def heartbeat(self, run_id, **fields):
        calls.append(["heartbeat", sorted(fields)])
        return real_heartbeat(self, run_id, **fields)

    monkeypatch.setattr(RunStore, "write_status", write_status)
    monkeypatch.setattr(RunStore, "heartbeat", heartbeat)
    run_dir = root / "r"
    summaries = []
    if scenario == "full":
        summaries.append(train(tiny_config(**FULL), run_dir))
    elif scenario == "cancel_resume":
        cfg = tiny_config(**{**FULL, "landscape_points": 0, "robustness": "off"})
        seen: list[dict] = []
        summaries.append(train(cfg, run_dir, callback=seen.append,
                               should_stop=lambda: any(r["kind"] == "epoch" for r in seen)))
        summaries.append(train(cfg, run_dir, resume=True))
    elif scenario == "exploded":
        summaries.append(train(tiny_config(**EXPLODES), run_dir))
    elif scenario == "failed":
        try:
            train(tiny_config(model="no_such_model"), run_dir)
        except ValueError as exc:
            summaries.append({"raised": type(exc).__name__})
    summary_file = run_dir / "summary.json"
    return {
        "records": _record_shape(run_dir / "metrics.jsonl"),
        "calls": calls,
        "summaries": [list(s) for s in summaries],
        "summary_file": list(json.loads(summary_file.read_text())) if summary_file.is_file()
        else None,
    }
