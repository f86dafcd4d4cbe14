"""Where a trajectory ended, in numbers the Playground's text can state without guessing.

For the end point p of each trajectory:

    sharpness        lambda_max(H(p)), the top eigenvalue of the Hessian H = d^2 L / dp^2
    gamma_curvature  H_{gamma gamma}(p) = d^2 L / d gamma^2: the curvature SAM-ON's ball feels
    worst            max_{||e|| <= rho} L(p + e), sampled on the circle ||e|| = rho (and e = 0):
                     the loss SAM minimises
    basin            the surface's landmark whose bowl contains p (``Surface.basin``), if any

H comes from central differences of the analytic gradient (step 1e-5, symmetrised): exact to
about 1e-9 on these smooth surfaces, and no second set of formulas to get wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from samon_core.toy.methods import Trajectory
from samon_core.toy.surfaces import Surface

_H = 1e-5
_CIRCLE = 64


@dataclass(frozen=True)
class Outcome:
    method: str
    end: tuple[float, float]
    loss: float
    sharpness: float
    gamma_curvature: float
    worst: float
    basin: str | None
    diverged: bool


def hessian(surface: Surface, p: np.ndarray) -> np.ndarray:
    """The 2x2 Hessian at p (central differences of ``surface.grad``, symmetrised)."""
    p = np.asarray(p, dtype=float)
    shifts = np.array([[_H, 0.0], [0.0, _H]])
    cols = (surface.grad(p + shifts) - surface.grad(p - shifts)) / (2 * _H)  # row j: dg/dp_j
    return 0.5 * (cols + cols.T)


def worst_in_ball(surface: Surface, p: np.ndarray, rho: float, n: int = _CIRCLE) -> float:
    """max L over p and n points on the circle of radius rho around p."""
    p = np.asarray(p, dtype=float)
    angles = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    ring = p + rho * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    return float(max(surface.loss(p), surface.loss(ring).max()))


def outcome(surface: Surface, traj: Trajectory, rho: float) -> Outcome:
    end = traj.end
    h = hessian(surface, end)
    return Outcome(
        method=traj.method,
        end=(float(end[0]), float(end[1])),
        loss=float(traj.loss[-1]),
        sharpness=float(np.linalg.eigvalsh(h)[-1]),
        gamma_curvature=float(h[1, 1]),
        worst=worst_in_ball(surface, end, rho),
        basin=surface.basin(end) if surface.basin else None,
        diverged=traj.diverged_at is not None,
    )


def outcomes(surface: Surface, trajs: Mapping[str, Trajectory], rho: float) -> dict[str, Outcome]:
    return {m: outcome(surface, t, rho) for m, t in trajs.items()}
