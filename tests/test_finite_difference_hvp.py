"""IGNITE's forward-difference HVP along ĝ: exact for a quadratic surrogate, O(r) otherwise."""

from __future__ import annotations

import numpy as np
import pytest

import refimpl

fd_hvp = refimpl.regularizers.finite_difference_hvp


def test_finite_difference_hvp_known_value():
    np.testing.assert_array_equal(fd_hvp(np.array([1.5, 2.0]), np.array([1.0, 2.5]), r=0.5), [1.0, -1.0])


def test_finite_difference_hvp_is_exact_for_a_quadratic_surrogate_with_explicit_hessian():
    rng = np.random.default_rng(0)
    M = rng.standard_normal((6, 6))
    H = (M + M.T) / 2
    b, beta = rng.standard_normal(6), rng.standard_normal(6)
    g = H @ beta + b  # ∇G for G = ½βᵀHβ + bᵀβ
    g_hat = g / np.linalg.norm(g)
    for r in (0.2, 0.05, 1e-3):
        estimate = fd_hvp(H @ (beta + r * g_hat) + b, g, r=r)
        np.testing.assert_allclose(estimate, H @ g_hat, rtol=1e-9, atol=1e-10)


def test_finite_difference_hvp_error_is_first_order_in_r_for_a_cubic_surrogate():
    """G(β) = ½βᵀHβ + (1/6)Σ c_i β_i³: ∇G = Hβ + ½c⊙β², Hessian H + diag(c⊙β). The forward
    difference errs by exactly (r/2)·c⊙ĝ², so halving r halves the error."""
    rng = np.random.default_rng(1)
    M = rng.standard_normal((5, 5))
    H, c, beta = (M + M.T) / 2, rng.standard_normal(5), rng.standard_normal(5)

    def grad(point):
        return H @ point + 0.5 * c * point**2

    g = grad(beta)
    g_hat = g / np.linalg.norm(g)
    exact = (H + np.diag(c * beta)) @ g_hat
    errors = []
    for r in (0.05, 0.025):
        error = fd_hvp(grad(beta + r * g_hat), g, r=r) - exact
        np.testing.assert_allclose(error, 0.5 * r * c * g_hat**2, rtol=1e-7, atol=1e-12)
        errors.append(np.linalg.norm(error))
    assert errors[0] / errors[1] == pytest.approx(2.0, rel=1e-6)


def test_finite_difference_hvp_times_lambda_rho_is_the_official_correction():
    """cuong-dm/IGNITE train_step: ``lambda_*rho/r*(dG_beta_hat_dbeta - dG_beta_dbeta)``."""
    rng = np.random.default_rng(2)
    g, g_shifted = rng.standard_normal(7), rng.standard_normal(7)
    lambda_, rho, r = 0.01, 0.2, 0.2  # the IGNITE2 scripts
    official = lambda_ * rho / r * (g_shifted - g)
    np.testing.assert_allclose(lambda_ * rho * fd_hvp(g_shifted, g, r=r), official, rtol=1e-14)
    # the default step is the IGNITE scripts' r = 0.05
    np.testing.assert_allclose(fd_hvp(g_shifted, g), (g_shifted - g) / 0.05, rtol=1e-15)
