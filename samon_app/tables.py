"""The tables of the pages: comparison groups, the results in the paper's format, step speed.

* ``group_members`` / ``group_table``: one row per comparison group (runs launched together,
  including runs reused from an identical earlier request) for the Live page's picker;
* ``results_table``: final test accuracy and sharpness per seed group as mean ± std, with the best
  cell of each row marked, like the paper's table;
* ``speed_summary``: median step time and images/s per run, relative to the SGD run.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from samon_app.formatting import finite, mean_std_text
from samon_app.reader import RunData, RunInfo
from samon_app.series import SeedGroup
from samon_app.vocabulary import method_sort_key

if TYPE_CHECKING:  # pandas is imported lazily
    import pandas as pd


def group_members(metas: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Comparison group -> {run_id: owner who asked for the run in that group}, from each run's
    meta.json. A run belongs to the group it was created in and to every group of its
    ``requesters`` (an identical request reuses a finished or active run instead of training it
    again, see ``samon_core.service``)."""
    out: dict[str, dict[str, str]] = {}
    for run_id, meta in metas.items():
        group = meta.get("group")
        if group:
            out.setdefault(str(group), {})[run_id] = str(meta.get("owner") or "")
        for req in meta.get("requesters") or []:
            if isinstance(req, Mapping) and req.get("group"):
                who = str(req.get("owner") or "")
                out.setdefault(str(req["group"]), {}).setdefault(run_id, who)
    return out


def group_table(list_df: pd.DataFrame, members: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """One row per comparison group, newest first: group, owner, preset, created, runs, active
    (queued or running), methods, dataset, model and a one-line label. ``list_df`` is
    ``RunStore.list_runs()``, ``members`` from ``group_members``."""
    import pandas as pd

    cols = ["group", "owner", "preset", "created", "runs", "active", "methods", "dataset",
            "model", "label"]
    if list_df is None or list_df.empty or not members:
        return pd.DataFrame(columns=cols)
    by_id = list_df.set_index("run_id")
    rows = []
    for group, runs in members.items():
        ids = [r for r in runs if r in by_id.index]
        if not ids:
            continue
        g = by_id.loc[ids]
        labels = sorted(set(g["method_label"].dropna()), key=lambda s: method_sort_key(s))
        created = g["created"].max()
        when = time.strftime("%b %d %H:%M", time.localtime(created)) if pd.notna(created) else ""
        active = int(g["state"].isin(["queued", "running"]).sum())
        presets = g["preset"].dropna()
        preset = presets.iloc[0] if len(presets) else None
        owners = [o for o in runs.values() if o]
        owner = owners[0] if owners else ""
        datasets = ", ".join(sorted(set(g["dataset"].dropna())))
        models = ", ".join(sorted(set(g["model"].dropna())))
        label = f"{when} · {owner or '?'} · {preset or 'custom'} · {', '.join(labels)}"
        if len(ids) > len(labels):
            label += f" · {len(ids)} runs"
        if active:
            label += f" · {active} active"
        rows.append([group, owner, preset, created, len(ids), active, ", ".join(labels),
                     datasets, models, label])
    out = pd.DataFrame(rows, columns=cols)
    dup = out["label"].duplicated(keep=False)  # select boxes tell options apart by label
    out.loc[dup, "label"] = out.loc[dup, "label"] + " · " + out.loc[dup, "group"].str[-6:]
    return out.sort_values("created", ascending=False, kind="stable").reset_index(drop=True)


def final_sharpness(data: RunData) -> dict[tuple[int, float], float]:
    """The last sharpness value (highest epoch, then latest record) of each probe kind (steps,
    rho) of a run."""
    best: dict[tuple[int, float], tuple[float, float]] = {}
    for rec in data.records:
        if rec.get("kind") != "sharpness" or not finite(rec.get("value")):
            continue
        if not (finite(rec.get("steps")) and finite(rec.get("rho"))):
            continue
        key = (int(rec["steps"]), float(rec["rho"]))
        epoch = float(rec["epoch"]) if finite(rec.get("epoch")) else -1.0
        if key not in best or epoch >= best[key][0]:
            best[key] = (epoch, float(rec["value"]))
    return {k: v for k, (_, v) in best.items()}


def final_accuracy(info: RunInfo, data: RunData | None) -> float | None:
    """Final test accuracy (fraction): summary.json, else the last epoch record (None if the run
    has no epoch yet)."""
    if info.summary and isinstance(info.summary.get("final_test_acc"), (int, float)):
        return float(info.summary["final_test_acc"])
    if data is not None:
        _, accs = data.series("epoch", "epoch", "test_acc")
        if accs:
            return accs[-1]
    return None


@dataclass
class ResultsTable:
    """The paper's results table: columns = methods (seed groups), rows = test accuracy and
    sharpness probes. ``cells`` are display strings; ``best`` marks the bold cell of a row
    (highest accuracy, lowest sharpness); ``n`` the runs per column."""

    columns: list[str]
    rows: list[str]
    cells: list[list[str]]
    best: list[list[bool]]
    n: list[int]
    finished_only: bool = True

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.cells, index=self.rows, columns=self.columns)

    def markdown(self) -> str:
        """A Markdown table with the best cell of each row in bold."""

        def esc(text: str) -> str:
            return text.replace("|", "\\|")

        head = "| | " + " | ".join(
            f"{esc(c)} (n={n})" for c, n in zip(self.columns, self.n, strict=True)
        ) + " |"
        sep = "|---|" + "---|" * len(self.columns)
        lines = [head, sep]
        for name, cells, best in zip(self.rows, self.cells, self.best, strict=True):
            shown = [f"**{esc(c)}**" if b else esc(c) for c, b in zip(cells, best, strict=True)]
            lines.append(f"| {esc(name)} | " + " | ".join(shown) + " |")
        return "\n".join(lines)


