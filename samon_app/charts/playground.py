"""The Playground's figure: the loss landscape with every method's path, the loss per step,
the outcome sentences and the end-point table, and two sliders of plotly's own (ρ and the step
shown) that switch between precomputed trajectories in the browser, with no server round trip.

Per method four traces: its path and its loss curve (radius j's data), the pairs
(w_k, w_k + eps_k) of *every* radius at step k, and L(w_k) of every radius (a dot on the loss
plot); then two text traces, the sentences and the table. Both sliders animate to frames
without a redraw (plotly.js's transition path: only the traces a frame names are redrawn),
and the two kinds of frame set different attributes, so each keeps what the other set:

* ρ frame ``r<j>``: x / y of the paths and loss curves at radius j, ``selectedpoints`` of the
  pairs and the loss dots (radius j's are drawn, the others' are transparent), the text of the
  sentences and of the table.
* step frame ``<k>`` (group ``step``; ▶ plays it): x / y of the pairs and loss dots, step k
  of every radius. A run that diverged stays at its last point (its loss: no dot).

Measured in headless Chromium (``bench/browser_latency.py``; figures in bench/README.md): a first
design kept each radius's traces and toggled their visibility (about 200 traces) and moved ρ in
about 270 ms; a table trace or annotations in a frame force a full redraw (about 6x slower).
The sentences and the table of radius j are those of ``samon_app.playground.GridPoint`` j,
generated from its trajectories. Coordinates are rounded to 4 decimals.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
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
RHO_GROUP, STEP_GROUP = "rho", "step"  # the frames' groups (▶ plays the step group)
RIGHT = 0.58  # where the right-hand column starts


def md_to_plotly(text: str) -> str:
    """Markdown bold (``**x**``) as plotly's ``<b>x</b>``, everything else escaped."""
    parts = text.split("**")
    return "".join(f"<b>{html.escape(p, quote=False)}</b>" if i % 2
                   else html.escape(p, quote=False)
                   for i, p in enumerate(parts))


def plotly_to_text(text: str) -> str:
    """The words a plotly text shows: tags and line breaks out, entities decoded."""
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
    """The sentences of one radius as one text: the radius, then a bullet each."""
    return "<br>".join([f"<b>With ρ = {rho:.2f}:</b>"]
                       + ["• " + wrap(md_to_plotly(s), WRAP - 2).replace("<br>", "<br>   ")
                          for s in sentences])


def _r(a: Any) -> list[float]:
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


def _padded(a: np.ndarray, n: int, fill: float | None = None) -> np.ndarray:
    """``a`` (length m <= n + 1 along axis 0) padded to n + 1 rows: with its last row, or with
    ``fill`` (NaN: a gap in a line)."""
    a = np.asarray(a, dtype=float)[: n + 1]
    pad = np.repeat(a[-1:], n + 1 - len(a), axis=0)
    if fill is not None:
        pad[:] = fill
    return np.concatenate([a, pad])


def _ys(values: Any) -> list[float | None]:
    """Losses for plotly: 5 significant digits, None (a gap) for NaN."""
    return [float(f"{v:.5g}") if np.isfinite(v) else None for v in values]


@dataclass(frozen=True)
class _Arrays:
    """One method's numbers on the whole grid: path points (radius, step, 2), ascent points
    (same) and losses (radius, step; NaN after a divergence), each padded to steps + 1."""

    points: np.ndarray
    ascent: np.ndarray
    loss: np.ndarray

    @classmethod
    def of(cls, grid: Sequence[GridPoint], key: str, steps: int) -> _Arrays:
        ts = [p.trajs[key] for p in grid]
        return cls(np.round([_padded(t.points, steps) for t in ts], 4),
                   np.round([_padded(t.ascent, steps) for t in ts], 4),
                   np.array([_padded(t.loss, steps, np.nan) for t in ts]))

    def rho_data(self, j: int) -> list[dict[str, Any]]:
        """x / y of the path and the loss curve at radius j."""
        return [{"x": self.points[j, :, 0].tolist(), "y": self.points[j, :, 1].tolist()},
                {"x": list(range(self.loss.shape[1])), "y": _ys(self.loss[j])}]

    def finite_losses(self, j: int) -> np.ndarray:
        return self.loss[j][np.isfinite(self.loss[j])]

    def step_data(self, k: int) -> list[dict[str, Any]]:
        """x / y at step k of every radius: (w_k, w_k + eps_k) pairs, and L(w_k)."""
        pairs = np.stack([self.points[:, k], self.ascent[:, k]], axis=1).reshape(-1, 2)
        return [{"x": pairs[:, 0].tolist(), "y": pairs[:, 1].tolist()},
                {"x0": k, "y": _ys(self.loss[:, k])}]


