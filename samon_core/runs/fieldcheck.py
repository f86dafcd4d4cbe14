"""The fields that readers use from a run's small files and from its metric records, with
their types: checked once, where a run is read (the store's readers, the listing and the
metrics reader), so that no damaged field reaches a page, a table or a verdict.

A field of the wrong type (``'x'`` where a time belongs, ``1e308`` for a creation time, a
4,000-digit integer, a list where a name belongs) is dropped from what the reader returns, as if
it were missing, and named in the problems returned beside it: the run's listing row carries
them in its ``problem``, so the run is listed as damaged with the reason (and a teacher can
delete it) while everything else of it is shown. A metric record whose ``kind``, ``epoch`` or
``step`` is damaged is skipped (where it belongs in the run is unknown); a damaged value of a
record is dropped. Fields not listed here are returned as they are: nothing reads them.

Why drop and not refuse the whole file: one student's damaged ``created`` must neither hide
their run's results nor break the page of everyone else; a reader that gets a dict or a record
from here may trust the type of every listed field it finds. No third-party imports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from samon_core.runs.files import CONFIG_FILE, META_FILE, METRICS_FILE, STATUS_FILE, SUMMARY_FILE
from samon_core.runs.messages import clip

# A unix time in seconds: 0 .. about the year 5138 (a time beyond would overflow date formats).
MAX_TIME = 1e11
# Counts (epochs, steps, resumes) and durations in seconds are bounded likewise.
MAX_COUNT = 10**12
MAX_SECONDS = 1e10
# An integer beyond this is no measurement (and cannot be turned into a float without loss).
MAX_INT = 2**63
MAX_SHOWN = 3  # problems named per file or per metrics read; the rest are counted


def _real(v: Any) -> bool:
    """An int or float (not a bool), an int small enough to be a float."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return not isinstance(v, int) or -MAX_INT <= v <= MAX_INT


def _finite_in(low: float, high: float) -> Callable[[Any], bool]:
    return lambda v: _real(v) and math.isfinite(v) and low <= v <= high


def _count(v: Any) -> bool:
    return _real(v) and math.isfinite(v) and float(v).is_integer() and 0 <= v <= MAX_COUNT


def _fraction(v: Any) -> bool:
    """A fraction in [0, 1]; NaN is a measurement too (a diverged run's)."""
    return _real(v) and (math.isnan(v) or 0.0 <= v <= 1.0)


