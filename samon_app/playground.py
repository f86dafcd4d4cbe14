"""The Playground's view model: the figures, the outcome sentences and the URL checks of the
Playground page (app_pages/playground.py), built from ``samon_core.toy``'s trajectories.

Pure builders (no streamlit), so the page only lays out widgets and ``bench/playground_latency.py``
times exactly what a slider move costs. The landscape is a cached PNG in ``layout.images``:
plotly.js drops contour and heatmap traces while frames animate (plotly.js#4491).
"""

from __future__ import annotations

import base64
import functools
import math
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from samon_app.charts import FONT
from samon_core import toy
from samon_core.catalog.methods import PALETTE, method_color

LABELS = {"gd": "GD", "sam": "SAM", "asam": "ASAM", "samon": "SAM-ON"}
KEYS = {label: key for key, label in LABELS.items()}
# The lab's method colours: GD = vanilla grey, SAM = SAM-all blue, SAM-ON orange. ASAM has no
# family colour elsewhere (there it is a SAM-all variant): a palette teal not used by a family.
COLORS = {"gd": method_color("base"), "sam": method_color("all"), "asam": PALETTE[5],
          "samon": method_color("norm")}
SURFACE_LABELS = {s.label: s.key for s in toy.SURFACES.values()}
STEPS_MAX = 200
# Widget keys, and so URL parameters, carry this prefix: session state and the URL are shared by
# all pages, and the Launch page has its own "lr" and "methods".
PREFIX = "pg_"


def param(name: str) -> str:
    """The widget key / URL parameter of a control: 'rho' -> 'pg_rho'."""
    return PREFIX + name


# Low loss light blue, high loss near white: the paths (method colours) stay the strongest ink.
LEVEL_COLORS = [[0.0, "#a5d8ff"], [0.35, "#dbeefe"], [1.0, "#f8f9fa"]]


@dataclass(frozen=True)
class Knob:
    """A numeric slider: its URL key, label, range, step and display format."""

    key: str
    label: str
    lo: float
    hi: float
    step: float
    fmt: str
    help: str
    integer: bool = False


KNOBS: dict[str, Knob] = {k.key: k for k in (
    Knob("rho", "ρ: radius of the ascent step", 0.0, 1.0, 0.01, "%.2f",
         "How far SAM looks for the worst loss around w (0: every method is plain GD)."),
    Knob("lr", "Learning rate", 0.005, 0.3, 0.005, "%.3f", "w ← w − lr · ∇L(w + ε)"),
    Knob("x0", "Start w", -2.0, 2.0, 0.05, "%.2f", "The start point's w (x axis)."),
    Knob("y0", "Start γ", -2.0, 2.0, 0.05, "%.2f", "The start point's γ (y axis)."),
    Knob("steps", "Steps", 1, STEPS_MAX, 1, "%d", "Number of steps of every method.", True),
    Knob("step", "Step shown", 0, STEPS_MAX, 1, "%d",
         "The step drawn with its ascent point (beyond the last step: the end).", True),
)}


def defaults(surface: toy.Surface) -> dict[str, float]:
    """Every knob's default on ``surface``: its suggested settings, and the end as step shown."""
    s = surface.suggested
    return {"rho": s.rho, "lr": s.lr, "x0": s.start[0], "y0": s.start[1], "steps": s.steps,
            "step": STEPS_MAX}


# ---------------------------------------------------------------------------------------------
# links: what a bad query parameter falls back to
# ---------------------------------------------------------------------------------------------


def _knob_problem(knob: Knob, values: Sequence[str]) -> str | None:
    """Why the URL values of a numeric knob will be ignored (None if they are fine). Mirrors
    what the bound slider accepts: one finite number within its range."""
    if len(values) != 1:
        return "given more than once"
    try:
        value = float(values[0])
    except ValueError:
        return "not a number"
    if not math.isfinite(value) or not knob.lo <= value <= knob.hi:
        return f"not a number from {knob.fmt % knob.lo} to {knob.fmt % knob.hi}"
    return None


