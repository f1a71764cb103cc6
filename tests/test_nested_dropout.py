"""Nested dropout: the prefix mask, the identity at k = D, and the official GaussianDist."""

import numpy as np

import refimpl
from refimpl.layers import nested_dropout, nested_dropout_prefix_probs


def _official_gaussian_dist(mu, std, n):
    """GaussianDist of nested/train_resnet.py, transcribed: exp(−((i − μ)/σ)²) for i = 1..N, normalized."""
    dist = np.array([np.exp(-(((i - mu) / std) ** 2)) for i in range(1, n + 1)])
    return dist / np.sum(dist)


def test_nested_dropout_keeps_exactly_the_first_k_features():
    h = np.random.default_rng(0).standard_normal((3, 6))
    for k in range(1, 7):
        out = nested_dropout(h, k=k)
        np.testing.assert_array_equal(out[:, :k], h[:, :k])
        np.testing.assert_array_equal(out[:, k:], 0.0)


def test_nested_dropout_k_equal_to_d_is_the_identity_with_identity_gradient():
    h = np.random.default_rng(1).standard_normal((2, 3, 5))
    g = np.random.default_rng(2).standard_normal(h.shape)
    out, pullback = refimpl.vjp(nested_dropout, h, k=5)
    np.testing.assert_array_equal(out, h)
    np.testing.assert_array_equal(pullback(g)[0], g)


def test_nested_dropout_gradient_is_the_masked_cotangent():
    h = np.random.default_rng(3).standard_normal((4, 7))
    g = np.random.default_rng(4).standard_normal(h.shape)
    _, pullback = refimpl.vjp(nested_dropout, h, k=3)
    (g_h,) = pullback(g)
    official_mask = np.zeros((1, 7))
    official_mask[:, : 2 + 1] = 1  # mask_feat_dim[k] for the official index k = 2 keeps 3 features
    np.testing.assert_array_equal(g_h, g * official_mask)


def test_nested_dropout_prefix_probs_match_the_official_gaussian_dist_and_sum_to_one():
    for mu, sigma, d in [(0.0, 100.0, 512), (0.0, 1.0, 10), (3.5, 1.5, 6), (-2.0, 4.0, 9)]:
        p = nested_dropout_prefix_probs(D=d, sigma=sigma, mu=mu)
        np.testing.assert_allclose(p, _official_gaussian_dist(mu, sigma, d), rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-15)


def test_nested_dropout_prefix_probs_decrease_from_the_mode_and_stay_finite_where_the_official_fails():
    p = nested_dropout_prefix_probs(D=8, sigma=3.0)
    assert np.all(np.diff(p) < 0)  # μ = 0: the shortest prefix is the most likely
    with np.errstate(all="ignore"):
        assert np.isnan(_official_gaussian_dist(-40.0, 1.0, 4)).all()  # 0/0
    p = nested_dropout_prefix_probs(D=4, sigma=1.0, mu=-40.0)
    np.testing.assert_allclose(p[0], 1.0)
    np.testing.assert_allclose(p[1] / p[0], np.exp(-(42.0**2 - 41.0**2)), rtol=1e-12)
