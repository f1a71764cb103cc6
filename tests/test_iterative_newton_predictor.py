"""Iterative Newton predictor: against lstsq (tall) and the minimum-norm solution (wide), the
official predictor transcribed, ŵ_k = M_k Xᵀy with newton_schulz_pinv's M_k."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import iterative_newton_predictor, newton_schulz_pinv


def _official_weights(train_x, train_y, n_newton_steps):
    """src/models.py LeastSquaresModelNewtonMethod.__call__ for one sequence, in NumPy."""
    a = train_x.T @ train_x
    y = train_x.T @ train_y
    inv = a.T / np.linalg.norm(a @ a.T)
    for _ in range(n_newton_steps):
        inv = inv @ (2 * np.eye(a.shape[0]) - a @ inv)
    return inv @ y


def test_iterative_newton_predictor_matches_official_code():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 4)), rng.standard_normal(10)
    for steps in (0, 3, 5):
        w, *_ = iterative_newton_predictor(x, y, num_steps=steps)
        np.testing.assert_allclose(w, _official_weights(x, y, steps), rtol=1e-12, atol=1e-15)


def test_iterative_newton_predictor_matches_least_squares():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((30, 5)), rng.standard_normal(30)
    w, _, iterations, converged = iterative_newton_predictor(x, y, num_steps=100, tol=1e-13)
    np.testing.assert_allclose(w, np.linalg.lstsq(x, y, rcond=None)[0], rtol=1e-10)
    assert bool(converged) and int(iterations) < 30


def test_iterative_newton_predictor_underdetermined_gives_minimum_norm():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, 5)), rng.standard_normal(2)
    w, *_ = iterative_newton_predictor(x, y, num_steps=200, tol=1e-12)
    np.testing.assert_allclose(w, np.linalg.pinv(x) @ y, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(x @ w, y, rtol=1e-9)  # interpolates


def test_iterative_newton_predictor_is_m_k_times_xty():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal(6)
    for steps in (1, 2, 4):
        m, *_ = newton_schulz_pinv(x.T @ x, num_steps=steps)
        w, *_ = iterative_newton_predictor(x, y, num_steps=steps)
        np.testing.assert_allclose(w, m @ (x.T @ y), rtol=1e-12)


def test_iterative_newton_predictor_hand_example():
    x, y = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]]), np.array([2.0, 2.0, 0.0])
    w, *_ = iterative_newton_predictor(x, y, num_steps=0)
    # α = 1/‖diag(4, 16)‖_F = 1/√272; ŵ₀ = α·diag(2, 4)·(2, 4)
    np.testing.assert_allclose(w, np.array([4.0, 16.0]) / np.sqrt(272.0), rtol=1e-15)
    w, *_ = iterative_newton_predictor(x, y, num_steps=20)
    np.testing.assert_allclose(w, [1.0, 1.0], rtol=1e-12)


def test_iterative_newton_predictor_refuses_zero_design():
    with pytest.raises(refimpl.InputError, match="nonzero"):
        iterative_newton_predictor(np.zeros((3, 2)), np.ones(3))
