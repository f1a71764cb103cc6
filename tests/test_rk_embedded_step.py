"""Embedded RK 5(4) step: tableau order conditions, order of accuracy, the embedded error estimate,
the stiffness estimate, and the discrete adjoint against finite differences (ERNODE's R_E)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import refimpl
from refimpl.solvers import rk_embedded_step, solver_error_regularizer
from refimpl.solvers.rk_regularizers import TABLEAUS


def forced(t, y, theta):  # y' = θ y + cos t
    return theta[0] * y + math.cos(t)


def forced_vjp(t, y, theta, g):
    return theta[0] * g, np.array([np.sum(g * y)])


def forced_exact(t0, y0, t):  # θ = −1: y = (cos t + sin t)/2 + C e^{−t}
    constant = (y0 - 0.5 * (math.cos(t0) + math.sin(t0))) * math.exp(t0)
    return 0.5 * (math.cos(t) + math.sin(t)) + constant * math.exp(-t)


@pytest.mark.parametrize("tableau", ["tsit5", "dopri5"])
def test_tableau_satisfies_order_conditions(tableau):
    table = TABLEAUS[tableau]
    a, c, e = table["a"], table["c"], table["error"]
    b = a[6]
    b_hat = b - e
    np.testing.assert_allclose(a.sum(axis=1), c, atol=1e-14)  # row sums are the nodes
    for weights, order in ((b, 5), (b_hat, 4)):  # bushy-tree conditions Σ w_i c_i^{q−1} = 1/q
        for q in range(1, order + 1):
            assert np.dot(weights, c ** (q - 1)) == pytest.approx(1.0 / q, abs=1e-14)
    assert np.dot(b, c**5) != pytest.approx(1 / 6, abs=1e-6)  # order 5 exactly, not 6


@pytest.mark.parametrize("tableau", ["tsit5", "dopri5"])
def test_order_of_accuracy_by_halving_h(tableau):
    def integrate(steps, embedded):
        y, t, h = np.ones((1, 1)), 0.0, 1.0 / steps
        for _ in range(steps):
            y_next, y_hat, _, _ = rk_embedded_step(
                forced, forced_vjp, y, np.array([-1.0]), t=t, h=h, tableau=tableau
            )
            y, t = (y_hat if embedded else y_next), t + h
        return abs(float(y[0, 0]) - forced_exact(0.0, 1.0, 1.0))

    for embedded, order in ((False, 5), (True, 4)):
        errors = [integrate(n, embedded) for n in (4, 8, 16)]
        rates = [math.log2(errors[k] / errors[k + 1]) for k in range(2)]
        assert rates[-1] == pytest.approx(order, abs=0.35), (embedded, rates)


@pytest.mark.parametrize("tableau", ["tsit5", "dopri5"])
def test_error_estimate_is_difference_of_the_two_solutions(tableau):
    table = TABLEAUS[tableau]
    b_hat = table["a"][6] - table["error"]
    y, theta, t, h = np.array([[0.3, -1.2]]), np.array([-1.0]), 0.4, 0.3
    y_next, y_hat, error, _ = rk_embedded_step(forced, forced_vjp, y, theta, t=t, h=h, tableau=tableau)
    # the stages again, by hand, and the order-4 combination with b̂
    slopes, stages = [], []
    for i in range(7):
        stage = y + h * sum(table["a"][i, j] * slopes[j] for j in range(i))
        stages.append(stage)
        slopes.append(forced(t + table["c"][i] * h, stage, theta))
    y_hat_direct = y + h * sum(b_hat[i] * slopes[i] for i in range(7))
    np.testing.assert_allclose(y_next, stages[6], rtol=1e-14)
    np.testing.assert_allclose(y_hat, y_hat_direct, rtol=1e-13)
    np.testing.assert_allclose(error, y_next - y_hat_direct, rtol=1e-9, atol=1e-16)
    # and it estimates the local error of the embedded solution: exact − ŷ ≈ error for small h
    for step in (0.1, 0.05):
        y_next, y_hat, error, _ = rk_embedded_step(forced, forced_vjp, y, theta, t=t, h=step, tableau=tableau)
        exact = np.array([[forced_exact(t, v, t + step) for v in y[0]]])
        np.testing.assert_allclose(exact - y_hat, error, rtol=0.1)


def test_stiffness_estimate_is_eigenvalue_modulus_for_scalar_linear_ode():
    f = lambda t, y, theta: theta[0] * y  # noqa: E731
    f_vjp = lambda t, y, theta, g: (theta[0] * g, np.array([np.sum(g * y)]))  # noqa: E731
    for tableau in ("tsit5", "dopri5"):
        *_, s = rk_embedded_step(
            f, f_vjp, np.full((2, 3), 0.7), np.array([-7.0]), t=0.0, h=0.05, tableau=tableau
        )
        assert float(s) == pytest.approx(7.0, rel=1e-12)
    # diagonal A: the estimate lies between the smallest and largest |λ|
    a = np.diag([-1.0, -40.0])
    lin = lambda t, y, theta: y @ theta.reshape(2, 2)  # noqa: E731
    lin_vjp = lambda t, y, theta, g: (g @ theta.reshape(2, 2).T, (y.T @ g).ravel())  # noqa: E731
    *_, s = rk_embedded_step(lin, lin_vjp, np.array([[1.0, 1.0]]), a.ravel(), t=0.0, h=0.01)
    assert 1.0 <= float(s) <= 40.0


def test_error_regularizer_gradient_through_unrolled_steps_matches_finite_differences():
    """The catalog's test: R_E of a linear ODE y' = A_θ y over fixed steps, d R_E/dθ by the
    discrete adjoint (step VJPs chained through the regularizer) against central differences."""
    rng = np.random.default_rng(0)
    d = 3
    theta0 = (rng.standard_normal((d, d)) * 0.5 - np.eye(d)).ravel()
    y0 = rng.standard_normal((1, d))
    steps = [0.3, 0.2, 0.25]

    def lin(t, y, theta):
        return y @ theta.reshape(d, d)

    def lin_vjp(t, y, theta, g):
        return g @ theta.reshape(d, d).T, (y.T @ g).ravel()

    def regularizer(theta, with_gradient=False):
        y, t = y0, 0.0
        starts, nexts, hats, pullbacks = [], [], [], []
        for h in steps:
            outputs, pullback = refimpl.vjp(rk_embedded_step, lin, lin_vjp, y, theta, t=t, h=h)
            starts.append(y.ravel())
            nexts.append(outputs[0].ravel())
            hats.append(outputs[1].ravel())
            pullbacks.append(pullback)
            y, t = outputs[0], t + h
        args = (np.array(starts), np.array(nexts), np.array(hats), np.array(steps))
        (value, errors), reg_pullback = refimpl.vjp(solver_error_regularizer, *args, atol=1e-3, rtol=1e-3)
        if not with_gradient:
            return float(value)
        g_starts, g_nexts, g_hats = reg_pullback((np.asarray(1.0), np.zeros(len(steps))))
        g_theta, g_carry = np.zeros_like(theta), np.zeros((1, d))
        for j in range(len(steps) - 1, -1, -1):
            g_y_next = g_nexts[j][None] + g_carry
            cotangents = (g_y_next, g_hats[j][None], np.zeros((1, d)), np.asarray(0.0))
            g_y, g_th = pullbacks[j](cotangents)
            g_theta += g_th
            g_carry = g_y + g_starts[j][None]
        return float(value), g_theta

    _, gradient = regularizer(theta0, with_gradient=True)
    step = 1e-4  # R_E reads y_next − y_hat ~ 1e-4: a smaller step loses its digits to rounding
    numeric = np.array(
        [
            (regularizer(theta0 + step * e) - regularizer(theta0 - step * e)) / (2 * step)
            for e in np.eye(d * d)
        ]
    )
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-10)
    assert np.abs(gradient).max() > 1e-3  # the test is not vacuous
