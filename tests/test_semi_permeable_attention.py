"""semi_permeable_attention (ExcelFormer): dense formula with an explicit mask, the official additive
mask, the information-flow property through stacked layers, hand values."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.layers import glu_tokenizer, layer_norm, semi_permeable_attention, tanh_glu
from refimpl.layers.excelformer import semi_permeable_mask


def _params(rng, D, scale=1.0):  # noqa: N803
    out = []
    for _ in range(3):
        out += [rng.standard_normal((D, D)) * scale / math.sqrt(D), rng.standard_normal(D) * 0.3]
    return tuple(out)


def _dense(x, W_q, b_q, W_k, b_k, W_v, b_v, heads, mask_add):  # noqa: N803
    """Plain transcription: per batch and head, softmax(Q_h K_hᵀ/√d_h + M) V_h, heads concatenated."""
    B, F, D = x.shape
    dh = D // heads
    y = np.zeros_like(x)
    for b in range(B):
        Q, K, V = x[b] @ W_q.T + b_q, x[b] @ W_k.T + b_k, x[b] @ W_v.T + b_v
        for h in range(heads):
            cols = slice(h * dh, (h + 1) * dh)
            s = Q[:, cols] @ K[:, cols].T / math.sqrt(dh) + mask_add
            e = np.exp(s - s.max(axis=1, keepdims=True))
            y[b][:, cols] = (e / e.sum(axis=1, keepdims=True)) @ V[:, cols]
    return y


def test_mask_is_lower_triangular_in_importance_order():
    # official get_attention_mask: seq_ids[None, None, :] <= seq_ids[None, :, None] → allowed[i, j] = j ≤ i
    expected = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(semi_permeable_mask(3), expected)


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_matches_dense_formula_with_explicit_mask(heads):
    rng = np.random.default_rng(heads)
    x = rng.standard_normal((2, 5, 8))
    params = _params(rng, 8, 2.0)
    mask_add = np.array([[0.0 if j <= i else -np.inf for j in range(5)] for i in range(5)])
    np.testing.assert_allclose(
        semi_permeable_attention(x, *params, n_heads=heads), _dense(x, *params, heads, mask_add), rtol=1e-13
    )


def test_official_additive_mask_matches_dense_formula_and_default():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 6))
    params = _params(rng, 6)
    mask_add = (1.0 - semi_permeable_mask(4)) * -1e4  # official: (1 − mask) · −1e4
    official = semi_permeable_attention(x, *params, n_heads=3, mask_value=-1e4)
    np.testing.assert_allclose(official, _dense(x, *params, 3, mask_add), rtol=1e-13)
    np.testing.assert_allclose(official, semi_permeable_attention(x, *params, n_heads=3), rtol=1e-13)


def test_additive_mask_deviation_example():
    args = (
        np.array([[[1.0], [0.0]]]),
        np.ones((1, 1)),
        np.zeros(1),
        np.full((1, 1), -2e4),
        np.zeros(1),
        np.ones((1, 1)),
        np.zeros(1),
    )
    np.testing.assert_allclose(semi_permeable_attention(*args, n_heads=1), [[[1.0], [0.5]]])
    np.testing.assert_allclose(semi_permeable_attention(*args, n_heads=1, mask_value=-1e4), [[[0.0], [0.5]]])


def test_most_informative_token_depends_only_on_its_feature_through_layers():
    # tokenizer → 2 × (pre-norm attention + residual, pre-norm tanh-GLU FFN + residual), as ExcelFormer
    rng = np.random.default_rng(7)
    F, D = 5, 8
    tok = tuple(rng.standard_normal((F, D)) for _ in range(4))
    layers = [(_params(rng, D), rng.standard_normal((2 * D, D)) / math.sqrt(D)) for _ in range(2)]
    ones, zeros = np.ones(D), np.zeros(D)

    def model(x):
        h = glu_tokenizer(x, *tok)
        for attention, W0 in layers:
            h = h + semi_permeable_attention(layer_norm(h, ones, zeros), *attention, n_heads=2)
            h = h + tanh_glu(layer_norm(h, ones, zeros) @ W0.T)
        return h

    x = rng.standard_normal((3, F))
    perturbed = x.copy()
    perturbed[:, 1:] = rng.standard_normal((3, F - 1)) * 10
    np.testing.assert_array_equal(model(x)[:, 0], model(perturbed)[:, 0])
    assert not np.allclose(model(x)[:, 1], model(perturbed)[:, 1])
    # feature 2 reads features 0..2 but not 3, 4
    later = x.copy()
    later[:, 3:] += 3.0
    np.testing.assert_array_equal(model(x)[:, :3], model(later)[:, :3])


def test_hand_computed_equal_scores():
    one, zero = np.ones((1, 1)), np.zeros(1)
    x = np.array([[[1.0], [3.0]]])
    y, pullback = refimpl.vjp(semi_permeable_attention, x, 0 * one, zero, one, zero, one, zero, n_heads=1)
    np.testing.assert_allclose(y, [[[1.0], [2.0]]], rtol=1e-15)
    g_x, g_W_q, g_b_q, g_W_k, g_b_k, g_W_v, g_b_v = pullback(np.ones((1, 2, 1)))
    # token 1: A = [1/2, 1/2], s̄ = A(v − 2) = [−1/2, 1/2], q̄_1 = s̄ · k = 1; v̄ = Aᵀ 1 = [3/2, 1/2]
    np.testing.assert_allclose(g_x, [[[1.5], [0.5]]], rtol=1e-15)
    np.testing.assert_allclose(g_W_q, [[3.0]], rtol=1e-15)
    np.testing.assert_allclose(g_b_q, [1.0], rtol=1e-15)
    np.testing.assert_allclose(g_W_k, [[0.0]], atol=1e-15)
    np.testing.assert_allclose(g_W_v, [[3.0]], rtol=1e-15)
    np.testing.assert_allclose(g_b_v, [2.0], rtol=1e-15)


def test_masked_softmax_vjp_has_no_gradient_into_masked_keys():
    # y_0 reads only token 0, so a cotangent on y_0 alone gives no gradient to tokens 1.. through k or v
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 4, 4))
    params = _params(rng, 4)
    _, pullback = refimpl.vjp(semi_permeable_attention, x, *params, n_heads=2)
    g = np.zeros((1, 4, 4))
    g[0, 0] = rng.standard_normal(4)
    g_x = pullback(g)[0]
    np.testing.assert_array_equal(g_x[0, 1:], 0.0)
    assert np.abs(g_x[0, 0]).max() > 0


def test_refuses_heads_not_dividing_width():
    rng = np.random.default_rng(0)
    with pytest.raises(refimpl.InputError, match="divisor of the token width"):
        semi_permeable_attention(np.ones((1, 2, 6)), *_params(rng, 6), n_heads=4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_key_bias_shifts_scores_by_row_constants_and_gets_zero_cotangent(dtype):
    # q_i · b_k is the same for every key of query i: the softmax cancels it, so y does not depend on
    # b_k and b̄_k = 0; a huge b_k must not swamp x W_kᵀ (the adversarial b_k × 1e30 finding)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 5, 4))
    W_q, b_q, W_k, b_k, W_v, b_v = _params(rng, 4)
    g = rng.standard_normal((2, 5, 4))
    no_bias = (x, W_q, b_q, W_k, np.zeros(4), W_v, b_v)
    y0, pullback0 = refimpl.vjp(semi_permeable_attention, *no_bias, n_heads=2)
    grads0 = pullback0(g)
    big = [a.astype(dtype) for a in (x, W_q, b_q, W_k, b_k * 1e30, W_v, b_v)]
    y, pullback = refimpl.vjp(semi_permeable_attention, *big, n_heads=2)
    grads = pullback(g.astype(dtype))
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(y, y0, rtol=tol, atol=tol)
    np.testing.assert_array_equal(grads[4], 0.0)
    for got, expected in zip(grads, grads0):
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * np.abs(expected).max())
    # the dense formula with the bias added first agrees for a moderate b_k (no rounding loss)
    mask_add = np.where(semi_permeable_mask(5), 0.0, -np.inf)
    np.testing.assert_allclose(
        semi_permeable_attention(x, W_q, b_q, W_k, b_k, W_v, b_v, n_heads=2),
        _dense(x, W_q, b_q, W_k, b_k, W_v, b_v, 2, mask_add),
        rtol=1e-13,
    )
