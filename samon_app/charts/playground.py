"""The Playground's figure: the loss landscape with every method's path for every ρ of the slider
grid, the loss per step, the outcome sentences and the end-point table, and two sliders of
plotly's own (ρ and the step shown) that switch between them in the browser.

How the two sliders combine without a server round trip. Each radius j of the grid owns its own
traces (path, loss curve, current-step marker per method; GD ignores ρ, so its traces are shared
by all radii); only radius j's are visible.

* The ρ slider's steps use plotly's ``update`` method: trace visibility for radius j, and the
  layout's annotations (the sentences of radius j). Plotly.js runs it in the browser.
* The step slider's steps ``animate`` to frame k, which moves the current-step markers of
  *every* radius (the visible ones show it) and the step line on the loss plot. So a step move
  keeps the ρ chosen, and a ρ move keeps the step.

The sentences and the table of radius j are those of ``samon_app.playground.GridPoint`` j,
generated from its trajectories. Coordinates are rounded to 4 decimals (the figure's size: about
0.6 MB for 200 steps, 4 methods and 21 radii).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go

from samon_app.charts.base import FONT
from samon_app.charts.playground_landscape import landscape_image
from samon_app.playground import COLORS, LABELS, ChartPosition, GridPoint, defaults
from samon_core import toy

# Pixel layout: the map on the left, the loss plot, the sentences and the table on the right.
MAP_PX = 540
LOSS_PX = 170
LINE_PX = 16  # one line of the sentences (font 12)
ROW_PX = 22  # one row of the table
HEADER_PX = 50  # the table's header (up to three lines)
WRAP = 58  # characters per line of the sentences (the column is about 400 px wide)
MARGIN = {"l": 56, "r": 12, "t": 34, "b": 150}  # the bottom holds the two sliders
SLIDERS_PX = (52, 118)  # the tops of the ρ and the step slider, below the plot area
SPLIT = 0.5  # the map's share of the width
RIGHT = 0.58  # where the right-hand column starts


def md_to_plotly(text: str) -> str:
    """Markdown bold (``**x**``) as plotly's ``<b>x</b>``, everything else escaped."""
    parts = text.split("**")
    return "".join(f"<b>{html.escape(p, quote=False)}</b>" if i % 2
                   else html.escape(p, quote=False)
                   for i, p in enumerate(parts))


def plotly_to_text(text: str) -> str:
    """The words an annotation shows: tags and line breaks out, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", text.replace("<br>", " ")))


def wrap(text: str, width: int = WRAP) -> str:
    """Plotly text (from ``md_to_plotly``) broken into lines of at most ``width`` visible
    characters with ``<br>``; a bold run broken by a line end is closed and reopened (plotly
    draws each line on its own)."""
    lines, line, visible, bold = [], "", 0, False
    for word in text.split(" "):
        n = len(html.unescape(re.sub(r"<[^>]+>", "", word)))
        if line and visible + 1 + n > width:
            lines.append(line + ("</b>" if bold else ""))
            line, visible = ("<b>" if bold else ""), 0
        line += (" " if visible else "") + word
        visible += (1 if visible else 0) + n
        opened, closed = word.count("<b>"), word.count("</b>")
        bold = (bold or opened > 0) and not (closed >= opened and closed > 0)
    lines.append(line)
    return "<br>".join(lines)


def sentences_text(rho: float, sentences: Sequence[str]) -> str:
    """The sentences of one radius as one annotation: the radius, then a bullet each."""
    return "<br>".join([f"<b>With ρ = {rho:.2f}:</b>"]
                       + ["• " + wrap(md_to_plotly(s), WRAP - 2).replace("<br>", "<br>   ")
                          for s in sentences])


@dataclass
class _Traces:
    """The figure's traces, each with the grid index that owns it (None: every radius)."""

    data: list[dict[str, Any]] = field(default_factory=list)
    owner: list[int | None] = field(default_factory=list)

    def add(self, trace: dict[str, Any], owner: int | None = None) -> int:
        self.data.append(trace)
        self.owner.append(owner)
        return len(self.data) - 1

    def visible(self, j: int) -> list[bool]:
        return [o is None or o == j for o in self.owner]


def _r(a: np.ndarray) -> list[float]:
    return np.round(np.asarray(a, dtype=float), 4).tolist()


