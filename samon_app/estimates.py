"""How long a comparison will take, and what the Launch page lists before launching.

``config.estimate_seconds`` gives a table-based estimate per run (its CPU figures measured on a
quiet 2-core machine, ``catalog.models``); ``calibration`` measures how far it is off here
(finished runs' measured / estimated time per device kind) and ``estimate_group`` scales it,
spreads the runs over the workers and gives the range it is likely in: the spread of the
calibrating runs' ratios, or a factor of ``UNCALIBRATED_SPREAD`` either way before any run has
finished. ``estimate_text`` is the one sentence every page (Home, Launch, Claims, Live's "train
my own") shows for a request, so the same request reads the same everywhere. ``runs_overview``
is the table of runs about to be launched.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from samon_app.formatting import finite, format_duration
from samon_core.catalog.methods import BY_KEY, method_key
from samon_core.runs.config import RunConfig
from samon_core.runs.estimate import estimate_seconds
from samon_core.runs.states import RunState


def device_kind(device: str, worker_devices: Iterable[str] = ()) -> str:
    """'cpu', 'cuda' or 'mps' for a time estimate: the device asked for, or for 'auto' the best
    device among the workers' (CPU when none is known)."""
    if device.startswith("cuda"):
        return "cuda"
    if device in ("cpu", "mps"):
        return device
    kinds = {str(d).split(":", 1)[0].lower() for d in worker_devices}
    if "cuda" in kinds or "gpu" in kinds:
        return "cuda"
    if "mps" in kinds:
        return "mps"
    return "cpu"


# Before any run has finished here, the table's figure may be off by this factor either way
# (another CPU, a machine that is busy with other work).
UNCALIBRATED_SPREAD = 2.0
# A calibrated range is never narrower than this factor either way: the next run shares the
# machine with whatever runs then.
MIN_SPREAD = 1.25


Calibration = tuple[float, int, float, float]  # median ratio, runs, lowest and highest ratio


def calibration(finished: Iterable[Mapping[str, Any]]) -> dict[str, Calibration]:
    """How far ``config.estimate_seconds`` is off on this machine, per device kind: the median
    of measured / estimated training time over finished runs, how many runs that is, and the
    smallest and largest of those ratios (the range an estimate is given with).
    ``finished`` holds rows with ``config`` (dict) and ``summary`` (with ``train_time_s`` and
    ``device``) as the app reads them."""
    ratios: dict[str, list[float]] = {}
    for row in finished:
        summary = row.get("summary") or {}
        measured = summary.get("train_time_s")
        if summary.get("state", RunState.FINISHED) != RunState.FINISHED or not finite(measured):
            continue
        # A run trained in lockstep shares its wall clock with its group: its own share of it
        # is the wall time over the group's size.
        measured = float(measured) / max(1, len(summary.get("lockstep") or ()))
        kind = str(summary.get("device") or "cpu").split(":", 1)[0]
        if kind not in ("cpu", "cuda", "mps"):
            continue
        try:
            estimate = estimate_seconds(RunConfig.from_dict(row["config"]), kind)
        except (ValueError, KeyError):
            continue
        if estimate > 0 and measured > 0:
            ratios.setdefault(kind, []).append(float(measured) / estimate)
    return {k: (statistics.median(v), len(v), min(v), max(v)) for k, v in ratios.items()}


def likely_range(wall_s: float, factor: float, n: int, low: float, high: float
                 ) -> tuple[float, float]:
    """(shortest, longest) likely wall time around ``wall_s`` (estimated with ``factor``, the
    median ratio of ``n`` calibrating runs whose ratios went from ``low`` to ``high``): the
    calibrating runs' spread, at least ``MIN_SPREAD`` either way; ``UNCALIBRATED_SPREAD``
    either way without calibration."""
    if n <= 0 or factor <= 0:
        return wall_s / UNCALIBRATED_SPREAD, wall_s * UNCALIBRATED_SPREAD
    return (wall_s * min(low / factor, 1 / MIN_SPREAD), wall_s * max(high / factor, MIN_SPREAD))


