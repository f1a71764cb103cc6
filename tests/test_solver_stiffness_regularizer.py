"""SRNODE's stiffness regularizer: the eigenvalue estimate, both norms, both aggregations."""

from __future__ import annotations

import math

import numpy as np
import pytest

import refimpl
from refimpl.solvers import rk_embedded_step, solver_stiffness_regularizer
from refimpl.solvers.rk_regularizers import STABILITY_SIZE


def test_linear_ode_gives_eigenvalue_modulus():
    # f(u) = λu: k_7 − k_6 = λ(u − g_6) whatever the points, so S = |λ| in both norms
    rng = np.random.default_rng(2)
    y_next, g6 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    lam = np.array([-2.0, -30.0, 5.0])[:, None]
    h = np.array([0.1, 0.01, 0.05])
    for norm in ("ratio_of_norms", "inf_elementwise"):
        total, s = solver_stiffness_regularizer(lam * g6, lam * y_next, y_next, g6, h, stiffness_norm=norm)
        np.testing.assert_allclose(s, [2.0, 30.0, 5.0], rtol=1e-13)
        assert float(total) == pytest.approx(0.2 + 0.3 + 0.25, rel=1e-13)
    official, _ = solver_stiffness_regularizer(
        lam * g6, lam * y_next, y_next, g6, h, aggregate="official_max", tableau="dopri5"
    )
    assert float(official) == pytest.approx(30.0 / 3.3066, rel=1e-13)


def test_agrees_with_rk_embedded_step_stages():
    d = 2
    a = np.array([[-1.0, 2.0], [0.0, -5.0]])
    f = lambda t, y, theta: y @ theta.reshape(d, d)  # noqa: E731
    f_vjp = lambda t, y, theta, g: (g @ theta.reshape(d, d).T, (y.T @ g).ravel())  # noqa: E731
    y, h = np.array([[1.0, 0.5]]), 0.1
    y_next, _, _, s_step = rk_embedded_step(f, f_vjp, y, a.ravel(), t=0.0, h=h)
    # the stage-6 argument by hand (Tsit5), k_6 = f(g_6), k_7 = f(u_{n+1})
    from refimpl.solvers.rk_regularizers import TABLEAUS

    table = TABLEAUS["tsit5"]
    slopes = []
    for i in range(6):
        stage = y + h * sum(table["a"][i, j] * slopes[j] for j in range(i))
        slopes.append(f(0.0, stage, a.ravel()))
    g6 = stage
    total, s = solver_stiffness_regularizer(slopes[5], f(0.0, y_next, a.ravel()), y_next, g6, np.array([h]))
    assert float(s[0]) == pytest.approx(float(s_step), rel=1e-10)
    assert float(total) == pytest.approx(h * float(s_step), rel=1e-10)


def test_hand_gradient_ratio_of_norms():
    k6, k7 = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])
    y_next, g6 = np.array([[1.0, 1.0]]), np.array([[0.0, 0.0]])
    (total, s), pullback = refimpl.vjp(solver_stiffness_regularizer, k6, k7, y_next, g6, np.array([2.0]))
    s_value = math.sqrt(12.5)
    assert float(total) == pytest.approx(2 * s_value, rel=1e-14)
    g_k6, g_k7, g_y_next, g_g6 = pullback((np.asarray(1.0), np.zeros(1)))
    # ∂S/∂A = A/(n N(A) N(U)), ∂S/∂U = −S U/(n N(U)²); n = 2, N(A) = √12.5, N(U) = 1; times |h| = 2
    np.testing.assert_allclose(g_k7, 2 * np.array([[3.0, 4.0]]) / (2 * s_value), rtol=1e-13)
    np.testing.assert_allclose(g_k6, -g_k7, rtol=1e-15)
    np.testing.assert_allclose(g_y_next, 2 * -s_value * np.array([[1.0, 1.0]]) / 2, rtol=1e-13)
    np.testing.assert_allclose(g_g6, -g_y_next, rtol=1e-15)


def test_zero_denominator_counts_as_zero_and_official_max_picks_largest():
    k6, k7 = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[3.0, 4.0], [1.0, 3.0]])
    y_next, g6 = np.array([[1.0, 1.0], [2.0, 2.0]]), np.array([[1.0, 1.0], [1.0, 3.0]])
    total, s = solver_stiffness_regularizer(
        k6, k7, y_next, g6, np.array([0.5, 0.1]), aggregate="official_max"
    )
    assert s.tolist() == [0.0, pytest.approx(math.sqrt(2.0))]
    assert float(total) == pytest.approx(math.sqrt(2.0) / STABILITY_SIZE["tsit5"], rel=1e-13)
