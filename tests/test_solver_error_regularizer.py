"""ERNODE's error regularizer: OrdinaryDiffEq's EEst, the sum/mean aggregation, the VJP."""

from __future__ import annotations

import math

import numpy as np
import pytest

import refimpl
from refimpl.solvers import rk_embedded_step, solver_error_regularizer


def _eest(u_prev, u, error, atol, rtol):
    """OrdinaryDiffEq ``calculate_residuals`` + ``ODE_DEFAULT_NORM`` (RMS), transcribed:
    residual = error/(abstol + max(|uprev|, |u|)·reltol), EEst = sqrt(sum(abs2)/length)."""
    residual = error / (atol + np.maximum(np.abs(u_prev), np.abs(u)) * rtol)
    return math.sqrt(np.sum(np.abs(residual) ** 2) / residual.size)


def test_matches_ordinarydiffeq_eest_and_official_mean():
    rng = np.random.default_rng(1)
    y, y_next = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    y_hat = y_next + 1e-3 * rng.standard_normal((4, 5))
    h = np.array([0.1, 0.2, 0.05, 0.4])
    eest = np.array([_eest(y[j], y_next[j], y_next[j] - y_hat[j], 1e-3, 1e-2) for j in range(4)])
    total, errors = solver_error_regularizer(y, y_next, y_hat, h, atol=1e-3, rtol=1e-2)
    np.testing.assert_allclose(errors, eest, rtol=1e-12)
    assert float(total) == pytest.approx(np.sum(eest * h), rel=1e-12)  # paper: Σ E_j |h_j|
    mean, _ = solver_error_regularizer(y, y_next, y_hat, h, atol=1e-3, rtol=1e-2, aggregate="mean")
    assert float(mean) == pytest.approx(np.mean(eest * h), rel=1e-12)  # official: mean of EEst·dt


def test_hand_value_and_gradient():
    y, y_next, y_hat = np.array([[1.0, -2.0]]), np.array([[3.0, -1.0]]), np.array([[2.0, -1.5]])
    # s = [2, 1.5], q = [1/2, 1/3], E = sqrt(13/72)
    (total, errors), pullback = refimpl.vjp(
        solver_error_regularizer, y, y_next, y_hat, np.array([-0.2]), atol=0.5, rtol=0.5
    )
    e = math.sqrt(13 / 72)
    assert float(total) == pytest.approx(0.2 * e, rel=1e-14)
    g_y, g_y_next, g_y_hat = pullback((np.asarray(1.0), np.zeros(1)))
    q, s = np.array([0.5, 1 / 3]), np.array([2.0, 1.5])
    g_q = 0.2 * q / (2 * e)
    np.testing.assert_allclose(g_y_hat, [-g_q / s], rtol=1e-13)
    # element 0: |u_{j+1}| = 3 > 1 carries the scale; element 1: |u_j| = 2 > 1
    g_scale = -0.5 * g_q * q / s
    np.testing.assert_allclose(g_y_next, [[g_q[0] / s[0] + g_scale[0], g_q[1] / s[1]]], rtol=1e-13)
    np.testing.assert_allclose(g_y, [[0.0, -g_scale[1]]], rtol=1e-13)  # sign(u) = −1


def test_regularizer_shrinks_with_the_step_size_at_fifth_order():
    # E_j·h_j on one Tsit5 step of y' = −y: the local error is O(h⁵), so E·h is O(h⁶) with atol only
    f = lambda t, y, theta: theta[0] * y  # noqa: E731
    f_vjp = lambda t, y, theta, g: (theta[0] * g, np.array([np.sum(g * y)]))  # noqa: E731
    values = []
    for h in (0.4, 0.2):
        y = np.ones((1, 1))
        y_next, y_hat, _, _ = rk_embedded_step(f, f_vjp, y, np.array([-1.0]), t=0.0, h=h)
        values.append(
            float(solver_error_regularizer(y, y_next, y_hat, np.array([h]), atol=1e-6, rtol=0.0)[0])
        )
    assert math.log2(values[0] / values[1]) == pytest.approx(6.0, abs=0.5)


def test_refuses_zero_tolerances():
    y = np.ones((1, 2))
    with pytest.raises(refimpl.InputError, match="atol"):
        solver_error_regularizer(y, y, y, np.ones(1), atol=0.0, rtol=0.0)
