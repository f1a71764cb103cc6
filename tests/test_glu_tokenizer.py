"""glu_tokenizer (ExcelFormer): hand value, the official Tokenizer formula, per-feature independence, VJP."""

import math

import numpy as np

import refimpl
from refimpl.layers import glu_tokenizer


def _params(rng, F, D):  # noqa: N803
    return tuple(rng.standard_normal((F, D)) for _ in range(4))


def test_glu_tokenizer_hand_computed():
    one = np.ones((1, 1))
    # u = 2·1 + 1 = 3, v = 2·1/2 + 0 = 1: E = 3 tanh 1
    np.testing.assert_allclose(
        glu_tokenizer(np.array([[2.0]]), one, one, one / 2, 0 * one), [[[3 * math.tanh(1)]]]
    )


def test_glu_tokenizer_matches_official_tokenizer_forward():
    # bin/excel_former.py Tokenizer.forward: x1 = weight[None] * x[:, :, None] + bias[None];
    # x2 = weight2[None] * x[:, :, None] + bias2[None]; x1 * tanh(x2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3))
    W1, b1, W2, b2 = _params(rng, 3, 5)
    official = (W1[None] * x[:, :, None] + b1[None]) * np.tanh(W2[None] * x[:, :, None] + b2[None])
    np.testing.assert_allclose(glu_tokenizer(x, W1, b1, W2, b2), official, rtol=1e-15)


def test_glu_tokenizer_token_depends_only_on_its_feature():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4))
    params = _params(rng, 4, 3)
    changed = x.copy()
    changed[:, 1:] += 5.0
    np.testing.assert_array_equal(glu_tokenizer(x, *params)[:, 0], glu_tokenizer(changed, *params)[:, 0])
    assert not np.allclose(glu_tokenizer(x, *params)[:, 1], glu_tokenizer(changed, *params)[:, 1])


def test_glu_tokenizer_vjp_is_the_stated_formula():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2))
    W1, b1, W2, b2 = _params(rng, 2, 4)
    g = rng.standard_normal((3, 2, 4))
    _, pullback = refimpl.vjp(glu_tokenizer, x, W1, b1, W2, b2)
    g_x, g_W1, g_b1, g_W2, g_b2 = pullback(g)
    u = x[:, :, None] * W1 + b1
    t = np.tanh(x[:, :, None] * W2 + b2)
    g_u, g_v = g * t, g * u * (1 - t**2)
    np.testing.assert_allclose(g_x, (g_u * W1 + g_v * W2).sum(-1), rtol=1e-13)
    np.testing.assert_allclose(g_W1, (g_u * x[:, :, None]).sum(0), rtol=1e-13)
    np.testing.assert_allclose(g_b1, g_u.sum(0), rtol=1e-13)
    np.testing.assert_allclose(g_W2, (g_v * x[:, :, None]).sum(0), rtol=1e-13)
    np.testing.assert_allclose(g_b2, g_v.sum(0), rtol=1e-13)


def test_glu_tokenizer_zero_feature_gives_bias_token():
    rng = np.random.default_rng(3)
    W1, b1, W2, b2 = _params(rng, 2, 3)
    tokens = glu_tokenizer(np.zeros((1, 2)), W1, b1, W2, b2)
    np.testing.assert_allclose(tokens[0], b1 * np.tanh(b2), rtol=1e-15)
