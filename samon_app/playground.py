"""The Playground's view model: its controls and their URL parameters, the slider grid of
precomputed trajectories, and the outcome sentences, built from ``samon_core.toy``.

Two kinds of control. The chart's own sliders, ρ and the step shown, answer in the browser: the
trajectories for every ρ of ``RHO_GRID`` are computed in one pass (``precompute``) and the
figure (``samon_app/charts/playground.py``) switches between them with no server round trip.
The other settings (surface, methods, learning rate, start, steps) are Streamlit widgets: moving
one recomputes the whole grid on the server. Pure builders (no streamlit).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

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


@dataclass(frozen=True)
class Knob:
    """A numeric control: its URL key, label, range, step and display format."""

    key: str
    label: str
    lo: float
    hi: float
    step: float
    fmt: str
    help: str
    integer: bool = False


# The Streamlit sliders (a move recomputes the grid on the server).
KNOBS: dict[str, Knob] = {k.key: k for k in (
    Knob("lr", "Learning rate", 0.005, 0.3, 0.005, "%.3f", "w ← w − lr · ∇L(w + ε)"),
    Knob("x0", "Start w", -2.0, 2.0, 0.05, "%.2f", "The start point's w (x axis)."),
    Knob("y0", "Start γ", -2.0, 2.0, 0.05, "%.2f", "The start point's γ (y axis)."),
    Knob("steps", "Steps", 1, STEPS_MAX, 1, "%d", "Number of steps of every method.", True),
)}

# The chart's own sliders (answer in the browser). 21 radii: the whole grid of 200 steps and
# four methods costs about 40 ms of numpy on a busy 2-core machine (``toy.run_rhos`` runs all
# radii as rows of one array), and the figure stays under a megabyte.
RHO_STEP = 0.05
RHO_GRID: tuple[float, ...] = tuple(round(RHO_STEP * i, 2) for i in range(21))
CHART_KNOBS: dict[str, Knob] = {k.key: k for k in (
    Knob("rho", "ρ", 0.0, 1.0, RHO_STEP, "%.2f", "the radius of the ascent step"),
    Knob("step", "step", 0, STEPS_MAX, 1, "%d", "the step drawn with its ascent point", True),
)}


def defaults(surface: toy.Surface) -> dict[str, float]:
    """Every control's default on ``surface``: its suggested settings, and the end as step
    shown (``STEPS_MAX`` stands for 'the last step', whatever Steps is)."""
    s = surface.suggested
    return {"rho": s.rho, "lr": s.lr, "x0": s.start[0], "y0": s.start[1], "steps": s.steps,
            "step": STEPS_MAX}


def rho_index(rho: float) -> int:
    """The grid point nearest to ``rho`` (ties go up: 0.025 -> 0.05)."""
    return min(range(len(RHO_GRID)), key=lambda i: (abs(RHO_GRID[i] - rho), -i))


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
    if knob.integer and value != int(value):
        return "not a whole number"
    return None


@dataclass(frozen=True)
class ChartPosition:
    """Where the chart's own sliders start: the grid index of ρ and the step shown (at most
    Steps), read from the link (the defaults where it has no valid value)."""

    rho_index: int
    step: int

    @property
    def rho(self) -> float:
        return RHO_GRID[self.rho_index]


def chart_position(raw: Mapping[str, Sequence[str]], surface: toy.Surface,
                   steps: int) -> ChartPosition:
    """The chart's sliders as the link ``raw`` (parameter -> values) sets them: ρ snapped to
    the grid, the step clamped to ``steps``."""
    fallback = defaults(surface)
    values = {}
    for key, knob in CHART_KNOBS.items():
        given = raw.get(param(key), ())
        ok = param(key) in raw and _knob_problem(knob, given) is None
        values[key] = float(given[0]) if ok else fallback[key]
    return ChartPosition(rho_index(values["rho"]), min(int(values["step"]), steps))


def url_notes(raw: Mapping[str, Sequence[str]], surface: toy.Surface) -> list[str]:
    """One sentence per query parameter of this page that will be ignored or changed, saying
    what is used instead. ``raw``: URL parameter -> its values, as the URL had them before the
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
    for key, knob in {**KNOBS, **CHART_KNOBS}.items():
        name = param(key)
        if name not in raw:
            continue
        if problem := _knob_problem(knob, raw[name]):
            shown = "the end" if key == "step" else knob.fmt % fallback[key]
            notes.append(f"`{name}={raw[name][-1]}` is {problem}: using {shown}.")
        elif key == "rho" and (v := float(raw[name][0])) != RHO_GRID[i := rho_index(v)]:
            notes.append(f"`{name}={raw[name][-1]}`: the chart's ρ slider moves in steps of "
                         f"{RHO_STEP:.2f}: showing ρ = {RHO_GRID[i]:.2f}.")
    return notes


