"""The gamma charts: the distribution per epoch (animated), its mean, and each layer's mean.

The distribution is drawn on display bins and axes fixed for the whole comparison
(``samon_app.gamma.histogram_frames``): x zoomed to where the values are, y fitted to the epochs
after initialisation (epoch 0, where every gamma is 1, is clipped and says so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from samon_app.charts.base import empty_figure, epoch_dtick, figure, layout, rgba
from samon_app.gamma import (
    HistogramFrames,
    distribution_summary,
    histogram_frames,
    layer_means,
    outside_share,
)
from samon_app.reader import RunData, RunInfo


def gamma_frames(infos: Sequence[RunInfo], data: Mapping[str, RunData],
                 param: str = "gamma") -> tuple[HistogramFrames, dict[str, str]]:
    """The ``HistogramFrames`` of the runs' ``param`` records, and each run label's colour."""
    stats, colors = {}, {}
    for info in infos:
        d = data.get(info.run_id)
        recs = (d.gamma if param == "gamma" else d.beta) if d is not None else []
        if recs:
            stats[info.label] = recs
            colors[info.label] = info.color
    return histogram_frames(stats), colors


def _frame_traces(hf: HistogramFrames, colors: dict[str, str], epoch: int,
                  param: str) -> list[go.Scatter]:
    """One step line per run at ``epoch`` (a run that has not reached it yet: its latest
    histogram, faded and dotted)."""
    out = []
    for label in hf.labels:
        dens = hf.density[label]
        have = [e for e in dens if e <= epoch]
        shown = max(have) if have else None
        ys = [100 * y for y in dens[shown]] if shown is not None else []
        faded = shown is not None and shown != epoch
        edges = hf.edges[label]
        name = label + (f" (epoch {shown})" if faded else "")
        share = hf.outside[label].get(shown, 0.0) if shown is not None else 0.0
        if share > 0:
            name += f" ({100 * share:.1f}% outside {edges[0]:g}..{edges[-1]:g})"
        out.append(go.Scatter(
            x=edges if ys else [], y=(ys + ys[-1:]) if ys else [],
            mode="lines", line={"shape": "hv", "color": colors[label], "width": 2,
                                "dash": "dot" if faded else "solid"},
            opacity=0.45 if faded else 1.0,
            fill="tozeroy", fillcolor=rgba(colors[label], 0.08),
            name=name,
            hovertemplate=f"{param} from %{{x:.3f}}: %{{y:.2f}}%<extra>{label}</extra>",
        ))
    return out


def _animation_controls(fig: go.Figure, epochs: list[int]) -> None:
    steps = [
        {"method": "animate", "label": str(e),
         "args": [[str(e)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
                             "transition": {"duration": 0}}]}
        for e in epochs
    ]
    fig.update_layout(
        margin={"l": 56, "r": 16, "t": 64, "b": 110},
        sliders=[{"active": len(epochs) - 1, "steps": steps, "x": 0.08, "len": 0.92,
                  "y": -0.18, "currentvalue": {"prefix": "epoch ", "font": {"size": 13}},
                  "pad": {"t": 20}}],
        updatemenus=[{
            "type": "buttons", "showactive": False, "x": 0.0, "y": -0.18, "xanchor": "left",
            "yanchor": "top", "pad": {"t": 34, "r": 8},
            "buttons": [{"label": "▶ play", "method": "animate",
                         "args": [None, {"frame": {"duration": 600, "redraw": True},
                                         "fromcurrent": False, "transition": {"duration": 250}}]}],
        }],
    )


def gamma_animation(infos: Sequence[RunInfo], data: Mapping[str, RunData], *,
                    param: str = "gamma", height: int = 400) -> go.Figure:
    """The distribution of ``param`` (gamma) of every run, one frame per epoch, on axes fixed
    for the comparison, with a play button and an epoch slider. Epoch 0 is the
    initialisation; the y axis fits the later epochs, and epoch 0's peak is clipped (labelled)."""
    hf, colors = gamma_frames(infos, data, param)
    if not hf.epochs:
        return empty_figure(f"No {param} statistics yet: they are recorded at the start and "
                            "after every epoch.")
    last = hf.epochs[-1]
    fig = figure(data=_frame_traces(hf, colors, last, param),
                 frames=[go.Frame(data=_frame_traces(hf, colors, e, param), name=str(e))
                         for e in hf.epochs])
    fig = layout(fig, x_title=f"{param} value (bins {hf.bin_width:g} wide)",
                 y_title="share of parameters (%)", height=height)
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(range=list(hf.x_range), autorange=False)
    fig.update_yaxes(range=[0, 100 * hf.y_max], autorange=False)
    if hf.clipped:
        fig.add_annotation(
            text="epoch 0 (every gamma = 1) reaches higher: clipped", x=1.0, y=1.0,
            xref="paper", yref="paper", xanchor="right", yanchor="top", showarrow=False,
            font={"size": 11, "color": "#868e96"})
    _animation_controls(fig, hf.epochs)
    return fig