def _traces(key: str, arrays: _Arrays, j: int, k: int) -> list[dict[str, Any]]:
    """One method's four traces at radius j and step k: its path and its loss curve (data of
    radius j); w_k and w_k + eps_k of *every* radius, of which only radius j's pair is
    selected (drawn); L(w_k) of every radius on the loss plot, radius j's selected."""
    c, name = COLORS[key], LABELS[key]
    path_xy, loss_xy = arrays.rho_data(j)
    pairs, dots = arrays.step_data(k)
    hidden = {"marker": {"opacity": 0.0}}
    n = arrays.points.shape[0]
    return [
        # lines only: a dot per step (800 more SVG nodes) costs 40% of a ρ move's CPU
        {"type": "scatter", **path_xy, "mode": "lines", "name": name,
         "legendgroup": key, "line": {"color": c, "width": 2}, "opacity": 0.7,
         "hovertemplate": f"{name}, step %{{pointNumber}}<br>(%{{x:.3f}}, %{{y:.3f}})"
         "<extra></extra>"},
        {"type": "scatter", **loss_xy, "mode": "lines", "xaxis": "x2", "yaxis": "y2",
         "name": name, "legendgroup": key, "showlegend": False,
         "line": {"color": c, "width": 2},
         "hovertemplate": f"{name}, step %{{x}}: L = %{{y:.4f}}<extra></extra>"},
        {"type": "scatter", **pairs, "mode": "markers", "name": f"{name} at the step shown",
         "legendgroup": key, "showlegend": False, "selectedpoints": [2 * j, 2 * j + 1],
         "unselected": hidden,
         "marker": {"color": c, "size": [12, 11] * n, "symbol": ["circle", "circle-open"] * n,
                    "line": {"width": 2, "color": c}},
         "hovertext": [f"{name}: w at the step shown", f"{name}: w + ε"] * n,
         "hovertemplate": "%{hovertext}<br>(%{x:.3f}, %{y:.3f})<extra></extra>"},
        {"type": "scatter", **dots, "dx": 0, "mode": "markers", "xaxis": "x2", "yaxis": "y2",
         "name": name, "legendgroup": key, "showlegend": False, "selectedpoints": [j],
         "unselected": hidden, "marker": {"color": c, "size": 9}, "hoverinfo": "skip"},
    ]


def cell(value: Any) -> str:
    """A table cell: a number to 4 significant digits (a diverged run's 722719.6 as
    '7.227e+05', not 11 characters in a 50-pixel column), True as 'yes', False as ''."""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def row_cells(row: dict[str, Any], columns: Sequence[str]) -> list[str]:
    """One row of the table: its cells in ``columns``; a run that diverged shows only its
    name and 'yes' (its numbers, 1e23 and the like, say nothing)."""
    if row.get("diverged"):
        return [row["method"] if c == "method" else "yes" if c == "diverged" else "—"
                for c in columns]
    return [cell(row.get(c, "")) for c in columns]


def _columns(grid: Sequence[GridPoint]) -> list[str]:
    """The table's columns: those of every radius's rows, in their order ('diverged' appears
    where some radius has a run that diverged)."""
    cols: list[str] = []
    for c in (c for p in grid for r in p.rows for c in r):
        if c not in cols:
            cols.append(c)
    return cols


