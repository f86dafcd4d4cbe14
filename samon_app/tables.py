"""The tables of the pages: comparison groups, the results in the paper's format, step speed.

* ``group_members`` / ``group_table``: one row per comparison group (runs launched together,
  including runs reused from an identical earlier request) for the Live page's picker;
* ``results_table``: final test accuracy and sharpness per seed group as mean ± std, with the best
  cell of each row marked, like the paper's table;
* ``speed_summary``: median step time, images/s and load average per run (ratios: ``speed``).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from samon_app.formatting import finite, mean_std_text
from samon_app.reader import RunData, RunInfo
from samon_app.series import SeedGroup
from samon_app.speed import interleaved_with, median_load
from samon_core.catalog.methods import method_sort_key
from samon_core.runs.states import ACTIVE_STATES, RunState

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
    (queued or running), methods, dataset, model and a one-line label that does not change
    while the runs train. ``list_df`` is ``RunStore.list_runs()``, ``members`` from
    ``group_members``."""
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
        active = int(g["state"].isin([s.value for s in ACTIVE_STATES]).sum())
        presets = g["preset"].dropna()
        preset = presets.iloc[0] if len(presets) else None
        owners = [o for o in runs.values() if o]
        owner = owners[0] if owners else ""
        datasets = ", ".join(sorted(set(g["dataset"].dropna())))
        models = ", ".join(sorted(set(g["model"].dropna())))
        label = f"{when} · {owner or '?'} · {preset or 'custom'} · {', '.join(labels)}"
        if len(ids) > len(labels):
            label += f" · {len(ids)} runs"
        # No "N active" in the label: a select box keeps the label it showed, so a count that
        # changes read "1 active" after every run had finished (the ``active`` column has it).
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
    """The paper's results table: columns = methods (seed groups, named by method; ``details``
    holds the settings that tell groups of one method apart), rows = test accuracy, cost per
    step, final mean gamma and the sharpness probes. ``cells`` are display strings; ``best``
    marks the bold cell of a row (highest accuracy, lowest sharpness, as printed: none on a
    tie); ``n`` the runs per column."""

    columns: list[str]
    rows: list[str]
    cells: list[list[str]]
    best: list[list[bool]]
    n: list[int]
    finished_only: bool = True
    details: list[str] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.cells, index=self.rows, columns=self.columns)

    def styled(self):
        """``frame()`` with the best cell of each row in bold (a pandas Styler)."""
        best = self.best

        def bold(df):
            import pandas as pd

            return pd.DataFrame([["font-weight: bold" if best[i][j] else ""
                                  for j in range(df.shape[1])] for i in range(df.shape[0])],
                                index=df.index, columns=df.columns)

        return self.frame().style.apply(bold, axis=None)

    def markdown(self) -> str:
        """A Markdown table with the best cell of each row in bold."""

        def esc(text: str) -> str:
            return text.replace("|", "\\|")

        head = "| | " + " | ".join(esc(c) for c in self.columns) + " |"
        sep = "|---|" + "---|" * len(self.columns)
        lines = [head, sep]
        for name, cells, best in zip(self.rows, self.cells, self.best, strict=True):
            shown = [f"**{esc(c)}**" if b else esc(c) for c, b in zip(cells, best, strict=True)]
            lines.append(f"| {esc(name)} | " + " | ".join(shown) + " |")
        return "\n".join(lines)


ROW_N = "runs (n)"
ROW_SETTINGS = "settings"
ROW_ACC = "Test accuracy (%)"
ROW_COST = "time per step (ms)"
ROW_GAMMA = "mean gamma (final)"


def _sharp_row_name(steps: int, rho: float) -> str:
    return f"l_inf sharpness, {steps} step{'s' if steps != 1 else ''}, rho = {rho:g}"


def final_mean_gamma(data: RunData | None) -> float | None:
    """The exact mean over all gammas at the run's last ``norm_stats`` record (None without)."""
    recs = data.gamma if data is not None else []
    for rec in reversed(recs):
        if finite(rec.get("mean")):
            return float(rec["mean"])
    return None


def median_step_time(data: RunData | None) -> float | None:
    """The run's median seconds per step over its step records."""
    times = data.series("step", "step", "step_time")[1] if data is not None else []
    return statistics.median(times) if times else None


