"""Feat-Mix: the official draws, label weights, identity partner, strict mask, backward."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import feat_mix


def _official_feat_mix(x, importances, seed, beta=0.5):
    """WhatAShot/ExcelFormer ``batch_feat_shuffle`` + the training loop's ``lambdas``,
    transcribed in NumPy with the same draw order (rates, masks, permutation); the global
    ``np.random`` stream of the official code is ``RandomState(seed)``."""
    random = np.random.RandomState(seed)
    b, f = x.shape
    shuffle_rates = random.beta(beta, beta, size=(b, 1))
    feat_masks = random.random_sample(size=(b, f)) > shuffle_rates
    shuffled_sample_ids = random.permutation(b)
    x_mixup = feat_masks * x + ~feat_masks * x[shuffled_sample_ids]
    lambdas = (importances * feat_masks).sum(1)
    return x_mixup, lambdas


def _official_draws(b, f, seed, beta=0.5):
    random = np.random.RandomState(seed)
    lam = random.beta(beta, beta, size=(b, 1))[:, 0]
    u = random.random_sample(size=(b, f))
    return lam, u, random.permutation(b)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_feat_mix_matches_the_official_batch_feat_shuffle(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 9))
    mi = rng.random(9)
    importances = mi / mi.sum()
    expected_x, expected_weight = _official_feat_mix(x, importances, seed=5)
    lam, u, perm = _official_draws(16, 9, seed=5)
    (x_mixed, weight), _ = refimpl.vjp("feat_mix", x, perm, lam, u, importances, backend=backend)
    np.testing.assert_array_equal(x_mixed, expected_x)
    np.testing.assert_allclose(weight, expected_weight, rtol=1e-14)


def test_feat_mix_label_weights_are_the_importance_kept_and_sum_to_one_with_the_partner():
    x = np.arange(8.0).reshape(2, 4)
    importances = np.array([0.4, 0.3, 0.2, 0.1])
    u = np.array([[0.9, 0.2, 0.7, 0.1], [0.3, 0.3, 0.3, 0.3]])
    x_mixed, weight = feat_mix(x, np.array([1, 0]), np.array([0.5, 0.0]), u, importances)
    np.testing.assert_allclose(weight, [0.4 + 0.2, 1.0], rtol=1e-15)
    # the partner's weight 1 − Λ is the importance of the features taken from it
    taken = x_mixed[0] != x[0]
    np.testing.assert_allclose(1 - weight[0], importances[taken].sum(), rtol=1e-15)
    np.testing.assert_array_equal(x_mixed[0], [0.0, 5.0, 2.0, 7.0])


def test_feat_mix_identity_partner_is_the_identity():
    rng = np.random.default_rng(2)
    x, u = rng.standard_normal((5, 3)), rng.random((5, 3))
    (x_mixed, _), pullback = refimpl.vjp(feat_mix, x, np.arange(5), rng.random(5), u, np.full(3, 1 / 3))
    np.testing.assert_array_equal(x_mixed, x)
    g = rng.standard_normal((5, 3))
    np.testing.assert_allclose(pullback((g, np.ones(5)))[0], g, rtol=1e-15)


def test_feat_mix_mask_is_strict_a_tie_takes_the_partner():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    u = np.array([[0.5, 0.6], [0.5, 0.5]])
    x_mixed, weight = feat_mix(x, np.array([1, 0]), np.array([0.5, 0.5]), u, np.array([0.75, 0.25]))
    np.testing.assert_array_equal(x_mixed, [[3.0, 2.0], [1.0, 2.0]])
    np.testing.assert_allclose(weight, [0.25, 0.0])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_feat_mix_backward_routes_each_entry_to_its_source(backend):
    rng = np.random.default_rng(3)
    x, u, lam = rng.standard_normal((6, 4)), rng.random((6, 4)), rng.random(6)
    perm = np.array([2, 2, 5, 0, 1, 3])  # row 2 is the partner of two rows, row 4 of none
    g = rng.standard_normal((6, 4))
    _, pullback = refimpl.vjp("feat_mix", x, perm, lam, u, np.full(4, 0.25), backend=backend)
    (g_x,) = pullback((g, np.ones(6)))
    keep = u > lam[:, None]
    expected = np.where(keep, g, 0.0)
    for i, j in enumerate(perm):
        expected[j] += np.where(keep[i], 0.0, g[i])
    np.testing.assert_allclose(g_x, expected, rtol=1e-14)
    # every entry of ḡ lands in exactly one place
    np.testing.assert_allclose(g_x.sum(), g.sum(), rtol=1e-12)


def test_feat_mix_refuses_negative_importances_and_rates_outside_the_unit_interval():
    x, u = np.ones((2, 2)), np.full((2, 2), 0.5)
    with pytest.raises(refimpl.InputError, match="non-negative"):
        feat_mix(x, np.array([1, 0]), np.array([0.5, 0.5]), u, np.array([1.2, -0.2]))
    with pytest.raises(refimpl.InputError, match=r"\[0, 1\]"):
        feat_mix(x, np.array([1, 0]), np.array([-0.5, 0.5]), u, np.array([0.5, 0.5]))
