"""LayerNorm: invariances, gradient identities and the constant-row edge case."""

import numpy as np

import refimpl
from refimpl.layers import layer_norm


def _inputs(seed=0, shape=(4, 9)):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])


def test_layer_norm_is_invariant_to_positive_affine_maps_of_a_row():
    x, gamma, beta = _inputs()
    eps = 1e-12
    np.testing.assert_allclose(
        layer_norm(3.5 * x - 2.0, gamma, beta, eps=eps), layer_norm(x, gamma, beta, eps=eps), atol=1e-9
    )


def test_layer_norm_input_gradient_sums_to_zero_and_is_orthogonal_to_x_hat():
    x, gamma, beta = _inputs(1)
    eps = 1e-12
    _, pullback = refimpl.vjp(layer_norm, x, gamma, beta, eps=eps)
    g_x, _, _ = pullback(np.random.default_rng(2).standard_normal(x.shape))
    x_hat = layer_norm(x, np.ones(x.shape[-1]), np.zeros(x.shape[-1]), eps=eps)
    np.testing.assert_allclose(g_x.sum(axis=-1), 0.0, atol=1e-10)
    np.testing.assert_allclose((g_x * x_hat).sum(axis=-1), 0.0, atol=1e-9)


def test_layer_norm_constant_row_gives_beta_and_a_finite_gradient():
    _, gamma, beta = _inputs(3, (1, 6))
    x = np.full((1, 6), 7.0)
    y, pullback = refimpl.vjp(layer_norm, x, gamma, beta)
    np.testing.assert_array_equal(y[0], beta)
    g_x, g_gamma, g_beta = pullback(np.ones((1, 6)))
    assert np.all(np.isfinite(g_x))
    np.testing.assert_allclose(g_beta, 1.0)
    np.testing.assert_allclose(g_gamma, 0.0)


def test_layer_norm_parameter_gradients_sum_over_all_batch_dimensions():
    x, gamma, beta = _inputs(4, (2, 3, 5))
    g_y = np.random.default_rng(5).standard_normal(x.shape)
    _, pullback = refimpl.vjp(layer_norm, x, gamma, beta)
    _, g_gamma, g_beta = pullback(g_y)
    x_hat = layer_norm(x, np.ones(5), np.zeros(5))
    np.testing.assert_allclose(g_beta, g_y.sum(axis=(0, 1)))
    np.testing.assert_allclose(g_gamma, (g_y * x_hat).sum(axis=(0, 1)))


def test_layer_norm_float32_stays_float32_and_close_to_float64():
    x, gamma, beta = _inputs(6, (8, 33))
    y32 = layer_norm(x.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, layer_norm(x, gamma, beta), atol=1e-5)
