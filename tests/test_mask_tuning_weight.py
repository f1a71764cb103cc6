"""R-AMT's masked weight: the threshold rule (strict >), the straight-through gradient, and a
masked linear layer built on it."""

import numpy as np

import refimpl
from refimpl.adapters import mask_tuning_weight


def test_threshold_is_strict_and_kept_weights_are_exact():
    W = np.array([[0.3, -2.0, 1.0, 7.0]], dtype=np.float32)  # noqa: N806
    m_real = np.array([[0.0051, 0.005, 0.0049, 1.0]], dtype=np.float32)
    w_eff = mask_tuning_weight(W, m_real, threshold=np.float32(0.005))
    np.testing.assert_array_equal(w_eff, W * np.array([[1, 0, 0, 1]], dtype=np.float32))
    assert w_eff.dtype == np.float32


def test_ones_initialization_keeps_every_weight():
    W = np.random.default_rng(0).standard_normal((5, 6))  # noqa: N806
    np.testing.assert_array_equal(mask_tuning_weight(W, np.full((5, 6), 1e-2), threshold=5e-3), W)


def test_straight_through_gradient_reaches_dropped_scores():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((3, 4))  # noqa: N806
    m_real = np.where(rng.random((3, 4)) < 0.5, -1.0, 1.0)
    g = rng.standard_normal((3, 4))
    _, pullback = refimpl.vjp(mask_tuning_weight, W, m_real, threshold=0.0)
    (g_m,) = pullback(g)
    np.testing.assert_array_equal(g_m, g * W)  # G ⊙ W everywhere, dropped entries included
    assert np.all(g_m[m_real < 0] != 0)


def test_masked_linear_layer_gradient_is_x_outer_g_times_w():
    # y = x W_effᵀ; ∂L/∂W_eff = ḡᵀ x, so the scores get (ḡᵀ x) ⊙ W (the Binarizer's identity backward)
    rng = np.random.default_rng(2)
    x, W = rng.standard_normal((8, 4)), rng.standard_normal((3, 4))  # noqa: N806
    m_real = rng.standard_normal((3, 4)) * 1e-2
    w_eff, pullback = refimpl.vjp(mask_tuning_weight, W, m_real, threshold=5e-3)
    y = x @ w_eff.T
    np.testing.assert_allclose(y, x @ (W * (m_real > 5e-3)).T, rtol=1e-15)
    g_y = rng.standard_normal(y.shape)
    (g_m,) = pullback(g_y.T @ x)
    np.testing.assert_allclose(g_m, (g_y.T @ x) * W, rtol=1e-15)