def _surface_traces(surface: toy.Surface) -> list[dict[str, Any]]:
    """The surface's curves (valley floor, curve of minima) and landmarks."""
    traces: list[dict[str, Any]] = []
    for label, pts in surface.curves:
        traces.append({"type": "scatter", "x": _r(pts[:, 0]), "y": _r(pts[:, 1]),
                       "mode": "lines", "line": {"color": "#495057", "width": 1.5, "dash": "dash"},
                       "name": label, "showlegend": False, "hoverinfo": "skip"})
    if surface.landmarks:
        traces.append({
            "type": "scatter", "mode": "markers+text", "showlegend": False, "hoverinfo": "skip",
            "x": [m.point[0] for m in surface.landmarks],
            "y": [m.point[1] for m in surface.landmarks],
            "text": [m.label for m in surface.landmarks], "textposition": "bottom center",
            "marker": {"symbol": "star", "size": 13, "color": "#343a40"},
        })
    return traces


def _path(key: str, t: toy.Trajectory, rho: float | None) -> dict[str, Any]:
    at = "" if rho is None else f" (ρ = {rho:.2f})"
    return {"type": "scatter", "x": _r(t.points[:, 0]), "y": _r(t.points[:, 1]),
            "mode": "lines+markers", "name": LABELS[key], "legendgroup": key,
            "line": {"color": COLORS[key], "width": 2}, "opacity": 0.65,
            "marker": {"size": 4, "color": COLORS[key]},
            "hovertemplate": f"{LABELS[key]}{at}, step %{{pointNumber}}<br>"
            "(%{x:.3f}, %{y:.3f})<extra></extra>"}


def _loss(key: str, t: toy.Trajectory) -> dict[str, Any]:
    return {"type": "scatter", "x": list(range(len(t.loss))),
            "y": [float(f"{v:.5g}") for v in t.loss], "mode": "lines", "xaxis": "x2",
            "yaxis": "y2", "name": LABELS[key], "legendgroup": key, "showlegend": False,
            "line": {"color": COLORS[key], "width": 2},
            "hovertemplate": f"{LABELS[key]}, step %{{x}}: L = %{{y:.4f}}<extra></extra>"}


def _current_xy(t: toy.Trajectory, step: int) -> dict[str, Any]:
    """w_k and w_k + eps_k at ``step`` (a run that diverged stays at its last point)."""
    i = min(step, t.n_steps)
    return {"x": _r([t.points[i, 0], t.ascent[i, 0]]), "y": _r([t.points[i, 1], t.ascent[i, 1]])}


def _frames(markers: Sequence[tuple[int, str, toy.Trajectory]], line: int, steps: int
            ) -> list[dict[str, Any]]:
    """Frame k: every marker trace at step k (``_current_xy``, rounded once per trajectory:
    13k markers for 200 steps and 64 traces) and the loss plot's step line at k."""
    ends = []
    for _, _, t in markers:
        w, a = np.round(t.points, 4).tolist(), np.round(t.ascent, 4).tolist()
        ends.append([{"x": [w[i][0], a[i][0]], "y": [w[i][1], a[i][1]]}
                     for i in range(t.n_steps + 1)])
    index = [i for i, _, _ in markers] + [line]
    return [{"name": str(k), "traces": index,
             "data": [e[min(k, len(e) - 1)] for e in ends] + [{"x": [k, k]}]}
            for k in range(steps + 1)]


def _current(key: str, t: toy.Trajectory, step: int) -> dict[str, Any]:
    """w_k and w_k + eps_k as one segment: a filled dot at w, an open one at the ascent point."""
    return {
        "type": "scatter", **_current_xy(t, step), "mode": "lines+markers",
        "line": {"color": COLORS[key], "width": 2, "dash": "dot"},
        "marker": {"color": COLORS[key], "size": [12, 11], "symbol": ["circle", "circle-open"],
                   "line": {"width": 2, "color": COLORS[key]}},
        "legendgroup": key, "showlegend": False,
        "hovertext": [f"{LABELS[key]}: w at the step shown", f"{LABELS[key]}: w + ε"],
        "hovertemplate": "%{hovertext}<br>(%{x:.3f}, %{y:.3f})<extra></extra>",
    }


