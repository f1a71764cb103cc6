"""Implicit differentiation: closed forms (ridge, simplex projection), finite differences of
solves (ridge, logistic regression, lasso), the unrolled iteration differentiated by hand,
adjointness of the VJP and the JVP, the fixed-point form as a root, and the rules' own VJPs."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import implicit_fixed_point_vjp, implicit_root_jvp, implicit_root_vjp


# -- ridge ---------------------------------------------------------------------------------------
def _ridge_problem(seed, m=9, n=5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, n)), rng.standard_normal(m), rng.standard_normal(n)


def _ridge_solution(a, y, lam):
    return np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ y)


@pytest.mark.parametrize("seed", range(3))
def test_ridge_matches_the_closed_form_and_finite_differences(seed):
    a, y, v = _ridge_problem(seed)
    lam = 0.7
    x_star = _ridge_solution(a, y, lam)
    hessian = a.T @ a + lam * np.eye(5)
    closed_form = -np.linalg.solve(hessian, x_star)  # dx*/dλ
    g_lam = implicit_root_vjp(hessian, x_star[:, None], v)
    x_dot = implicit_root_jvp(hessian, x_star[:, None], np.array([1.0]))
    np.testing.assert_allclose(g_lam, [v @ closed_form], rtol=1e-12)
    np.testing.assert_allclose(x_dot, closed_form, rtol=1e-12)
    h = 1e-5
    by_differences = (_ridge_solution(a, y, lam + h) - _ridge_solution(a, y, lam - h)) / (2 * h)
    np.testing.assert_allclose(x_dot, by_differences, rtol=1e-8)
    # θ = y: ∂F/∂y = −Aᵀ, so ȳ = A (AᵀA + λI)⁻¹ x̄
    g_y = implicit_root_vjp(hessian, -a.T, v)
    np.testing.assert_allclose(g_y, a @ np.linalg.solve(hessian, v), rtol=1e-12)


def test_ridge_matches_the_unrolled_gradient_descent_differentiated_by_hand():
    a, y, v = _ridge_problem(3)
    lam = 0.5
    hessian = a.T @ a + lam * np.eye(5)
    eta = 1.0 / np.linalg.eigvalsh(hessian)[-1]
    x, tangent = np.zeros(5), np.zeros(5)  # x_k and dx_k/dλ
    for _ in range(5000):
        # x ← x − η((AᵀA + λI)x − Aᵀy); its derivative in λ by the chain rule, step by step
        tangent = tangent - eta * (hessian @ tangent + x)
        x = x - eta * (hessian @ x - a.T @ y)
    g_lam = implicit_root_vjp(hessian, x[:, None], v)
    np.testing.assert_allclose(g_lam, [v @ tangent], rtol=1e-10)


# -- logistic regression ---------------------------------------------------------------------------
def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _logistic_solution(x_data, labels, lam):
    """Newton's method on Σ log(1 + e^{z}) − y z + (λ/2)‖w‖² to machine precision."""
    w = np.zeros(x_data.shape[1])
    for _ in range(50):
        p = _sigmoid(x_data @ w)
        grad = x_data.T @ (p - labels) + lam * w
        hessian = x_data.T @ (x_data * (p * (1 - p))[:, None]) + lam * np.eye(len(w))
        w = w - np.linalg.solve(hessian, grad)
        if np.abs(grad).max() < 1e-15:
            break
    return w


def test_logistic_regression_vjp_and_jvp_match_finite_differences_of_the_solve():
    rng = np.random.default_rng(4)
    x_data = rng.standard_normal((30, 4))
    labels = (rng.uniform(size=30) < _sigmoid(x_data @ rng.standard_normal(4))).astype(float)
    lam = 0.3
    w = _logistic_solution(x_data, labels, lam)
    p = _sigmoid(x_data @ w)
    jac_w = x_data.T @ (x_data * (p * (1 - p))[:, None]) + lam * np.eye(4)  # ∂₁F
    v = rng.standard_normal(4)
    h = 1e-5
    dw_dlam = (_logistic_solution(x_data, labels, lam + h) - _logistic_solution(x_data, labels, lam - h)) / (
        2 * h
    )
    np.testing.assert_allclose(implicit_root_vjp(jac_w, w[:, None], v), [v @ dw_dlam], rtol=1e-7)
    # θ = the labels: ∂F/∂y = −Xᵀ; a JVP along a direction of the labels against differences
    direction = rng.standard_normal(30)
    by_differences = (
        _logistic_solution(x_data, labels + h * direction, lam)
        - _logistic_solution(x_data, labels - h * direction, lam)
    ) / (2 * h)
    np.testing.assert_allclose(implicit_root_jvp(jac_w, -x_data.T, direction), by_differences, rtol=1e-7)
    # the unrolled gradient descent, differentiated in λ by hand, step by step
    step = 1.0 / (np.linalg.eigvalsh(x_data.T @ x_data)[-1] / 4 + lam)
    iterate, tangent = np.zeros(4), np.zeros(4)
    for _ in range(3000):
        p = _sigmoid(x_data @ iterate)
        curvature = x_data.T @ (x_data * (p * (1 - p))[:, None])
        tangent = tangent - step * (curvature @ tangent + lam * tangent + iterate)
        iterate = iterate - step * (x_data.T @ (p - labels) + lam * iterate)
    np.testing.assert_allclose(iterate, w, rtol=1e-12)
    np.testing.assert_allclose(implicit_root_vjp(jac_w, w[:, None], v), [v @ tangent], rtol=1e-10)


