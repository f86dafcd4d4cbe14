"""Playground: GD, SAM, ASAM and SAM-ON on 2D loss surfaces; ρ and the step answer in the browser.

A picture of the chosen surface's loss levels (``samon_core.toy``) with each method's path and,
at the step shown, the ascent point w + eps beside w (the gradient of the step is taken there),
beside the loss per step, the outcome sentences and the end-point table.

Two kinds of control. The chart's own sliders, ρ and the step shown, switch in the browser
between trajectories precomputed for the whole ρ grid (``samon_app.playground.precompute``,
``samon_app.charts.playground``): no server round trip. Surface, methods, learning rate, start
and steps are Streamlit widgets bound to the URL (``bind="query-params"``): a move recomputes
the grid. The link holds every setting: the widgets' by Streamlit, the chart's by a small local
script (``samon_app.charts.playground_link``); the page reads ``pg_rho`` and ``pg_step`` from
the URL on every run. A bad value in a link falls back to the default with a note. Every
sentence is generated from the trajectories of the ρ it describes.
"""

from __future__ import annotations

import streamlit as st

from app_pages import common
from samon_app.charts.playground import playground_figure
from samon_app.charts.playground_link import CHART_KEY, link_script, share_box_html
from samon_app.identity_view import share_link
from samon_app.paper_tables import playground_rho_note
from samon_app.playground import (
    CHART_KNOBS,
    KEYS,
    KNOBS,
    LOOK_FOR,
    RHO_GRID,
    SURFACE_LABELS,
    GridPoint,
    Knob,
    chart_position,
    defaults,
    minima_numbers,
    param,
    precompute,
    url_notes,
)
from samon_core import toy

# ---------------------------------------------------------------------------------------------
# UI pieces (each returns plain values)
# ---------------------------------------------------------------------------------------------


def _raw_params() -> dict[str, list[str]]:
    """This page's query parameters as the URL has them now (before the widgets read them)."""
    names = [param(k) for k in ("surface", "methods", *KNOBS, *CHART_KNOBS)]
    return {k: st.query_params.get_all(k) for k in names if k in st.query_params}


def _apply_defaults() -> None:
    """Set every knob to the chosen surface's settings (on a surface change, or on reset); the
    chart's sliders go back to their defaults by leaving the URL."""
    surface = toy.get_surface(SURFACE_LABELS[st.session_state[param("surface")]])
    for key, value in defaults(surface).items():
        if key in KNOBS:
            st.session_state[param(key)] = value
    for key in CHART_KNOBS:
        if param(key) in st.query_params:
            del st.query_params[param(key)]


def surface_ui() -> toy.Surface:
    label = st.segmented_control(
        "Surface", list(SURFACE_LABELS), default=toy.minima.label, key=param("surface"),
        bind="query-params", required=True, on_change=_apply_defaults,
        help="Choosing a surface loads its suggested settings.",
    )
    return toy.get_surface(SURFACE_LABELS[label])


def methods_ui() -> list[str]:
    """The methods shown, in the fixed order GD, SAM, ASAM, SAM-ON."""
    chosen = st.pills("Methods", list(KEYS), selection_mode="multi", default=list(KEYS),
                      key=param("methods"), bind="query-params")
    return [KEYS[label] for label in KEYS if label in chosen]


def knob_ui(knob: Knob, default: float) -> float:
    """A slider bound to ``?<key>=``. The default is passed only while the key has no state
    yet: afterwards the value lives in session state (set by the user, a link, or a surface
    change), and passing both makes Streamlit warn (the Launch page does the same)."""
    cast = int if knob.integer else float
    key = param(knob.key)
    kw = {} if key in st.session_state else {"value": cast(default)}
    return st.slider(knob.label, cast(knob.lo), cast(knob.hi), step=cast(knob.step),
                     format=knob.fmt, key=key, bind="query-params", help=knob.help, **kw)


def controls_ui(surface: toy.Surface) -> toy.Settings:
    """The server-side settings (every one in the URL); rho is the chart's, not set here."""
    fallback = defaults(surface)
    cols = st.columns([1, 1, 1, 1, 0.9], gap="medium", vertical_alignment="bottom")
    values = {}
    for col, key in zip(cols, ("lr", "x0", "y0", "steps"), strict=False):
        with col:
            values[key] = knob_ui(KNOBS[key], fallback[key])
    with cols[-1]:
        st.button("Reset", on_click=_apply_defaults, icon=":material/restart_alt:",
                  key=param("reset"), help="Back to this surface's suggested settings.")
    return toy.Settings(start=(values["x0"], values["y0"]), lr=values["lr"],
                        rho=fallback["rho"], steps=int(values["steps"]))


@st.cache_data(max_entries=32, show_spinner=False)
def _grid(surface_key: str, settings: toy.Settings, methods: tuple[str, ...]
          ) -> list[GridPoint]:
    """The whole ρ grid (shared by all sessions: the same settings give the same grid)."""
    return precompute(toy.get_surface(surface_key), settings, methods)