def _sharp_row_name(steps: int, rho: float) -> str:
    return f"l_inf sharpness, {steps} step{'s' if steps != 1 else ''}, rho = {rho:g}"


def results_table(
    groups: Sequence[SeedGroup], data: Mapping[str, RunData], *, finished_only: bool = True
) -> ResultsTable:
    """Final test accuracy (%) as mean ± std over the seeds of each group and the final
    sharpness of each probe (mean ± std), like the poster's table. With ``finished_only`` only
    finished runs count."""
    columns, n_runs = [], []
    acc_cols: list[list[float]] = []
    sharp_cols: list[dict[tuple[int, float], list[float]]] = []
    for g in groups:
        runs = [r for r in g.runs if not finished_only or r.state == "finished"]
        accs, sharp = [], {}
        for r in runs:
            d = data.get(r.run_id)
            acc = final_accuracy(r, d)
            if acc is not None:
                accs.append(acc)
            if d is not None:
                for k, val in final_sharpness(d).items():
                    sharp.setdefault(k, []).append(val)
        columns.append(g.label)
        n_runs.append(len(runs))
        acc_cols.append(accs)
        sharp_cols.append(sharp)
    probe_keys = sorted({k for s in sharp_cols for k in s}, key=lambda k: (-k[0], k[1]))
    rows = ["Test accuracy (%)"] + [_sharp_row_name(*k) for k in probe_keys]
    cells: list[list[str]] = [[mean_std_text(a, 100.0) for a in acc_cols]]
    means: list[list[float | None]] = [[_mean(a) for a in acc_cols]]
    for k in probe_keys:
        cells.append([mean_std_text(s.get(k, []), 1.0, 3) for s in sharp_cols])
        means.append([_mean(s.get(k, [])) for s in sharp_cols])
    best: list[list[bool]] = []
    for i, row in enumerate(means):
        vals = [m for m in row if m is not None]
        if len(vals) < 2:
            best.append([False] * len(row))
            continue
        target = max(vals) if i == 0 else min(vals)
        best.append([m is not None and m == target for m in row])
    return ResultsTable(columns, rows, cells, best, n_runs, finished_only)


def _mean(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def speed_summary(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> pd.DataFrame:
    """Median step time (s) and images/s per run from its step records, and the cost relative
    to the SGD run(s) of the set (1.0 = as fast as SGD)."""
    import pandas as pd

    rows = []
    for info in infos:
        d = data.get(info.run_id)
        if d is None:
            continue
        _, step_times = d.series("step", "step", "step_time")
        _, ips = d.series("step", "step", "images_per_s")
        if not step_times:
            continue
        rows.append({
            "run": info.label,
            "key": info.key,
            "median step time (ms)": 1000 * statistics.median(step_times),
            "images/s": statistics.median(ips) if ips else float("nan"),
        })
    df = pd.DataFrame(rows, columns=["run", "key", "median step time (ms)", "images/s"])
    base = df.loc[df["key"] == "sgd", "median step time (ms)"]
    df["cost vs SGD"] = df["median step time (ms)"] / float(base.median()) if len(base) else None
    return df.drop(columns=["key"])

