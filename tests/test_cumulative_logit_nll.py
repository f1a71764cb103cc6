"""Cumulative-logit NLL (PRESTO's likelihood): known values, normalization, tails, crossing."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import cumulative_logit_nll


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.fixture
def model():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 3))
    alpha = np.array([-1.5, 0.0, 0.8, 2.0])
    beta = rng.standard_normal((3, 1)) + 0.05 * rng.standard_normal((3, 4))
    return X, alpha, beta


def test_cumulative_logit_nll_known_value_middle_class():
    X, alpha, beta = np.zeros((1, 1)), np.array([-1.0, 1.0]), np.zeros((1, 2))
    np.testing.assert_allclose(
        cumulative_logit_nll(X, np.array([1]), alpha, beta), -math.log(math.tanh(0.5)), rtol=1e-15
    )


def test_cumulative_logit_nll_two_classes_is_logistic_regression():
    X = np.array([[1.0, 0.0], [0.5, -2.0], [-1.0, 1.0]])
    y = np.array([0, 1, 1])
    alpha, beta = np.array([0.3]), np.array([[1.2], [-0.4]])
    eta = 0.3 + X @ beta[:, 0]
    expected = [math.log1p(math.exp(-eta[0])), math.log1p(math.exp(eta[1])), math.log1p(math.exp(eta[2]))]
    np.testing.assert_allclose(
        cumulative_logit_nll(X, y, alpha, beta, reduction="none"), expected, rtol=1e-14
    )


def test_cumulative_logit_nll_class_probabilities_sum_to_one(model):
    X, alpha, beta = model
    K = alpha.shape[0] + 1
    total = sum(
        np.exp(-cumulative_logit_nll(X, np.full(X.shape[0], k), alpha, beta, reduction="none"))
        for k in range(K)
    )
    np.testing.assert_allclose(total, 1.0, rtol=1e-14)


def test_cumulative_logit_nll_matches_the_difference_of_cumulative_probabilities(model):
    # ordinalNet's cumulative logit: P(y = k) = diff([0, F(η_0), …, F(η_{T−1}), 1])
    X, alpha, beta = model
    y = np.array([0, 1, 2, 3, 4, 2, 1])
    cumulative = np.concatenate([np.zeros((7, 1)), _sigmoid(alpha + X @ beta), np.ones((7, 1))], axis=1)
    probabilities = np.diff(cumulative, axis=1)[np.arange(7), y]
    np.testing.assert_allclose(
        cumulative_logit_nll(X, y, alpha, beta), -np.log(probabilities).mean(), rtol=1e-13
    )


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_cumulative_logit_nll_gradient_matches_the_catalog_formula(model, backend):
    X, alpha, beta = model
    y = np.array([0, 1, 2, 3, 4, 2, 1])
    _, pullback = refimpl.vjp("cumulative_logit_nll", X, y, alpha, beta, reduction="sum", backend=backend)
    g_alpha, g_beta = pullback(np.array(1.0))
    eta = alpha + X @ beta
    padded = np.concatenate([np.full((7, 1), -np.inf), eta, np.full((7, 1), np.inf)], axis=1)
    rows = np.arange(7)
    upper, lower = padded[rows, y + 1], padded[rows, y]
    P = _sigmoid(upper) - _sigmoid(lower)
    f = lambda e: _sigmoid(e) * (1 - _sigmoid(e))  # noqa: E731
    G = np.zeros((7, 6))
    G[rows, y + 1] = -f(upper) / P  # ∂/∂η_k = −f(η_k)/P
    G[rows, y] += f(lower) / P  # ∂/∂η_{k−1} = +f(η_{k−1})/P
    G = G[:, 1:-1]
    np.testing.assert_allclose(g_alpha, G.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(g_beta, X.T @ G, rtol=1e-12, atol=1e-15)


def test_cumulative_logit_nll_upper_tail_keeps_float32_digits():
    # η = (30, 31): F(31) − F(30) = 1 − 1 in float32; the product form keeps the digits
    X, y = np.zeros((1, 1), dtype=np.float32), np.array([1])
    alpha, beta = np.array([30.0, 31.0], dtype=np.float32), np.zeros((1, 2), dtype=np.float32)
    expected = -(math.log(_sigmoid(31.0)) + math.log(_sigmoid(-30.0)) + math.log(-math.expm1(-1.0)))
    for backend in ("numpy", "numba"):
        loss, _ = refimpl.vjp("cumulative_logit_nll", X, y, alpha, beta, backend=backend)
        assert loss.dtype == np.float32
        np.testing.assert_allclose(loss, expected, rtol=1e-6)  # ≈ 30.46


def test_cumulative_logit_nll_close_thresholds():
    d = 1e-9  # P ≈ F(0)²·d: log(1 − e^{−d}) from expm1, not from 1 − e^{−d}
    loss = cumulative_logit_nll(np.zeros((1, 1)), np.array([1]), np.array([0.0, d]), np.zeros((1, 2)))
    np.testing.assert_allclose(loss, -(2 * math.log(0.5) + math.log(-math.expm1(-d)) + 0.5 * d), rtol=1e-12)


def test_cumulative_logit_nll_proportional_odds_never_crosses():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 4)) * 100
    beta = np.repeat(rng.standard_normal((4, 1)), 3, axis=1)
    loss = cumulative_logit_nll(X, rng.integers(0, 4, size=50), np.array([-1.0, 0.0, 1.0]), beta)
    assert np.isfinite(loss)


def test_cumulative_logit_nll_refuses_crossing_hyperplanes_and_labels_above_k():
    X = np.array([[0.0, 0.0], [0.0, 1.0]])
    alpha = np.array([-1.0, 1.0])  # ordered, yet row 1 has η = (−1, −2)
    beta = np.array([[0.0, 0.0], [0.0, -3.0]])
    with pytest.raises(refimpl.InputError, match="cross at row 1"):
        cumulative_logit_nll(X, np.array([0, 1]), alpha, beta)
    with pytest.raises(refimpl.InputError, match=r"K = len\(alpha\) \+ 1 = 3"):
        cumulative_logit_nll(X, np.array([0, 3]), alpha, np.zeros((2, 2)))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_cumulative_logit_nll_allow_crossing_gives_inf_and_zero_gradient(backend):
    X = np.array([[0.0, 0.0], [0.0, 1.0]])
    alpha, beta = np.array([-1.0, 1.0]), np.array([[0.0, 0.0], [0.0, -3.0]])
    y = np.array([1, 0])
    loss, pullback = refimpl.vjp(
        "cumulative_logit_nll", X, y, alpha, beta, reduction="none", allow_crossing=True, backend=backend
    )
    np.testing.assert_allclose(loss, [-math.log(math.tanh(0.5)), np.inf])
    g_alpha, g_beta = pullback(np.array([0.0, 1.0]))  # only the crossed row's cotangent
    np.testing.assert_array_equal(g_alpha, 0.0)
    np.testing.assert_array_equal(g_beta, 0.0)
