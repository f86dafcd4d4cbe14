"""The class verdict's two charts: every seed of the class as a dot per method (the viewer's own
seeds drawn large, outlined and named "yours"), and each deciding comparison's effect with its
95% interval narrowing as the seeds arrived, against the line the claim must clear.
"""

from __future__ import annotations

from typing import Any

from samon_app.charts.base import figure, layout
from samon_app.class_verdict import ClassVerdict
from samon_core.claims.cost import STEP_TIME_PAIRS

_JITTER = 0.28  # how far a dot may sit from its method's centre line (in category widths)


def _offset(seed: int) -> float:
    """A fixed horizontal offset per seed (the same dot stays in place as seeds arrive)."""
    return _JITTER * (((seed * 7919) % 97) / 48.0 - 1.0)


def strip_figure(cv: ClassVerdict) -> Any:
    """One column of dots per method in its colour; the viewer's seeds highlighted."""
    fig = figure()
    names = list(dict.fromkeys(d.method for d in cv.dots))
    for i, name in enumerate(names):
        dots = [d for d in cv.dots if d.method == name]
        for mine in (False, True):
            part = [d for d in dots if d.mine == mine]
            if not part:
                continue
            fig.add_scatter(
                x=[i + _offset(d.seed) for d in part], y=[d.value for d in part], mode="markers",
                name=f"{name} (yours)" if mine else name, showlegend=True,
                text=[f"seed {d.seed}" + (" (yours)" if mine else "") for d in part],
                hovertemplate="%{text}: %{y:.4g}<extra>" + name + "</extra>",
                marker={"color": part[0].color, "size": 16 if mine else 8,
                        "opacity": 1.0 if mine else 0.6,
                        "symbol": "star" if mine else "circle",
                        "line": {"color": "#212529", "width": 2 if mine else 0}})
    layout(fig, title=f"Every seed of the class ({cv.seeds})", y_title=cv.metric)
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(tickvals=list(range(len(names))), ticktext=names,
                     range=[-0.6, len(names) - 0.4], zeroline=False)
    return fig


def interval_figures(cv: ClassVerdict) -> list[tuple[str, Any]]:
    """(metric, figure) per metric of the deciding comparisons: each comparison's effect and 95%
    interval against the number of seeds pooled, with the bound the interval must clear (a
    metric per figure: sharpness and accuracy do not share an axis)."""
    out = []
    for metric in dict.fromkeys(h.metric for h in cv.history):
        out.append((metric, _interval_figure(cv, [h for h in cv.history if h.metric == metric])))
    return out


def _interval_figure(cv: ClassVerdict, histories: list) -> Any:
    fig = figure()
    palette = ("#e8590c", "#1c7ed6", "#2f9e44", "#7048e8", "#c2255c")
    for i, h in enumerate(histories):
        color = palette[i % len(palette)]
        x = [s.seeds for s in h.steps]
        fig.add_scatter(x=x + x[::-1], y=[s.high for s in h.steps] + [s.low for s in h.steps][::-1],
                        mode="lines", fill="toself", fillcolor=color, opacity=0.18,
                        line={"width": 0},
                        hoverinfo="skip", showlegend=False, name=f"{h.label} 95%")
        fig.add_scatter(x=x, y=[s.effect for s in h.steps], mode="lines+markers",
                        name=h.label, line={"color": color},
                        customdata=[[s.low, s.high] for s in h.steps],
                        hovertemplate="%{y:.3g} (95%: %{customdata[0]:.3g} to "
                                      "%{customdata[1]:.3g})")
    for b in sorted({h.bound for h in histories}):
        fig.add_hline(y=b, line_dash="dot", line_color="#495057")
    h0 = histories[0]
    unit = f" ({h0.unit})" if h0.unit else ""
    y_title = f"ratio {h0.label}" if cv.experiment.claim in STEP_TIME_PAIRS else \
        f"{h0.metric}: A - B{unit}"
    layout(fig, title=f"The effect and its 95% interval as seeds arrived: {h0.metric}",
           x_title="seeds pooled", y_title=y_title, height=420)
    # the comparisons' names are long: the legend goes under the plot, not over the title
    fig.update_layout(legend={"yanchor": "top", "y": -0.22}, margin={"t": 48, "b": 96},
                      hovermode="x")
    fig.update_xaxes(dtick=1 if cv.seeds <= 12 else None)
    return fig
