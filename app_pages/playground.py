"""Playground: GD, SAM, ASAM and SAM-ON on 2D loss surfaces, redrawn at every slider move.

A picture of the chosen surface's loss levels (``samon_core.toy``) with each method's path and,
at the step shown, the ascent point w + eps beside w (the gradient of the step is taken there).
Every control is bound to the URL (``bind="query-params"``), so a link reproduces the exact
picture; a bad value in a link falls back to the default with a note. The text under the plot states
outcomes read from the computed trajectories, never assumed ones.

The figure animates in the browser (plotly frames: play button and step slider, no rerun).
The pure builders (``build_figure``, ``loss_figure``, ``outcome_sentences``, ``url_notes``) live in
``samon_app/playground.py``; this page only lays out the widgets and the text.
"""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from app_pages import common
from samon_app.paper_tables import playground_rho_note
from samon_app.playground import (
    KEYS,
    KNOBS,
    LOOK_FOR,
    SURFACE_LABELS,
    Knob,
    build_figure,
    compute,
    defaults,
    loss_figure,
    minima_numbers,
    outcome_rows,
    outcome_sentences,
    param,
    url_notes,
)
from samon_core import toy

# ---------------------------------------------------------------------------------------------
# vocabulary: methods, colours, controls
# ---------------------------------------------------------------------------------------------



# ---------------------------------------------------------------------------------------------
# UI pieces (each returns plain values)
# ---------------------------------------------------------------------------------------------


def _raw_params() -> dict[str, list[str]]:
    """This page's query parameters as the URL has them now (before the widgets read them)."""
    names = [param(k) for k in ("surface", "methods", *KNOBS)]
    return {k: st.query_params.get_all(k) for k in names if k in st.query_params}


def _apply_defaults() -> None:
    """Set every knob to the chosen surface's settings (on a surface change, or on reset)."""
    surface = toy.get_surface(SURFACE_LABELS[st.session_state[param("surface")]])
    for key, value in defaults(surface).items():
        st.session_state[param(key)] = value


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


def controls_ui(surface: toy.Surface) -> tuple[toy.Settings, int]:
    """The settings and the step shown (every control is in the URL)."""
    fallback = defaults(surface)
    values = {k: knob_ui(KNOBS[k], fallback[k]) for k in ("rho", "lr")}
    c1, c2 = st.columns(2)
    with c1:
        values["x0"] = knob_ui(KNOBS["x0"], fallback["x0"])
    with c2:
        values["y0"] = knob_ui(KNOBS["y0"], fallback["y0"])
    values["steps"] = knob_ui(KNOBS["steps"], fallback["steps"])
    step = knob_ui(KNOBS["step"], fallback["step"])
    st.button("Reset to this surface's settings", on_click=_apply_defaults,
              icon=":material/restart_alt:", key=param("reset"))
    settings = toy.Settings(start=(values["x0"], values["y0"]), lr=values["lr"],
                            rho=values["rho"], steps=int(values["steps"]))
    return settings, int(step)


def picture_ui(surface: toy.Surface, trajs: Mapping[str, toy.Trajectory], shown: int,
               settings: toy.Settings) -> None:
    st.markdown(f"**{surface.title}**: ${surface.formula}$")
    if not trajs:
        st.info("Choose at least one method to see its path.", icon=":material/touch_app:")
    common.plot(build_figure(surface, trajs, shown, settings.start), key="playground_map")
    st.caption(
        "Filled dot: w at the step shown; open dot: its ascent point w + ε, where that step's "
        "gradient is taken (GD's coincides with w). The plot's own slider and ▶ Play go through "
        f"the {settings.steps} steps in the browser."
    )
    common.share_ui("This link holds every setting: copy it to share this picture.")


def outcome_ui(surface: toy.Surface, oc: Mapping[str, toy.Outcome],
               trajs: Mapping[str, toy.Trajectory], shown: int) -> None:
    if not oc:
        return
    st.markdown("##### What happened")
    for line in outcome_sentences(surface, oc):
        st.markdown(f"- {line}")
    left, right = st.columns([3, 2], gap="medium")
    with left:
        st.dataframe(outcome_rows(oc), hide_index=True, width="stretch")
    with right:
        common.plot(loss_figure(trajs, shown), key="playground_loss")


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
        lines = minima_numbers(surface, settings.lr, settings.rho)
        st.caption("With your settings, " + "; ".join(lines) + ".")


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
        "larger values; the numbers above say where each method ended with your settings."
    )
    st.caption(playground_rho_note())


def main() -> None:
    st.title("Playground")
    st.markdown(
        "Gradient descent, SAM, ASAM and SAM-ON on small 2D loss surfaces, recomputed at every "
        "slider move. The x axis is a weight w, the y axis a norm layer's scale γ: **SAM-ON** "
        "perturbs γ only."
    )
    raw = _raw_params()  # before the widgets: they drop bad values from the URL silently
    notes = st.container()
    top_left, top_right = st.columns([1, 1], gap="large")
    with top_left:
        surface = surface_ui()
    with top_right:
        methods = methods_ui()
    left, right = st.columns([1, 2.6], gap="large")
    with left:
        settings, step = controls_ui(surface)
    for note in url_notes(raw, surface):
        notes.warning(f"From the link: {note}", icon=":material/link_off:")
    trajs, oc = compute(surface, settings, methods)
    shown = min(step, settings.steps)
    with right:
        picture_ui(surface, trajs, shown, settings)
        common.look_for(LOOK_FOR[surface.key])
    outcome_ui(surface, oc, trajs, shown)
    c1, c2 = st.columns(2, gap="large")
    with c1:
        flat_text_ui(surface, settings)
    with c2:
        scale_text_ui()


if __name__ == "__main__":  # a Streamlit run (st.Page / AppTest), not an import
    main()
