"""stn_hyperlinear: the official HyperLinear.forward, hand values, structure in h, and the VJP."""

import numpy as np

import refimpl
from refimpl.layers import stn_hyperlinear
from refimpl_conformance.cases.layers.stn import stn_layer


def _layer(seed, B=5, I=4, O=3, K=2):
    return stn_layer(np.random.default_rng(seed), B, I, O, K)


def _official_forward(x, h, W, b, W_h, b_h, U, s):
    """NumPy transcription of ``HyperLinear.forward`` (cnn/hypermodels/hyperlinear.py)."""
    output = x @ W.T + b  # F.linear(input, elem_weight, elem_bias)
    output = output * s  # output *= elem_scalar
    hnet_scalars = h @ U.T  # htensor_to_scalars, bias=False
    out_features = W.shape[0]
    hnet_out = hnet_scalars[:, :out_features] * (x @ W_h.T)
    hnet_out = hnet_out + hnet_scalars[:, out_features:] * b_h
    return output + hnet_out


def test_stn_hyperlinear_matches_the_official_forward():
    args = _layer(0)
    np.testing.assert_allclose(stn_hyperlinear(*args), _official_forward(*args), rtol=1e-14, atol=1e-14)


def test_stn_hyperlinear_one_unit_by_hand():
    x, h = np.array([[1.0, 2.0]]), np.array([[3.0]])
    W, b, W_h, b_h = np.array([[1.0, 1.0]]), np.array([0.5]), np.array([[1.0, 0.0]]), np.array([2.0])
    U, s = np.array([[1.0], [-1.0]]), np.array([2.0])
    out, pullback = refimpl.vjp(stn_hyperlinear, x, h, W, b, W_h, b_h, U, s)
    np.testing.assert_allclose(out, [[2.0 * 3.5 + 3.0 * 1.0 - 3.0 * 2.0]])
    g_x, g_h, g_W, g_b, g_W_h, g_b_h, g_U, g_s = pullback(np.ones((1, 1)))
    np.testing.assert_allclose(g_x, [[5.0, 2.0]])
    np.testing.assert_allclose(g_h, [[1.0 - 2.0]])
    np.testing.assert_allclose(g_W, [[2.0, 4.0]])
    np.testing.assert_allclose(g_W_h, [[3.0, 6.0]])
    np.testing.assert_allclose(g_U, [[3.0], [6.0]])
    np.testing.assert_allclose(g_s, [3.5])
    np.testing.assert_allclose(g_b, [2.0])
    np.testing.assert_allclose(g_b_h, [-3.0])


def test_stn_hyperlinear_with_zero_gates_is_the_scaled_linear_layer():
    x, h, W, b, W_h, b_h, U, s = _layer(1)
    np.testing.assert_allclose(stn_hyperlinear(x, h, W, b, W_h, b_h, np.zeros_like(U), s), s * (x @ W.T + b))


def test_stn_hyperlinear_is_affine_in_the_hyperparameters():
    x, h, W, b, W_h, b_h, U, s = _layer(2)
    h2 = np.random.default_rng(3).standard_normal(h.shape)
    t = 0.3
    mixed = stn_hyperlinear(x, (1 - t) * h + t * h2, W, b, W_h, b_h, U, s)
    ends = (1 - t) * stn_hyperlinear(x, h, W, b, W_h, b_h, U, s) + t * stn_hyperlinear(
        x, h2, W, b, W_h, b_h, U, s
    )
    np.testing.assert_allclose(mixed, ends, atol=1e-13)
    # swapping the weight-gate and bias-gate halves of U changes the output
    swapped = np.concatenate([U[3:], U[:3]])
    assert (
        np.abs(
            stn_hyperlinear(x, h, W, b, W_h, b_h, swapped, s) - stn_hyperlinear(x, h, W, b, W_h, b_h, U, s)
        ).max()
        > 1e-3
    )


def test_stn_hyperlinear_vjp_matches_central_differences():
    args = _layer(4)
    g = np.random.default_rng(5).standard_normal((5, 3))
    _, pullback = refimpl.vjp(stn_hyperlinear, *args)
    grads = pullback(g)
    h = 1e-6
    for index, (arg, grad) in enumerate(zip(args, grads, strict=True)):
        direction = np.random.default_rng(30 + index).standard_normal(arg.shape)
        plus, minus = list(args), list(args)
        plus[index], minus[index] = arg + h * direction, arg - h * direction
        fd = np.sum((stn_hyperlinear(*plus) - stn_hyperlinear(*minus)) * g) / (2 * h)
        np.testing.assert_allclose(np.sum(grad * direction), fd, rtol=1e-8, atol=1e-9)