def _text_or_none(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _names(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _requesters(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(r, Mapping) and isinstance(r.get("owner"), str)
        and isinstance(r.get("group", ""), str) and (r.get("time") is None or TIME(r["time"]))
        for r in v)


def _optional_real(v: Any) -> bool:
    return v is None or _real(v)


def _edges(v: Any) -> bool:
    return (isinstance(v, list) and len(v) >= 2
            and all(_real(x) and math.isfinite(x) for x in v))


def _layers(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(x, Mapping) and isinstance(x.get("name"), str)
        and _optional_real(x.get("mean")) and _optional_real(x.get("std")) for x in v)


def _rows(**checks: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """A list of mappings, each with every field of ``checks`` passing its check."""
    return lambda v: isinstance(v, list) and all(
        isinstance(x, Mapping) and all(check(x.get(k)) for k, check in checks.items())
        for x in v)


TIME = _finite_in(0.0, MAX_TIME)
SECONDS = _finite_in(0.0, MAX_SECONDS)
TEXT: Callable[[Any], bool] = lambda v: isinstance(v, str)  # noqa: E731 - a table of checks
FLAG: Callable[[Any], bool] = lambda v: isinstance(v, bool)  # noqa: E731

# What each check means, for the problem's wording.
_WHAT: dict[Callable[[Any], bool], str] = {
    TIME: "a time", SECONDS: "a duration in seconds", TEXT: "text", FLAG: "true or false",
    _count: "a whole number", _fraction: "a fraction in [0, 1]", _real: "a number",
    _optional_real: "a number", _text_or_none: "text", _names: "a list of names",
    _requesters: "a list of requests (owner, group, time)", _edges: "a list of numbers",
    _layers: "a list of layers (name, mean, std)",
}
# a robustness record's results (samon_core/records.py: AttackResult, CorruptionResult)
_ATTACKS = _rows(norm=TEXT, eps=_finite_in(0.0, 1e3), label=TEXT, acc=_fraction)
_CORRUPTIONS = _rows(name=TEXT, severity=_count, acc=_fraction)
_WHAT[_ATTACKS] = "a list of attacks (norm, eps, label, acc)"
_WHAT[_CORRUPTIONS] = "a list of corruptions (name, severity, acc)"

# file -> field -> check (the fields some reader uses)
FILE_FIELDS: dict[str, dict[str, Callable[[Any], bool]]] = {
    META_FILE: {
        "owner": TEXT, "group": TEXT, "label": TEXT, "preset": _text_or_none, "created": TIME,
        "config_hash": TEXT, "run_id": TEXT, "requesters": _requesters,
    },
    STATUS_FILE: {
        "epoch": _count, "epoch_in_progress": _count, "step": _count, "progress": _fraction,
        "test_acc": _fraction, "best_test_acc": _fraction, "eta_s": SECONDS,
        "heartbeat": TIME, "updated": TIME, "step_at": TIME, "created": TIME, "started": TIME,
        "ended": TIME,
        "queued_at": TIME, "interrupted_at": TIME, "cancel_requested": TIME,
        "message": TEXT, "error": TEXT, "traceback": TEXT, "worker": TEXT, "task_id": TEXT,
        "interruptions": _count, "auto_resumes": _count, "manual_resumes": _count,
        "damaged": FLAG,
    },
    SUMMARY_FILE: {
        "state": TEXT, "epochs_done": _count, "steps": _count, "final_test_acc": _fraction,
        "best_test_acc": _fraction, "train_time_s": SECONDS, "total_time_s": SECONDS,
        "warning": TEXT, "error": TEXT, "lockstep": _names, "device": TEXT,
    },
    # config.json as the listing shows it when RunConfig refuses it (another version)
    CONFIG_FILE: {
        "model": TEXT, "dataset": TEXT, "method": TEXT, "scope": TEXT, "seed": _count,
        "epochs": _count,
    },
}

# The metric records: fields every record may have, then each kind's own. ``None`` is allowed
# for a record's values (the trainer writes ``load: null`` where none is measured).
_RECORD_PLACE = {"epoch": _count, "step": _count}  # damaged: the record is skipped
_RECORD_FIELDS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "step": {k: _optional_real for k in
             ("loss", "acc", "lr", "step_time", "images_per_s", "load")},
    "epoch": {k: _optional_real for k in ("train_loss", "train_ce", "train_acc", "test_loss",
                                          "test_ce", "test_acc", "epoch_time", "eta_s")},
    "sharpness": {"rho": _real, "value": _optional_real, "m": _count, "n": _count},
    "norm_stats": {"below": _count, "above": _count, "mean": _optional_real,
                   "std": _optional_real, "layers": _layers},
    "robustness": {"images": _count, "corruptions": _CORRUPTIONS, "seconds": SECONDS},
}
_RECORD_TIME = SECONDS  # a record's ``time``: seconds of training (dropped when damaged)
# Fields without which a record of a kind means nothing (damaged or missing: skipped).
_RECORD_NEEDS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "sharpness": {"steps": _count, "rho": _real},
    "norm_stats": {"param": TEXT, "bin_edges": _edges},
    "resume": {"epoch": _count},
    "robustness": {"clean_acc": _fraction, "attacks": _ATTACKS},
}


def _problem(name: str, value: Any, check: Callable[[Any], bool]) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        shown = f"a number of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
    else:
        shown = clip(value, 40)
    return f"{name} is not {_WHAT.get(check, 'valid')} ({shown})"


def check_fields(file: str, data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``data`` read from ``file`` ('meta.json', 'status.json', 'summary.json', 'config.json')
    without its damaged fields, and one problem per damaged field ('meta.json: created is not a
    time ('x')'). A null is kept: readers take it for a missing field."""
    checks = FILE_FIELDS.get(file, {})
    clean: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in data.items():
        check = checks.get(name)
        if check is None or value is None or check(value):  # null reads as missing anyway
            clean[name] = value
        else:
            problems.append(f"{file}: {_problem(name, value, check)}")
    return clean, problems


def summarize(problems: list[str]) -> list[str]:
    """At most ``MAX_SHOWN`` problems, then how many more."""
    if len(problems) <= MAX_SHOWN:
        return problems
    return [*problems[:MAX_SHOWN], f"and {len(problems) - MAX_SHOWN} more"]


def check_record(rec: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """A metric record without its damaged values, or None when it must be skipped (a kind that
    is no text, a damaged ``epoch`` or ``step``, a kind's needed field damaged or missing);
    and the first problem found (None for a sound record)."""
    kind = rec.get("kind")
    if not isinstance(kind, str):
        return None, f"a record's kind is not text ({clip(kind, 40)})"
    problem = None
    for name, check in (*_RECORD_PLACE.items(), *_RECORD_NEEDS.get(kind, {}).items()):
        value = rec.get(name)
        needed = name in _RECORD_NEEDS.get(kind, {})
        if (value is not None or needed) and not check(value):
            return None, f"a {kind} record's {_problem(name, value, check)}"
    clean = dict(rec)
    fields = {"time": _RECORD_TIME, **_RECORD_FIELDS.get(kind, {})}
    for name, check in fields.items():
        if name in clean and not check(clean[name]):
            problem = problem or f"a {kind} record's {_problem(name, clean[name], check)}"
            del clean[name]
    if kind == "norm_stats" and not _counts_fit(clean):
        return None, "a norm_stats record's counts do not fit its bin_edges"
    return clean, problem


def _counts_fit(rec: Mapping[str, Any]) -> bool:
    counts, edges = rec.get("counts"), rec.get("bin_edges")
    return (isinstance(counts, list) and isinstance(edges, list)
            and len(counts) == len(edges) - 1 and all(_count(c) for c in counts))


def check_records(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The records a reader may use (``check_record``) and the problems met, each named once."""
    out: list[dict[str, Any]] = []
    seen: dict[str, None] = {}
    for rec in records:
        clean, problem = check_record(rec)
        if clean is not None:
            out.append(clean)
        if problem is not None:
            seen[f"{METRICS_FILE}: {problem}"] = None
    return out, list(seen)
