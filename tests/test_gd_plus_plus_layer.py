"""GD++ (von Oswald et al. §4): the per-token formula, stacked layers as a polynomial in the
context covariance, GD++ followed by the GD construction as one preconditioned GD step, the
fast backends."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import gd_plus_plus_layer, linear_self_attention, lsa_gd_construction


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _dense(X, gamma, num_context):  # noqa: N803
    """x_j − γ (1/N) Σ_{i<N} x_i x_iᵀ x_j, token by token."""
    out = X.copy()
    for b in range(X.shape[0]):
        for j in range(X.shape[1]):
            for i in range(num_context):
                out[b, j] -= gamma / num_context * X[b, i] * (X[b, i] @ X[b, j])
    return out


@pytest.mark.parametrize("num_context", [1, 3, 6])
def test_gd_plus_plus_layer_matches_per_token_formula(num_context):
    X = np.random.default_rng(0).standard_normal((2, 6, 4))
    np.testing.assert_allclose(
        gd_plus_plus_layer(X, gamma=0.3, num_context=num_context),
        _dense(X, 0.3, num_context),
        rtol=1e-13,
        atol=1e-14,
    )


def test_gd_plus_plus_layer_stacked_equals_polynomial_in_covariance():
    """k layers: each eigen-direction of C_0 (eigenvalue λ) is scaled by Π_t (1 − γ λ_t), with
    λ_{t+1} = (1 − γ λ_t)² λ_t (the covariance of the transformed context)."""
    rng = np.random.default_rng(1)
    N, D, gamma, layers = 20, 4, 0.4, 4  # noqa: N806
    X = rng.standard_normal((1, N + 2, D)) * np.array([1.5, 1.0, 0.5, 0.2])  # noqa: N806
    C_0 = X[0, :N].T @ X[0, :N] / N  # noqa: N806
    eigenvalues, basis = np.linalg.eigh(C_0)
    factor = np.ones(D)
    lam = eigenvalues.copy()
    Y = X  # noqa: N806
    for _ in range(layers):
        Y = gd_plus_plus_layer(Y, gamma=gamma, num_context=N)  # noqa: N806
        factor *= 1 - gamma * lam
        lam = (1 - gamma * lam) ** 2 * lam
    expected = X[0] @ basis @ np.diag(factor) @ basis.T
    np.testing.assert_allclose(Y[0], expected, rtol=0, atol=1e-13)
    assert np.ptp(factor) > 0.1  # the directions are scaled differently: a preconditioner


def test_gd_plus_plus_then_gd_layer_is_preconditioned_gd_step():
    """GD++ on the x-parts, then the GD construction (W_0 = 0): the query's y-slot is
    −ΔW x_q with ΔW = −η ∇L(0) H², H = I − γ C, i.e. one GD step preconditioned by H²."""
    rng = np.random.default_rng(2)
    N, D, eta, gamma = 15, 3, 0.6, 0.25  # noqa: N806
    x = rng.standard_normal((N + 1, D))
    y = rng.standard_normal((N, 1))
    x_pp = gd_plus_plus_layer(x[None], gamma=gamma, num_context=N)[0]
    tokens = np.concatenate([x_pp, np.append(y[:, 0], 0.0)[:, None]], axis=1)[None]
    out = linear_self_attention(
        tokens, *lsa_gd_construction(np.zeros((1, D)), eta=eta, num_context=N), num_context=N
    )
    H = np.eye(D) - gamma * x[:N].T @ x[:N] / N  # noqa: N806
    delta_W = eta * (y.T @ x[:N]) / N @ H @ H  # −η ∇L(0) = (η/N) Σ y_i x_iᵀ, preconditioned  # noqa: N806
    np.testing.assert_allclose(out[0, N, D], -(delta_W @ x[N])[0], rtol=0, atol=1e-14)


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
def test_gd_plus_plus_layer_backends_match_dense_formula_and_vjp(backend):
    X = np.random.default_rng(3).standard_normal((2, 7, 5))
    g = np.random.default_rng(4).standard_normal(X.shape)
    out, pullback = refimpl.vjp("gd_plus_plus_layer", X, gamma=-0.4, num_context=4, backend=_backend(backend))
    np.testing.assert_allclose(out, _dense(X, -0.4, 4), rtol=1e-12, atol=1e-12)
    _, reference_pullback = refimpl.vjp("gd_plus_plus_layer", X, gamma=-0.4, num_context=4)
    np.testing.assert_allclose(pullback(g)[0], reference_pullback(g)[0], rtol=1e-11, atol=1e-11)


def test_gd_plus_plus_layer_vjp_matches_finite_differences_of_dense_formula():
    X = np.random.default_rng(5).standard_normal((1, 5, 3))
    g = np.random.default_rng(6).standard_normal(X.shape)
    direction = np.random.default_rng(7).standard_normal(X.shape)
    _, pullback = refimpl.vjp("gd_plus_plus_layer", X, gamma=0.7, num_context=3)
    step = 1e-6
    numeric = np.sum(g * (_dense(X + step * direction, 0.7, 3) - _dense(X - step * direction, 0.7, 3))) / (
        2 * step
    )
    assert np.sum(pullback(g)[0] * direction) == pytest.approx(numeric, rel=1e-8)
