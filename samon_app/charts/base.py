"""What every figure of the app shares: the empty figure, the layout, the plotly toolbar config.

No plotly template (Streamlit's theme styles the figures, and building a figure without a
template is about 3x faster); a legend always (plotly hides it for a single trace, which leaves a
one-run chart without a name); axes from the data.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

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

# Traces of one group that differ in something other than the method (settings) or the seed.
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def plotly_config(filename: str = "samon-chart") -> dict[str, Any]:
    """The plotly toolbar: on, without the plotly logo, with a PNG download named
    ``filename`` at twice the screen resolution (for slides and reports)."""
    return {
        "displaylogo": False,
        "modeBarButtonsToRemove": ["lasso2d", "select2d"],
        "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2},
    }


def figure(**kwargs: Any) -> go.Figure:
    """A figure without plotly's default template."""
    return go.Figure(layout={"template": {}}, **kwargs)


def layout(fig: go.Figure, *, title: str = "", x_title: str = "", y_title: str = "",
           height: int = HEIGHT, y_percent: bool = False) -> go.Figure:
    """Fonts, margins, a legend above the plot (always shown), unified hover, and zoom kept
    across updates."""
    fig.update_layout(
        template={},
        title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 15}} if title else None,
        height=height,
        margin={"l": 56, "r": 16, "t": 84 if title else 64, "b": 44},  # legend under the toolbar
        font={"family": FONT, "size": 13},
        showlegend=True,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0.0,
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
    """A blank figure that says why there is nothing to show (yet)."""
    fig = figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 14, "color": "#868e96"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(template={}, height=height,
                      margin={"l": 10, "r": 10, "t": 10, "b": 10}, font={"family": FONT})
    return fig


def scale(values: Any, percent: bool) -> list[float]:
    return [100.0 * float(v) if percent else float(v) for v in values]


def rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def epoch_dtick(fig: go.Figure) -> int | None:
    """One tick per epoch for short runs (plotly would otherwise show 0.5 steps)."""
    top = max((max(t.x) for t in fig.data if t.x is not None and len(t.x)), default=0)
    return 1 if top <= 12 else None


def data_range(values: list[float], *, floor: float | None = None,
               pad: float = 0.08) -> list[float] | None:
    """An axis range that fits ``values`` with ``pad`` (a fraction of their spread, or of their
    size when they are all equal) on both sides, never below ``floor``; None without values."""
    vals = [v for v in values if v == v]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    span = hi - lo or abs(hi) or 1.0
    lo, hi = lo - pad * span, hi + pad * span
    if floor is not None:
        lo = max(lo, floor)
    return [lo, hi]
