"""GD, SAM, ASAM and SAM-ON on a 2D surface: the perturbation, one step, a whole trajectory.

The rules are those of ``samon_core.optim`` (``perturbation.sam_perturbation`` and ``SAM``) with
plain gradient descent as the base optimizer. With g = grad L(w) at p = (w, gamma):

    "gd":     eps = 0
    "sam":    eps = rho g / max(||g||_2, 1e-12)
    "asam":   T = |p| + eta (elementwise);  eps = rho T^2 g / max(||T g||_2, 1e-12)
    "samon":  g_N = (0, g_gamma);  eps = rho g_N / max(||g_N||_2, 1e-12)

    step:     p <- p - lr * grad L(p + eps)

"samon" is SAM restricted to the y coordinate (gamma): only it is perturbed, and the norm is taken
over its gradient alone, like SAM-ON's parameter groups (``perturb=True`` for the norm layers).
The clamp at 1e-12 is the library's: a zero gradient gives eps = 0, not NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from samon_core.toy.surfaces import Surface

METHODS: tuple[str, ...] = ("gd", "sam", "asam", "samon")

_TINY = 1e-12  # as samon_core.optim.perturbation._TINY
ESCAPE = 1e6  # |p| beyond this (or a non-finite value) ends a trajectory: it diverged
MAX_STEPS = 10_000


@dataclass(frozen=True)
class Settings:
    """One run's settings: start point (w, gamma), learning rate, rho, number of steps, and
    ASAM's eta (T_w = |w| + eta; the reference's default is 0, the original ASAM's 0.01)."""

    start: tuple[float, float]
    lr: float
    rho: float
    steps: int
    eta: float = 0.01

    def __post_init__(self) -> None:
        x, y = self.start
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"start must be finite, got {self.start!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (math.isfinite(self.rho) and self.rho >= 0):
            raise ValueError(f"rho must be a finite number >= 0, got {self.rho!r}")
        if not (math.isfinite(self.eta) and self.eta >= 0):
            raise ValueError(f"eta must be a finite number >= 0, got {self.eta!r}")
        if not (isinstance(self.steps, int) and 0 <= self.steps <= MAX_STEPS):
            raise ValueError(f"steps must be an int in [0, {MAX_STEPS}], got {self.steps!r}")


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One method's run. ``points[k]`` = w_k, ``ascent[k]`` = w_k + eps_k, ``loss[k]`` = L(w_k),
    k = 0..n, all of length n + 1. n = settings.steps unless the run diverged: then
    ``diverged_at`` is the step whose update left |p| <= ESCAPE (or was not finite), and the
    arrays stop at the point before it."""

    method: str
    points: np.ndarray  # (n + 1, 2)
    ascent: np.ndarray  # (n + 1, 2)
    loss: np.ndarray  # (n + 1,)
    diverged_at: int | None = None

    @property
    def end(self) -> np.ndarray:
        return self.points[-1]

    @property
    def n_steps(self) -> int:
        return len(self.points) - 1


# Each method as the library's two knobs: a 0/1 mask M on the gradient (the scope: what is
# perturbed) and whether T_w = |w| + eta scales it. eps = rho T^2 M g / ||T M g|| covers all four
# (GD: M = 0 gives eps = 0).
_MASKS = {"gd": (0.0, 0.0), "sam": (1.0, 1.0), "asam": (1.0, 1.0), "samon": (0.0, 1.0)}


def _check(methods: Iterable[str]) -> tuple[str, ...]:
    methods = tuple(methods)
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {m!r}")
    return methods


def perturbations(methods: Sequence[str], p: np.ndarray, g: np.ndarray,
                  rho: float | np.ndarray, eta: float = 0.01) -> np.ndarray:
    """eps for each method (row i: ``methods[i]`` at the point p[i] with gradient g[i], and
    radius ``rho`` or ``rho[i]``)."""
    masks = np.array([_MASKS[m] for m in methods])
    adaptive = np.array([m == "asam" for m in methods])[:, None]
    t = np.where(adaptive, np.abs(p) + eta, 1.0)
    tg = t * (masks * g)
    norms = np.sqrt(tg[:, 0] ** 2 + tg[:, 1] ** 2)
    return t * tg * (rho / np.maximum(norms, _TINY))[:, None]


def perturbation(method: str, p: np.ndarray, g: np.ndarray, rho: float,
                 eta: float = 0.01) -> np.ndarray:
    """eps for one method at the point p (shape (2,)) with gradient g (see the docstring)."""
    _check([method])
    return perturbations([method], np.asarray(p, float)[None], np.asarray(g, float)[None],
                         rho, eta)[0]


def _run(surface: Surface, methods: tuple[str, ...], s: Settings,
         rho: float | np.ndarray | None = None
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All methods at once, one row each: points (n+1, m, 2), ascent (n+1, m, 2), loss (n+1, m)
    and the last valid index per method (a diverged row stays frozen at its last point).
    ``rho``: one radius per row (default: ``s.rho`` for all)."""
    m, n = len(methods), s.steps
    radius = s.rho if rho is None else rho
    pts, asc, loss = np.empty((n + 1, m, 2)), np.empty((n + 1, m, 2)), np.empty((n + 1, m))
    p = np.tile(np.asarray(s.start, dtype=float), (m, 1))
    pts[0], loss[0] = p, surface.loss(p)
    last = np.full(m, n)
    alive = np.ones(m, dtype=np.bool_)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is caught below
        for k in range(n + 1):
            a = p + perturbations(methods, p, surface.grad(p), radius, s.eta)
            asc[k] = a  # also at the last point: the page draws w -> w + eps at every frame
            if k == n:
                break
            nxt = p - s.lr * surface.grad(a)
            bad = alive & ~(np.isfinite(nxt).all(axis=1) & (np.abs(nxt).max(axis=1) <= ESCAPE))
            last[bad], alive = k, alive & ~bad
            p = np.where(alive[:, None], nxt, p)
            pts[k + 1], loss[k + 1] = p, surface.loss(p)
    return pts, asc, loss, last


