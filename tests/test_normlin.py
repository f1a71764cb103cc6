"""normlin (OLinear): A = row_L1_normalize(softplus(W)), Y = A V; rows of A sum to 1."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import normlin


def _inputs(seed=0, n=5, d=3, batch=(2,)):
    rng = np.random.default_rng(seed)
    return np.eye(n) + rng.standard_normal((n, n)), rng.standard_normal((*batch, n, d))


def test_normlin_rows_are_convex_weights():
    w, v = _inputs()
    identity_values = np.broadcast_to(np.eye(5), (1, 5, 5))
    a = normlin(w, identity_values)[0]  # A V with V = I gives A
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-14)
    assert np.all(a > 0)
    y = normlin(w, v)
    assert np.all(y <= v.max(axis=-2, keepdims=True) + 1e-12)  # per feature, inside the hull of the tokens
    assert np.all(y >= v.min(axis=-2, keepdims=True) - 1e-12)
    constant = np.broadcast_to(np.array([1.0, -2.0, 3.0]), (5, 3))
    np.testing.assert_allclose(normlin(w, constant), constant, rtol=1e-14)


def test_normlin_matches_a_direct_formula():
    w, v = _inputs(1)
    s = np.log1p(np.exp(w))
    a = s / np.abs(s).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(normlin(w, v), np.einsum("ij,bjd->bid", a, v), rtol=1e-13)


def test_normlin_backward_matches_finite_differences():
    w, v = _inputs(2)
    g = np.random.default_rng(9).standard_normal(v.shape)
    _, pullback = refimpl.vjp(normlin, w, v)
    g_w, g_v = pullback(g)
    h = 1e-6
    for array, grad, which in ((w, g_w, 0), (v, g_v, 1)):
        for index in np.ndindex(array.shape):
            step = np.zeros_like(array)
            step[index] = h
            args_plus = [w, v]
            args_minus = [w, v]
            args_plus[which] = array + step
            args_minus[which] = array - step
            fd = np.sum(g * (normlin(*args_plus) - normlin(*args_minus))) / (2 * h)
            np.testing.assert_allclose(grad[index], fd, atol=1e-8)


def test_normlin_weight_gradient_is_orthogonal_to_row_rescaling():
    # S ↦ c_i S on row i leaves A unchanged: Σ_j S̄_ij S_ij = 0, i.e. Σ_j W̄_ij S_ij/sigmoid(W_ij) = 0
    w, v = _inputs(3)
    _, pullback = refimpl.vjp(normlin, w, v)
    g_w, _ = pullback(np.random.default_rng(4).standard_normal(v.shape))
    s = np.log1p(np.exp(w))
    sigmoid = 1 / (1 + np.exp(-w))
    np.testing.assert_allclose((g_w / sigmoid * s).sum(axis=1), 0.0, atol=1e-12)


def test_normlin_matches_pytorch_normalize_softplus():
    torch = pytest.importorskip("torch")
    w, v = _inputs(5)
    g = np.random.default_rng(6).standard_normal(v.shape)
    wt, vt = torch.from_numpy(w).requires_grad_(), torch.from_numpy(v).requires_grad_()
    a = torch.nn.functional.normalize(torch.nn.functional.softplus(wt), p=1, dim=-1)
    yt = a @ vt
    yt.backward(torch.from_numpy(g))
    y, pullback = refimpl.vjp(normlin, w, v)
    g_w, g_v = pullback(g)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(g_w, wt.grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(g_v, vt.grad.numpy(), rtol=1e-12)


def test_normlin_clamped_row_uses_the_constant_norm():
    w, v = _inputs(7, n=3, batch=())
    w[1] = -60.0
    y = normlin(w, v)
    s_row = np.log1p(np.exp(-60.0))
    np.testing.assert_allclose(y[1], (s_row / 1e-12) * v.sum(axis=0), rtol=1e-12)
