"""ellipsoid_projection, adaptive_sharpness_apgd, adaptive_sharpness_average: SciPy and exact
solutions on small problems, the official checkpoint schedule, closed-form expectations."""

import math

import numpy as np
import pytest
from scipy.optimize import brentq, minimize

import refimpl
from refimpl.other import adaptive_sharpness_apgd, adaptive_sharpness_average, ellipsoid_projection
from refimpl.other.adaptive_sharpness import apgd_checkpoints


# -- ellipsoid_projection -----------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_ellipsoid_projection_matches_scipy_minimization(seed):
    rng = np.random.default_rng(seed)
    p = 4
    delta = rng.standard_normal(p) * 3
    c = np.abs(rng.standard_normal(p)) + 0.2
    rho = 0.5
    x, lam, norms, iterations, converged = ellipsoid_projection(delta, c, rho=rho, tol=1e-10)
    result = minimize(
        lambda v: 0.5 * np.sum((v - delta) ** 2),
        np.zeros(p),
        jac=lambda v: v - delta,
        constraints=[
            {"type": "ineq", "fun": lambda v: rho**2 - np.sum((v / c) ** 2), "jac": lambda v: -2 * v / c**2}
        ],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert result.success
    np.testing.assert_allclose(x, result.x, atol=1e-6)
    assert bool(converged) and int(iterations) == len(norms) > 0
    # KKT: x = δ/(1 + 2λ/c²) with the returned λ > 0, on the boundary within tol
    np.testing.assert_allclose(x, delta / (1 + 2 * float(lam) / c**2), rtol=1e-14)
    assert abs(np.linalg.norm(x / c) - rho) <= 1e-10


def test_ellipsoid_projection_of_a_ball_is_radial_within_the_official_tolerance():
    delta = np.array([3.0, -4.0, 12.0])
    x, _, norms, _, converged = ellipsoid_projection(delta, np.ones(3), rho=2.0)
    assert bool(converged) and abs(float(norms[-1]) - 2.0) <= 1e-5
    np.testing.assert_allclose(x, 2.0 * delta / 13.0, atol=1e-5)


def test_ellipsoid_projection_pins_zero_scale_coordinates_and_keeps_inside_points():
    delta = np.array([0.3, 5.0, -0.2])
    c = np.array([1.0, 0.0, 1.0])
    x, lam, norms, iterations, converged = ellipsoid_projection(delta, c, rho=1.0)
    np.testing.assert_array_equal(x, [0.3, 0.0, -0.2])  # inside once the pinned coordinate is 0
    assert float(lam) == 0.0 and int(iterations) == 0 and norms.shape == (0,) and bool(converged)


def test_ellipsoid_projection_follows_the_official_bisection_sequence():
    # the official loop: λ = 0.1 on [0, 10], the bracket's top doubling while the norm exceeds ρ
    delta, c, rho = np.array([2.0, 1.0]), np.array([0.5, 1.0]), 1.0
    _, _, norms, _, _ = ellipsoid_projection(delta, c, rho=rho)
    lam, low, high, limit, expected = 0.1, 0.0, 10.0, 10.0, []
    while not expected or abs(expected[-1] - rho) > 1e-5:
        x = delta / (1 + 2 * lam / c**2)
        expected.append(np.linalg.norm(x / c))
        if expected[-1] > rho:
            lam, low = (lam + high) / 2, lam
        else:
            lam, high = (low + lam) / 2, lam
        if limit - high < 1e-2:
            limit, high = 2 * limit, 2 * high
    np.testing.assert_allclose(norms, expected, rtol=1e-13)


def test_ellipsoid_projection_reports_a_capped_run_as_not_converged():
    _, _, norms, iterations, converged = ellipsoid_projection(
        np.array([5.0, 5.0]), np.ones(2), rho=1.0, max_iter=2
    )
    assert int(iterations) == 2 and norms.shape == (2,) and not bool(converged)
    with pytest.raises(refimpl.InputError, match="scales c_i >= 0"):
        ellipsoid_projection(np.ones(2), np.array([1.0, -1.0]), rho=1.0)


# -- adaptive_sharpness_apgd --------------------------------------------------------------------
def test_adaptive_sharpness_apgd_checkpoints_follow_the_official_schedule():
    def official(n_iters):  # eval_APGD_sharpness, version 'default'
        p, w = [0, 0.22], [0, math.ceil(n_iters * 0.22)]
        while w[-1] < n_iters and w[-1] != w[-2]:
            p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
            w.append(math.ceil(p[-1] * n_iters))
        return w[1:]

    for n in (1, 5, 20, 100, 200):
        assert apgd_checkpoints(n) == official(n)
    # p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99, 1.05; in float64 0.41 + 0.16 is
    # 0.5700000000000001, so the official Python gives 58, not 57 (reproduced)
    assert apgd_checkpoints(100) == [22, 41, 58, 70, 80, 87, 93, 99, 105]


def _trust_region_maximum(a, g, rho):
    """max_{‖δ‖ ≤ ρ} gᵀδ + ½ δᵀAδ exactly: δ = (μI − A)⁻¹g with ‖δ‖ = ρ, μ > λ_max(A)."""
    eigenvalues, q = np.linalg.eigh(a)
    g_q = q.T @ g

    def norm_minus_rho(mu):
        return np.linalg.norm(g_q / (mu - eigenvalues)) - rho

    top = eigenvalues[-1]
    mu = brentq(norm_minus_rho, top + 1e-12, top + np.linalg.norm(g) / rho + abs(top) + 1.0, xtol=1e-15)
    delta = q @ (g_q / (mu - eigenvalues))
    return g @ delta + 0.5 * delta @ a @ delta


@pytest.mark.parametrize("seed", range(4))
def test_adaptive_sharpness_apgd_reaches_the_trust_region_optimum_for_a_quadratic(seed):
    rng = np.random.default_rng(seed)
    p = 5
    m = rng.standard_normal((p, p))
    a = m @ m.T / p + 0.5 * np.eye(p)  # convex: L(w + δ) − L(w) = δᵀAw + ½δᵀAδ
    w = rng.standard_normal(p)
    rho = 0.3
    exact = _trust_region_maximum(a, a @ w, rho)
    sharpness, delta, losses, _ = adaptive_sharpness_apgd(
        w, lambda v: 0.5 * v @ a @ v, lambda v: a @ v, rho=rho, norm="l2", n_iters=200
    )
    assert np.linalg.norm(delta) <= rho + 1e-12
    assert exact * (1 - 1e-4) <= float(sharpness) <= exact + 1e-12
    assert float(sharpness) == pytest.approx(float(losses.max()) - 0.5 * w @ a @ w, rel=1e-12)


def test_adaptive_sharpness_apgd_small_radius_is_linear_in_rho():
    rng = np.random.default_rng(9)
    a = np.diag([1.0, 2.0, 3.0])
    w = rng.standard_normal(3)
    rho = 1e-4
    sharpness, *_ = adaptive_sharpness_apgd(w, lambda v: 0.5 * v @ a @ v, lambda v: a @ v, rho=rho, norm="l2")
    assert float(sharpness) == pytest.approx(rho * np.linalg.norm(a @ w), rel=1e-3)


def test_adaptive_sharpness_apgd_linf_adaptive_reaches_the_box_corner_of_a_linear_loss():
    # L = bᵀv: the maximum over |δ_i| ≤ ρ|w_i| is ρ Σ |b_i||w_i|, at δ = ρ|w| ⊙ sign(b)
    b, w, rho = np.array([1.0, -2.0, 0.5]), np.array([2.0, 0.5, -1.0]), 0.05
    sharpness, delta, _, step_sizes = adaptive_sharpness_apgd(
        w, lambda v: b @ v, lambda v: b, rho=rho, adaptive=True, n_iters=100
    )
    assert float(sharpness) == pytest.approx(rho * np.abs(b) @ np.abs(w), rel=1e-12)
    np.testing.assert_allclose(delta, rho * np.abs(w) * np.sign(b), rtol=1e-12)
    assert float(step_sizes[0]) == 2 * rho and np.all(np.diff(step_sizes) <= 0)


def test_adaptive_sharpness_apgd_is_invariant_to_rescaling_a_relu_layer_pair():
    # f(v) = v₂·relu(v₁·x): (v₁, v₂) → (αv₁, v₂/α) leaves f unchanged; adaptive sharpness too
    x, y = 1.3, 0.4

    def make(scale):
        def loss(v):
            return 0.5 * (v[1] * max(v[0] * x, 0.0) - y) ** 2

        def grad(v):
            r = v[1] * max(v[0] * x, 0.0) - y
            return np.array([r * v[1] * x * (v[0] * x > 0), r * max(v[0] * x, 0.0)])

        return loss, grad

    w = np.array([0.8, 1.1])
    loss, grad = make(1.0)
    base, *_ = adaptive_sharpness_apgd(w, loss, grad, rho=0.1, adaptive=True, n_iters=50)
    scaled, *_ = adaptive_sharpness_apgd(
        w * np.array([4.0, 0.25]), loss, grad, rho=0.1, adaptive=True, n_iters=50
    )
    assert float(base) > 0
    assert float(scaled) == pytest.approx(float(base), rel=1e-10)


def test_adaptive_sharpness_apgd_one_step_by_hand_and_restart_variants_differ():
    w = np.array([1.0, -2.0])
    sharpness, delta, losses, _ = adaptive_sharpness_apgd(
        w, lambda v: 0.5 * v @ v, lambda v: v, rho=0.1, n_iters=1, adaptive=True
    )
    np.testing.assert_allclose(delta, [0.075, -0.15], rtol=1e-15)  # 0.75·(0.1, −0.2) + 0.25·0
    assert float(sharpness) == pytest.approx(0.3890625, rel=1e-14)

    def sine_loss(v):
        return float(np.sin(3 * v).sum())

    def sine_grad(v):
        return 3 * np.cos(3 * v)

    best = adaptive_sharpness_apgd(np.zeros(1), sine_loss, sine_grad, rho=1.0, n_iters=5)
    official = adaptive_sharpness_apgd(
        np.zeros(1), sine_loss, sine_grad, rho=1.0, n_iters=5, restart="official"
    )
    assert float(best[0]) == pytest.approx(0.9022675940990952, rel=1e-12)
    assert float(official[0]) == pytest.approx(0.7780731968879212, rel=1e-12)


# -- adaptive_sharpness_average -----------------------------------------------------------------
def test_adaptive_sharpness_average_of_a_quadratic_matches_its_expectation():
    # E[L(w + δ)] − L(w) = ½ ρ² Σ_i A_ii c_i² for δ ~ N(0, ρ² diag(c²)); 20000 draws, 5σ bound
    rng = np.random.default_rng(0)
    a = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, -0.2], [0.0, -0.2, 0.5]])
    w, rho = np.array([1.0, -0.5, 2.0]), 0.2
    noise = rng.standard_normal((20000, 3))
    sharpness, losses = adaptive_sharpness_average(
        w, lambda v: 0.5 * v @ a @ v, noise, rho=rho, adaptive=True
    )
    expected = 0.5 * rho**2 * np.sum(np.diag(a) * w**2)
    standard_error = losses.std() / np.sqrt(len(losses))
    assert abs(float(sharpness) - expected) < 5 * standard_error
    deltas = rho * np.abs(w) * noise[:3]
    np.testing.assert_allclose(losses[:3], [0.5 * (w + d) @ a @ (w + d) for d in deltas], rtol=1e-14)


def test_adaptive_sharpness_average_linf_uniform_draws_and_rho_zero():
    rng = np.random.default_rng(1)
    a = np.diag([1.0, 3.0])
    w = np.array([0.5, -1.0])
    noise = rng.uniform(-1, 1, (20000, 2))
    sharpness, losses = adaptive_sharpness_average(w, lambda v: 0.5 * v @ a @ v, noise, rho=0.1, norm="linf")
    expected = 0.5 * 0.1**2 * np.sum(np.diag(a)) / 3  # Var U(−1, 1) = 1/3, c = 1
    assert abs(float(sharpness) - expected) < 5 * losses.std() / np.sqrt(len(losses))
    zero, _ = adaptive_sharpness_average(w, lambda v: 0.5 * v @ a @ v, noise[:5], rho=0.0)
    assert float(zero) == 0.0
    with pytest.raises(refimpl.InputError, match="uniform draws"):
        adaptive_sharpness_average(w, lambda v: 0.0, np.full((2, 2), 2.0), rho=0.1, norm="linf")