def _trajectory(method: str, i: int, steps: int, pts: np.ndarray, asc: np.ndarray,
                loss: np.ndarray, last: np.ndarray) -> Trajectory:
    """Row i of ``_run``'s arrays as a Trajectory (cut after its last valid point)."""
    n = int(last[i])
    diverged = n + 1 if n < steps else None
    return Trajectory(method, pts[: n + 1, i].copy(), asc[: n + 1, i].copy(),
                      loss[: n + 1, i].copy(), diverged)


def run_methods(surface: Surface, settings: Settings,
                methods: Iterable[str] = METHODS) -> dict[str, Trajectory]:
    """The trajectory of each method (in the order given), from the same start. The methods
    run side by side as rows of one array: numpy's per-call cost is paid once per step."""
    methods = _check(methods)
    if not methods:
        return {}
    arrays = _run(surface, methods, settings)
    return {m: _trajectory(m, i, settings.steps, *arrays) for i, m in enumerate(methods)}


def run_rhos(surface: Surface, settings: Settings, rhos: Sequence[float],
             methods: Iterable[str] = METHODS) -> list[dict[str, Trajectory]]:
    """``run_methods`` for each radius of ``rhos`` (``settings.rho`` is not used): entry j is
    exactly ``run_methods(surface, replace(settings, rho=rhos[j]), methods)``. Every
    (radius, method) pair is one row of one array, so a whole slider grid costs about one
    run's numpy calls; GD, which ignores rho, runs once and is shared by all entries."""
    methods = _check(methods)
    rhos = [float(r) for r in rhos]
    if any(not (math.isfinite(r) and r >= 0) for r in rhos):
        raise ValueError(f"every rho must be a finite number >= 0, got {rhos!r}")
    if not methods or not rhos:
        return [{} for _ in rhos]
    per_rho = [m for m in methods if m != "gd"]
    rows = (["gd"] if "gd" in methods else []) + per_rho * len(rhos)
    radius = np.array(([0.0] if "gd" in methods else [])
                      + [r for r in rhos for _ in per_rho])
    arrays = _run(surface, tuple(rows), settings, radius)
    gd = _trajectory("gd", 0, settings.steps, *arrays) if "gd" in methods else None
    first = 1 if gd is not None else 0
    out = []
    for j in range(len(rhos)):
        trajs = {m: gd if m == "gd" else _trajectory(
            m, first + j * len(per_rho) + per_rho.index(m), settings.steps, *arrays)
            for m in methods}
        out.append(trajs)
    return out


def trajectory(surface: Surface, method: str, settings: Settings) -> Trajectory:
    """Run ``method`` from ``settings.start`` for ``settings.steps`` steps on ``surface``."""
    return run_methods(surface, settings, [method])[method]