def _column_values(runs: Sequence[RunInfo], data: Mapping[str, RunData]) -> dict[str, Any]:
    """The values of one column: accuracies, step times, gammas, sharpness per probe."""
    accs, costs, gammas, sharp = [], [], [], {}
    for r in runs:
        d = data.get(r.run_id)
        for out, value in ((accs, final_accuracy(r, d)), (costs, median_step_time(d)),
                           (gammas, final_mean_gamma(d))):
            if value is not None:
                out.append(value)
        if d is not None:
            for k, val in final_sharpness(d).items():
                sharp.setdefault(k, []).append(val)
    return {"acc": accs, "cost": costs, "gamma": gammas, "sharp": sharp}


def _shown(cell: str) -> float | None:
    """The mean a cell prints ('84.19 ± 0.20' -> 84.19; None for '-' or text)."""
    try:
        return float(cell.split(" ± ")[0])
    except ValueError:
        return None


def _best_marks(cells: list[list[str]], higher: list) -> list[list[bool]]:
    """The bold cell of each row: the best mean as printed, so two cells that read alike are
    never told apart by a digit nobody sees; a best shared by two printed values is no best
    (nothing bold)."""
    best = []
    for row, hi in zip(cells, higher, strict=True):
        shown = [_shown(c) for c in row]
        vals = [m for m in shown if m is not None]
        if len(vals) < 2 or hi is None:
            best.append([False] * len(row))
            continue
        target = max(vals) if hi else min(vals)
        tied = vals.count(target) > 1
        best.append([not tied and m is not None and m == target for m in shown])
    return best


def _sharp_digits(means: Sequence[float | None], least: int = 3) -> int:
    """Decimals for a sharpness row: at least ``least``, and as many more (up to 6) as it takes
    for different means to print differently (values near 0.008 read '0.0081' vs '0.0079')."""
    vals = sorted({m for m in means if m is not None})
    for d in range(least, 7):
        if len({f"{m:.{d}f}" for m in vals}) == len(vals):
            return d
    return 6


def results_table(
    groups: Sequence[SeedGroup], data: Mapping[str, RunData], *, finished_only: bool = True
) -> ResultsTable:
    """Per seed group (columns named by method; groups without a counted run left out): final
    test accuracy (%), median time per step (ms), final mean gamma and the final sharpness of
    each probe, each as mean ± std over the seeds, like the poster's table. With
    ``finished_only`` only finished runs count. Time per step compares fairly only between runs
    trained interleaved (``samon_app.speed``)."""
    columns, n_runs, details, cols = [], [], [], []
    for g in groups:
        runs = [r for r in g.runs if not finished_only or r.state == RunState.FINISHED]
        if not runs:
            continue
        columns.append(g.label)
        n_runs.append(len(runs))
        details.append(g.details)
        cols.append(_column_values(runs, data))
    probe_keys = sorted({k for c in cols for k in c["sharp"]}, key=lambda k: (-k[0], k[1]))
    rows = [ROW_N] + ([ROW_SETTINGS] if any(details) else []) + [ROW_ACC, ROW_COST, ROW_GAMMA]
    cells: list[list[str]] = [[str(n) for n in n_runs]]
    higher: list = [None]
    if any(details):
        cells.append([d or "" for d in details])
        higher.append(None)
    for key, factor, digits, hi in (("acc", 100.0, 2, True), ("cost", 1000.0, 1, None),
                                    ("gamma", 1.0, 4, None)):
        cells.append([mean_std_text(c[key], factor, digits) for c in cols])
        higher.append(hi)
    for k in probe_keys:
        rows.append(_sharp_row_name(*k))
        digits = _sharp_digits([_mean(c["sharp"].get(k, [])) for c in cols])
        cells.append([mean_std_text(c["sharp"].get(k, []), 1.0, digits) for c in cols])
        higher.append(False)
    return ResultsTable(columns, rows, cells, _best_marks(cells, higher), n_runs,
                        finished_only, details)


def _mean(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def speed_summary(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> pd.DataFrame:
    """Per run: whom it trained interleaved with, its median step time (ms) and images/s from
    its step records, and the machine's median 1-minute load average while it trained. No
    ratio here: ``speed.cost_ratios`` shows ratios, between interleaved runs only."""
    import pandas as pd

    cols = ["run", "interleaved", "median step time (ms)", "images/s", "load (1 min)"]
    together = interleaved_with(infos)
    rows = []
    for info in infos:
        d = data.get(info.run_id)
        step_time = median_step_time(d)
        if step_time is None:
            continue
        _, ips = d.series("step", "step", "images_per_s")
        load = median_load(d)
        rows.append([info.label, together.get(info.run_id, ""), 1000 * step_time,
                     statistics.median(ips) if ips else float("nan"),
                     float("nan") if load is None else load])
    return pd.DataFrame(rows, columns=cols)
