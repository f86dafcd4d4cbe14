"""How long a comparison will take, and what the Launch page lists before launching.

``config.estimate_seconds`` gives a table-based estimate per run; ``calibration`` measures how
far it is off on this machine (finished runs' measured / estimated time per device kind) and
``estimate_group`` scales it, then spreads the runs over the workers. ``runs_overview`` is the
table of runs about to be launched.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from samon_app.formatting import finite, format_duration
from samon_core.catalog.methods import BY_KEY, method_key
from samon_core.runs.config import RunConfig
from samon_core.runs.estimate import estimate_seconds


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


def calibration(finished: Iterable[Mapping[str, Any]]) -> dict[str, tuple[float, int]]:
    """How far ``config.estimate_seconds`` is off on this machine, per device kind: the median
    of measured / estimated training time over finished runs, and how many runs that is.
    ``finished`` holds rows with ``config`` (dict) and ``summary`` (with ``train_time_s`` and
    ``device``) as the app reads them."""
    ratios: dict[str, list[float]] = {}
    for row in finished:
        summary = row.get("summary") or {}
        measured = summary.get("train_time_s")
        if summary.get("state", "finished") != "finished" or not finite(measured):
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
    return {k: (statistics.median(v), len(v)) for k, v in ratios.items()}


def estimate_group(
    configs: Mapping[str, RunConfig], seeds: int = 1, kind: str = "cpu", workers: int = 1,
    factors: Mapping[str, tuple[float, int]] | None = None, lockstep_max: int = 6,
) -> dict[str, Any]:
    """Rough time estimate of a comparison group: per label (one seed), the total of all runs,
    and the wall time. ``factors`` (from ``calibration``) scale the table-based estimate to what
    finished runs took here. A worker trains up to ``lockstep_max`` runs of a comparison together
    (interleaved: their times add up), so only that many-run chunks spread over ``workers``."""
    factor, n_cal = (factors or {}).get(kind, (1.0, 0))
    per = {label: factor * estimate_seconds(cfg, kind) for label, cfg in configs.items()}
    total = sum(per.values()) * max(1, seeds)
    n = len(per) * max(1, seeds)
    chunks = -(-n // max(1, lockstep_max)) if n else 1
    parallel = max(1, min(workers, chunks))
    return {"per_run": per, "total_s": total, "wall_s": total / parallel, "kind": kind, "runs": n,
            "calibrated_on": n_cal}


def estimate_note(est: Mapping[str, Any]) -> str:
    """Where an estimate comes from: calibrated on finished runs here, or a rough guess."""
    n = est.get("calibrated_on", 0)
    if n:
        return f"scaled to the {n} run{'s' if n != 1 else ''} that finished here"
    return "rough: no run has finished here yet to calibrate it"


def estimate_text(est: Mapping[str, Any]) -> str:
    """One sentence for an estimate, the same on Home, on the preset card and under the form."""
    return (f"Estimated time on {est['kind'].upper()}: about **{format_duration(est['wall_s'])}** "
            f"for the {est['runs']} runs ({estimate_note(est)}).")


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
