"""kmq_cluster_weights: kMQ's per-cluster softmax of the mean reward gap (Diversify and Conquer)."""

from __future__ import annotations

import numpy as np
import pytest

import refimpl
from refimpl import InputError

kmq_cluster_weights = refimpl.data_selection.kmq_cluster_weights


def _official_weights(r_gold, r_gen, clusters):
    """selection/iter.py, select_new_iter, in NumPy: groupby('cluster').mean() of the reward
    difference (present clusters, ascending), then exp(·) / exp(·).sum() without a shift."""
    diff = r_gold - r_gen
    present = np.unique(clusters)
    means = np.array([diff[clusters == c].mean() for c in present])
    exps = np.exp(means)
    return present, means, exps / exps.sum()


def test_hand_computed_value_with_an_empty_cluster():
    scores, weights, counts = kmq_cluster_weights(
        np.array([1.0, 3.0, 2.0]), np.array([1.0, 1.0, 2.0]), np.array([0, 0, 2]), k=3
    )
    np.testing.assert_array_equal(scores, [1.0, 0.0, 0.0])
    np.testing.assert_allclose(weights, [np.e / (np.e + 1), 0.0, 1 / (np.e + 1)], rtol=1e-15)
    np.testing.assert_array_equal(counts, [2, 0, 1])


def test_empty_score_puts_empty_clusters_into_the_softmax():
    _, weights, _ = kmq_cluster_weights(
        np.array([1.0, 3.0, 2.0]), np.array([1.0, 1.0, 2.0]), np.array([0, 0, 2]), k=3, empty_score=0.0
    )
    np.testing.assert_allclose(weights, np.array([np.e, 1.0, 1.0]) / (np.e + 2), rtol=1e-15)


def test_matches_the_official_unshifted_softmax():
    rng = np.random.default_rng(3)
    r_gold, r_gen = rng.standard_normal(200) * 2, rng.standard_normal(200) * 2
    clusters = rng.integers(0, 16, size=200)
    present, means, official = _official_weights(r_gold, r_gen, clusters)
    assert present.size == 16
    scores, weights, counts = kmq_cluster_weights(r_gold, r_gen, clusters, k=16)
    np.testing.assert_allclose(scores, means, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(weights, official, rtol=1e-13)
    np.testing.assert_array_equal(counts, np.bincount(clusters, minlength=16))


def test_equal_mean_gaps_give_uniform_weights():
    _, weights, _ = kmq_cluster_weights(
        np.array([2.0, 1.0, 5.0, 0.5, 3.0]),
        np.array([1.0, 0.0, 4.0, -0.5, 2.0]),
        np.array([0, 1, 2, 3, 3]),
        k=4,
    )
    np.testing.assert_allclose(weights, np.full(4, 0.25), rtol=1e-15)


def test_weights_are_invariant_to_a_common_shift_of_the_gaps():
    rng = np.random.default_rng(0)
    r_gold, r_gen, clusters = rng.standard_normal(30), rng.standard_normal(30), rng.integers(0, 5, size=30)
    _, base, _ = kmq_cluster_weights(r_gold, r_gen, clusters, k=5)
    _, shifted, _ = kmq_cluster_weights(r_gold + 7.5, r_gen, clusters, k=5)
    np.testing.assert_allclose(shifted, base, rtol=1e-12)


def test_large_gaps_stay_finite_where_the_official_exp_overflows():
    r_gold, r_gen, clusters = np.array([800.0, 0.0]), np.array([0.0, 0.0]), np.array([0, 1])
    with np.errstate(over="ignore", invalid="ignore"):
        _, _, official = _official_weights(r_gold, r_gen, clusters)
    assert np.isnan(official[0])
    _, weights, _ = kmq_cluster_weights(r_gold, r_gen, clusters, k=2)
    np.testing.assert_array_equal(weights, [1.0, 0.0])  # e^-800 underflows to 0


def test_float32_rewards_give_float32_outputs():
    scores, weights, counts = kmq_cluster_weights(
        np.array([1.0, 2.0], dtype=np.float32), np.array([0.0, 0.0], dtype=np.float32), np.array([0, 1]), k=2
    )
    assert scores.dtype == weights.dtype == np.float32 and counts.dtype == np.int64
    np.testing.assert_allclose(weights, [1 / (1 + np.e), np.e / (1 + np.e)], rtol=1e-6)


def test_labels_at_or_above_k_are_refused():
    with pytest.raises(InputError, match=r"\[0, 3\)"):
        kmq_cluster_weights(np.array([1.0, 2.0]), np.array([0.0, 0.0]), np.array([0, 3]), k=3)
