"""The runs' robustness (``robustness`` records) as the Robustness tab shows it, the poster's
numbers beside it, and the sentence that reads the user's runs.

Per method (a seed group: runs that differ only in their seed, in the method's colour) and norm,
the curve of robust accuracy against the attack's radius eps, from eps = 0 (the clean accuracy
on the same images) to the largest budget; with several seeds, the mean and the sample std at
each eps. Per method, corruption and severity, the accuracy under the corruption (grouped bars).
A run with several robustness records (measured again by ``samon robustness RUN``) counts with
its latest. The poster's table (ViT-S/32 on ImageNet, AdamW and Lion) is a separate reference
(``poster_rows``), never drawn on the same axes: a different model and dataset.

The sentence says what the numbers are, never that one method "is" more robust: with few seeds
and a few hundred images, a few points are noise, and it gives that noise (the binomial standard
error of one run's accuracy, sqrt(p (1 - p) / n)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from samon_app.formatting import format_pct
from samon_app.reader import RunData, RunInfo
from samon_app.series import seed_groups
from samon_core import paper
from samon_core.catalog.robustness import CORRUPTION_LABELS, NORM_LABELS, NORMS, eps_text
from samon_core.runs.states import RunState


@dataclass(frozen=True)
class RobustCurve:
    """One method's robust accuracy against eps under one norm's attacks (fractions)."""

    label: str
    color: str
    dash: str
    norm: str
    eps: tuple[float, ...]  # 0 first (clean), then the budgets the runs have, increasing
    acc: tuple[float, ...]  # mean over the runs at each eps
    std: tuple[float, ...]  # sample std over the runs (0 for one run)
    runs: int
    images: int  # test images per run (the smallest of the runs')

    @property
    def eps_labels(self) -> tuple[str, ...]:
        return tuple(eps_text(self.norm, e) if e else "0 (clean)" for e in self.eps)


@dataclass(frozen=True)
class CorruptionBar:
    """One method's accuracy under one corruption at one severity (mean over its runs)."""

    label: str
    color: str
    corruption: str  # its display label
    severity: int
    acc: float
    std: float
    runs: int


def latest_result(data: RunData | None) -> dict | None:
    """The run's latest ``robustness`` record (checked by the metrics reader), or None."""
    if data is None:
        return None
    found = [r for r in data.records if r.get("kind") == "robustness"]
    return found[-1] if found else None


def measured(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> list[RunInfo]:
    """The runs that have a robustness record."""
    return [i for i in infos if latest_result(data.get(i.run_id)) is not None]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _points(result: Mapping, norm: str) -> dict[float, float]:
    """eps -> accuracy of one result under ``norm`` (eps 0: the clean accuracy)."""
    points = {0.0: float(result["clean_acc"])}
    for a in result.get("attacks", ()):
        if a.get("norm") == norm and math.isfinite(a["acc"]):
            points[float(a["eps"])] = float(a["acc"])
    return points


def curves(infos: Sequence[RunInfo], data: Mapping[str, RunData], norm: str
           ) -> list[RobustCurve]:
    """One curve per seed group with results under ``norm``; at each eps the mean over the
    group's runs that measured it."""
    out = []
    for group in seed_groups(measured(infos, data)):
        results = [latest_result(data.get(r.run_id)) for r in group.runs]
        per_run = [_points(res, norm) for res in results if res is not None]
        eps = sorted({e for p in per_run for e in p})
        if len(eps) < 2:  # the clean point alone: no attack of this norm
            continue
        stats = [_mean_std([p[e] for p in per_run if e in p]) for e in eps]
        images = min(int(res.get("images") or 0) for res in results if res is not None)
        out.append(RobustCurve(group.label, group.color, group.dash, norm, tuple(eps),
                               tuple(m for m, _ in stats), tuple(s for _, s in stats),
                               len(per_run), images))
    return out


def corruption_bars(infos: Sequence[RunInfo], data: Mapping[str, RunData]
                    ) -> list[CorruptionBar]:
    """Per seed group, corruption and severity: the mean accuracy over the group's runs."""
    out = []
    for group in seed_groups(measured(infos, data)):
        cells: dict[tuple[str, int], list[float]] = {}
        for run in group.runs:
            for c in (latest_result(data.get(run.run_id)) or {}).get("corruptions", ()):
                if math.isfinite(c["acc"]):
                    cells.setdefault((c["name"], int(c["severity"])), []).append(float(c["acc"]))
        for (name, severity), values in cells.items():
            mean, std = _mean_std(values)
            out.append(CorruptionBar(group.label, group.color, CORRUPTION_LABELS.get(name, name),
                                     severity, mean, std, len(values)))
    return out


def standard_error(p: float, n: int) -> float:
    """The binomial standard error of one run's accuracy p measured on n images."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else math.nan


def reading_sentence(found: Sequence[RobustCurve]) -> str:
    """What the user's curves of one norm say at their largest common budget: each method's
    clean and robust accuracy, highest first, and the noise of one run at that size."""
    if not found:
        return "No robustness results yet: they are measured after the last epoch."
    norm = found[0].norm
    common = set(found[0].eps).intersection(*(c.eps for c in found[1:]))
    eps = max(common)
    parts = []
    ranked = sorted(found, key=lambda c: -c.acc[c.eps.index(eps)])
    for c in ranked:
        seeds = f", {c.runs} seeds" if c.runs > 1 else ""
        parts.append(f"{c.label} {format_pct(c.acc[c.eps.index(eps)])} "
                     f"(clean {format_pct(c.acc[0])}{seeds})")
    n = min(c.images for c in found)
    worst = max(standard_error(c.acc[c.eps.index(eps)], n) for c in found)
    noise = (f" One run's accuracy on {n} images is uncertain by about "
             f"±{100 * worst:.1f} points (binomial standard error): smaller gaps are noise."
             if n > 0 else "")
    what = "Only one method measured" if len(found) == 1 else "Your runs"
    return (f"{what}, under {NORM_LABELS[norm]} PGD at eps {eps_text(norm, eps)}: "
            + "; ".join(parts) + "." + noise)


POSTER_NOTE = paper.VIT_ROBUSTNESS_NOTE


def poster_rows() -> list[dict[str, str]]:
    """The poster's robust accuracies as table rows: one per attack budget, one column per
    base optimizer and method, 'mean ± std' in percent."""
    rows = []
    by_opt = {opt: paper.vit_robustness(opt) for opt in ("AdamW", "Lion")}
    for i, (norm, _, label) in enumerate(paper.VIT_ROBUSTNESS_BUDGETS.values()):
        row = {"attack": f"{NORM_LABELS[norm]}, eps {label}"}
        for opt, methods in by_opt.items():
            for method, points in methods.items():
                stat = points[i][2]  # vit_robustness keeps the order of the budgets
                row[f"{opt} {paper.method_name(method, paper.VANILLA)}"] = \
                    f"{stat.mean:.2f} ± {stat.std:.2f}"
        rows.append(row)
    return rows


def missing(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> list[RunInfo]:
    """Finished runs without a robustness record (trained with robustness off)."""
    have = {i.run_id for i in measured(infos, data)}
    return [i for i in infos if i.state == RunState.FINISHED and i.run_id not in have]


__all__ = ["NORMS", "CorruptionBar", "POSTER_NOTE", "RobustCurve", "corruption_bars", "curves",
           "latest_result", "measured", "missing", "poster_rows", "reading_sentence",
           "standard_error"]