# ---------------------------------------------------------------------------------------------
# the slider grid: every radius computed at once
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GridPoint:
    """One radius of the grid: each method's trajectory, its end point's outcome, and the
    sentences and table rows about them (all computed from these trajectories)."""

    rho: float
    trajs: dict[str, toy.Trajectory]
    outcomes: dict[str, toy.Outcome]
    sentences: list[str]
    rows: list[dict[str, Any]]


def precompute(surface: toy.Surface, settings: toy.Settings, methods: Sequence[str],
               rhos: Sequence[float] = RHO_GRID) -> list[GridPoint]:
    """The grid point of each radius in ``rhos`` (``settings.rho`` is not used): entry j holds
    what ``run_methods`` / ``outcomes`` give for ``replace(settings, rho=rhos[j])``."""
    grid = []
    for rho, trajs in zip(rhos, toy.run_rhos(surface, settings, rhos, methods), strict=True):
        oc = toy.outcomes(surface, trajs, rho)
        grid.append(GridPoint(rho, trajs, oc, outcome_sentences(surface, oc),
                              outcome_rows(oc)))
    return grid


def settings_at(settings: toy.Settings, point: GridPoint) -> toy.Settings:
    """The settings a grid point was computed with."""
    return replace(settings, rho=point.rho)


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
             "loss": _num(o.loss, 4), "max L in ρ-ball": _num(o.worst, 4),
             "λ_max": _num(o.sharpness, 3), "∂²L/∂γ²": _num(o.gamma_curvature, 3)}
            for k, o in oc.items()]
    if any(o.diverged for o in oc.values()):
        for row, o in zip(rows, oc.values(), strict=True):
            row["diverged"] = o.diverged
    return rows


LOOK_FOR = {
    "minima": "which star each path ends at. GD steps with the gradient at the dot; SAM with "
    "the gradient at the open circle, on the rim of its ρ-ball.",
    "valley": "where along the valley floor (dashed) each method stops: to the left the "
    "walls are steeper (sharper), to the right flatter.",
    "rescaling": "where along the dashed curve of minima (γ·w = 1, all the same network) each "
    "method stops, and in which direction each one's ascent point lies.",
}


def bounce_factor(lr: float, lam: float) -> float | None:
    """SAM's 2-cycle in a quadratic bowl of curvature lam: w' = (1 - q) w - q rho sign(w) with
    q = lr lam settles at |w| = rho q / (2 - q) for 0 < q < 2: the factor q / (2 - q) of rho
    (None for q >= 2, where even GD's steps grow)."""
    q = lr * lam
    return q / (2 - q) if q < 2 else None


def _bounce(lr: float, lam: float) -> str:
    factor = bounce_factor(lr, lam)
    if factor is None:
        return f"lr·λ = {lr * lam:.2f} ≥ 2: there even GD's steps grow"
    return f"SAM bounces {factor:.2f}·ρ from the bottom"


def minima_numbers(surface: toy.Surface, lr: float) -> list[str]:
    """Per minimum of the surface (computed): its loss, curvature and SAM's bounce there as a
    multiple of ρ (true for every ρ of the chart's slider)."""
    out = []
    for mark in surface.landmarks:
        p = np.array(mark.point)
        lam = float(np.linalg.eigvalsh(toy.hessian(surface, p))[-1])
        loss = _num(float(surface.loss(p)), 2)
        out.append(f"the {mark.label}: loss {loss:.2f}, λ = {lam:.1f}, {_bounce(lr, lam)}")
    return out
