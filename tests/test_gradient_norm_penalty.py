"""IGNITE's penalty ρ‖∇G‖ and its parameter gradient ρ·Hĝ: a quadratic surrogate with an
explicit Hessian, the op's own VJP, and the official update transcribed."""

from __future__ import annotations

import numpy as np
import pytest

import refimpl
from refimpl import InputError

penalty_op = refimpl.regularizers.gradient_norm_penalty
fd_hvp = refimpl.regularizers.finite_difference_hvp


def _quadratic_surrogate(P, seed):
    """G(β) = ½βᵀAβ + bᵀβ: ∇G = Aβ + b, Hessian A (symmetric, indefinite)."""
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((P, P))
    A = (M + M.T) / 2
    b = rng.standard_normal(P)
    beta = rng.standard_normal(P)
    return A, b, beta


def test_gradient_norm_penalty_known_value():
    penalty, param_grad = penalty_op(np.array([3.0, 4.0]), np.array([1.0, -2.0]), rho=0.5)
    assert float(penalty) == 2.5
    np.testing.assert_array_equal(param_grad, [0.5, -1.0])


def test_gradient_norm_penalty_param_grad_is_the_gradient_of_rho_norm_of_the_surrogate_gradient():
    """∇_β ρ‖∇G(β)‖ by central differences in β equals the op's ρ·Hĝ (exact HVP input)."""
    A, b, beta = _quadratic_surrogate(7, seed=1)
    rho = 0.05
    g = A @ beta + b
    hvp = A @ (g / np.linalg.norm(g))
    _, param_grad = penalty_op(g, hvp, rho=rho)

    def sharpness(point):
        return float(penalty_op(A @ point + b, np.zeros(7), rho=rho)[0])

    h = 1e-6
    numeric = np.array([(sharpness(beta + h * e) - sharpness(beta - h * e)) / (2 * h) for e in np.eye(7)])
    np.testing.assert_allclose(param_grad, numeric, rtol=1e-7, atol=1e-10)


def test_gradient_norm_penalty_vjp_in_g_is_rho_times_the_unit_gradient_and_pulls_back_to_param_grad():
    A, b, beta = _quadratic_surrogate(5, seed=2)
    g = A @ beta + b
    hvp = A @ (g / np.linalg.norm(g))
    (penalty, param_grad), pullback = refimpl.vjp("gradient_norm_penalty", g, hvp, rho=0.2)
    g_g, g_hvp = pullback((np.array(1.0), None))
    np.testing.assert_allclose(g_g, 0.2 * g / np.linalg.norm(g), rtol=1e-15)
    np.testing.assert_array_equal(g_hvp, np.zeros(5))  # the penalty does not read hvp
    # the chain rule through g(β) = Aβ + b (∂g/∂β = A, symmetric) turns ḡ into param_grad
    np.testing.assert_allclose(A.T @ g_g, param_grad, rtol=1e-13)
    _, g_hvp = pullback((None, np.array([1.0, 0.0, -2.0, 0.5, 3.0])))
    np.testing.assert_allclose(g_hvp, 0.2 * np.array([1.0, 0.0, -2.0, 0.5, 3.0]), rtol=1e-15)


def test_gradient_norm_penalty_is_rho_times_the_first_order_sharpness():
    """max_{‖δ‖≤ρ} G(β + δ) − G(β) = ρ‖∇G‖ + O(ρ²), attained at δ = ρĝ."""
    A, b, beta = _quadratic_surrogate(6, seed=3)

    def G(point):  # noqa: N802
        return 0.5 * point @ A @ point + b @ point

    g = A @ beta + b
    for rho in (1e-2, 1e-3):
        penalty, _ = penalty_op(g, np.zeros(6), rho=rho)
        rise = G(beta + rho * g / np.linalg.norm(g)) - G(beta)
        # the remainder is exactly ½ρ² ĝᵀAĝ for a quadratic
        g_hat = g / np.linalg.norm(g)
        assert rise - float(penalty) == pytest.approx(0.5 * rho**2 * g_hat @ A @ g_hat, rel=1e-6)


def test_gradient_norm_penalty_with_the_fd_oracle_reproduces_the_official_update():
    """Transcription of cuong-dm/IGNITE ``train_step`` (design_baselines/gradient_ascent_IGNITE/
    trainers.py), per parameter tensor i:
    ``grads[i] + lambda_*rho/r*(dG_beta_hat_dbeta[i] - dG_beta_dbeta[i])`` with β̂ = β + r·∇G/‖∇G‖
    (``assign_add(r*dG[i]/norm)``, ``norm = tf.linalg.global_norm(dG)``)."""
    rng = np.random.default_rng(5)
    W = rng.standard_normal((3, 4)) * 0.3  # a model with two tensors: kernel (3, 4) and bias (4,)
    x = rng.standard_normal((8, 3))

    def grad_G(kernel, bias):  # noqa: N802
        """G = mean_x Σ tanh(x W + c): the mean prediction of a one-layer surrogate."""
        slope = 1 - np.tanh(x @ kernel + bias) ** 2
        return x.T @ slope / len(x), slope.sum(axis=0) / len(x)

    kernel, bias = W, rng.standard_normal(4) * 0.1
    loss_grads = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    lambda_, rho, r = 0.001, 0.05, 0.05

    # official, tensor by tensor
    dG = grad_G(kernel, bias)
    norm = np.sqrt(sum(np.sum(t * t) for t in dG))
    dG_hat = grad_G(kernel + r * dG[0] / norm, bias + r * dG[1] / norm)
    official = [loss_grads[i] + lambda_ * rho / r * (dG_hat[i] - dG[i]) for i in range(2)]

    # refimpl, on the flattened parameter vector
    flat = np.concatenate([t.reshape(-1) for t in dG])
    flat_hat = np.concatenate([t.reshape(-1) for t in dG_hat])
    hvp = fd_hvp(flat_hat, flat, r=r)
    penalty, param_grad = penalty_op(flat, hvp, rho=rho)
    total = np.concatenate([t.reshape(-1) for t in loss_grads]) + lambda_ * param_grad
    np.testing.assert_allclose(total, np.concatenate([t.reshape(-1) for t in official]), rtol=1e-14)
    assert float(penalty) == pytest.approx(rho * norm, rel=1e-15)


def test_gradient_norm_penalty_norm_survives_float32_overflow_and_underflow():
    g = np.array([3e20, 4e20], dtype=np.float32)  # Σg² = 2.5e41 > float32 max
    penalty, _ = penalty_op(g, np.zeros(2, dtype=np.float32), rho=1.0)
    assert float(penalty) == pytest.approx(5e20, rel=1e-6)
    tiny = np.array([3e-25, 4e-25], dtype=np.float32)  # Σg² = 2.5e-49 underflows to 0
    penalty, _ = penalty_op(tiny, np.zeros(2, dtype=np.float32), rho=1.0)
    assert float(penalty) == pytest.approx(5e-25, rel=1e-6)
    (_, _), pullback = refimpl.vjp("gradient_norm_penalty", tiny, np.zeros(2, dtype=np.float32), rho=1.0)
    np.testing.assert_allclose(pullback((np.float32(1.0), None))[0], [0.6, 0.8], rtol=1e-6)


def test_gradient_norm_penalty_refuses_a_zero_gradient():
    with pytest.raises(InputError, match="nonzero gradient"):
        penalty_op(np.zeros(3), np.ones(3))
