"""Plotly figures of the app, built from the ``samon_app`` view models. No streamlit, no torch.

Every builder returns a ``plotly.graph_objects.Figure`` (plain data) and never mutates its
inputs. Colours follow the method family (``vocabulary.METHOD_COLORS``): the same method has the
same colour on every chart; train curves are dashed, test curves solid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from samon_app.gamma import HistogramFrames, distribution_summary, histogram_frames, layer_means
from samon_app.reader import RunData, RunInfo
from samon_app.series import SeedGroup, mean_std_series, smooth, thin

FONT = "Source Sans Pro, Segoe UI, Helvetica, Arial, sans-serif"
HEIGHT = 340

METRIC_TITLES = {
    "acc": "accuracy (%)",
    "loss": "loss (cross-entropy)",
    "test_acc": "test accuracy (%)",
    "train_acc": "train accuracy (%)",
    "test_loss": "test loss",
    "train_loss": "train loss",
}


def _figure(**kwargs: Any) -> go.Figure:
    """A figure without plotly's default template (Streamlit's theme styles it; building a
    figure with a template costs about 3x more)."""
    return go.Figure(layout={"template": {}}, **kwargs)


def _layout(fig: go.Figure, *, title: str = "", x_title: str = "", y_title: str = "",
            height: int = HEIGHT, y_percent: bool = False) -> go.Figure:
    fig.update_layout(
        # No plotly template: Streamlit's chart theme styles the figure, and building a figure
        # without a template is about 3x faster.
        template={},
        title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 15}} if title else None,
        height=height,
        margin={"l": 56, "r": 16, "t": 56 if title else 36, "b": 44},
        font={"family": FONT, "size": 13},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0.0,
                "font": {"size": 12}},
        hovermode="x unified",
        uirevision="keep",  # keep zoom and legend clicks when the figure updates
    )
    fig.update_xaxes(title_text=x_title, showline=True, linecolor="#adb5bd", zeroline=False)
    fig.update_yaxes(title_text=y_title, showline=True, linecolor="#adb5bd", zeroline=False,
                     ticksuffix="%" if y_percent else None,
                     rangemode="nonnegative" if y_percent else None)
    return fig


def empty_figure(message: str, *, height: int = 220) -> go.Figure:
    """A blank figure that says why there is nothing to show yet."""
    fig = _figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 14, "color": "#868e96"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(template={}, height=height,
                      margin={"l": 10, "r": 10, "t": 10, "b": 10}, font={"family": FONT})
    return fig


def _scale(values: Any, percent: bool) -> list[float]:
    return [100.0 * float(v) if percent else float(v) for v in values]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# ---------------------------------------------------------------------------------------------
# live curves
# ---------------------------------------------------------------------------------------------


def run_curves_figure(
    infos: Sequence[RunInfo],
    data: Mapping[str, RunData],
    metric: str,
    *,
    per: str = "epoch",
    smoothing: float = 0.0,
    title: str = "",
) -> go.Figure:
    """Train (dashed) and test (solid) ``metric`` ('acc' or 'loss') of each run per epoch, or the
    training ``metric`` of the step records per optimizer step (``per='step'``, smoothed)."""
    if metric not in ("acc", "loss"):
        raise ValueError(f"metric must be 'acc' or 'loss'; got {metric!r}")
    pct = metric == "acc"
    fig = _figure()
    n = 0
    for info in infos:
        d = data.get(info.run_id)
        if d is None:
            continue
        if per == "epoch":
            for split, dash in (("train", "dash"), ("test", "solid")):
                xs, ys = d.series("epoch", "epoch", f"{split}_{metric}")
                if not xs:
                    continue
                fig.add_trace(go.Scatter(
                    x=xs, y=_scale(ys, pct), mode="lines+markers",
                    name=info.label if split == "test" else f"{info.label} (train)",
                    legendgroup=info.label, showlegend=split == "test",
                    line={"color": info.color, "dash": dash,
                          "width": 2.2 if split == "test" else 1.6},
                    marker={"size": 6 if split == "test" else 4},
                    hovertemplate="%{y:.2f}" + ("%" if pct else ""),
                ))
                n += 1
        else:
            xs, ys = d.series("step", "step", metric)
            if not xs:
                continue
            xs, ys = thin(xs, smooth(_scale(ys, pct), smoothing))
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", name=f"{info.label} (train)", legendgroup=info.label,
                line={"color": info.color, "width": 2},
                hovertemplate="%{y:.2f}" + ("%" if pct else ""),
            ))
            n += 1
    if not n:
        what = "epoch" if per == "epoch" else "step"
        return empty_figure(f"No {what} records yet: the chart fills in as the runs train.")
    x_title = "epoch" if per == "epoch" else "optimizer step"
    y_title = METRIC_TITLES[metric] + (" (train, smoothed)" if per == "step" and smoothing else "")
    fig = _layout(fig, title=title, x_title=x_title, y_title=y_title, y_percent=pct)
    if per == "epoch":
        fig.update_xaxes(rangemode="tozero", dtick=_epoch_dtick(fig))
    return fig


def _epoch_dtick(fig: go.Figure) -> int | None:
    top = max((max(t.x) for t in fig.data if t.x is not None and len(t.x)), default=0)
    return 1 if top <= 12 else None


def sharpness_figure(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> go.Figure:
    """Sharpness of each run over epochs, one line per probe (steps, rho)."""
    fig = _figure()
    symbols = ["circle", "diamond", "square", "triangle-up"]
    probes: list[tuple[int, float]] = []
    for info in infos:
        d = data.get(info.run_id)
        if d is None or d.sharpness.empty:
            continue
        df = d.sharpness.dropna(subset=["value"])
        for (steps, rho), sub in df.groupby(["steps", "rho"], sort=True):
            key = (int(steps), float(rho))
            if key not in probes:
                probes.append(key)
            sym = symbols[probes.index(key) % len(symbols)]
            sub = sub.sort_values("epoch")
            fig.add_trace(go.Scatter(
                x=sub["epoch"].tolist(), y=sub["value"].tolist(), mode="lines+markers",
                name=f"{info.label} · {key[0]} step{'s' if key[0] != 1 else ''}, rho {key[1]:g}",
                legendgroup=info.label, line={"color": info.color, "width": 2,
                                             "dash": "solid" if probes.index(key) == 0 else "dot"},
                marker={"symbol": sym, "size": 8}, hovertemplate="%{y:.4f}",
            ))
    if not fig.data:
        return empty_figure("No sharpness measured yet: the probe runs at the end of training "
                            "(and every few epochs if the run asks for it).")
    fig = _layout(fig, x_title="epoch", y_title="l_inf m-sharpness (loss increase)")
    fig.update_xaxes(rangemode="tozero", dtick=_epoch_dtick(fig))
    return fig


# ---------------------------------------------------------------------------------------------
# gamma
# ---------------------------------------------------------------------------------------------


def gamma_animation(infos: Sequence[RunInfo], data: Mapping[str, RunData], *,
                    param: str = "gamma", height: int = 400) -> go.Figure:
    """The distribution of ``param`` (gamma) of every run, one frame per epoch, on fixed axes,
    with a play button and an epoch slider. Epoch 0 is the initialisation."""
    stats = {}
    colors = {}
    for info in infos:
        d = data.get(info.run_id)
        recs = (d.gamma if param == "gamma" else d.beta) if d is not None else []
        if recs:
            stats[info.label] = recs
            colors[info.label] = info.color
    hf: HistogramFrames = histogram_frames(stats)
    if not hf.epochs:
        return empty_figure(f"No {param} statistics yet: they are recorded at the start and "
                            "after every epoch.")

    def traces(epoch: int) -> list[go.Scatter]:
        out = []
        for label in hf.labels:
            dens = hf.density[label]
            # a run that has not reached this epoch yet shows its latest histogram, faded
            have = [e for e in dens if e <= epoch]
            shown = max(have) if have else None
            ys = dens[shown] if shown is not None else []
            faded = shown is not None and shown != epoch
            out.append(go.Scatter(
                x=hf.centers[label] if ys else [], y=[100 * y for y in ys],
                mode="lines", line={"shape": "hvh", "color": colors[label], "width": 2,
                                    "dash": "dot" if faded else "solid"},
                opacity=0.45 if faded else 1.0,
                fill="tozeroy", fillcolor=_rgba(colors[label], 0.08),
                name=label + (f" (epoch {shown})" if faded else ""),
                hovertemplate=f"{param} %{{x:.3f}}: %{{y:.2f}}%<extra>{label}</extra>",
            ))
        return out

    last = hf.epochs[-1]
    fig = _figure(data=traces(last),
                  frames=[go.Frame(data=traces(e), name=str(e)) for e in hf.epochs])
    fig = _layout(fig, x_title=f"{param} value", y_title="share of parameters (%)",
                  height=height)
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(range=list(hf.x_range), autorange=False)
    fig.update_yaxes(range=[0, 100 * hf.y_max], autorange=False)
    steps = [
        {"method": "animate", "label": str(e),
         "args": [[str(e)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
                             "transition": {"duration": 0}}]}
        for e in hf.epochs
    ]
    fig.update_layout(
        margin={"l": 56, "r": 16, "t": 36, "b": 110},
        sliders=[{"active": len(hf.epochs) - 1, "steps": steps, "x": 0.08, "len": 0.92,
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
    return fig


def gamma_mean_figure(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> go.Figure:
    """Mean gamma per epoch and run: the exact mean over all gammas (older records: the mean of
    the per-layer means; the histogram's bins are too coarse for the small shifts of a short
    run, so its mean is the last resort)."""
    fig = _figure()
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
    fig = _layout(fig, x_title="epoch (0 = initialisation)", y_title="mean gamma (over layers)")
    fig.update_xaxes(rangemode="tozero", dtick=_epoch_dtick(fig))
    return fig


def layer_gamma_figure(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> go.Figure:
    """Mean gamma of every norm layer (in network order) at each run's latest epoch, and at
    initialisation (grey, dotted; from the first run)."""
    fig = _figure()
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
    fig = _layout(fig, x_title="norm layer (input → output)", y_title="mean gamma of the layer")
    fig.update_layout(hovermode="closest")
    return fig


# ---------------------------------------------------------------------------------------------
# speed
# ---------------------------------------------------------------------------------------------


def speed_figure(infos: Sequence[RunInfo], data: Mapping[str, RunData], *,
                 what: str = "step_time") -> go.Figure:
    """Step time (ms) or images/s of each run over its training time (from the step records)."""
    fig = _figure()
    for info in infos:
        d = data.get(info.run_id)
        if d is None:
            continue
        xs, ys = d.series("step", "time", what)
        if not xs:
            continue
        factor = 1000.0 if what == "step_time" else 1.0
        xs, ys = thin(xs, [factor * v for v in ys])
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", name=info.label,
            line={"color": info.color, "width": 2},
            hovertemplate="%{y:.1f}" + (" ms" if what == "step_time" else " img/s"),
        ))
    if not fig.data:
        return empty_figure("No step records yet.")
    y_title = "time per optimizer step (ms)" if what == "step_time" else "training images per s"
    fig = _layout(fig, x_title="training time (s)", y_title=y_title)
    fig.update_yaxes(rangemode="tozero")
    return fig


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------


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
    +/- one-std band; else one line per run."""
    pct = metric.endswith("acc")
    kind = "epoch" if x == "epoch" else "step"
    scale = 100.0 if pct else 1.0
    traces: list[go.Scatter] = []
    for g in groups:
        series = []
        for r in g.runs:
            d = data.get(r.run_id)
            if d is None:
                continue
            xs, ys = d.series(kind, x, metric)
            if not xs:
                continue
            ys = [scale * v for v in ys]
            if smoothing:
                ys = smooth(ys, smoothing)
            series.append((r, xs, ys))
        if not series:
            continue
        if bands:
            xs, mean, std, _n = mean_std_series([(a, b) for _, a, b in series])
            xs_t, mean_t = thin(xs, mean)
            _, std_t = thin(xs, std)
            if len(series) > 1:
                upper = [m + s for m, s in zip(mean_t, std_t, strict=True)]
                lower = [m - s for m, s in zip(mean_t, std_t, strict=True)]
                traces.append(go.Scatter(
                    x=xs_t + xs_t[::-1], y=upper + lower[::-1], fill="toself",
                    fillcolor=_rgba(g.color, 0.16), line={"width": 0}, hoverinfo="skip",
                    showlegend=False, legendgroup=g.key,
                ))
            traces.append(go.Scatter(
                x=xs_t, y=mean_t, mode="lines" + ("+markers" if x == "epoch" else ""),
                name=f"{g.label} (n={len(series)})", legendgroup=g.key,
                line={"color": g.color, "width": 2.4}, marker={"size": 5},
                customdata=std_t,
                hovertemplate="%{y:.2f} ± %{customdata:.2f}" if len(series) > 1 else "%{y:.2f}",
            ))
        else:
            for i, (r, xs, ys) in enumerate(series):
                xs_t, ys_t = thin(xs, ys)
                traces.append(go.Scatter(
                    x=xs_t, y=ys_t, mode="lines", name=r.label, legendgroup=g.key,
                    line={"color": g.color, "width": 1.8,
                          "dash": ["solid", "dash", "dot", "dashdot"][i % 4]},
                    hovertemplate="%{y:.2f}",
                ))
    if not traces:
        return empty_figure("None of the chosen runs has records of this metric yet.")
    y_title = METRIC_TITLES.get(metric, metric)
    if x == "step":
        y_title = "train " + y_title
    fig = _figure(data=traces)
    fig = _layout(fig, x_title="epoch" if x == "epoch" else "optimizer step", y_title=y_title,
                  height=height, y_percent=pct)
    if x == "epoch":
        fig.update_xaxes(dtick=_epoch_dtick(fig))
    return fig