def picture_ui(surface: toy.Surface, settings: toy.Settings, methods: list[str]) -> None:
    st.markdown(f"**{surface.title}**: ${surface.formula}$")
    if not methods:
        st.info("Choose at least one method to see its path.", icon=":material/touch_app:")
    grid = _grid(surface.key, settings, tuple(methods)) if methods else []
    position = chart_position(_raw_params(), surface, settings.steps)
    common.plot(playground_figure(surface, grid, position, settings.steps, settings.start),
                key=CHART_KEY)
    st.caption(
        f"**ρ** (the radius of the ascent step, {RHO_GRID[0]:.2f} to {RHO_GRID[-1]:.2f}) and "
        "the **step** shown are the chart's own sliders: they switch between trajectories "
        f"computed for every ρ in advance, in the browser; ▶ plays the {settings.steps} steps. "
        "The sentences and the table beside the map are those of the ρ shown. Filled dot: w "
        "at the step shown; open dot: its ascent point w + ε, where that step's gradient is "
        "taken (GD's coincides with w)."
    )
    params = {name: st.query_params.get_all(name) for name in st.query_params}
    st.caption(":material/link: This link holds every setting, the chart's ρ and step "
               "included: copy it to share this picture.")
    st.html(share_box_html(share_link(st.context.url, params)) + link_script(),
            unsafe_allow_javascript=True)


def flat_text_ui(surface: toy.Surface, settings: toy.Settings) -> None:
    st.markdown("##### Why SAM prefers flat minima")
    st.latex(r"\epsilon = \rho\,\frac{\nabla L(w)}{\|\nabla L(w)\|},\qquad "
             r"w \leftarrow w - \mathrm{lr}\;\nabla L(w + \epsilon)")
    st.markdown(
        "SAM steps with the gradient at the ascent point w + ε, where the loss is (to first "
        "order) highest within distance ρ of w. It so descends, approximately, the *worst* "
        "loss near w, max over ‖ε‖ ≤ ρ of L(w + ε), rather than L(w). Around a sharp minimum "
        "that worst loss is high, because the walls rise steeply within ρ; around a flat one it "
        "stays low. And SAM does not come to rest at the bottom of a bowl: the gradient on the "
        "rim of its ball is about λ·ρ (λ the curvature) however close w is to the bottom. In a "
        "quadratic bowl it ends up bouncing across the bottom at a distance lr·λ·ρ / (2 − lr·λ) "
        "(for lr·λ < 2); where that is wider than the bowl, w leaves it. GD's steps shrink to "
        "zero at the bottom."
    )
    if surface.landmarks:
        lines = minima_numbers(surface, settings.lr)
        st.caption(f"With lr = {settings.lr:.3f}, " + "; ".join(lines) + ".")


def scale_text_ui() -> None:
    st.markdown("##### Why rescaling matters: ASAM and SAM-ON")
    st.markdown(
        "A normalization layer divides its input by the input's own spread, so "
        "Norm(a·z) = Norm(z) for every a > 0: scaling the weights in front of it changes "
        "nothing. Its scale γ trades off against the weight w that reads its output, since "
        "w·(γ·x̂) depends on γ·w only (with β = 0; the *Rescaling* surface: every point of "
        "γ·w = 1 is the same network). A perturbation of fixed size ρ then means different "
        "things at different scales: moving γ by ρ changes γ·w by ρ·w, a lot where w is large "
        "and little where it is small. SAM's sharpness depends on the parametrisation, not "
        "only on the function."
    )
    st.markdown(
        "**ASAM** measures the perturbation relative to the weights: ε_i / (|w_i| + η) lies in "
        "the ρ-ball, so a coordinate moves in proportion to its size (near 0 it barely moves; "
        "η = 0.01 here). **SAM-ON** perturbs only the norm layer's γ (here the y axis, with "
        "the norm of its gradient alone). At a minimum γ·w = 1 the curvature along γ is "
        "w² = 1/γ²: smallest where γ is large. The paper reports that SAM-ON shifts γ towards "
        "larger values; the chart's sentences say where each method ended with your settings."
    )
    st.caption(playground_rho_note())


def main() -> None:
    st.title("Playground")
    st.markdown(
        "Gradient descent, SAM, ASAM and SAM-ON on small 2D loss surfaces. The x axis is a "
        "weight w, the y axis a norm layer's scale γ: **SAM-ON** perturbs γ only. Move ρ and "
        "the step in the chart: it answers at once."
    )
    raw = _raw_params()  # before the widgets: they drop bad values from the URL silently
    notes = st.container()
    top_left, top_right = st.columns([1, 1], gap="large")
    with top_left:
        surface = surface_ui()
    with top_right:
        methods = methods_ui()
    settings = controls_ui(surface)
    for note in url_notes(raw, surface):
        notes.warning(f"From the link: {note}", icon=":material/link_off:")
    picture_ui(surface, settings, methods)
    common.look_for(LOOK_FOR[surface.key])
    c1, c2 = st.columns(2, gap="large")
    with c1:
        flat_text_ui(surface, settings)
    with c2:
        scale_text_ui()


if __name__ == "__main__":  # a Streamlit run (st.Page / AppTest), not an import
    main()