@dataclass(frozen=True)
class _Notes:
    """The right-hand column under the loss plot, drawn as text traces on an invisible axis
    pair (x3, y3; y in pixels from the bottom): the sentences of the radius shown, then the
    end-point table. Text traces, not annotations and a table trace: plotly.js changes their
    text in an animation frame without redrawing the figure (annotations and tables need a
    full redraw: about 6x the time)."""

    columns: list[str]
    widths: list[float]  # relative column widths
    rows: int
    height: float  # pixels

    @classmethod
    def of(cls, grid: Sequence[GridPoint], height: float) -> _Notes:
        """Columns as wide as their longest header word or cell on any radius."""
        cols = _columns(grid)
        texts = [[*wrap(c, 9).split("<br>"), *(row_cells(r, cols)[i] for p in grid
                                                for r in p.rows)] for i, c in enumerate(cols)]
        widths = [max(map(len, t)) + (3.0 if i == 0 else 2.0) for i, t in enumerate(texts)]
        return cls(cols, widths, max(len(p.rows) for p in grid), height)

    def header(self) -> list[str]:
        return [f"<b>{wrap(c, 9)}</b>".replace("<br>", "</b><br><b>") for c in self.columns]

    def sentences(self, point: GridPoint) -> dict[str, Any]:
        return {"text": [sentences_text(point.rho, point.sentences)]}

    def cells(self, point: GridPoint) -> dict[str, Any]:
        body = [t for r in point.rows for t in row_cells(r, self.columns)]
        return {"text": self.header() + body}

    def x(self) -> list[float]:
        """Column centres in [0, 1]."""
        w = np.array(self.widths)
        return ((np.cumsum(w) - w / 2) / w.sum()).round(4).tolist()

    def traces(self, point: GridPoint) -> list[dict[str, Any]]:
        xs, n = self.x(), len(self.columns)
        ys = [self.rows * ROW_PX + HEADER_PX / 2] * n + [
            (self.rows - r - 0.5) * ROW_PX for r in range(self.rows) for _ in range(n)]
        common = {"type": "scatter", "mode": "text", "xaxis": "x3", "yaxis": "y3",
                  "showlegend": False, "hoverinfo": "skip", "cliponaxis": False}
        return [
            {**common, "name": "what happened", "x": [0.0], "y": [self.height],
             **self.sentences(point), "textposition": "bottom right",
             "textfont": {"size": 12, "color": "#212529"}},
            {**common, "name": "end points", "x": [x for _ in range(self.rows + 1) for x in xs],
             "y": ys, **self.cells(point), "textposition": "middle center",
             "textfont": {"size": 11.5, "color": "#212529"}},
        ]

    def shapes(self) -> list[dict[str, Any]]:
        """The table's header band and its rules."""
        top = self.rows * ROW_PX + HEADER_PX
        line = {"type": "line", "xref": "x3", "yref": "y3", "x0": 0, "x1": 1,
                "line": {"color": "#ced4da", "width": 1}, "layer": "below"}
        return [{"type": "rect", "xref": "x3", "yref": "y3", "x0": 0, "x1": 1,
                 "y0": self.rows * ROW_PX, "y1": top, "fillcolor": "#e9ecef",
                 "line": {"width": 0}, "layer": "below"},
                *({**line, "y0": y, "y1": y} for y in (0, self.rows * ROW_PX, top))]


def _frame_args(duration: int, redraw: bool = False) -> dict[str, Any]:
    return {"mode": "immediate", "frame": {"duration": duration, "redraw": redraw},
            "transition": {"duration": 0}, "fromcurrent": False}


def _rho_slider(grid: Sequence[GridPoint], active: int, y: float) -> dict[str, Any]:
    return {
        "name": "rho", "active": active, "x": 0.1, "len": SPLIT - 0.1, "y": y,
        "yanchor": "top", "pad": {"t": 0},
        "currentvalue": {"prefix": "ρ = ", "xanchor": "left",
                         "font": {"size": 14, "color": "#212529"}},
        # the value shows above the slider; 21 labels under it would overlap
        "font": {"color": "rgba(0,0,0,0)", "size": 1}, "ticklen": 3,
        "steps": [{"label": f"{p.rho:.2f}", "value": f"{p.rho:.2f}", "method": "animate",
                   "args": [[f"r{j}"], _frame_args(0)]}
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
            "buttons": [{"label": "▶", "method": "animate",
                         "args": [STEP_GROUP, _frame_args(70)]},
                        {"label": "❚❚", "method": "animate", "args": [[None], pause]}]}


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
        "xaxis3": {"domain": [RIGHT, 1.0], "range": [0, 1], "visible": False,
                   "fixedrange": True, "anchor": "y3"},
        "yaxis3": {"domain": [0, domains["notes"]], "range": [0, domains["notes_px"]],
                   "visible": False, "fixedrange": True, "anchor": "x3"},
    }


class PlainFigure(go.Figure):
    """A plotly figure kept as the plain dicts it was built from (data, layout, frames).

    Plotly's objects cost a good part of a second to build and again to copy (``to_dict``)
    for a grid's 200 frames, even unvalidated; Streamlit and ``plotly.io`` read a figure only
    through ``to_dict()``, which returns these dicts as they are (do not mutate them). The tests
    rebuild the figure with validation (``go.Figure(fig.to_dict())``) to keep the dicts
    honest.
    """

    def __init__(self, fig: dict[str, Any]) -> None:
        super().__init__()
        self._plain = {"data": fig["data"], "layout": fig["layout"],
                       "frames": fig.get("frames", [])}

    def to_dict(self) -> dict[str, Any]:
        return self._plain


