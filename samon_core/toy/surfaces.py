"""The Playground's 2D loss surfaces, with analytic gradients. A point is p = (w, gamma).

Every surface takes arrays of points, shape (..., 2), and returns L of shape (...) and grad L of
shape (..., 2), so the same code evaluates one point of a trajectory and the contour grid.

``minima``: a sharp and a flat bowl side by side, joined by a soft minimum

    Q_s = 1/2 l_s |p - c_s|^2,   Q_f = h_f + 1/2 l_f |p - c_f|^2
    L   = -tau log(exp(-Q_s / tau) + exp(-Q_f / tau))        (-> min(Q_s, Q_f) as tau -> 0)
    grad L = s_s grad Q_s + s_f grad Q_f,   (s_s, s_f) = softmax(-Q_s / tau, -Q_f / tau)

    Quadratic bowls (not Gaussian dips) keep SAM's one-step ascent honest: inside a bowl the
    gradient at the ascent point grows with rho. The sharp bowl (curvature 15) is the deeper one;
    gradient descent is stable in it while lr * 15 < 2.

``valley``: a valley along w whose walls (in gamma) get steeper towards negative w

    L = 1/2 k(w) gamma^2 + 1/2 m (w - w_0)^2,   k(w) = k_0 exp(-a w)
    grad L = (-1/2 a k(w) gamma^2 + m (w - w_0),  k(w) gamma)

    The floor gamma = 0 slopes gently (m small) towards the narrow end w_0.

``rescaling``: the symmetry of a norm layer's gamma with the weight w that reads its output

    L(w, gamma) = 1/2 (gamma w - 1)^2,    grad L = (gamma w - 1) (gamma, w)

    A network y = w * (gamma * Norm(x)) computes only the product gamma w, so
    L(w / a, a gamma) = L(w, gamma) for every a != 0: all points of the curve gamma w = 1 are
    the same network and all are minima. Differentiating in a at a = 1 gives
    w dL/dw - gamma dL/dgamma = 0: the gradient is orthogonal to (w, -gamma), the direction
    along which the rescaling moves the point (as a norm layer's input weights get a gradient
    orthogonal to themselves). The Hessian at a minimum is (gamma, w)(gamma, w)^T: sharpness
    w^2 + gamma^2 differs along the curve, so SAM's ball, of fixed size, prefers one network's
    parametrisation to another; perturbing gamma alone (SAM-ON) sees curvature w^2 only.
    (The literal norm invariance L(a w, gamma) = L(w, gamma) with one scalar w leaves nothing to
    see in two dimensions: the loss could then depend on w only through sign(w).)

``quadratic(A)``: L = 1/2 p^T A p, grad L = A p (for the tests' closed-form SAM step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from samon_core.toy.methods import Settings

Bounds = tuple[float, float, float, float]  # w_min, w_max, gamma_min, gamma_max


@dataclass(frozen=True)
class Landmark:
    """A named point of a surface (a minimum), drawn on the contour plot."""

    key: str
    label: str
    point: tuple[float, float]


@dataclass(frozen=True, eq=False)
class Surface:
    """A loss surface of the Playground.

    loss, grad: vectorised over points of shape (..., 2).
    suggested: settings that show the surface's point (the page's defaults for it).
    zmax: the loss above which the contour colours saturate.
    basin: optional; the key of the landmark whose bowl a point lies in (or None).
    curves: polylines to draw, (label, array (m, 2)): a valley floor, a curve of minima.
    """

    key: str
    label: str
    title: str
    formula: str
    loss: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray], np.ndarray]
    suggested: Settings
    zmax: float
    bounds: Bounds = (-2.0, 2.0, -2.0, 2.0)
    landmarks: tuple[Landmark, ...] = ()
    basin: Callable[[np.ndarray], str | None] | None = None
    curves: tuple[tuple[str, np.ndarray], ...] = ()


def _sq(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    d = p - c
    return d[..., 0] ** 2 + d[..., 1] ** 2


# ---------------------------------------------------------------------------------------------
# minima: a sharp and a flat bowl
# ---------------------------------------------------------------------------------------------

_C_SHARP = np.array([-1.0, 0.6])
_C_FLAT = np.array([0.8, -0.5])
_L_SHARP, _L_FLAT, _H_FLAT, _TAU = 15.0, 2.0, 0.3, 0.2


def _bowls(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return 0.5 * _L_SHARP * _sq(p, _C_SHARP), _H_FLAT + 0.5 * _L_FLAT * _sq(p, _C_FLAT)


def _minima_loss(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    qs, qf = _bowls(p)
    low = np.minimum(qs, qf)  # shifted so that the exponentials cannot overflow
    return low - _TAU * np.log(np.exp(-(qs - low) / _TAU) + np.exp(-(qf - low) / _TAU))


def _minima_grad(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    qs, qf = _bowls(p)
    low = np.minimum(qs, qf)
    es, ef = np.exp(-(qs - low) / _TAU), np.exp(-(qf - low) / _TAU)
    ws = (es / (es + ef))[..., None]
    return ws * _L_SHARP * (p - _C_SHARP) + (1.0 - ws) * _L_FLAT * (p - _C_FLAT)


def _minima_basin(p: np.ndarray) -> str:
    """The bowl that is lower at p (the soft minimum follows it)."""
    qs, qf = _bowls(np.asarray(p, dtype=float))
    return "sharp" if qs < qf else "flat"


minima = Surface(
    key="minima",
    label="Two minima",
    title="A sharp and a flat minimum side by side",
    formula=r"L = \operatorname{softmin}\big(\tfrac{15}{2}\|p - c_s\|^2,\; 0.3 + "
    r"\|p - c_f\|^2\big)",
    loss=_minima_loss,
    grad=_minima_grad,
    suggested=Settings(start=(-1.25, 0.8), lr=0.11, rho=0.3, steps=80),
    zmax=3.0,
    landmarks=(
        Landmark("sharp", "sharp minimum", (float(_C_SHARP[0]), float(_C_SHARP[1]))),
        Landmark("flat", "flat minimum", (float(_C_FLAT[0]), float(_C_FLAT[1]))),
    ),
    basin=_minima_basin,
)


# ---------------------------------------------------------------------------------------------
# valley: walls in gamma that get steeper towards negative w
# ---------------------------------------------------------------------------------------------

_K0, _A, _M, _W0 = 3.0, 0.9, 0.05, -1.5


def _valley_loss(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    w, g = p[..., 0], p[..., 1]
    return 0.5 * _K0 * np.exp(-_A * w) * g**2 + 0.5 * _M * (w - _W0) ** 2


def _valley_grad(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    w, g = p[..., 0], p[..., 1]
    k = _K0 * np.exp(-_A * w)
    return np.stack([-0.5 * _A * k * g**2 + _M * (w - _W0), k * g], axis=-1)


valley = Surface(
    key="valley",
    label="Valley",
    title="A valley that narrows towards negative w",
    formula=r"L = \tfrac12\, 3e^{-0.9 w}\,\gamma^2 + \tfrac{0.05}{2}(w + 1.5)^2",
    loss=_valley_loss,
    grad=_valley_grad,
    suggested=Settings(start=(-0.5, 1.5), lr=0.1, rho=0.4, steps=100),
    zmax=4.0,
    curves=(("valley floor", np.array([[-2.0, 0.0], [2.0, 0.0]])),),
)


# ---------------------------------------------------------------------------------------------
# rescaling: L depends on (w, gamma) through gamma * w only
# ---------------------------------------------------------------------------------------------


def _rescaling_loss(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return 0.5 * (p[..., 0] * p[..., 1] - 1.0) ** 2


def _rescaling_grad(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    r = (p[..., 0] * p[..., 1] - 1.0)[..., None]
    return r * p[..., ::-1]  # (r gamma, r w)


def _hyperbola(lo: float = 0.4, hi: float = 2.5, n: int = 60) -> np.ndarray:
    w = np.geomspace(lo, hi, n)
    return np.stack([w, 1.0 / w], axis=-1)


rescaling = Surface(
    key="rescaling",
    label="Rescaling",
    title="Rescaling symmetry: only the product γ·w matters",
    formula=r"L = \tfrac12(\gamma w - 1)^2 = L(w/a,\; a\gamma)",
    loss=_rescaling_loss,
    grad=_rescaling_grad,
    suggested=Settings(start=(1.9, 0.2), lr=0.1, rho=0.3, steps=150),
    zmax=3.0,
    # The branch gamma w = 1 with w < 0 is the mirror image: the view shows the positive one.
    bounds=(-0.5, 2.5, -0.5, 2.5),
    curves=(("minima: γ·w = 1", _hyperbola()),),
)


# ---------------------------------------------------------------------------------------------
# quadratic (tests)
# ---------------------------------------------------------------------------------------------


def quadratic(a: np.ndarray | list[list[float]], key: str = "quadratic") -> Surface:
    """L = 1/2 p^T A p with a symmetric 2x2 A (grad L = A p)."""
    mat = np.asarray(a, dtype=float)
    if mat.shape != (2, 2) or not np.allclose(mat, mat.T):
        raise ValueError(f"A must be a symmetric 2x2 matrix, got {mat.tolist()}")

    def loss(p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        return 0.5 * np.einsum("...i,ij,...j->...", p, mat, p)

    def grad(p: np.ndarray) -> np.ndarray:
        return np.asarray(p, dtype=float) @ mat  # A symmetric: p A = (A p)^T

    return Surface(key=key, label=key, title="quadratic", formula=r"\tfrac12 p^\top A p",
                   loss=loss, grad=grad, suggested=Settings((1.0, 1.0), 0.1, 0.1, 10), zmax=10.0)


SURFACES: dict[str, Surface] = {s.key: s for s in (minima, valley, rescaling)}


def get_surface(key: str) -> Surface:
    try:
        return SURFACES[key]
    except KeyError:
        raise ValueError(f"surface must be one of {sorted(SURFACES)}, got {key!r}") from None


@lru_cache(maxsize=16)
def grid(surface: Surface, n: int = 101) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ws, gammas, Z) on an n x n grid over ``surface.bounds``; Z[i, j] = L(ws[j], gammas[i])
    (rows are gamma, as a contour plot wants them). Cached: the arrays are shared, read-only."""
    x0, x1, y0, y1 = surface.bounds
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    z = surface.loss(np.stack(np.meshgrid(xs, ys), axis=-1))
    for arr in (xs, ys, z):
        arr.setflags(write=False)
    return xs, ys, z
