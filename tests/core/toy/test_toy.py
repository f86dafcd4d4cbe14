"""samon_core.toy: the Playground's surfaces and trajectories.

Trajectories against the closed-form SAM / ASAM / SAM-ON steps on a quadratic, and against the
library's optimizer (``samon_core.optim.SAM`` around ``torch.optim.SGD``, torch in this test
only) on the quadratic and on the Playground's own surfaces; the rescaling toy's invariance;
analytic gradients against finite differences; divergence, settings and the outcomes.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from samon_core import toy
from samon_core.toy import surfaces as S

A = np.array([[3.0, 1.0], [1.0, 0.5]])  # positive definite, not diagonal
QUAD = toy.quadratic(A)
SURFACES = [*toy.SURFACES.values(), QUAD]
RNG = np.random.default_rng(0)


def _points(surface: toy.Surface, n: int = 25) -> np.ndarray:
    x0, x1, y0, y1 = surface.bounds
    return np.stack([RNG.uniform(x0, x1, n), RNG.uniform(y0, y1, n)], axis=-1)


# ---------------------------------------------------------------------------------------------
# closed form on a quadratic: grad L(w) = A w
# ---------------------------------------------------------------------------------------------


def _closed_form(method: str, w: np.ndarray, rho: float, eta: float) -> np.ndarray:
    """eps on L = 1/2 w^T A w, written out per method (no code shared with toy)."""
    g = A @ w
    if method == "sam":
        return rho * g / np.linalg.norm(g)
    if method == "asam":
        t = np.abs(w) + eta
        return rho * t**2 * g / np.linalg.norm(t * g)
    if method == "samon":
        return np.array([0.0, rho * g[1] / abs(g[1])])
    return np.zeros(2)


@pytest.mark.parametrize("method", toy.METHODS)
def test_quadratic_trajectory_is_the_closed_form_step(method):
    s = toy.Settings(start=(1.2, -0.7), lr=0.15, rho=0.3, steps=12, eta=0.02)
    traj = toy.trajectory(QUAD, method, s)
    w = np.array(s.start)
    for k in range(s.steps + 1):
        eps = _closed_form(method, w, s.rho, s.eta)
        np.testing.assert_allclose(traj.points[k], w, rtol=0, atol=1e-12)
        np.testing.assert_allclose(traj.ascent[k], w + eps, rtol=0, atol=1e-12)
        assert traj.loss[k] == pytest.approx(0.5 * w @ A @ w, abs=1e-12)
        w = w - s.lr * A @ (w + eps)  # w_{k+1} = w_k - lr A (w_k + eps_k)
    assert traj.diverged_at is None and traj.n_steps == s.steps


def test_sam_moves_differently_from_gd():
    """The comparison above could pass with eps = 0 for every method: it cannot."""
    s = toy.Settings(start=(1.2, -0.7), lr=0.15, rho=0.3, steps=5)
    runs = toy.run_methods(QUAD, s)
    ends = {m: tuple(np.round(t.end, 9)) for m, t in runs.items()}
    assert len(set(ends.values())) == len(toy.METHODS)


def test_rho_zero_is_gradient_descent():
    s = toy.Settings(start=(-1.25, 0.8), lr=0.11, rho=0.0, steps=30)
    runs = toy.run_methods(toy.minima, s)
    for t in runs.values():
        np.testing.assert_array_equal(t.points, runs["gd"].points)


def test_perturbation_sizes_and_zero_gradient():
    p, g = np.array([0.5, -2.0]), np.array([3.0, 4.0])
    assert np.linalg.norm(toy.perturbation("sam", p, g, 0.3)) == pytest.approx(0.3)
    np.testing.assert_allclose(toy.perturbation("samon", p, g, 0.3), [0.0, 0.3])
    t = np.abs(p) + 0.01  # ASAM: ||T^-1 eps|| = rho
    assert np.linalg.norm(toy.perturbation("asam", p, g, 0.3) / t) == pytest.approx(0.3)
    for m in toy.METHODS:  # a zero gradient gives eps = 0 (the library's clamp), never NaN
        np.testing.assert_array_equal(toy.perturbation(m, p, np.zeros(2), 0.3), np.zeros(2))
    with pytest.raises(ValueError, match="method"):
        toy.perturbation("sgd", p, g, 0.3)


# ---------------------------------------------------------------------------------------------
# the library's SAM (torch) on the same surfaces
# ---------------------------------------------------------------------------------------------


def _torch_loss(surface_key: str):
    torch = pytest.importorskip("torch")

    def quadratic(w, g):
        a = torch.as_tensor(A, dtype=torch.float64)
        v = torch.stack([w, g])
        return 0.5 * v @ a @ v

    def minima(w, g):
        cs, cf = torch.as_tensor(S._C_SHARP), torch.as_tensor(S._C_FLAT)
        v = torch.stack([w, g])
        qs = 0.5 * S._L_SHARP * ((v - cs) ** 2).sum()
        qf = S._H_FLAT + 0.5 * S._L_FLAT * ((v - cf) ** 2).sum()
        return -S._TAU * torch.logsumexp(torch.stack([-qs, -qf]) / S._TAU, dim=0)

    def valley(w, g):
        return 0.5 * S._K0 * torch.exp(-S._A * w) * g**2 + 0.5 * S._M * (w - S._W0) ** 2

    def rescaling(w, g):
        return 0.5 * (g * w - 1.0) ** 2

    return {"quadratic": quadratic, "minima": minima, "valley": valley,
            "rescaling": rescaling}[surface_key]


def _library_run(surface_key: str, method: str, s: toy.Settings) -> np.ndarray:
    """w_1..w_n from samon_core.optim.SAM around torch.optim.SGD (momentum 0), float64."""
    torch = pytest.importorskip("torch")
    from samon_core.optim import SAM

    loss_fn = _torch_loss(surface_key)
    if method == "samon":  # gamma perturbed, w not: SAM-ON's parameter groups
        w = torch.nn.Parameter(torch.tensor([s.start[0]], dtype=torch.float64))
        gamma = torch.nn.Parameter(torch.tensor([s.start[1]], dtype=torch.float64))
        groups = [{"params": [gamma], "perturb": True}, {"params": [w], "perturb": False}]
        opt = SAM(groups, torch.optim.SGD, rho=s.rho, lr=s.lr, momentum=0.0)
        point = lambda: torch.cat([w, gamma])  # noqa: E731
    else:  # the 2D point as one parameter tensor
        p = torch.nn.Parameter(torch.tensor(s.start, dtype=torch.float64))
        if method == "gd":
            opt = torch.optim.SGD([p], lr=s.lr, momentum=0.0)
        else:
            opt = SAM([p], torch.optim.SGD, rho=s.rho, lr=s.lr, momentum=0.0, eta=s.eta,
                      adaptive="elementwise" if method == "asam" else "none")
        point = lambda: p  # noqa: E731

    def closure():
        v = point()
        loss = loss_fn(v[0], v[1])
        loss.backward()
        return loss

    out = []
    for _ in range(s.steps):
        if method == "gd":
            opt.zero_grad()
            closure()
            opt.step()
        else:
            opt.step(closure)
        out.append(point().detach().numpy().copy())
    return np.array(out)


@pytest.mark.parametrize("method", toy.METHODS)
@pytest.mark.parametrize("surface", ["quadratic", "minima", "valley", "rescaling"])
def test_trajectory_equals_the_library_sam(surface, method):
    s = toy.Settings(start=(1.2, -0.7), lr=0.05, rho=0.25, steps=6, eta=0.01)
    if surface != "quadratic":
        s = replace(toy.get_surface(surface).suggested, steps=6)
    surf = QUAD if surface == "quadratic" else toy.get_surface(surface)
    ours = toy.trajectory(surf, method, s).points[1:]
    np.testing.assert_allclose(ours, _library_run(surface, method, s), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the surfaces
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.key)
def test_gradient_equals_finite_differences(surface):
    h = 1e-6
    for p in _points(surface):
        fd = [(surface.loss(p + h * e) - surface.loss(p - h * e)) / (2 * h) for e in np.eye(2)]
        np.testing.assert_allclose(surface.grad(p), fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.key)
def test_surfaces_are_vectorised(surface):
    pts = _points(surface, 12).reshape(3, 4, 2)
    loss, grad = surface.loss(pts), surface.grad(pts)
    assert loss.shape == (3, 4) and grad.shape == (3, 4, 2)
    for idx in np.ndindex(3, 4):
        assert loss[idx] == pytest.approx(float(surface.loss(pts[idx])), rel=1e-12)
        np.testing.assert_allclose(grad[idx], surface.grad(pts[idx]), rtol=1e-12)


@pytest.mark.parametrize("a", [0.3, 2.0, -1.5, 7.0])
def test_rescaling_loss_is_invariant(a):
    for w, g in _points(toy.rescaling):
        assert toy.rescaling.loss(np.array([w / a, a * g])) == pytest.approx(
            float(toy.rescaling.loss(np.array([w, g]))), rel=1e-12, abs=1e-14)


def test_rescaling_gradient_is_orthogonal_to_the_rescaling_direction():
    """d/da L(w/a, a gamma) at a = 1 is 0: grad . (-w, gamma) = 0 (the norm layer's
    'gradient orthogonal to the weights'); the other surfaces have no such symmetry."""
    pts = _points(toy.rescaling)
    direction = pts * np.array([-1.0, 1.0])
    np.testing.assert_allclose((toy.rescaling.grad(pts) * direction).sum(-1), 0.0, atol=1e-12)
    assert np.abs((toy.minima.grad(pts) * direction).sum(-1)).max() > 0.1


def test_rescaling_sharpness_along_the_curve_of_minima():
    """At gamma w = 1 the Hessian is (gamma, w)(gamma, w)^T: lambda_max = w^2 + gamma^2 and
    the curvature along gamma is w^2."""
    for w in (0.5, 1.0, 2.0):
        h = toy.hessian(toy.rescaling, np.array([w, 1 / w]))
        assert np.linalg.eigvalsh(h)[-1] == pytest.approx(w**2 + 1 / w**2, rel=1e-6)
        assert h[1, 1] == pytest.approx(w**2, rel=1e-6)


def test_grid_shape_and_orientation():
    xs, ys, z = toy.grid(toy.valley, 21)
    assert z.shape == (21, 21) and not z.flags.writeable
    assert z[3, 17] == pytest.approx(float(toy.valley.loss(np.array([xs[17], ys[3]]))))


# ---------------------------------------------------------------------------------------------
# settings, divergence, outcomes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [dict(lr=0.0), dict(lr=float("nan")), dict(rho=-0.1),
                                 dict(steps=-1), dict(steps=2.5), dict(start=(0.0, np.inf)),
                                 dict(eta=-1.0)])
def test_settings_reject_bad_values(bad):
    with pytest.raises(ValueError):
        replace(toy.minima.suggested, **bad)


@pytest.mark.parametrize("surface", list(toy.SURFACES.values()), ids=lambda s: s.key)
def test_run_rhos_is_run_methods_for_each_radius(surface):
    """The Playground's slider grid: one pass over all radii gives, bit for bit, the run of
    each radius alone (so the chart's sentences are those of that radius), diverged runs too."""
    rhos = [0.0, 0.05, 0.35, 1.0]
    s = replace(surface.suggested, lr=0.3, steps=60)  # ASAM diverges at rho 1 on 'rescaling'
    grid = toy.run_rhos(surface, s, rhos)
    assert len(grid) == len(rhos)
    for rho, trajs in zip(rhos, grid, strict=True):
        alone = toy.run_methods(surface, replace(s, rho=rho))
        assert list(trajs) == list(alone)
        for m, t in alone.items():
            np.testing.assert_array_equal(trajs[m].points, t.points)
            np.testing.assert_array_equal(trajs[m].ascent, t.ascent)
            np.testing.assert_array_equal(trajs[m].loss, t.loss)
            assert trajs[m].diverged_at == t.diverged_at
    assert grid[0]["gd"] is grid[-1]["gd"]  # GD ignores rho: run once, shared
    ends = {tuple(g["sam"].end) for g in grid}
    assert len(ends) == len(rhos)  # ... but SAM's radius is per entry


def test_run_rhos_diverges_per_radius_and_checks_its_input():
    s = replace(toy.rescaling.suggested, lr=0.3, steps=60)
    small, large = toy.run_rhos(toy.rescaling, s, [0.3, 1.0], ["sam", "asam"])
    assert small["asam"].diverged_at is None and large["sam"].diverged_at is None
    assert large["asam"].diverged_at is not None  # its row stopped; the others went on
    assert len(large["asam"].points) == large["asam"].diverged_at < len(large["sam"].points)
    assert toy.run_rhos(toy.rescaling, s, [], ["sam"]) == []
    assert toy.run_rhos(toy.rescaling, s, [0.1], []) == [{}]
    for bad in ([-0.1], [float("nan")]):
        with pytest.raises(ValueError, match="rho"):
            toy.run_rhos(toy.rescaling, s, bad)
    with pytest.raises(ValueError, match="method"):
        toy.run_rhos(toy.rescaling, s, [0.1], ["sgd"])


def test_a_diverging_run_stops_at_its_last_finite_point():
    s = toy.Settings(start=(1.0, 1.0), lr=1.0, rho=0.5, steps=100)  # lr * lambda_max > 2
    with np.errstate(all="raise"):  # no overflow warning escapes either
        runs = toy.run_methods(QUAD, s)
    assert all(t.diverged_at is not None and t.diverged_at < 100 for t in runs.values())
    assert toy.run_methods(QUAD, replace(s, lr=0.5))["gd"].diverged_at is None
    for t in runs.values():
        assert len(t.points) == len(t.ascent) == len(t.loss) == t.diverged_at
        assert np.isfinite(t.points).all() and np.isfinite(t.loss).all()


def test_hessian_and_worst_loss_on_the_quadratic():
    np.testing.assert_allclose(toy.hessian(QUAD, np.array([0.3, -0.2])), A, atol=1e-6)
    lam = np.linalg.eigvalsh(A)[-1]
    assert toy.worst_in_ball(QUAD, np.zeros(2), 0.2) == pytest.approx(0.5 * lam * 0.04, rel=0.01)


def test_basins_of_the_two_minima():
    for mark in toy.minima.landmarks:
        assert toy.minima.basin(np.array(mark.point)) == mark.key


def test_suggested_settings_show_each_surface_s_point():
    """The default pictures the page's text is written around (the text itself is computed)."""
    oc = toy.outcomes(toy.minima, toy.run_methods(toy.minima, toy.minima.suggested), 0.3)
    assert oc["gd"].basin == "sharp" and oc["sam"].basin == "flat"
    assert oc["gd"].worst > oc["sam"].worst
    s = toy.rescaling.suggested
    oc = toy.outcomes(toy.rescaling, toy.run_methods(toy.rescaling, s), s.rho)
    assert max(oc, key=lambda m: oc[m].end[1]) == "samon"
    assert min(oc, key=lambda m: oc[m].end[1]) == "gd"
    assert all(o.loss < 0.01 for o in oc.values())
    s = toy.valley.suggested
    oc = toy.outcomes(toy.valley, toy.run_methods(toy.valley, s), s.rho)
    assert max(oc, key=lambda m: oc[m].sharpness) == "gd"
    assert min(oc, key=lambda m: oc[m].sharpness) == "samon"


def test_toy_imports_neither_torch_nor_streamlit():
    code = ("import sys, samon_core.toy; "
            "print(sorted(m for m in ('torch', 'streamlit', 'plotly') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