def _heights(grid: Sequence[GridPoint]) -> tuple[int, dict[str, Any]]:
    """The plot area's height (pixels) and its parts: the loss plot's domain, and the notes'
    (sentences and table) top as a fraction and in pixels, with room for the longest
    sentences of any radius."""
    lines = max((sentences_text(p.rho, p.sentences).count("<br>") + 1 for p in grid),
                default=0)
    rows = max((len(p.rows) for p in grid), default=0)
    notes_px = lines * LINE_PX + 24 + (HEADER_PX + rows * ROW_PX if rows else 0)
    plot = max(MAP_PX, LOSS_PX + 48 + notes_px)
    loss_lo = 1 - LOSS_PX / plot
    notes = loss_lo - 48 / plot
    return plot, {"loss": [loss_lo, 1.0], "notes": notes, "notes_px": notes * plot}


def _loss_range(grid: Sequence[GridPoint], arrays: Sequence[_Arrays], j: int) -> list[float]:
    """The loss axis at radius j: the losses of the runs that did not diverge (a diverged
    run's 1e23 would flatten every other curve), with a margin. Set by every ρ frame: an
    animation without a redraw does not autorange."""
    keys = list(grid[j].trajs)
    ok = [a.finite_losses(j) for key, a in zip(keys, arrays, strict=True)
          if not grid[j].outcomes[key].diverged]
    values = np.concatenate(ok or [a.finite_losses(j) for a in arrays])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.06 * (hi - lo) or 0.1 * max(abs(hi), 1.0)
    return [round(lo - pad, 6), round(hi + pad, 6)]


def _frames(grid: Sequence[GridPoint], arrays: Sequence[_Arrays], first: int,
            notes: _Notes, steps: int) -> list[dict[str, Any]]:
    """The ρ frames and the step frames: see the module's docstring. Trace order from
    ``first``: per method its path, loss curve, step pairs and loss dots; then the sentences
    and the table."""
    per = [first + 4 * i for i in range(len(arrays))]
    text = first + 4 * len(arrays)
    rho_traces = [i + d for i in per for d in range(4)] + [text, text + 1]
    # The text traces ride along unchanged ({}): plotly.js (4.2) clears a subplot none of whose
    # traces is in the frame (tests/browser/test_browser_playground.py saw the sentences vanish).
    step_traces = [i + d for i in per for d in (2, 3)] + [text, text + 1]
    rho = [{"name": f"r{j}", "group": RHO_GROUP, "traces": rho_traces,
            "data": [d for a in arrays for d in (*a.rho_data(j),
                                                 {"selectedpoints": [2 * j, 2 * j + 1]},
                                                 {"selectedpoints": [j]})]
            + [notes.sentences(p), notes.cells(p)],
            "layout": {"yaxis2": {"range": _loss_range(grid, arrays, j)}}}
           for j, p in enumerate(grid)]
    step = [{"name": str(k), "group": STEP_GROUP, "traces": step_traces,
             "data": [d for a in arrays for d in a.step_data(k)] + [{}, {}]}
            for k in range(steps + 1)]
    return rho + step


def playground_figure(surface: toy.Surface, grid: Sequence[GridPoint], position: ChartPosition,
                      steps: int, start: tuple[float, float]) -> go.Figure:
    """The Playground's figure for a slider grid (``samon_app.playground.precompute``), its
    sliders at ``position``. Without methods: the landscape alone."""
    traces = _surface_traces(surface)
    traces.append({"type": "scatter", "x": [start[0]], "y": [start[1]], "mode": "markers",
                   "name": "start", "showlegend": False, "hoverinfo": "skip",
                   "marker": {"symbol": "x", "size": 10, "color": "#212529"}})
    methods = list(grid[0].trajs) if grid else []
    plot, domains = _heights(grid)
    layout = _layout(surface, plot + MARGIN["t"] + MARGIN["b"], domains)
    if not methods:
        return PlainFigure({"data": traces, "layout": layout})
    arrays = [_Arrays.of(grid, key, steps) for key in methods]
    first = len(traces)
    j0 = position.rho_index
    for key, a in zip(methods, arrays, strict=True):
        traces += _traces(key, a, j0, position.step)
    layout["xaxis2"]["range"] = [0, steps]
    layout["yaxis2"]["range"] = _loss_range(grid, arrays, j0)
    notes = _Notes.of(grid, domains["notes_px"])
    traces += notes.traces(grid[j0])
    layout["shapes"] = notes.shapes()
    top = -SLIDERS_PX[0] / plot  # below the x axis' title
    low = -SLIDERS_PX[1] / plot
    layout["sliders"] = [_rho_slider(grid, j0, top), _step_slider(steps, position.step, low)]
    layout["updatemenus"] = [_buttons(low)]
    layout["meta"] = {"url_defaults": {"rho": f"{defaults(surface)['rho']:.2f}",
                                       "step": str(steps)}}
    return PlainFigure({"data": traces, "layout": layout,
                        "frames": _frames(grid, arrays, first, notes, steps)})
