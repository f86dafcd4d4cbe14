"""The Live page's per-run figures: accuracy and loss curves, sharpness, step speed.

Each run is drawn in its method's colour (``RunInfo.color``, from the one method catalogue), so a
method looks the same on every chart; train curves are dashed, test curves solid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from samon_app.charts.base import (
    METRIC_TITLES,
    data_range,
    empty_figure,
    epoch_dtick,
    figure,
    layout,
    scale,
)
from samon_app.reader import RunData, RunInfo
from samon_app.series import smooth, thin

WAITING = "the chart fills in as the runs train."


def _epoch_traces(fig: go.Figure, info: RunInfo, d: RunData, metric: str, pct: bool) -> int:
    n = 0
    for split, dash in (("train", "dash"), ("test", "solid")):
        xs, ys = d.series("epoch", "epoch", f"{split}_{metric}")
        if not xs:
            continue
        fig.add_trace(go.Scatter(
            x=xs, y=scale(ys, pct), mode="lines+markers",
            name=info.label if split == "test" else f"{info.label} (train)",
            legendgroup=info.label, showlegend=split == "test",
            line={"color": info.color, "dash": dash, "width": 2.2 if split == "test" else 1.6},
            marker={"size": 6 if split == "test" else 4},
            hovertemplate="%{y:.2f}" + ("%" if pct else ""),
        ))
        n += 1
    return n


def run_curves_figure(
    infos: Sequence[RunInfo],
    data: Mapping[str, RunData],
    metric: str,
    *,
    per: str = "epoch",
    smoothing: float = 0.0,
    title: str = "",
    empty_note: str = WAITING,
) -> go.Figure:
    """Train (dashed) and test (solid) ``metric`` ('acc' or 'loss') of each run per epoch, or the
    training ``metric`` of the step records per optimizer step (``per='step'``, smoothed).
    ``empty_note`` completes "No epoch records yet: ..." (say why when nothing will come)."""
    if metric not in ("acc", "loss"):
        raise ValueError(f"metric must be 'acc' or 'loss'; got {metric!r}")
    pct = metric == "acc"
    fig = figure()
    n = 0
    for info in infos:
        d = data.get(info.run_id)
        if d is None:
            continue
        if per == "epoch":
            n += _epoch_traces(fig, info, d, metric, pct)
            continue
        xs, ys = d.series("step", "step", metric)
        if not xs:
            continue
        xs, ys = thin(xs, smooth(scale(ys, pct), smoothing))
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", name=f"{info.label} (train)", legendgroup=info.label,
            line={"color": info.color, "width": 2},
            hovertemplate="%{y:.2f}" + ("%" if pct else ""),
        ))
        n += 1
    if not n:
        what = "epoch" if per == "epoch" else "step"
        return empty_figure(f"No {what} records yet: {empty_note}")
    x_title = "epoch" if per == "epoch" else "optimizer step"
    y_title = METRIC_TITLES[metric] + (" (train, smoothed)" if per == "step" and smoothing else "")
    fig = layout(fig, title=title, x_title=x_title, y_title=y_title, y_percent=pct)
    if per == "epoch":
        fig.update_xaxes(rangemode="tozero", dtick=epoch_dtick(fig))
    return fig


def sharpness_figure(infos: Sequence[RunInfo], data: Mapping[str, RunData], *,
                     empty_note: str = "") -> go.Figure:
    """Sharpness of each run over epochs, one line per probe (steps, rho), on axes fitted to
    the values (sharpness is >= 0), with a legend even for one run."""
    fig = figure()
    symbols = ["circle", "diamond", "square", "triangle-up"]
    probes: list[tuple[int, float]] = []
    xs_all: list[float] = []
    ys_all: list[float] = []
    for info in infos:
        d = data.get(info.run_id)
        if d is None or d.sharpness.empty:
            continue
        df = d.sharpness.dropna(subset=["value"])
        for (steps, rho), sub in df.groupby(["steps", "rho"], sort=True):
            key = (int(steps), float(rho))
            if key not in probes:
                probes.append(key)
            i = probes.index(key)
            sub = sub.sort_values("epoch")
            xs_all += sub["epoch"].tolist()
            ys_all += sub["value"].tolist()
            fig.add_trace(go.Scatter(
                x=sub["epoch"].tolist(), y=sub["value"].tolist(), mode="lines+markers",
                name=f"{info.label} · {key[0]} step{'s' if key[0] != 1 else ''}, rho {key[1]:g}",
                legendgroup=info.label,
                line={"color": info.color, "width": 2, "dash": "solid" if i == 0 else "dot"},
                marker={"symbol": symbols[i % len(symbols)], "size": 8},
                hovertemplate="%{y:.4f}",
            ))
    if not fig.data:
        return empty_figure("No sharpness measured yet: " + (
            empty_note or "the probe runs at the end of training (and every few epochs if the "
            "run asks for it)."))
    fig = layout(fig, x_title="epoch", y_title="l_inf m-sharpness (loss increase)")
    x_lo, x_hi = min(xs_all), max(xs_all)
    fig.update_xaxes(range=[max(0.0, x_lo - 0.5), x_hi + 0.5], autorange=False,
                     dtick=epoch_dtick(fig))
    fig.update_yaxes(range=data_range(ys_all, floor=0.0, pad=0.15), autorange=False)
    return fig


def speed_figure(infos: Sequence[RunInfo], data: Mapping[str, RunData], *,
                 what: str = "step_time") -> go.Figure:
    """Step time (ms) or images/s of each run over its training time (from the step records);
    the machine's load average (when recorded) in the hover."""
    fig = figure()
    for info in infos:
        d = data.get(info.run_id)
        if d is None:
            continue
        xs, ys = d.series("step", "time", what)
        if not xs:
            continue
        factor = 1000.0 if what == "step_time" else 1.0
        loads = dict(zip(*d.series("step", "time", "load"), strict=True))
        xs, ys = thin(xs, [factor * v for v in ys])
        unit = " ms" if what == "step_time" else " img/s"
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", name=info.label,
            line={"color": info.color, "width": 2},
            customdata=[loads.get(x, float("nan")) for x in xs],
            hovertemplate="%{y:.1f}" + unit + (" · load %{customdata:.2f}" if loads else ""),
        ))
    if not fig.data:
        return empty_figure("No step records yet.")
    y_title = "time per optimizer step (ms)" if what == "step_time" else "training images per s"
    fig = layout(fig, x_title="training time (s)", y_title=y_title)
    fig.update_yaxes(rangemode="tozero")
    return fig
