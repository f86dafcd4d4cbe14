"""The developers' zoo of damaged runs: a run store with healthy runs and one run per damaged
field of meta.json, summary.json, config.json and metrics.jsonl (a wrong type, a string where a
number belongs, 1e308, NaN, a 4,000-digit integer, a folder or a FIFO where a file belongs), per
damaged field of the status the database keeps (its ``status`` JSON column), and a run folder
the database has no row for (a submit cut short). Pages, listings and verdicts must show every
healthy run, list each damaged file's run with its problem, and never raise.

The JSON files (and the status column) are rewritten as raw text after a healthy run was made,
so values that ``json.dumps`` would never write (a 4,000-digit integer, ``NaN``) reach the
readers as a broken disk, a hand edit or a hostile student with a shell would leave them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from samon_core.runs import database as db
from samon_core.runs.store import RunStore

HUGE = "9" * 4000  # an integer literal Python parses (the limit is 4,300 digits) but no float
HOSTILE = "<script>alert(1)</script>"

# (file, field, raw JSON text of the value): each makes one damaged run.
FIELD_CASES: list[tuple[str, str, str]] = [
    ("meta.json", "created", '"x"'),
    ("meta.json", "created", "1e308"),
    ("meta.json", "created", HUGE),
    ("meta.json", "created", "NaN"),
    ("meta.json", "created", "-1e308"),
    ("meta.json", "owner", "[1, 2]"),
    ("meta.json", "group", '{"a": 1}'),
    ("meta.json", "label", "[" + HUGE + "]"),
    ("meta.json", "preset", "7"),
    ("meta.json", "requesters", '"alice"'),
    ("meta.json", "requesters", '[1, {"owner": 5, "group": ["g1"]}]'),
    # the database's status column (what the trainer reports beside the state): read through
    # the same field check; a field with a column of its own (progress, message, times) cannot
    # hold a wrong type there
    ("status.json", "epoch", '"y"'),
    ("status.json", "epoch", HUGE),
    ("status.json", "test_acc", '"high"'),
    ("status.json", "best_test_acc", HUGE),
    ("status.json", "eta_s", "1e308"),
    ("status.json", "step_at", "NaN"),
    ("status.json", "interruptions", "[1]"),
    ("summary.json", "epochs_done", '"y"'),
    ("summary.json", "epochs_done", HUGE),
    ("summary.json", "final_test_acc", '"z"'),
    ("summary.json", "best_test_acc", "1e308"),
    ("summary.json", "warning", "[1, 2]"),
    ("summary.json", "lockstep", "5"),
    ("summary.json", "state", "3"),
    ("config.json", "seed", '"s"'),
    ("config.json", "epochs", HUGE),
    ("config.json", "epochs", '"x"'),
    ("config.json", "dataset", "5"),
]

# (name, records appended to metrics.jsonl): each makes one run with hostile metric records.
RECORD_CASES: list[tuple[str, list[str]]] = [
    ("epoch_text", ['{"kind": "epoch", "epoch": "y", "step": 1, "time": 1, "test_acc": 0.5}']),
    ("epoch_huge", ['{"kind": "epoch", "epoch": ' + HUGE + ', "step": 1, "time": 1, '
                    '"test_acc": 0.5}']),
    ("acc_huge", ['{"kind": "epoch", "epoch": 9, "step": 9, "time": 9, "test_acc": '
                  + HUGE + '}']),
    ("acc_text", ['{"kind": "epoch", "epoch": 9, "step": 9, "time": 9, "test_acc": "a", '
                  '"train_loss": [1]}']),
    ("step_text", ['{"kind": "step", "epoch": 1, "step": "s", "time": "t", "loss": "l", '
                   '"step_time": ' + HUGE + '}']),
    ("kind_number", ['{"kind": 5, "epoch": 1}', '{"epoch": 1}']),
    ("time_1e308", ['{"kind": "epoch", "epoch": 9, "step": 9, "time": 1e308, "test_acc": 0.5,'
                    ' "epoch_time": 1e308, "eta_s": 1e308}']),
    ("sharpness_text", ['{"kind": "sharpness", "epoch": 1, "step": 1, "time": 1, "steps": "1",'
                        ' "rho": "r", "value": ' + HUGE + '}',
                        '{"kind": "sharpness", "epoch": 1, "step": 1, "time": 1, "steps": '
                        + HUGE + ', "rho": 0.01, "value": 0.2}']),
    ("norm_stats_text", ['{"kind": "norm_stats", "epoch": 9, "step": 1, "time": 1, '
                         '"param": "gamma", "bin_edges": "x", "counts": {"a": 1}, '
                         '"layers": "x", "mean": "m", "std": ' + HUGE + '}']),
    ("norm_stats_short", ['{"kind": "norm_stats", "epoch": 9, "step": 1, "time": 1, '
                          '"param": "gamma", "bin_edges": [0, 1, 2], "counts": [1], '
                          '"layers": [1, {"name": 5, "mean": "m"}], "mean": 1.0, "std": 0.1}']),
    ("resume_text", ['{"kind": "resume", "epoch": "e"}', '{"kind": "resume", "epoch": '
                     + HUGE + '}']),
]

# (file, what replaces it): each makes one run whose file is no regular file.
FILE_CASES: list[tuple[str, str]] = [
    ("metrics.jsonl", "folder"),
    ("metrics.jsonl", "fifo"),
    ("summary.json", "folder"),
    ("meta.json", "folder"),
]

# (name, what it does to the run's database row): each makes one run.
ROW_CASES: list[str] = [
    "no_row",  # a folder the database does not know (a submit cut short), an hour old
    "status_not_json",  # the status column edited by hand into text that is no JSON
]


def case_id(file: str, field: str, raw: str) -> str:
    """A short readable name of a field case ('meta.created=x', 'meta.created=<4000 digits>')."""
    shown = f"<{len(raw)} digits>" if raw.isdigit() and len(raw) > 20 else raw[:16]
    return f"{file.split('.')[0]}.{field}={shown}"


def _raw_object(text: str, field: str, raw: str) -> str:
    """The JSON object ``text`` with ``"field": <raw>`` put in as text (no json.dumps)."""
    obj = json.loads(text) if text else {}
    obj.pop(field, None)
    body = json.dumps(obj)[1:-1]
    return "{" + body + (", " if body else "") + json.dumps(field) + ": " + raw + "}"


def _set_raw(path: Path, field: str, raw: str) -> None:
    """Put ``"field": <raw>`` into the JSON object of ``path`` as text."""
    path.write_text(_raw_object(path.read_text() if path.exists() else "", field, raw))


def _set_status(store: RunStore, run_id: str, field: str, raw: str) -> None:
    """Put ``"field": <raw>`` into the run's status column as text."""
    where = db.runs.c.run_id == run_id
    with db.writing(store.engine) as conn:
        text = conn.scalar(db.runs.select().with_only_columns(db.runs.c.status).where(where))
        conn.execute(db.runs.update().where(where).values(status=_raw_object(text, field, raw)))