def url_notes(raw: Mapping[str, Sequence[str]], surface: toy.Surface) -> list[str]:
    """One sentence per query parameter of this page that the widgets will ignore, saying what
    is used instead. ``raw``: URL parameter -> its values, as the URL had them before the
    widgets ran (they drop bad values silently)."""
    notes = []
    name = param("surface")
    if name in raw and not all(v in SURFACE_LABELS for v in raw[name]):
        notes.append(f"`{name}={raw[name][-1]}` is not one of "
                     f"{', '.join(SURFACE_LABELS)}: showing {surface.label}.")
    bad = [v for v in raw.get(param("methods"), ()) if v not in KEYS]
    if bad:
        notes.append(f"Unknown method{'s' if len(bad) > 1 else ''} "
                     f"{', '.join(f'`{v}`' for v in bad)} ignored (choose from "
                     f"{', '.join(LABELS.values())}).")
    fallback = defaults(surface)
    for key, knob in KNOBS.items():
        name = param(key)
        if name in raw and (problem := _knob_problem(knob, raw[name])):
            shown = "the end" if key == "step" else knob.fmt % fallback[key]
            notes.append(f"`{name}={raw[name][-1]}` is {problem}: using {shown}.")
    return notes


# ---------------------------------------------------------------------------------------------
# the figures (pure: plain data in, plotly figure out)
# ---------------------------------------------------------------------------------------------


def _at(traj: toy.Trajectory, step: int) -> int:
    """Index of ``step`` in a trajectory (one that diverged stops early: its last point)."""
    return min(step, traj.n_steps)


def _current_xy(key: str, traj: toy.Trajectory, step: int) -> dict[str, Any]:
    """What changes from frame to frame: w_k and w_k + eps_k (plotly merges it into the trace)."""
    i = _at(traj, step)
    (wx, wy), (ax, ay) = traj.points[i], traj.ascent[i]
    return {"type": "scatter", "x": [wx, ax], "y": [wy, ay],
            "hovertext": [f"{LABELS[key]}: w at step {i}", f"{LABELS[key]}: w + ε (ascent point)"]}


def _current(key: str, traj: toy.Trajectory, step: int) -> dict[str, Any]:
    """w_k and w_k + eps_k as one segment: a filled dot at w, an open one at the ascent point."""
    return {
        **_current_xy(key, traj, step), "mode": "lines+markers",
        "line": {"color": COLORS[key], "width": 2, "dash": "dot"},
        "marker": {"color": COLORS[key], "size": [12, 11], "symbol": ["circle", "circle-open"],
                   "line": {"width": 2, "color": COLORS[key]}},
        "legendgroup": key, "showlegend": False,
        "hovertemplate": "%{hovertext}<br>(%{x:.3f}, %{y:.3f})<extra></extra>",
    }


# ---- the landscape as a picture ---------------------------------------------------------------
# Not a contour trace: plotly.js removes contour and heatmap traces while frames animate
# (plotly/plotly.js#4491; seen here in headless Chromium with plotly 7.1, whatever the frame's
# redraw setting). A layout image is no trace, so the animation leaves it alone.

RASTER = 600  # pixels per side (about twice the plot's size on screen: crisp level lines)
BANDS = 16  # loss levels between the minimum and ``zmax`` (above it the colour saturates)
_LINE = np.array([173, 181, 189])  # level lines, #adb5bd


def _png(rgb: np.ndarray) -> bytes:
    """A minimal PNG (8-bit RGB, no filtering) of an (h, w, 3) uint8 array."""
    h, w, _ = rgb.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, 3 * w)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))


def _colour(t: np.ndarray) -> np.ndarray:
    """``LEVEL_COLORS`` at t in [0, 1], as uint8 RGB."""
    stops = np.array([s for s, _ in LEVEL_COLORS])
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for _, c in LEVEL_COLORS])
    return np.stack([np.interp(t, stops, rgb[:, i]) for i in range(3)], axis=-1).astype(np.uint8)


def landscape_rgb(z: np.ndarray, zmax: float) -> np.ndarray:
    """Filled loss levels with a line where the level changes; z rows run from the top (high
    gamma) down, as an image's do. Levels are equally spaced in sqrt(L - L_min): around a
    quadratic minimum the lines are then equally spaced rings, 1/sqrt(curvature) apart, so a
    sharp minimum shows dense rings and a flat one sparse rings."""
    zmin = float(z.min())
    t = np.sqrt(np.maximum(z - zmin, 0.0) / (zmax - zmin))
    band = np.clip((t * BANDS).astype(int), 0, BANDS)
    rgb = _colour((np.minimum(band, BANDS - 1) + 0.5) / BANDS)
    edge = np.zeros(z.shape, dtype=np.bool_)
    edge[:, 1:] |= band[:, 1:] != band[:, :-1]
    edge[1:, :] |= band[1:, :] != band[:-1, :]
    edge &= band < BANDS  # no lines in the saturated region
    rgb[edge] = _LINE
    return rgb


