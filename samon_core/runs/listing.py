"""One row of the run listing per run folder, built from its small JSON files, and what a reader
makes of a damaged ``status.json``. No torch; pandas is not needed here.

A damaged run is never hidden: what can be read is shown and the rest is named in the row's
``problem``, so one bad folder neither breaks a listing nor escapes deletion.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from samon_core.runs.config import RunConfig
from samon_core.runs.io import read_json_dict
from samon_core.runs.messages import clip
from samon_core.runs.states import RunState

log = logging.getLogger("samon.store")

CONFIG_FILE = "config.json"
META_FILE = "meta.json"
STATUS_FILE = "status.json"
SUMMARY_FILE = "summary.json"

LIST_COLUMNS = (
    "run_id",
    "state",
    "label",
    "method",
    "method_label",
    "scope",
    "model",
    "dataset",
    "preset",
    "owner",
    "group",
    "seed",
    "created",
    "epochs",
    "last_epoch",
    "final_test_acc",
    "best_test_acc",
    "heartbeat_age_s",
    "updated",
    "config_hash",
    "problem",  # what is damaged in this run folder (None for a healthy run)
)


def _first(*sources_and_keys: tuple[Mapping[str, Any] | None, str]) -> Any:
    for source, key in sources_and_keys:
        if source and source.get(key) is not None:
            return source[key]
    return None


def is_run_folder(path: Path) -> bool:
    """A folder holding any of a run's own files (even a damaged one) is a run; others (being
    deleted, or strays) are not."""
    try:
        return path.is_dir() and any(
            os.path.lexists(path / name) for name in (CONFIG_FILE, META_FILE, STATUS_FILE))
    except OSError:  # an unreadable folder under the store is reported as a damaged run
        return True


def status_or_damaged(path: Path) -> dict[str, Any]:
    """status.json at ``path``; if it is missing, empty, malformed or holds no known state,
    ``{"state": "interrupted", "damaged": True, "message": ...}``. status.json is replaced
    without fsync (it changes every few seconds), so a power loss may leave it empty; the run is
    then resumable like one whose worker died."""
    try:
        status = read_json_dict(path)
        state = status.get("state")
        if isinstance(state, str) and state in RunState._value2member_map_:
            return status
        problem = f"it holds no known state ({clip(state)})"
    except (FileNotFoundError, ValueError) as exc:
        problem = str(exc)
    return {"state": RunState.INTERRUPTED.value, "damaged": True,
            "message": f"status.json is damaged ({problem}); resume the run to continue it"}


def _row(path: Path, now: float) -> dict[str, Any]:
    """One listing row; parts that cannot be read are None and named in ``problem``."""
    run_id = path.name
    problems: list[str] = []

    def part(name: str) -> dict[str, Any]:
        try:
            return read_json_dict(path / name)
        except FileNotFoundError:
            if name != SUMMARY_FILE:
                problems.append(f"{name} is missing")
        except ValueError as exc:
            problems.append(str(exc))
        return {}

    config, meta, summary = part(CONFIG_FILE), part(META_FILE), part(SUMMARY_FILE)
    status = status_or_damaged(path / STATUS_FILE)
    if status.get("damaged"):
        problems.append(str(status["message"]))
    try:
        method_label = RunConfig.from_dict(config).method_label() if config else None
    except ValueError:  # a config from another version of RunConfig
        method_label = None
    heartbeat = status.get("heartbeat")
    return {
        "run_id": run_id,
        "state": status.get("state"),
        "label": meta.get("label") or method_label,
        "method": config.get("method"),
        "method_label": method_label or meta.get("label"),
        "scope": config.get("scope"),
        "model": config.get("model"),
        "dataset": config.get("dataset"),
        "preset": meta.get("preset"),
        "owner": meta.get("owner"),
        "group": meta.get("group"),
        "seed": config.get("seed"),
        "created": meta.get("created"),
        "epochs": config.get("epochs"),
        "last_epoch": _first((summary, "epochs_done"), (status, "epoch")),
        "final_test_acc": _first((summary, "final_test_acc"), (status, "test_acc")),
        "best_test_acc": _first((summary, "best_test_acc"), (status, "best_test_acc")),
        "heartbeat_age_s": now - heartbeat if isinstance(heartbeat, (int, float)) else None,
        "updated": status.get("updated"),
        "config_hash": meta.get("config_hash"),
        "problem": "; ".join(clip(p, 300)[1:-1] for p in problems) or None,
    }

def listing_row(path: Path, now: float) -> dict[str, Any] | None:
    """``_row``, or None for a folder deleted meanwhile; any other failure becomes a row
    with its ``problem``: one damaged run never breaks a listing."""
    if not is_run_folder(path):
        return None
    try:
        return _row(path, now)
    except Exception as exc:  # noqa: BLE001 - reported in the row, never fatal
        log.warning("run %s: cannot be read: %s", path.name, exc)
        row: dict[str, Any] = dict.fromkeys(LIST_COLUMNS)
        row.update(run_id=path.name, state=RunState.INTERRUPTED.value,
                   problem=f"cannot be read: {type(exc).__name__}: {clip(str(exc), 300)}")
        return row

