"""attsets_pooling (AttSets): the official attsets_fc transcribed, permutation invariance, the convex
hull property, masking equals slicing, the bias's zero effect, hand values."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.layers import attsets_pooling


def _params(rng, D, scale=1.0):  # noqa: N803
    return rng.standard_normal((D, D)) * scale / math.sqrt(D), rng.standard_normal(D) * 0.3


def _official_attsets_fc(x, w, b):
    """Yang7879/AttSets main_AttSets.py attsets_fc, out_ele_num = 1, option 1, in NumPy: the fc on
    the (B·N, D) rows (``tf.nn.bias_add(tf.matmul(x, w), b)``), reshape to (B, N, 1, D),
    ``tf.nn.softmax(weights, 1)`` over the set axis, tile x, multiply, ``reduce_sum(axis=1)``."""
    B, N, D = x.shape
    weights = (x.reshape(-1, D) @ w + b).reshape(B, N, 1, D)
    e = np.exp(weights - weights.max(axis=1, keepdims=True))
    weights = e / e.sum(axis=1, keepdims=True)
    tiled = x[:, :, None, :]  # tf.tile(..., [1, 1, out_ele_num, 1]) with out_ele_num = 1
    return (tiled * weights).sum(axis=1).reshape(B, D)


def test_matches_official_attsets_fc():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7, 5))
    W, b = _params(rng, 5, 2.0)
    np.testing.assert_allclose(attsets_pooling(x, W, b), _official_attsets_fc(x, W, b), rtol=1e-13)


def test_permutation_invariant_over_the_set():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 4))
    W, b = _params(rng, 4, 2.0)
    mask = np.array([[1, 1, 0, 1, 1, 1], [0, 1, 1, 1, 0, 1]], dtype=bool)
    perm = rng.permutation(6)
    np.testing.assert_allclose(
        attsets_pooling(x[:, perm], W, b, mask[:, perm]), attsets_pooling(x, W, b, mask), rtol=1e-13
    )


def test_output_in_per_feature_convex_hull_of_present_elements():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 5, 3)) * 3
    W, b = _params(rng, 3, 5.0)
    mask = rng.uniform(size=(4, 5)) < 0.6
    mask[:, 0] = True
    o = attsets_pooling(x, W, b, mask)
    low = np.where(mask[:, :, None], x, np.inf).min(axis=1)
    high = np.where(mask[:, :, None], x, -np.inf).max(axis=1)
    assert np.all(o >= low - 1e-12) and np.all(o <= high + 1e-12)
    # and strictly inside where the present values of a feature differ (every weight > 0)
    assert np.all((o > low) | (low == high)) and np.all((o < high) | (low == high))


def test_masking_equals_slicing_and_masked_elements_get_no_gradient():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 5, 4))
    W, b = _params(rng, 4, 2.0)
    mask = np.array([[True, False, True, True, False]])
    kept = x[:, mask[0]]
    # a huge masked value must not leak (−∞ semantics, never a 0 score)
    x_big = x.copy()
    x_big[0, ~mask[0]] = 50.0
    np.testing.assert_allclose(attsets_pooling(x_big, W, b, mask), attsets_pooling(kept, W, b), rtol=1e-14)
    g = rng.standard_normal((1, 4))
    _, pullback = refimpl.vjp(attsets_pooling, x_big, W, b, mask)
    g_x, g_W, _ = pullback(g)
    _, pullback_kept = refimpl.vjp(attsets_pooling, kept, W, b)
    g_kept, g_W_kept, _ = pullback_kept(g)
    np.testing.assert_array_equal(g_x[0, ~mask[0]], 0.0)
    np.testing.assert_allclose(g_x[:, mask[0]], g_kept, rtol=1e-13)
    np.testing.assert_allclose(g_W, g_W_kept, rtol=1e-13)


def test_single_element_set_returns_it_and_no_score_gradient():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 1, 3))
    W, b = _params(rng, 3)
    o, pullback = refimpl.vjp(attsets_pooling, x, W, b)
    np.testing.assert_array_equal(o, x[:, 0])
    g = rng.standard_normal((2, 3))
    g_x, g_W, g_b = pullback(g)
    np.testing.assert_array_equal(g_x[:, 0], g)  # S = 1: X̄ = ō, C̄ = 0
    np.testing.assert_array_equal(g_W, 0.0)
    np.testing.assert_array_equal(g_b, 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bias_is_constant_over_the_set_and_gets_zero_cotangent(dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 5))
    W, b = _params(rng, 5)
    g = rng.standard_normal((3, 5))
    o0, pullback0 = refimpl.vjp(attsets_pooling, x, W, np.zeros(5))
    grads0 = pullback0(g)
    o, pullback = refimpl.vjp(attsets_pooling, *(a.astype(dtype) for a in (x, W, b * 1e30)))
    grads = pullback(g.astype(dtype))
    tol = 1e-13 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(o, o0, rtol=tol, atol=tol)
    np.testing.assert_array_equal(grads[2], 0.0)
    for got, expected in zip(grads[:2], grads0[:2]):
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * np.abs(expected).max())
    # with a moderate bias the official formula (bias added before the softmax) agrees
    np.testing.assert_allclose(attsets_pooling(x, W, b), _official_attsets_fc(x, W, b), rtol=1e-13)


def test_hand_computed_weights_quarter_three_quarters():
    x = np.array([[[1.0, 0.0], [5.0, math.log(3.0)]]])
    W = np.array([[0.0, 0.0], [1.0, 0.0]])
    o, pullback = refimpl.vjp(attsets_pooling, x, W, np.zeros(2))
    np.testing.assert_allclose(o, [[4.0, math.log(3.0) / 2]], rtol=1e-15)
    g_x, g_W, g_b = pullback(np.array([[1.0, 0.0]]))
    # C̄_·0 = S (X − o) = [1/4 · (−3), 3/4 · 1]; X̄ = ō ⊙ S + C̄ Wᵀ
    np.testing.assert_allclose(g_x, [[[0.25, -0.75], [0.75, 0.75]]], rtol=1e-15)
    np.testing.assert_allclose(g_W, [[3.0, 0.0], [0.75 * math.log(3.0), 0.0]], rtol=1e-15)
    np.testing.assert_array_equal(g_b, [0.0, 0.0])


def test_refuses_an_empty_set():
    mask = np.array([[True, False], [False, False]])
    with pytest.raises(refimpl.InputError, match="at least one element"):
        attsets_pooling(np.ones((2, 2, 3)), np.eye(3), np.zeros(3), mask)