@functools.lru_cache(maxsize=8)  # one PNG per surface and process
def landscape_uri(surface_key: str) -> str:
    """The surface's picture as a PNG data URI (one per surface, shared by all sessions)."""
    surface = toy.get_surface(surface_key)
    _, _, z = toy.grid(surface, RASTER)
    png = _png(landscape_rgb(z[::-1], surface.zmax))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _landscape_image(surface: toy.Surface) -> dict[str, Any]:
    x0, x1, y0, y1 = surface.bounds
    return {"source": landscape_uri(surface.key), "xref": "x", "yref": "y", "x": x0, "y": y1,
            "sizex": x1 - x0, "sizey": y1 - y0, "sizing": "stretch", "layer": "below"}


def _surface_traces(surface: toy.Surface) -> list[dict[str, Any]]:
    """The surface's curves (valley floor, curve of minima) and landmarks."""
    traces: list[dict[str, Any]] = []
    for label, pts in surface.curves:
        traces.append({"type": "scatter", "x": pts[:, 0], "y": pts[:, 1], "mode": "lines",
                       "line": {"color": "#495057", "width": 1.5, "dash": "dash"},
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


def _slider(n: int, step: int) -> dict[str, Any]:
    """Plotly's own step slider (animates in the browser): labels hidden, the value shown."""
    frame_args = {"mode": "immediate", "frame": {"duration": 0, "redraw": False},
                  "transition": {"duration": 0}}
    return {
        "active": step, "x": 0.12, "len": 0.88, "y": 0, "yanchor": "top", "pad": {"t": 36},
        "currentvalue": {"prefix": "step ", "xanchor": "right",
                         "font": {"size": 13, "color": "#495057"}},
        "font": {"color": "rgba(0,0,0,0)", "size": 1}, "ticklen": 0, "minorticklen": 0,
        "steps": [{"label": str(k), "method": "animate", "args": [[str(k)], frame_args]}
                  for k in range(n + 1)],
    }


def _buttons() -> dict[str, Any]:
    play = {"frame": {"duration": 70, "redraw": False}, "transition": {"duration": 0},
            "fromcurrent": False, "mode": "immediate"}
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate",
             "transition": {"duration": 0}}
    return {"type": "buttons", "direction": "left", "x": 0.0, "y": 0, "xanchor": "left",
            "yanchor": "top", "pad": {"t": 44, "r": 8}, "showactive": False,
            "buttons": [{"label": "▶ Play", "method": "animate", "args": [None, play]},
                        {"label": "❚❚", "method": "animate", "args": [[None], pause]}]}


class FramedFigure(go.Figure):
    """A plotly figure whose animation frames stay plain dicts until ``to_dict``.

    Plotly validates every frame's traces on construction, even with ``_validate=False``
    (about 2 ms per frame: 0.4 s for 200 steps). Streamlit and ``plotly.io`` read a figure
    through ``to_dict()``, which returns the frames as given. The tests rebuild the figure with
    validation (``go.Figure(fig.to_dict())``) to keep these dicts honest.
    """

    def __init__(self, fig: dict[str, Any], frames: list[dict[str, Any]]) -> None:
        super().__init__(fig, _validate=False)
        self._plain_frames = frames

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["frames"] = self._plain_frames
        return out


def build_figure(surface: toy.Surface, trajs: Mapping[str, toy.Trajectory], step: int,
                 start: tuple[float, float]) -> go.Figure:
    """Landscape + each method's path + (w, w + eps) at ``step``, with one frame per step."""
    data = _surface_traces(surface)
    for key, t in trajs.items():
        data.append({"type": "scatter", "x": t.points[:, 0], "y": t.points[:, 1],
                     "mode": "lines+markers", "name": LABELS[key], "legendgroup": key,
                     "line": {"color": COLORS[key], "width": 2}, "opacity": 0.65,
                     "marker": {"size": 4, "color": COLORS[key]},
                     "customdata": np.stack([np.arange(len(t.loss)), t.loss], axis=-1),
                     "hovertemplate": f"{LABELS[key]}, step %{{customdata[0]}}<br>"
                     "(%{x:.3f}, %{y:.3f})<br>L = %{customdata[1]:.4f}<extra></extra>"})
    data.append({"type": "scatter", "x": [start[0]], "y": [start[1]], "mode": "markers",
                 "name": "start", "showlegend": False, "hoverinfo": "skip",
                 "marker": {"symbol": "x", "size": 10, "color": "#212529"}})
    first = len(data)  # the current-step traces come last: the frames replace only them
    data += [_current(key, t, step) for key, t in trajs.items()]
    n = max((t.n_steps for t in trajs.values()), default=0)
    frames = [{"name": str(k), "traces": list(range(first, len(data))),
               "data": [_current_xy(key, t, k) for key, t in trajs.items()]} for k in range(n + 1)]
    x0, x1, y0, y1 = surface.bounds
    layout = {
        "template": {}, "height": 600, "font": {"family": FONT, "size": 13},
        "margin": {"l": 50, "r": 10, "t": 30, "b": 110},
        "xaxis": {"title": {"text": "w (a weight)"}, "range": [x0, x1], "zeroline": False,
                  "showgrid": False, "constrain": "domain"},
        "yaxis": {"title": {"text": "γ (a norm layer's scale)"}, "range": [y0, y1],
                  "zeroline": False, "showgrid": False, "scaleanchor": "x", "scaleratio": 1,
                  "constrain": "domain"},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0},
        "hovermode": "closest", "uirevision": surface.key,
        "images": [_landscape_image(surface)], "plot_bgcolor": "#f8f9fa",
        "sliders": [_slider(n, min(step, n))] if trajs else [],
        "updatemenus": [_buttons()] if trajs else [],
    }
    return FramedFigure({"data": data, "layout": layout}, frames if trajs else [])