def gamma_notes(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> list[str]:
    """Sentences under the distribution: values outside the recorded range, and a spread too
    narrow for the recorded bins."""
    hf, _ = gamma_frames(infos, data)
    notes = []
    out = outside_share(hf)
    if out:
        parts = ", ".join(f"{label} {100 * v:.1f}%" for label, v in out.items())
        notes.append(f"Some gammas lie outside the recorded range, so outside the histogram: "
                     f"{parts} (largest share over the epochs).")
    if hf.epochs and 0 < hf.spread_bins <= 3 and len(hf.epochs) > 1:
        notes.append(
            f"The gammas still lie within {hf.spread_bins} of the recorded bins "
            f"({hf.bin_width:g} wide): the histogram cannot show smaller shifts; the mean "
            "gamma chart below shows them exactly.")
    return notes


def gamma_mean_figure(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> go.Figure:
    """Mean gamma per epoch and run: the exact mean over all gammas (older records: the mean of
    the per-layer means; the histogram's bins are too coarse for the small shifts of a short
    run, so its mean is the last resort)."""
    fig = figure()
    for info in infos:
        d = data.get(info.run_id)
        if d is None or not d.gamma:
            continue
        df = distribution_summary(d.gamma)
        col = next((c for c in ("mean", "layer_mean") if df[c].notna().all()), "hist_mean")
        df = df.dropna(subset=[col])
        if df.empty:
            continue
        fig.add_trace(go.Scatter(
            x=df["epoch"].tolist(), y=df[col].tolist(), mode="lines+markers",
            name=info.label, line={"color": info.color, "width": 2}, hovertemplate="%{y:.4f}",
        ))
    if not fig.data:
        return empty_figure("No gamma statistics yet.")
    fig = layout(fig, x_title="epoch (0 = initialisation)", y_title="mean gamma (over layers)")
    fig.update_xaxes(rangemode="tozero", dtick=epoch_dtick(fig))
    return fig


def layer_gamma_figure(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> go.Figure:
    """Mean gamma of every norm layer (in network order) at each run's latest epoch, and at
    initialisation (grey, dotted; from the first run)."""
    fig = figure()
    init_drawn = False
    names: list[str] = []
    for info in infos:
        d = data.get(info.run_id)
        if d is None or not d.gamma:
            continue
        if not init_drawn:
            init = layer_means(d.gamma, epoch=0)
            if not init.empty:
                fig.add_trace(go.Scatter(
                    x=init["index"].tolist(), y=init["mean"].tolist(), mode="lines",
                    name="initialisation", line={"color": "#adb5bd", "dash": "dot", "width": 2},
                    customdata=init["name"].tolist(),
                    hovertemplate="%{customdata}: %{y:.3f}<extra>init</extra>",
                ))
                init_drawn = True
        df = layer_means(d.gamma)
        if df.empty:
            continue
        names = df["name"].tolist() if len(df) > len(names) else names
        epoch = df["epoch"].iloc[0]
        fig.add_trace(go.Scatter(
            x=df["index"].tolist(), y=df["mean"].tolist(), mode="lines+markers",
            name=f"{info.label} (epoch {epoch})", line={"color": info.color, "width": 2},
            customdata=df["name"].tolist(),
            hovertemplate="%{customdata}: %{y:.3f}<extra>" + info.label + "</extra>",
        ))
    if not fig.data:
        return empty_figure("No per-layer gamma statistics yet.")
    fig = layout(fig, x_title="norm layer (input → output)", y_title="mean gamma of the layer")
    fig.update_layout(hovermode="closest")
    return fig