def estimate_group(
    configs: Mapping[str, RunConfig], seeds: int = 1, kind: str = "cpu", workers: int = 1,
    factors: Mapping[str, tuple[float, ...]] | None = None, lockstep_max: int = 6,
) -> dict[str, Any]:
    """Rough time estimate of a comparison group: per label (one seed), the total of all runs,
    the wall time and its likely range (``low_s``, ``high_s``: ``likely_range``). ``factors``
    (from ``calibration``) scale the table-based estimate to what finished runs took here. A
    worker trains up to ``lockstep_max`` runs of a comparison together (interleaved: their
    times add up), so only that many-run chunks spread over ``workers``."""
    cal = (factors or {}).get(kind) or (1.0, 0)
    factor, n_cal = float(cal[0]), int(cal[1])
    low, high = (float(cal[2]), float(cal[3])) if len(cal) >= 4 else (factor, factor)
    per = {label: factor * estimate_seconds(cfg, kind) for label, cfg in configs.items()}
    total = sum(per.values()) * max(1, seeds)
    n = len(per) * max(1, seeds)
    chunks = -(-n // max(1, lockstep_max)) if n else 1
    parallel = max(1, min(workers, chunks))
    wall = total / parallel
    low_s, high_s = likely_range(wall, factor, n_cal, low, high)
    return {"per_run": per, "total_s": total, "wall_s": wall, "low_s": low_s, "high_s": high_s,
            "kind": kind, "runs": n, "calibrated_on": n_cal}


def estimate_note(est: Mapping[str, Any]) -> str:
    """Where an estimate comes from: calibrated on finished runs here, or the table's figures
    (measured on a quiet 2-core CPU)."""
    n = est.get("calibrated_on", 0)
    if n:
        return f"scaled to the {n} run{'s' if n != 1 else ''} that finished here"
    return "from figures measured on a quiet 2-core CPU: no run has finished here yet"


def range_text(est: Mapping[str, Any]) -> str:
    """'likely 45 s to 3 min': the estimate's range, in words."""
    low, high = format_duration(est.get("low_s")), format_duration(est.get("high_s"))
    return f"likely {low} to {high}" if low != high else f"likely {low}"


def duration_text(est: Mapping[str, Any]) -> str:
    """'about 2 min (likely 45 s to 3 min)': the wall time with its range, the part of
    ``estimate_text`` the README quotes for the quick demo."""
    return f"about {format_duration(est['wall_s'])} ({range_text(est)})"


def estimate_text(est: Mapping[str, Any]) -> str:
    """One sentence for an estimate, the same on Home, on the preset card, under the form and
    on the Claims page's cards."""
    n = est["runs"]
    return (f"Estimated time on {est['kind'].upper()}: about **{format_duration(est['wall_s'])}**"
            f" ({range_text(est)}) for the {n} run{'s' if n != 1 else ''} "
            f"({estimate_note(est)}).")


def runs_overview(configs: Mapping[str, RunConfig], seeds: int = 1, kind: str = "cpu",
                  factor: float = 1.0) -> list[dict[str, Any]]:
    """One row per method for the launch summary: run, what SAM perturbs, rho (and where it
    comes from), seeds, model, data, epochs, estimated time per run."""
    rows = []
    for label, cfg in configs.items():
        rho = "-"
        if cfg.method == "sam":
            source = cfg.rho_source()  # 'user', 'guess' or the paper setting it comes from
            source = {"guess": "our guess", "user": "yours"}.get(source, source)
            rho = f"{cfg.resolved_rho():g} ({source})"
        data = cfg.dataset + (f", {cfg.train_subset:,} images" if cfg.train_subset else "")
        rows.append({
            "run": label,
            "SAM perturbs": BY_KEY[method_key(cfg)].perturbs,
            "rho": rho,
            "seed" if seeds == 1 else "seeds": ", ".join(str(cfg.seed + i) for i in range(seeds)),
            "model": cfg.model,
            "data": data,
            "epochs": cfg.epochs,
            "time per run": format_duration(factor * estimate_seconds(cfg, kind)),
        })
    return rows
