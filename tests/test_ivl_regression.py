"""IVL regression: the closed form against a dense solve, the 2SLS and OLS limits, dβ/dα against
finite differences, and confounding bias on a simulated linear IV model."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import ivl_regression


def _confounded(seed, n=400, p=2, m=3, beta=(1.0, -2.0)):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, m))
    hidden = rng.standard_normal(n)
    X = G @ rng.standard_normal((m, p)) + 2 * hidden[:, None] + 0.3 * rng.standard_normal((n, p))
    y = X @ np.array(beta) + 3 * hidden + 0.1 * rng.standard_normal(n)
    return X, y, G


def _closed_form(X, y, G, alpha):  # noqa: N803
    projection = G @ np.linalg.solve(G.T @ G, G.T)
    weight = projection + alpha * np.eye(len(y))
    return np.linalg.solve(X.T @ weight @ X, X.T @ weight @ y)


@pytest.mark.parametrize("alpha", [0.0, 0.05, 1.0, 30.0])
def test_matches_the_closed_form(alpha):
    X, y, G = _confounded(0, n=50)
    np.testing.assert_allclose(
        ivl_regression(X, y, G, np.array(alpha)), _closed_form(X, y, G, alpha), rtol=1e-9
    )


def test_limits_are_two_stage_least_squares_and_ols():
    X, y, G = _confounded(1, n=60)
    projection = G @ np.linalg.solve(G.T @ G, G.T)
    first_stage = projection @ X
    two_sls = np.linalg.lstsq(first_stage, y, rcond=None)[0]
    np.testing.assert_allclose(ivl_regression(X, y, G, np.array(0.0)), two_sls, rtol=1e-10)
    ols = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(ivl_regression(X, y, G, np.array(1e9)), ols, rtol=1e-6)


def test_derivative_in_alpha_matches_finite_differences_and_the_stated_formula():
    X, y, G = _confounded(2, n=40)
    rng = np.random.default_rng(3)
    for alpha in (0.1, 2.0):
        beta, pullback = refimpl.vjp(ivl_regression, X, y, G, np.array(alpha))
        cotangent = rng.standard_normal(2)
        (g_alpha,) = pullback(cotangent)
        h = 1e-6 * alpha
        numeric = (
            ivl_regression(X, y, G, np.array(alpha + h)) - ivl_regression(X, y, G, np.array(alpha - h))
        ) / (2 * h)
        np.testing.assert_allclose(g_alpha, cotangent @ numeric, rtol=1e-6)
        weight = G @ np.linalg.solve(G.T @ G, G.T) + alpha * np.eye(len(y))
        stated = -np.linalg.solve(X.T @ weight @ X, X.T @ (X @ beta - y))  # dβ/dα = −H⁻¹Xᵀ(Xβ − y)
        np.testing.assert_allclose(g_alpha, cotangent @ stated, rtol=1e-10)


def test_small_alpha_removes_the_confounding_bias_that_ols_has():
    truth = np.array([1.0, -2.0])
    X, y, G = _confounded(4, n=20000)
    error_iv = np.linalg.norm(ivl_regression(X, y, G, np.array(1e-3)) - truth)
    error_ols = np.linalg.norm(ivl_regression(X, y, G, np.array(1e6)) - truth)
    assert error_iv < 0.1 < error_ols
    # and the error grows along the path from 2SLS to OLS
    errors = [np.linalg.norm(ivl_regression(X, y, G, np.array(a)) - truth) for a in (1e-3, 0.1, 1.0, 10.0)]
    assert np.all(np.diff(errors) > 0)


def test_bad_arguments_are_refused():
    X, y = np.ones((4, 2)), np.arange(4.0)
    G = np.array([[1.0], [0.0], [0.0], [0.0]])
    with pytest.raises(refimpl.InputError, match="m >= p"):
        ivl_regression(X, y, G, np.array(0.0))
    with pytest.raises(refimpl.InputError, match="alpha"):
        ivl_regression(X, y, G, np.array(-0.5))
    with pytest.raises(refimpl.InputError, match="full column rank"):
        ivl_regression(X, y, np.ones((4, 2)), np.array(1.0))


@pytest.mark.parametrize("alpha", [0.05, 1.0, 7.0])
def test_matches_the_official_closed_form(alpha):
    """uzairakbar/causal-data-augmentation, src/regressors/ivl.py, LeastSquaresClosedFormIVlike._fit:
    least squares on K·GX, K·y with K = (√(1+α) − √α)·P_G + √α·I (transcribed)."""
    rng = np.random.default_rng(11)
    G = rng.standard_normal((40, 3))
    X = G @ rng.standard_normal((3, 2)) + rng.standard_normal((40, 2))
    y = X @ np.array([1.5, -0.5]) + rng.standard_normal(40)
    pi_g = G @ np.linalg.pinv(G.T @ G) @ G.T
    K = (np.sqrt(1 + alpha) - np.sqrt(alpha)) * pi_g + np.sqrt(alpha) * np.eye(40)
    official = np.linalg.lstsq(K @ X, K @ y, rcond=None)[0]
    np.testing.assert_allclose(ivl_regression(X, y, G, np.array(alpha)), official, rtol=1e-10)
