"""A claim card's chart: what it shows as plain data (``chart_data``: one bar per method, mean
over seeds, the seed-to-seed spread as error bar, each seed as a dot, in the method's colour, and
a reference line where the claim has one: the FLOP estimate of the cost claim), and the plotly
figure drawn from it (``claim_figure``; the Claims page only shows it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

from samon_core.catalog import methods
from samon_core.claims.verdicts import Verdict


@dataclass(frozen=True)
class Bar:
    name: str
    mean: float
    std: float
    values: tuple[float, ...]
    color: str


@dataclass(frozen=True)
class ChartData:
    title: str
    y_title: str
    bars: tuple[Bar, ...] = ()
    reference: float | None = None
    reference_label: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


def _color(name: str) -> str:
    spec = methods.BY_NAME.get(name)
    return spec.color if spec else methods.method_color(name)


def _bars(per_method: dict) -> tuple[Bar, ...]:
    return tuple(Bar(name, float(s["mean"]), float(s["std"]), tuple(s["values"]), _color(name))
                 for name, s in per_method.items() if s.get("n"))


def _cost_chart(v: Verdict) -> ChartData:
    seeds = v.evidence.get("seeds") or {}
    ratios = [s["ratio"] for s in seeds.values()]
    bars = ()
    if ratios:
        mean = sum(ratios) / len(ratios)
        std = (sum((r - mean) ** 2 for r in ratios) / (len(ratios) - 1)) ** 0.5 \
            if len(ratios) > 1 else 0.0
    # "step time SAM-ON / SAM-all" (the blocks claim: SAM-ON (B3 only) / SAM-ON)
    a, _, b = str(v.evidence.get("metric", "")).removeprefix("step time ").partition(" / ")
    if ratios:
        bars = (Bar(f"{a} / {b}", mean, std, tuple(ratios), _color("SAM-ON")),)
    flop = v.evidence.get("flop_ratio")
    return ChartData(f"Step time of {a} relative to {b} (lockstep runs)", "ratio", bars,
                     flop, "FLOP estimate" if flop is not None else "")


def chart_data(v: Verdict) -> ChartData:
    """The chart of a verdict's evidence (empty bars while nothing was measured)."""
    if v.claim in ("cost", "blocks"):  # step times (cost.py)
        return _cost_chart(v)
    metric = str(v.evidence.get("metric", ""))
    unit = str(v.evidence.get("unit", ""))
    y_title = f"{metric} ({unit})" if unit else metric
    notes = ()
    if v.claim == "sharper" and v.evidence.get("accuracy"):
        acc = v.evidence["accuracy"]
        notes = tuple(f"{k}: test accuracy {s['mean']:.1f}% ± {s['std']:.1f}"
                      for k, s in acc.items() if s.get("n"))
    return ChartData(metric[:1].upper() + metric[1:], y_title,
                     _bars(v.evidence.get("methods") or {}), notes=notes)


def claim_figure(data: ChartData) -> Any:
    """Bars (mean over seeds, spread as error bar), the seeds as dots, a reference line."""
    fig = go.Figure()
    names = [b.name for b in data.bars]
    fig.add_bar(x=names, y=[b.mean for b in data.bars], marker_color=[b.color for b in data.bars],
                error_y={"type": "data", "array": [b.std for b in data.bars]}, name="mean",
                opacity=0.8)
    for b in data.bars:
        fig.add_scatter(x=[b.name] * len(b.values), y=list(b.values), mode="markers",
                        marker={"color": "#212529", "size": 7}, name=f"{b.name} seeds",
                        showlegend=False)
    if data.reference is not None:
        fig.add_hline(y=data.reference, line_dash="dot", annotation_text=data.reference_label)
    fig.update_layout(title=data.title, yaxis_title=data.y_title, height=300, showlegend=False,
                      margin={"l": 50, "r": 20, "t": 40, "b": 30})
    return fig