# -- lasso: the proximal-gradient fixed point ------------------------------------------------------
def _lasso(a, y, lam, eta, iterations=6000):
    """ISTA from 0, with the λ-derivative of every iterate carried along by hand (the unrolled
    iteration differentiated in forward mode)."""
    n = a.shape[1]
    x, tangent = np.zeros(n), np.zeros(n)
    for _ in range(iterations):
        z = x - eta * a.T @ (a @ x - y)
        z_tangent = tangent - eta * a.T @ (a @ tangent)
        active = np.abs(z) > eta * lam
        # S_{ηλ}(z): derivative 1 on the active set in z, −η·sign(z) in λ; 0 off it
        tangent = np.where(active, z_tangent - eta * np.sign(z), 0.0)
        x = np.sign(z) * np.maximum(np.abs(z) - eta * lam, 0)
    return x, tangent


def _lasso_jacobians(a, y, lam, eta, x):
    z = x - eta * a.T @ (a @ x - y)
    active = (np.abs(z) > eta * lam).astype(float)
    jac_x = active[:, None] * (np.eye(a.shape[1]) - eta * a.T @ a)
    jac_lam = (-eta * np.sign(z) * active)[:, None]
    return jac_x, jac_lam, active.astype(bool)


def test_lasso_fixed_point_matches_the_unrolled_iteration_finite_differences_and_the_support_system():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((15, 8)) / np.sqrt(15)
    y = a @ np.array([1.5, 0, 0, -2.0, 0, 0.8, 0, 0]) + 0.05 * rng.standard_normal(15)
    lam, eta = 0.05, 1.0 / np.linalg.eigvalsh(a.T @ a)[-1]
    x, unrolled = _lasso(a, y, lam, eta)
    jac_x, jac_lam, support = _lasso_jacobians(a, y, lam, eta, x)
    assert 1 < support.sum() < 8  # a generic support, neither empty nor full
    v = rng.standard_normal(8)
    g_lam = implicit_fixed_point_vjp(jac_x, jac_lam, v)
    np.testing.assert_allclose(g_lam, [v @ unrolled], rtol=1e-9)
    # on the support: A_SᵀA_S x_S = A_Sᵀy − λ sign(x_S), so dx_S/dλ = −(A_SᵀA_S)⁻¹ sign(x_S)
    on_support = np.zeros(8)
    a_s = a[:, support]
    on_support[support] = -np.linalg.solve(a_s.T @ a_s, np.sign(x[support]))
    np.testing.assert_allclose(g_lam, [v @ on_support], rtol=1e-9)
    h = 1e-6  # the support is locally constant: differences of the solve agree
    by_differences = (_lasso(a, y, lam + h, eta)[0] - _lasso(a, y, lam - h, eta)[0]) / (2 * h)
    np.testing.assert_allclose(g_lam, [v @ by_differences], rtol=1e-6)


# -- simplex projection --------------------------------------------------------------------------
def _project_simplex(theta):
    u = np.sort(theta)[::-1]
    cumulative = np.cumsum(u) - 1
    k = np.flatnonzero(u - cumulative / np.arange(1, len(u) + 1) > 0)[-1]
    return np.maximum(theta - cumulative[k] / (k + 1), 0)