def _table(point: GridPoint, domain: dict[str, list[float]]) -> dict[str, Any]:
    cols = list(point.rows[0]) if point.rows else []
    return {"type": "table", "domain": domain, "columnwidth": [1.3] + [1.0] * (len(cols) - 1),
            "header": {"values": [f"<b>{c}</b>" for c in cols], "height": HEADER_PX,
                       "fill": {"color": "#e9ecef"}, "font": {"size": 11}},
            "cells": {"values": [[str(r[c]) for r in point.rows] for c in cols],
                      "height": ROW_PX, "font": {"size": 11.5}, "fill": {"color": "white"}}}


def _frame_args(duration: int) -> dict[str, Any]:
    return {"mode": "immediate", "frame": {"duration": duration, "redraw": False},
            "transition": {"duration": 0}, "fromcurrent": False}


def _rho_slider(grid: Sequence[GridPoint], traces: _Traces, annotations: list[list[dict]],
                active: int, y: float) -> dict[str, Any]:
    return {
        "name": "rho", "active": active, "x": 0.1, "len": SPLIT - 0.1, "y": y,
        "yanchor": "top", "pad": {"t": 0},
        "currentvalue": {"prefix": "ρ = ", "xanchor": "left",
                         "font": {"size": 14, "color": "#212529"}},
        # the value shows above the slider; 21 labels under it would overlap
        "font": {"color": "rgba(0,0,0,0)", "size": 1}, "ticklen": 3,
        "steps": [{"label": f"{p.rho:.2f}", "value": f"{p.rho:.2f}",
                   "method": "update",
                   "args": [{"visible": traces.visible(j)}, {"annotations": annotations[j]}]}
                  for j, p in enumerate(grid)],
    }


def _step_slider(steps: int, active: int, y: float) -> dict[str, Any]:
    return {
        "name": "step", "active": active, "x": 0.1, "len": SPLIT - 0.1, "y": y,
        "yanchor": "top", "pad": {"t": 0},
        "currentvalue": {"prefix": "step ", "xanchor": "left",
                         "font": {"size": 14, "color": "#212529"}},
        "font": {"color": "rgba(0,0,0,0)", "size": 1}, "ticklen": 0, "minorticklen": 0,
        "steps": [{"label": str(k), "value": str(k), "method": "animate",
                   "args": [[str(k)], _frame_args(0)]} for k in range(steps + 1)],
    }


def _buttons(y: float) -> dict[str, Any]:
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate",
             "transition": {"duration": 0}}
    return {"type": "buttons", "direction": "left", "x": 0.0, "y": y, "xanchor": "left",
            "yanchor": "top", "pad": {"t": 24}, "showactive": False,
            "buttons": [{"label": "▶", "method": "animate", "args": [None, _frame_args(70)]},
                        {"label": "❚❚", "method": "animate", "args": [[None], pause]}]}


def _annotation(text: str, y: float) -> dict[str, Any]:
    return {"text": text, "xref": "paper", "yref": "paper", "x": RIGHT, "y": y,
            "xanchor": "left", "yanchor": "top", "align": "left", "showarrow": False,
            "font": {"size": 12, "color": "#212529"}}


def _layout(surface: toy.Surface, height: int, domains: dict[str, Any]) -> dict[str, Any]:
    x0, x1, y0, y1 = surface.bounds
    return {
        "template": {}, "height": height, "font": {"family": FONT, "size": 13},
        "margin": MARGIN, "hovermode": "closest", "uirevision": surface.key,
        "plot_bgcolor": "#f8f9fa", "images": [landscape_image(surface)],
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0},
        "xaxis": {"title": {"text": "w (a weight)"}, "range": [x0, x1], "zeroline": False,
                  "showgrid": False, "constrain": "domain", "domain": [0, SPLIT]},
        "yaxis": {"title": {"text": "γ (a norm layer's scale)"}, "range": [y0, y1],
                  "zeroline": False, "showgrid": False, "scaleanchor": "x", "scaleratio": 1,
                  "constrain": "domain", "domain": [0, 1]},
        "xaxis2": {"title": {"text": "step", "standoff": 4}, "domain": [RIGHT, 1.0],
                   "anchor": "y2", "zeroline": False},
        "yaxis2": {"title": {"text": "loss L(w)"}, "domain": domains["loss"], "anchor": "x2",
                   "zeroline": False},
        "yaxis3": {"domain": domains["loss"], "overlaying": "y2", "range": [0, 1],
                   "visible": False, "fixedrange": True},
    }