def _damage_row(store: RunStore, run_id: str, how: str) -> None:
    where = db.runs.c.run_id == run_id
    with db.writing(store.engine) as conn:
        if how == "no_row":
            conn.execute(db.runs.delete().where(where))
        else:
            conn.execute(db.runs.update().where(where).values(status="{not json"))
    if how == "no_row":  # younger, it would be a submit in progress (not listed yet)
        old = time.time() - 3600
        os.utime(store.run_dir(run_id), (old, old))


def _append(path: Path, lines: list[str]) -> None:
    with open(path, "a") as fh:
        fh.write("".join(line + "\n" for line in lines))


def _replace(path: Path, how: str) -> None:
    if path.exists():
        path.unlink()
    if how == "folder":
        path.mkdir()
    else:
        os.mkfifo(path)


def _cases() -> dict[str, Callable[[RunStore, str], None]]:
    out: dict[str, Callable[[RunStore, str], None]] = {}
    for file, field, raw in FIELD_CASES:
        if file == "status.json":
            out[case_id(file, field, raw)] = (
                lambda s, rid, field=field, raw=raw: _set_status(s, rid, field, raw))
        else:
            out[case_id(file, field, raw)] = (
                lambda s, rid, file=file, field=field, raw=raw:
                _set_raw(s.run_dir(rid) / file, field, raw))
    for name, lines in RECORD_CASES:
        out[f"metrics.{name}"] = (
            lambda s, rid, lines=lines: _append(s.run_dir(rid) / "metrics.jsonl", lines))
    for file, how in FILE_CASES:
        out[f"{file}:{how}"] = (
            lambda s, rid, file=file, how=how: _replace(s.run_dir(rid) / file, how))
    for how in ROW_CASES:
        out[f"database:{how}"] = lambda s, rid, how=how: _damage_row(s, rid, how)
    return out


# case name -> what it does to a run (its folder or its database row)
CASES: dict[str, Callable[[RunStore, str], None]] = _cases()
# the cases whose problem the run listing names (the metrics reader names the metrics cases; a
# damaged status field or column is left out by the readers and named in the status's problem)
LISTED = [name for name in CASES if not name.startswith("metrics")]
# the status field cases: readers leave the field out, the run's state stays
STATUS_CASES = [name for name in CASES if name.startswith("status")]


def damage(store: RunStore, run_id: str, case: str) -> None:
    """Apply the damage ``case`` (a key of ``CASES``) to the run ``run_id``."""
    CASES[case](store, run_id)


def build_zoo(store: RunStore, make_run: Callable[..., str], configs: dict[str, Any],
              *, group: str = "g1", owner: str = "alice") -> dict[str, str]:
    """Healthy runs (one per config of ``configs``, finished) and one damaged run per case, all
    of ``owner`` in ``group``. ``make_run(store, config, owner=, group=)`` makes a healthy run
    (``support.fakes.fake_run``). Returns case name -> run id; healthy runs are named
    'healthy:<label>'."""
    made: dict[str, str] = {}
    for label, cfg in configs.items():
        made[f"healthy:{label}"] = make_run(store, cfg, owner=owner, group=group)
    base = next(iter(configs.values()))
    for i, case in enumerate(CASES):  # a seed of its own: no two damaged runs are one group
        rid = make_run(store, base.replace(seed=101 + i), owner=owner, group=group)
        damage(store, rid, case)
        made[case] = rid
    return made
