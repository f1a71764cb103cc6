"""Group soft thresholding: the group-ℓ2 prox (argmin checked by SciPy), Moreau's decomposition with the
ball projection, firm non-expansiveness (the catalog's test), the hand VJP, the zero row and τ = 0."""

import numpy as np
import pytest
from scipy.optimize import minimize

import refimpl
from refimpl.solvers import group_soft_threshold


def test_group_soft_threshold_matches_hand_values():
    y = group_soft_threshold(np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]]), t=0.5, beta=2.0)
    np.testing.assert_allclose(y, [[2.4, 3.2], [0.0, 0.0], [0.0, 0.0]], rtol=1e-15)


@pytest.mark.parametrize("beta", [0.2, 1.0, 3.0])
def test_group_soft_threshold_is_the_argmin_of_the_prox_problem(beta):
    rng = np.random.default_rng(0)
    u = rng.standard_normal((4, 3)) * 1.5
    t = 0.8
    y = group_soft_threshold(u, t=t, beta=beta)
    for g in range(4):

        def objective(z, g=g):
            return 0.5 * np.sum((z - u[g]) ** 2) + t * beta * np.sqrt(np.sum(z * z) + 1e-18)

        result = minimize(
            objective,
            u[g] * 0.5,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000},
        )
        np.testing.assert_allclose(y[g], result.x, atol=1e-5)
        # no point found by SciPy does better (the 1e-18 smoothing adds 1e-9·tβ at 0)
        assert objective(y[g]) <= result.fun + 1e-8


def test_moreau_decomposition_with_the_ball_projection():
    # u = prox_{τ‖·‖}(u) + proj_{‖·‖ ≤ τ}(u) row by row
    u = np.random.default_rng(1).standard_normal((20, 5)) * 2
    tau = 2.0
    norms = np.linalg.norm(u, axis=1, keepdims=True)
    projection = u * np.minimum(1, tau / norms)
    np.testing.assert_allclose(group_soft_threshold(u, t=1.0, beta=tau) + projection, u, atol=1e-14)


def test_group_soft_threshold_is_firmly_nonexpansive():
    rng = np.random.default_rng(2)
    for _ in range(50):
        a, b = rng.standard_normal((1, 4)) * 2, rng.standard_normal((1, 4)) * 2
        pa, pb = group_soft_threshold(a, t=1.0, beta=1.5), group_soft_threshold(b, t=1.0, beta=1.5)
        assert np.sum((pa - pb) ** 2) <= np.sum((pa - pb) * (a - b)) + 1e-12


def test_group_soft_threshold_vjp_matches_the_stated_formula_and_zero_below():
    u = np.array([[3.0, 4.0], [0.3, 0.4]])
    g = np.array([[1.0, -2.0], [5.0, 6.0]])
    _, vjp = refimpl.vjp(group_soft_threshold, u, t=1.0, beta=1.0)
    g_u = vjp(g)[0]
    u_hat = np.array([0.6, 0.8])
    expected = g[0] - 0.2 * (g[0] - u_hat * (u_hat @ g[0]))
    np.testing.assert_allclose(g_u[0], expected, rtol=1e-15)
    np.testing.assert_array_equal(g_u[1], [0.0, 0.0])


def test_zero_threshold_is_the_identity_with_the_zero_row():
    u = np.array([[0.0, 0.0], [1.0, -2.0]])
    y, vjp = refimpl.vjp(group_soft_threshold, u, t=1.0, beta=0.0)
    np.testing.assert_array_equal(y, u)
    np.testing.assert_array_equal(vjp(np.ones_like(u))[0], np.ones_like(u))


def test_huge_rows_do_not_overflow_in_float32():
    u = np.array([[3e25, 4e25]], dtype=np.float32)
    y = group_soft_threshold(u, t=1.0, beta=1e25)
    np.testing.assert_allclose(y, [[2.4e25, 3.2e25]], rtol=1e-6)
