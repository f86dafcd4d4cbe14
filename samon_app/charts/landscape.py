"""The loss-landscape figure: each run's 1D slice around its trained weights, in its colour."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from samon_app.charts.base import empty_figure, figure, layout
from samon_app.landscape import Slice


def landscape_figure(found: Sequence[Slice], *, direction: str, split: str) -> go.Figure:
    """Loss against the offset a along the direction (a = 0: the trained weights)."""
    if not found:
        return empty_figure("No landscape slices yet: they are computed after the last epoch.")
    fig = figure()
    for s in found:
        fig.add_trace(go.Scatter(
            x=list(s.offsets), y=list(s.losses), mode="lines+markers", name=s.label,
            line={"color": s.color, "width": 2}, marker={"size": 5},
            hovertemplate="offset %{x:.2f}: loss %{y:.3f}",
        ))
    what = "random filter-normalised direction" if direction == "random" else "gradient direction"
    layout(fig, title=f"Loss around the trained weights ({what}, {split} images)",
           x_title="offset along the direction (0 = trained weights)",
           y_title="cross-entropy (no label smoothing)")
    return fig


def plane_figure(label: str, offsets: list[float], losses: list[list[float]]) -> go.Figure:
    """A 2D slice of one run as a contour plot (the trained weights at the centre)."""
    fig = figure()
    # losses[i][j] is at (a = offsets[i], b = offsets[j]): rows are a, so z is its transpose
    z = [list(col) for col in zip(*losses, strict=True)]
    fig.add_trace(go.Contour(x=offsets, y=offsets, z=z, colorscale="Blues", reversescale=True,
                             contours={"showlabels": True}, name=label,
                             hovertemplate="a %{x:.2f}, b %{y:.2f}: loss %{z:.3f}"))
    fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", name="trained weights",
                             marker={"color": "#e8590c", "size": 9, "symbol": "x"}))
    layout(fig, title=f"Loss around {label}'s trained weights (two random directions)",
           x_title="offset along direction 1", y_title="offset along direction 2")
    return fig