def loss_figure(trajs: Mapping[str, toy.Trajectory], step: int) -> go.Figure:
    """L(w_k) per step for each method, with the step shown marked."""
    data = [{"type": "scatter", "x": np.arange(len(t.loss)), "y": t.loss, "mode": "lines",
             "name": LABELS[key], "line": {"color": COLORS[key], "width": 2},
             "hovertemplate": f"{LABELS[key]}: %{{y:.4f}}<extra></extra>"}
            for key, t in trajs.items()]
    layout = {
        "template": {}, "height": 230, "font": {"family": FONT, "size": 12},
        "margin": {"l": 50, "r": 10, "t": 10, "b": 40}, "showlegend": False,
        "xaxis": {"title": {"text": "step"}}, "yaxis": {"title": {"text": "loss L(w)"}},
        "hovermode": "x unified",
        "shapes": [{"type": "line", "xref": "x", "yref": "paper", "x0": step, "x1": step,
                    "y0": 0, "y1": 1, "line": {"color": "#868e96", "width": 1, "dash": "dot"}}],
    }
    return go.Figure({"data": data, "layout": layout}, _validate=False)


# ---------------------------------------------------------------------------------------------
# what happened, in words read from the numbers
# ---------------------------------------------------------------------------------------------


def _names(keys: Sequence[str]) -> str:
    names = [LABELS[k] for k in keys]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# (what, value of an Outcome, format, only on this surface or None)
COMPARISONS: tuple[tuple[str, Callable[[toy.Outcome], float], str, str | None], ...] = (
    ("sharpness λ_max", lambda o: o.sharpness, "{:.2f}", None),
    ("worst loss within ρ", lambda o: o.worst, "{:.3f}", None),
    ("γ", lambda o: o.end[1], "{:.2f}", "rescaling"),
    ("curvature along γ", lambda o: o.gamma_curvature, "{:.2f}", "rescaling"),
)


def _extremes(oc: Mapping[str, toy.Outcome], value: Callable[[toy.Outcome], float], what: str,
              fmt: str) -> str | None:
    """'Smallest <what> at the end: A (v); largest: B (v).', naming every method within 2% of
    the extreme (None when all methods agree)."""
    vals = {k: value(o) for k, o in oc.items()}
    vlo, vhi = min(vals.values()), max(vals.values())

    def near(v: float, target: float) -> bool:
        return math.isclose(v, target, rel_tol=0.02, abs_tol=1e-3)

    if near(vlo, vhi):
        return None
    lo = [k for k, v in vals.items() if near(v, vlo)]
    hi = [k for k, v in vals.items() if near(v, vhi)]
    return (f"Smallest {what} at the end: **{_names(lo)}** ({fmt.format(vlo)}); "
            f"largest: **{_names(hi)}** ({fmt.format(vhi)}).")


