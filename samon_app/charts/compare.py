"""The Compare page's figure: runs overlaid, seeds of a configuration as mean ± std bands.

A group is drawn in its method's colour (the same as on the Live page); groups of one method
that differ in their settings differ in the dash, and name the differing settings in the hover.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from samon_app.charts.base import (
    DASHES,
    METRIC_TITLES,
    empty_figure,
    epoch_dtick,
    figure,
    layout,
    rgba,
)
from samon_app.reader import RunData, RunInfo
from samon_app.series import SeedGroup, mean_std_series, smooth, thin


def _group_series(g: SeedGroup, data: Mapping[str, RunData], kind: str, x: str, metric: str,
                  scale: float, smoothing: float) -> list[tuple[RunInfo, list, list]]:
    out = []
    for r in g.runs:
        d = data.get(r.run_id)
        if d is None:
            continue
        xs, ys = d.series(kind, x, metric)
        if not xs:
            continue
        ys = [scale * v for v in ys]
        out.append((r, xs, smooth(ys, smoothing) if smoothing else ys))
    return out


def _band_traces(g: SeedGroup, series: list, x: str) -> list[go.Scatter]:
    """The mean line and (with 2+ seeds) its ± std band: lines only, the band without legend."""
    xs, mean, std, _n = mean_std_series([(a, b) for _, a, b in series])
    xs_t, mean_t = thin(xs, mean)
    _, std_t = thin(xs, std)
    out = []
    if len(series) > 1:
        upper = [m + s for m, s in zip(mean_t, std_t, strict=True)]
        lower = [m - s for m, s in zip(mean_t, std_t, strict=True)]
        out.append(go.Scatter(
            x=xs_t + xs_t[::-1], y=upper + lower[::-1], mode="lines", fill="toself",
            fillcolor=rgba(g.color, 0.16), line={"width": 0, "color": g.color},
            hoverinfo="skip", showlegend=False, legendgroup=g.key,
        ))
    detail = f"<br>{g.details}" if g.details else ""
    out.append(go.Scatter(
        x=xs_t, y=mean_t, mode="lines" + ("+markers" if x == "epoch" else ""),
        name=f"{g.label} (n={len(series)})", legendgroup=g.key,
        line={"color": g.color, "width": 2.4, "dash": g.dash},
        marker={"size": 5, "color": g.color}, customdata=std_t,
        hovertemplate=("%{y:.2f} ± %{customdata:.2f}" if len(series) > 1 else "%{y:.2f}")
        + detail,
    ))
    return out


def compare_figure(
    groups: Sequence[SeedGroup],
    data: Mapping[str, RunData],
    metric: str,
    *,
    x: str = "epoch",
    smoothing: float = 0.0,
    bands: bool = True,
    height: int = 420,
) -> go.Figure:
    """``metric`` (an epoch column like 'test_acc', or a step column 'acc' / 'loss' with
    ``x='step'``) of every group: with ``bands``, the mean over the group's seeds with a
    +/- one-std band; else one line per run (seeds told apart by the dash)."""
    pct = metric.endswith("acc")
    kind = "epoch" if x == "epoch" else "step"
    traces: list[go.Scatter] = []
    for g in groups:
        series = _group_series(g, data, kind, x, metric, 100.0 if pct else 1.0, smoothing)
        if not series:
            continue
        if bands:
            traces += _band_traces(g, series, x)
            continue
        for i, (r, xs, ys) in enumerate(series):
            xs_t, ys_t = thin(xs, ys)
            traces.append(go.Scatter(
                x=xs_t, y=ys_t, mode="lines", name=r.label, legendgroup=g.key,
                line={"color": g.color, "width": 1.8, "dash": DASHES[i % len(DASHES)]},
                hovertemplate="%{y:.2f}" + (f"<br>{g.details}" if g.details else ""),
            ))
    if not traces:
        return empty_figure("None of the chosen runs has records of this metric yet.")
    y_title = METRIC_TITLES.get(metric, metric)
    if x == "step":
        y_title = "train " + y_title
    fig = figure(data=traces)
    fig = layout(fig, x_title="epoch" if x == "epoch" else "optimizer step", y_title=y_title,
                 height=height, y_percent=pct)
    if x == "epoch":
        fig.update_xaxes(dtick=epoch_dtick(fig))
    return fig
