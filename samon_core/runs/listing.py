"""One row of the run listing per run folder, built from its small JSON files, and what a reader
makes of a damaged ``status.json``. No torch; pandas is not needed here.

A damaged run is never hidden: what can be read is shown and the rest is named in the row's
``problem``, so one bad folder neither breaks a listing nor escapes deletion. A field of the wrong
type is left out and named the same way (``fieldcheck``: the one check of the fields readers use).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from samon_core.runs.config import RunConfig
from samon_core.runs.fieldcheck import check_fields, check_records, summarize
from samon_core.runs.files import CONFIG_FILE, META_FILE, STATUS_FILE, SUMMARY_FILE
from samon_core.runs.io import read_json_dict
from samon_core.runs.messages import clip
from samon_core.runs.metrics import read_records_since
from samon_core.runs.states import RunState

log = logging.getLogger("samon.store")

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
    """A files-era run's status.json at ``path`` (read once, by the importer: run state lives
    in the database since issue 24); if it is missing, empty, malformed or holds no known state,
    ``{"state": "interrupted", "damaged": True, "message": ...}``: that era replaced the file
    without fsync, so a power loss could leave it empty, and such a run is resumable like one
    whose worker died. Fields of the wrong type are left out (``checked_status``)."""
    return checked_status(path)[0]


def checked_status(path: Path) -> tuple[dict[str, Any], list[str]]:
    """``status_or_damaged`` and the damaged fields it left out (``fieldcheck``)."""
    try:
        status, problems = check_fields(STATUS_FILE, read_json_dict(path))
        state = status.get("state")
        if isinstance(state, str) and state in RunState._value2member_map_:
            return status, problems
        problem = f"it holds no known state ({clip(state)})"
    except (FileNotFoundError, ValueError) as exc:
        problem = str(exc)
    return {"state": RunState.INTERRUPTED.value, "damaged": True,
            "message": f"{STATUS_FILE} is damaged ({problem}); resume the run to continue it"}, []


def checked_file(path: Path) -> dict[str, Any]:
    """A run's JSON file (meta.json, summary.json, ...) without its fields of the wrong type
    (``fieldcheck``; the listing names them in the run's ``problem``)."""
    return check_fields(path.name, read_json_dict(path))[0]


def records_or_damaged(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int, list[str]]:
    """The metric records after byte ``offset`` of ``path`` (``metrics.read_records_since``)
    without damaged ones (``fieldcheck.check_records``), the next offset, and what was damaged.
    A folder or a FIFO in place of the file is named, never opened."""
    with contextlib.suppress(OSError):  # missing: no records yet; unreadable: the reader says
        if not stat.S_ISREG(os.stat(path).st_mode):
            return [], 0, [f"{path.name} is not a regular file: its records cannot be read"]
    records, offset = read_records_since(path, offset)
    clean, problems = check_records(records)
    return clean, offset, problems


def _row(path: Path, now: float, status: Mapping[str, Any] | None) -> dict[str, Any]:
    """One listing row of the run folder ``path`` and its ``status`` (the database's; None for
    a folder without a row); parts that cannot be read are None and named in ``problem``."""
    run_id = path.name
    problems: list[str] = []

    raw: dict[str, dict[str, Any]] = {}

    def part(name: str) -> dict[str, Any]:
        try:
            raw[name] = read_json_dict(path / name)
            data, damaged = check_fields(name, raw[name])
            problems.extend(damaged)
            return data
        except FileNotFoundError:
            if name != SUMMARY_FILE:
                problems.append(f"{name} is missing")
        except ValueError as exc:
            problems.append(str(exc))
        return {}

    config, meta, summary = part(CONFIG_FILE), part(META_FILE), part(SUMMARY_FILE)
    if status is None:
        status = {"state": RunState.INTERRUPTED.value}
        problems.append("the run is not in the database (a submit that did not finish); "
                        "delete it")
    elif isinstance(status.get("problem"), str):  # damaged fields of its row (rows.status_of)
        problems.append(status["problem"])
    try:
        method_label = (RunConfig.from_dict(raw[CONFIG_FILE]).method_label()
                        if raw.get(CONFIG_FILE) else None)
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
        "problem": "; ".join(clip(p, 300)[1:-1] for p in summarize(problems)) or None,
    }

def listing_row(path: Path, now: float,
                status: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``_row``, or None for a folder deleted meanwhile; any other failure becomes a row
    with its ``problem``: one damaged run never breaks a listing."""
    if not is_run_folder(path):
        return None
    try:
        return _row(path, now, status)
    except Exception as exc:  # noqa: BLE001 - reported in the row, never fatal
        log.warning("run %s: cannot be read: %s", path.name, exc)
        row: dict[str, Any] = dict.fromkeys(LIST_COLUMNS)
        row.update(run_id=path.name, state=RunState.INTERRUPTED.value,
                   problem=f"cannot be read: {type(exc).__name__}: {clip(str(exc), 300)}")
        return row



def listing_frame(rows: list[dict[str, Any]], *, owner: str | None = None,
                  group: str | None = None, status: str | Iterable[str] | None = None) -> Any:
    """``rows`` (``listing_row``s) as a DataFrame (columns ``LIST_COLUMNS``), newest first,
    optionally only an owner's, a group's or those in a state (or states)."""
    import pandas as pd  # lazily: the listing module is imported by pages that need no pandas

    states = {status} if isinstance(status, str) else set(status) if status else None
    kept = [r for r in rows if (owner is None or r["owner"] == owner)
            and (group is None or r["group"] == group)
            and (states is None or r["state"] in states)]
    kept.sort(key=lambda r: (r["created"] if isinstance(r["created"], (int, float)) else 0.0,
                             r["run_id"]), reverse=True)
    return pd.DataFrame(kept, columns=list(LIST_COLUMNS))
