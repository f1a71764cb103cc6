"""lpn_weight_clip: the projection onto W, w ≥ 0 (official LPN.wclip) and the convexity it restores."""

import numpy as np

import refimpl
from refimpl.layers import lpn_potential, lpn_weight_clip


def test_lpn_weight_clip_clamps_negative_entries_to_zero_and_keeps_the_rest():
    W = np.array([[[-1.0, 2.0], [0.5, -3.0]]])
    w = np.array([-3.0, 4.0])
    W_clipped, w_clipped = lpn_weight_clip(W, w)
    np.testing.assert_array_equal(W_clipped, [[[0.0, 2.0], [0.5, 0.0]]])
    np.testing.assert_array_equal(w_clipped, [0.0, 4.0])
    np.testing.assert_array_equal(W, [[[-1.0, 2.0], [0.5, -3.0]]])  # inputs untouched


def test_lpn_weight_clip_is_the_euclidean_projection_and_idempotent():
    rng = np.random.default_rng(0)
    W, w = rng.standard_normal((2, 4, 4)), rng.standard_normal(4)
    W_clipped, w_clipped = lpn_weight_clip(W, w)
    again = lpn_weight_clip(W_clipped, w_clipped)
    np.testing.assert_array_equal(again[0], W_clipped)
    np.testing.assert_array_equal(again[1], w_clipped)
    # no nonnegative point is closer: ‖W − P(W)‖ ≤ ‖W − Q‖ for random nonnegative Q
    for _ in range(20):
        Q = np.abs(rng.standard_normal(W.shape))
        assert np.linalg.norm(W - W_clipped) <= np.linalg.norm(W - Q)


def test_lpn_weight_clip_makes_the_potential_convex():
    rng = np.random.default_rng(1)
    D, H, L = 2, 6, 3
    A, b = rng.standard_normal((L, H, D)), rng.standard_normal((L, H))
    W, w = 2 * rng.standard_normal((L - 1, H, H)), rng.standard_normal(H)
    W_clipped, w_clipped = lpn_weight_clip(W, w)
    ys = rng.standard_normal((40, D)) * 3
    for y in ys:
        _, pullback = refimpl.vjp(refimpl.layers.lpn_prox, y[None], A, b, W_clipped, w_clipped)
        J = np.stack([pullback(np.eye(D)[i][None])[0][0] for i in range(D)])
        assert np.linalg.eigvalsh(J).min() > -1e-12
    line = np.linspace(-4, 4, 81)[:, None] * rng.standard_normal(D)
    values = lpn_potential(line, A, b, W_clipped, w_clipped)
    assert (values[:-2] - 2 * values[1:-1] + values[2:]).min() > -1e-12


def test_lpn_weight_clip_accepts_a_one_layer_network():
    W_clipped, w_clipped = lpn_weight_clip(np.zeros((0, 3, 3)), np.array([-1.0, 0.0, 1.0]))
    assert W_clipped.shape == (0, 3, 3)
    np.testing.assert_array_equal(w_clipped, [0.0, 0.0, 1.0])
