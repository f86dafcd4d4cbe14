"""Downloads of the Compare page: all metric records of some runs as one long CSV table, or
their configs, meta, summaries and records as one JSON text."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from samon_app.reader import RunData, RunInfo

if TYPE_CHECKING:  # pandas is imported lazily
    import pandas as pd


def metrics_long(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> pd.DataFrame:
    """All epoch, step and sharpness records of the runs in one long table (one row per record;
    columns run_id, label, method, model, dataset, seed, kind, then the record's fields)."""
    import pandas as pd

    frames = []
    for info in infos:
        d = data.get(info.run_id)
        if d is None:
            continue
        for kind, df in (("epoch", d.epochs), ("step", d.steps), ("sharpness", d.sharpness)):
            if df is None or df.empty:
                continue
            df = df.copy()
            df.insert(0, "kind", kind)
            for i, (col, val) in enumerate((
                ("run_id", info.run_id),
                ("label", info.label),
                ("method", info.method_label),
                ("model", info.config.get("model")),
                ("dataset", info.config.get("dataset")),
                ("seed", info.seed),
            )):
                df.insert(i, col, val)
            frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["run_id", "label", "method", "model", "dataset", "seed",
                                     "kind"])
    return pd.concat(frames, ignore_index=True, sort=False)


def export_csv(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> str:
    """``metrics_long`` as CSV text."""
    return metrics_long(infos, data).to_csv(index=False)


def export_json(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> str:
    """Configs, meta, status, summaries and all metric records of the runs, as one JSON text."""

    def clean(obj: Any) -> Any:  # NaN / inf are not JSON: write them as null
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        return obj

    runs = []
    for info in infos:
        d = data.get(info.run_id)
        runs.append({
            "run_id": info.run_id,
            "label": info.label,
            "method": info.method_label,
            "state": info.state,
            "config": info.config,
            "meta": info.meta,
            "summary": info.summary,
            "synthetic_data": info.synthetic,
            "records": d.records if d is not None else [],
        })
    return json.dumps(clean({"exported": time.time(), "runs": runs}), indent=1, allow_nan=False)