class PlainFigure(go.Figure):
    """A plotly figure kept as the plain dicts it was built from (data, layout, frames).

    Plotly's objects cost about 0.5 s to build and again to copy (``to_dict``) for the 200-odd
    traces of a grid, even unvalidated; Streamlit and ``plotly.io`` read a figure only through
    ``to_dict()``, which returns these dicts as they are (do not mutate them). The tests rebuild
    the figure with validation (``go.Figure(fig.to_dict())``) to keep the dicts honest.
    """

    def __init__(self, fig: dict[str, Any]) -> None:
        super().__init__()
        self._plain = {"data": fig["data"], "layout": fig["layout"],
                       "frames": fig.get("frames", [])}

    def to_dict(self) -> dict[str, Any]:
        return self._plain


def _heights(grid: Sequence[GridPoint]) -> tuple[int, dict[str, Any]]:
    """The plot area's height (pixels) and the right-hand column's parts as fractions of it:
    room for the longest sentences of any radius."""
    lines = max((sentences_text(p.rho, p.sentences).count("<br>") + 1 for p in grid),
                default=0)
    rows = max((len(p.rows) for p in grid), default=0)
    text_px = lines * LINE_PX + 16
    table_px = HEADER_PX + rows * ROW_PX + 8 if rows else 0
    plot = max(MAP_PX, LOSS_PX + 48 + text_px + table_px)
    loss_lo = 1 - LOSS_PX / plot
    return plot, {
        "loss": [loss_lo, 1.0], "text_top": loss_lo - 48 / plot,
        "table": {"x": [RIGHT, 1.0], "y": [0.0, table_px / plot]},
    }


def playground_figure(surface: toy.Surface, grid: Sequence[GridPoint], position: ChartPosition,
                      steps: int, start: tuple[float, float]) -> go.Figure:
    """The Playground's figure for a slider grid (``samon_app.playground.precompute``), its
    sliders at ``position``. Without methods: the landscape alone."""
    traces = _Traces()
    for t in _surface_traces(surface):
        traces.add(t)
    traces.add({"type": "scatter", "x": [start[0]], "y": [start[1]], "mode": "markers",
                "name": "start", "showlegend": False, "hoverinfo": "skip",
                "marker": {"symbol": "x", "size": 10, "color": "#212529"}})
    methods = list(grid[0].trajs) if grid else []
    plot, domains = _heights(grid)
    layout = _layout(surface, plot + MARGIN["t"] + MARGIN["b"], domains)
    if not methods:
        return PlainFigure({"data": traces.data, "layout": layout})

    def per_rho(make: Any) -> list[tuple[int, str, toy.Trajectory]]:
        """One trace per method and radius (GD's once): (trace index, method, trajectory)."""
        out = []
        for key in methods:
            owners = [None] if key == "gd" else list(range(len(grid)))
            for j in owners:
                t = grid[0 if j is None else j].trajs[key]
                out.append((traces.add(make(key, t, j), j), key, t))
        return out

    per_rho(lambda key, t, j: _path(key, t, None if j is None else grid[j].rho))
    per_rho(lambda key, t, j: _loss(key, t))
    markers = per_rho(lambda key, t, j: _current(key, t, position.step))
    line = traces.add({"type": "scatter", "x": [position.step] * 2, "y": [0, 1],
                       "xaxis": "x2", "yaxis": "y3", "mode": "lines", "showlegend": False,
                       "hoverinfo": "skip", "line": {"color": "#868e96", "width": 1,
                                                     "dash": "dot"}})
    for j, point in enumerate(grid):
        traces.add(_table(point, domains["table"]), j)
    for i, trace in enumerate(traces.data):
        trace["visible"] = traces.owner[i] in (None, position.rho_index)
    annotations = [[_annotation(sentences_text(p.rho, p.sentences), domains["text_top"])]
                   for p in grid]
    layout["annotations"] = annotations[position.rho_index]
    top = -SLIDERS_PX[0] / plot  # below the x axis' title
    low = -SLIDERS_PX[1] / plot
    layout["sliders"] = [_rho_slider(grid, traces, annotations, position.rho_index, top),
                         _step_slider(steps, position.step, low)]
    layout["updatemenus"] = [_buttons(low)]
    layout["meta"] = {"url_defaults": {"rho": f"{defaults(surface)['rho']:.2f}",
                                       "step": str(steps)}}
    return PlainFigure({"data": traces.data, "layout": layout,
                        "frames": _frames(markers, line, steps)})
