"""The Robustness tab's figures: robust accuracy against the attack's radius (one curve per
method, in its colour) and accuracy under corruptions (bars grouped by corruption and severity)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from samon_app.charts.base import empty_figure, figure, layout
from samon_app.robustness import CorruptionBar, RobustCurve
from samon_core.catalog.robustness import NORM_LABELS


def _x(norm: str, eps: float) -> float:
    """l_inf radii on the axis in pixel levels (eps x 255), l2 radii as they are."""
    return eps * 255 if norm == "linf" else eps


def robustness_figure(found: Sequence[RobustCurve], norm: str, *,
                      empty_note: str = "No robustness results yet: they are measured after "
                      "the last epoch.") -> go.Figure:
    """Robust accuracy (%) against eps under ``norm``'s PGD; eps 0 is the clean accuracy. With
    several seeds, error bars of one std."""
    if not found:
        return empty_figure(empty_note)
    fig = figure()
    ticks: dict[float, str] = {}
    for c in found:
        xs = [_x(norm, e) for e in c.eps]
        ticks.update(zip(xs, c.eps_labels, strict=True))
        fig.add_trace(go.Scatter(
            x=xs, y=[100 * a for a in c.acc], mode="lines+markers", name=c.label,
            line={"color": c.color, "width": 2, "dash": c.dash}, marker={"size": 7},
            error_y={"type": "data", "array": [100 * s for s in c.std], "visible": c.runs > 1,
                     "color": c.color},
            customdata=list(c.eps_labels),
            hovertemplate="eps %{customdata}: %{y:.1f}%",
        ))
    unit = " (in 1/255)" if norm == "linf" else ""
    layout(fig, title=f"Accuracy under {NORM_LABELS[norm]} PGD attacks",
           x_title=f"radius eps{unit}, pixel units", y_title="robust accuracy (%)",
           y_percent=True)
    fig.update_xaxes(tickvals=list(ticks), ticktext=list(ticks.values()))
    return fig


def corruption_figure(bars: Sequence[CorruptionBar], *,
                      empty_note: str = "No corruption results yet.") -> go.Figure:
    """Accuracy (%) per corruption and severity, one bar colour per method."""
    if not bars:
        return empty_figure(empty_note)
    fig = figure()
    for label in dict.fromkeys(b.label for b in bars):
        mine = [b for b in bars if b.label == label]
        fig.add_trace(go.Bar(
            x=[[b.corruption for b in mine], [f"s{b.severity}" for b in mine]],
            y=[100 * b.acc for b in mine], name=label, marker={"color": mine[0].color},
            error_y={"type": "data", "array": [100 * b.std for b in mine],
                     "visible": any(b.runs > 1 for b in mine)},
            hovertemplate="%{x}: %{y:.1f}%",
        ))
    layout(fig, title="Accuracy under corruptions (severity s1-s3)",
           y_title="accuracy (%)", y_percent=True)
    fig.update_layout(barmode="group", hovermode="closest")
    return fig