def _basins(surface: toy.Surface, oc: Mapping[str, toy.Outcome]) -> str:
    parts = []
    for mark in surface.landmarks:
        inside = [k for k, o in oc.items() if o.basin == mark.key]
        if inside:
            verb = "ends" if len(inside) == 1 else "end"
            parts.append(f"{_names(inside)} {verb} in the **{mark.label}**'s bowl")
    return "With these settings " + "; ".join(parts) + "."


def outcome_sentences(surface: toy.Surface, oc: Mapping[str, toy.Outcome]) -> list[str]:
    """Sentences about the end points, each computed from ``oc`` (diverged runs are named and
    left out of the comparisons)."""
    out = [f"**{LABELS[k]}** diverged: its steps grew without bound (a smaller learning rate "
           "helps)."
           for k, o in oc.items() if o.diverged]
    ok = {k: o for k, o in oc.items() if not o.diverged}
    if ok and surface.landmarks:
        out.append(_basins(surface, ok))
    if len(ok) > 1:
        for what, value, fmt, only in COMPARISONS:
            if only in (None, surface.key) and (line := _extremes(ok, value, what, fmt)):
                out.append(line)
    return out


def _num(v: float, digits: int) -> float:
    """v rounded, without a negative zero (-0.0004 -> 0.0, not -0.0)."""
    return round(v, digits) + 0.0


def outcome_rows(oc: Mapping[str, toy.Outcome]) -> list[dict[str, Any]]:
    """The end of each run: point, loss, worst loss in the rho-ball, lambda_max of the Hessian,
    curvature along gamma (and a 'diverged' column when a run diverged)."""
    rows = [{"method": LABELS[k], "end w": _num(o.end[0], 3), "end γ": _num(o.end[1], 3),
             "loss": _num(o.loss, 4), "worst in ρ-ball": _num(o.worst, 4),
             "λ_max": _num(o.sharpness, 3), "∂²L/∂γ²": _num(o.gamma_curvature, 3)}
            for k, o in oc.items()]
    if any(o.diverged for o in oc.values()):
        for row, o in zip(rows, oc.values(), strict=True):
            row["diverged"] = o.diverged
    return rows


def compute(surface: toy.Surface, settings: toy.Settings, methods: Sequence[str]
            ) -> tuple[dict[str, toy.Trajectory], dict[str, toy.Outcome]]:
    trajs = toy.run_methods(surface, settings, methods)
    return trajs, toy.outcomes(surface, trajs, settings.rho)


LOOK_FOR = {
    "minima": "which star each path ends at. GD steps with the gradient at the dot; SAM with "
    "the gradient at the open circle, on the rim of its ρ-ball.",
    "valley": "where along the valley floor (dashed) each method stops: to the left the "
    "walls are steeper (sharper), to the right flatter.",
    "rescaling": "where along the dashed curve of minima (γ·w = 1, all the same network) each "
    "method stops, and in which direction each one's ascent point lies.",
}


def _bounce(lr: float, lam: float, rho: float) -> str:
    """SAM's 2-cycle in a quadratic bowl of curvature lam: w' = (1 - q) w - q rho sign(w) with
    q = lr lam settles at |w| = q rho / (2 - q) for 0 < q < 2 (and diverges for q > 2)."""
    q = lr * lam
    if q >= 2:
        return f"lr·λ = {q:.2f} ≥ 2: there even GD's steps grow"
    return f"SAM bounces {q * rho / (2 - q):.2f} from the bottom"


def minima_numbers(surface: toy.Surface, lr: float, rho: float) -> list[str]:
    """Per minimum of the surface (computed): its loss, worst loss within rho, curvature and
    SAM's bounce there."""
    out = []
    for mark in surface.landmarks:
        p = np.array(mark.point)
        lam = float(np.linalg.eigvalsh(toy.hessian(surface, p))[-1])
        loss, worst = _num(float(surface.loss(p)), 2), _num(toy.worst_in_ball(surface, p, rho), 2)
        out.append(f"the {mark.label}: loss {loss:.2f}, worst within ρ {worst:.2f}, "
                   f"λ = {lam:.1f}, {_bounce(lr, lam, rho)}")
    return out


