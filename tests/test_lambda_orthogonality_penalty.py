"""λ-orthogonality: Eq. 6 values, the λ switch, orthogonal W, WWᵀ vs WᵀW, the hand VJP, the α → ∞ limit."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import lambda_orthogonality_penalty


def _sigmoid(u):
    return 1 / (1 + math.exp(-u))


def test_hand_computed_value_and_gradient():
    W = np.array([[2.0, 0.0], [0.0, 1.0]])  # E = diag(3, 0), x = 3
    value, pullback = refimpl.vjp(lambda_orthogonality_penalty, W, alpha=1.0, lam=3.0)
    np.testing.assert_allclose(value, 1.5, rtol=1e-15)  # σ(0)·3
    (g_W,) = pullback(np.array(1.0))
    # ∂L/∂x = s + α s(1 − s) x = 1/2 + 3/4; ∂x/∂W = 2 E W / x = diag(4, 0)
    np.testing.assert_allclose(g_W, [[5.0, 0.0], [0.0, 0.0]], rtol=1e-15)


def test_matches_eq6_on_a_random_square_map():
    rng = np.random.default_rng(0)
    W = np.eye(6) + 0.4 * rng.standard_normal((6, 6))
    x = np.linalg.norm(W @ W.T - np.eye(6))
    for alpha, lam in ((0.5, 0.0), (2.0, x / 2), (10.0, x + 0.1)):
        expected = _sigmoid(alpha * (x - lam)) * x
        np.testing.assert_allclose(
            lambda_orthogonality_penalty(W, alpha=alpha, lam=lam), expected, rtol=1e-13
        )


def test_default_lambda_is_the_papers_twelve():
    rng = np.random.default_rng(1)
    W = 1.6 * rng.standard_normal((5, 5))
    x = np.linalg.norm(W @ W.T - np.eye(5))
    np.testing.assert_allclose(
        lambda_orthogonality_penalty(W, alpha=0.3), _sigmoid(0.3 * (x - 12)) * x, rtol=1e-13
    )


def test_orthogonal_map_gives_zero_penalty_and_zero_gradient():
    rng = np.random.default_rng(2)
    permutation = np.eye(5)[[3, 1, 4, 0, 2]] * np.array([1.0, -1.0, 1.0, 1.0, -1.0])[:, None]
    value, pullback = refimpl.vjp(lambda_orthogonality_penalty, permutation, alpha=2.0, lam=1.0)
    assert float(value) == 0.0
    np.testing.assert_array_equal(pullback(np.array(1.0))[0], 0.0)
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))  # orthogonal up to round-off
    assert float(lambda_orthogonality_penalty(Q, alpha=2.0, lam=1.0)) < 1e-14


def test_switch_turns_the_penalty_off_below_lambda():
    rng = np.random.default_rng(3)
    W = np.eye(4) + 0.2 * rng.standard_normal((4, 4))
    x = np.linalg.norm(W @ W.T - np.eye(4))
    below = float(lambda_orthogonality_penalty(W, alpha=50.0, lam=x + 1.0))
    above = float(lambda_orthogonality_penalty(W, alpha=50.0, lam=x - 1.0))
    assert below < 1e-20 * x  # σ(−50)·x: the Heaviside limit H(x − λ)·x = 0 of Eq. 5
    np.testing.assert_allclose(above, x, rtol=1e-15)  # σ(50) = 1 − 2e−22: H·x = x


def test_square_map_uses_the_same_deviation_for_wwt_and_wtw():
    rng = np.random.default_rng(4)
    W = rng.standard_normal((5, 5))
    # Eq. 3 writes WᵀW, Eqs. 5–6 WWᵀ: for square W the Frobenius deviations coincide
    np.testing.assert_allclose(
        lambda_orthogonality_penalty(W, alpha=1.0, lam=2.0),
        lambda_orthogonality_penalty(W.T, alpha=1.0, lam=2.0),
        rtol=1e-12,
    )


def test_rectangular_map_uses_the_row_gram_matrix():
    rng = np.random.default_rng(5)
    W = 0.3 * rng.standard_normal((2, 5))  # far from orthonormal rows, and further from columns
    x_rows = np.linalg.norm(W @ W.T - np.eye(2))
    x_columns = np.linalg.norm(W.T @ W - np.eye(5))
    assert abs(x_rows - x_columns) > 0.5
    np.testing.assert_allclose(
        lambda_orthogonality_penalty(W, alpha=1.0, lam=1.0), _sigmoid(x_rows - 1) * x_rows, rtol=1e-13
    )
    # tall W (m > n): WWᵀ has rank n, so x ≥ √(m − n) however W is chosen
    tall = np.linalg.qr(rng.standard_normal((6, 2)))[0]
    np.testing.assert_allclose(
        lambda_orthogonality_penalty(tall, alpha=1.0, lam=0.0), _sigmoid(2.0) * 2.0, rtol=1e-12
    )


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_gradient_matches_the_derivation(backend):
    rng = np.random.default_rng(6)
    W = np.eye(4) + 0.5 * rng.standard_normal((4, 4))
    alpha, lam = 1.7, 1.0
    _, pullback = refimpl.vjp("lambda_orthogonality_penalty", W, alpha=alpha, lam=lam, backend=backend)
    (g_W,) = pullback(np.array(0.6))
    E = W @ W.T - np.eye(4)
    x = np.linalg.norm(E)
    s = _sigmoid(alpha * (x - lam))
    expected = 0.6 * (s + alpha * s * (1 - s) * x) * 2 * E @ W / x
    np.testing.assert_allclose(g_W, expected, rtol=1e-12)