def test_simplex_projection_fixed_point_gives_the_projector_on_the_support():
    rng = np.random.default_rng(6)
    theta = rng.standard_normal(7) * 0.6
    x_star = _project_simplex(theta)
    support = x_star > 0
    assert 1 < support.sum() < 7
    projector = np.zeros((7, 7))  # the Jacobian of the projection at θ
    s = np.flatnonzero(support)
    projector[np.ix_(s, s)] = np.eye(len(s)) - 1.0 / len(s)
    eta = 0.4  # T(x, θ) = proj(x − η(x − θ)): ∂₁T = (1 − η)P, ∂₂T = ηP
    v = rng.standard_normal(7)
    g_theta = implicit_fixed_point_vjp((1 - eta) * projector, eta * projector, v)
    np.testing.assert_allclose(g_theta, projector @ v, atol=1e-14)
    h = 1e-6
    by_differences = np.array(
        [(_project_simplex(theta + h * e) - _project_simplex(theta - h * e)) / (2 * h) for e in np.eye(7)]
    )  # row i: ∂x*/∂θ_i
    np.testing.assert_allclose(g_theta, by_differences @ v, atol=1e-8)


# -- structure -------------------------------------------------------------------------------------
def test_vjp_and_jvp_are_adjoint():
    rng = np.random.default_rng(7)
    jac_x, jac_theta = rng.standard_normal((6, 6)) + 4 * np.eye(6), rng.standard_normal((6, 3))
    v, theta_dot = rng.standard_normal(6), rng.standard_normal(3)
    lhs = v @ implicit_root_jvp(jac_x, jac_theta, theta_dot)
    rhs = implicit_root_vjp(jac_x, jac_theta, v) @ theta_dot
    assert lhs == pytest.approx(rhs, rel=1e-13)
    # and the VJP solves with the transpose: a nonsymmetric ∂₁F tells the two apart
    wrong = -jac_theta.T @ np.linalg.solve(jac_x, v)
    assert not np.allclose(implicit_root_vjp(jac_x, jac_theta, v), wrong, rtol=1e-3)


def test_fixed_point_form_is_the_root_of_t_minus_x_and_matches_its_unrolled_iteration():
    rng = np.random.default_rng(8)
    jac_x = rng.standard_normal((5, 5))
    jac_x *= 0.8 / np.linalg.norm(jac_x, 2)  # a contraction: x ← Jx + Bθ converges
    jac_theta, v = rng.standard_normal((5, 2)), rng.standard_normal(5)
    g_theta = implicit_fixed_point_vjp(jac_x, jac_theta, v)
    np.testing.assert_allclose(g_theta, implicit_root_vjp(jac_x - np.eye(5), jac_theta, v), rtol=1e-13)
    # the linear map T(x, θ) = Jx + Bθ iterated from 0: dx_k/dθ = Σ_{j<k} J^j B
    derivative, power = np.zeros((5, 2)), np.eye(5)
    for _ in range(400):
        derivative += power @ jac_theta
        power = power @ jac_x
    np.testing.assert_allclose(g_theta, derivative.T @ v, rtol=1e-12)


def test_the_rules_own_vjps_match_finite_differences():
    rng = np.random.default_rng(9)
    jac_x, jac_theta = rng.standard_normal((4, 4)) + 3 * np.eye(4), rng.standard_normal((4, 2))
    for op, third, jac in (
        (implicit_root_vjp, rng.standard_normal(4), jac_x),
        (implicit_root_jvp, rng.standard_normal(2), jac_x),
        (implicit_fixed_point_vjp, rng.standard_normal(4), 0.3 * jac_x / np.linalg.norm(jac_x, 2)),
    ):
        args = [jac, jac_theta, third]
        out, pullback = refimpl.vjp(op, *args)
        cotangent = rng.standard_normal(out.shape)
        grads = pullback(cotangent)
        h = 1e-6
        for index, (arg, grad) in enumerate(zip(args, grads, strict=True)):
            direction = rng.standard_normal(arg.shape)
            plus = [a + h * direction if i == index else a for i, a in enumerate(args)]
            minus = [a - h * direction if i == index else a for i, a in enumerate(args)]
            by_differences = cotangent @ (op(*plus) - op(*minus)) / (2 * h)
            assert np.sum(grad * direction) == pytest.approx(by_differences, rel=1e-7)


def test_singular_jacobians_are_refused():
    with pytest.raises(refimpl.InputError, match="invertible"):
        implicit_root_vjp(np.array([[1.0, 2.0], [2.0, 4.0]]), np.ones((2, 1)), np.ones(2))
    with pytest.raises(refimpl.InputError, match="I − ∂₁T"):
        implicit_fixed_point_vjp(np.eye(3), np.ones((3, 1)), np.ones(3))
