"""Two-dimensional toys for the Playground: loss surfaces, and SAM-family trajectories on them.

numpy only (no torch, no streamlit): every interaction of the Playground page recomputes all of
this in a few milliseconds.

Coordinates. A point is p = (w, gamma): the x-axis plays a weight w, the y-axis a normalization
layer's scale gamma. SAM-ON's analogue perturbs gamma (the y coordinate) only.

Update rules (those of ``samon_core.optim``: ``perturbation.py`` and ``sam.py``, with plain
gradient descent as the base optimizer). With g = grad L(w) and the perturbation eps:

    GD:       eps = 0
    SAM:      eps = rho g / ||g||_2
    ASAM:     eps = rho T_w^2 g / ||T_w g||_2,  T_w = |w| + eta (elementwise)
    SAM-ON:   eps = rho g_N / ||g_N||_2,  g_N = (0, g_gamma) (gradient and norm over gamma alone)

    then      w <- w - lr * grad L(w + eps)

As in the library, ||.|| is clamped at 1e-12, so a zero gradient gives eps = 0. A trajectory
records, per step k, w_k, the ascent point w_k + eps_k (where the gradient of the step is taken)
and L(w_k).

Surfaces (``surfaces.py``): two bowls, one sharp and one flat (``minima``); a valley that narrows
(``valley``); and a rescaling-invariant toy L(w, gamma) = 1/2 (gamma w - 1)^2 (``rescaling``),
whose loss is unchanged by (w, gamma) -> (w / a, a gamma). ``outcomes.py`` reads off where each
trajectory ended: the bowl, the sharpness (top Hessian eigenvalue), the curvature along gamma,
and the worst loss within the rho-ball, so that the page states only what was computed.
"""

from __future__ import annotations

from samon_core.toy.methods import (
    METHODS,
    Settings,
    Trajectory,
    perturbation,
    run_methods,
    run_rhos,
    trajectory,
)
from samon_core.toy.outcomes import Outcome, hessian, outcome, outcomes, worst_in_ball
from samon_core.toy.surfaces import (
    SURFACES,
    Landmark,
    Surface,
    get_surface,
    grid,
    minima,
    quadratic,
    rescaling,
    valley,
)

__all__ = [
    "METHODS",
    "SURFACES",
    "Landmark",
    "Outcome",
    "Settings",
    "Surface",
    "Trajectory",
    "get_surface",
    "grid",
    "hessian",
    "minima",
    "outcome",
    "outcomes",
    "perturbation",
    "quadratic",
    "rescaling",
    "run_methods",
    "run_rhos",
    "trajectory",
    "valley",
    "worst_in_ball",
]
