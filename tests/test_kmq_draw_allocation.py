"""kmq_draw_allocation: kMQ's categorical cluster draws and the new points taken per cluster."""

from __future__ import annotations

import numpy as np
import pytest

import refimpl
from refimpl import InputError
from refimpl.data_selection.kmq import draw_size

kmq_draw_allocation = refimpl.data_selection.kmq_draw_allocation


def test_hand_computed_value_capped_by_availability():
    w = np.array([0.5, 0.0, 0.5])
    clusters = np.array([0, 0, 1, 2, 2, 0])
    seen = np.array([False, True, False, False, False, False])
    keys = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2])
    drawn, indices = kmq_draw_allocation(
        w, clusters, seen, np.array([0.1, 0.4, 0.2]), keys, portion=1.0, rounds=2, official_size=False
    )
    np.testing.assert_array_equal(drawn, [3, 0, 0])
    np.testing.assert_array_equal(indices, [5, 0])  # point 1 was seen; key order 0.2 < 0.9
    # u = 0.5 falls on F = [0.5, 0.5, 1] with side 'right': cluster 2, never the zero-weight 1
    drawn, indices = kmq_draw_allocation(
        w,
        clusters,
        seen,
        np.array([0.5, 0.99, 0.0]),
        np.full(6, 0.5),
        portion=1.0,
        rounds=2,
        official_size=False,
    )
    np.testing.assert_array_equal(drawn, [1, 0, 2])
    np.testing.assert_array_equal(indices, [0, 3, 4])  # tied keys: the lower index first


def test_draw_size_follows_the_official_expression():
    assert draw_size(1000, 0.1, 64, 4) == int(1000 * 0.1 / 64 / 4) == 0  # the official quirk
    assert draw_size(100_000, 0.1, 64, 4) == 39
    assert draw_size(100_000, 0.1, 64, 4, official_size=False) == 2500  # budget / rounds
    with pytest.raises(InputError, match="S = .* = 39, got 5 draws"):
        kmq_draw_allocation(
            np.full(64, 1 / 64), np.arange(100_000) % 64, np.zeros(100_000, bool), np.full(5, 0.5),
            np.full(100_000, 0.5), portion=0.1,
        )  # fmt: skip


def test_categorical_draws_equal_numpys_random_choice_with_the_same_uniforms():
    """The official np.random.choice(K, size, p=w) (legacy RandomState) consumes random_sample(size)."""
    w = np.random.default_rng(1).random(7)
    w /= w.sum()
    n = 7 * 4 * 50
    size = draw_size(n, 1.0, 7, 4)
    official = np.random.RandomState(123).choice(7, size=size, p=w, replace=True)
    u = np.random.RandomState(123).random_sample(size)
    clusters = np.arange(n) % 7
    drawn, indices = kmq_draw_allocation(
        w, clusters, np.zeros(n, bool), u, np.linspace(0, 0.99, n), portion=1.0
    )
    np.testing.assert_array_equal(drawn, np.bincount(official, minlength=7))
    assert indices.size == size  # no cluster exhausted


def test_equal_weights_give_a_uniform_allocation_in_expectation():
    """Chi-square of the pooled draws over 400 rounds (fixed seed), and a 5-sigma bound per cluster."""
    from scipy.stats import chisquare

    rng = np.random.default_rng(11)
    K, n = 5, 200
    clusters = np.arange(n) % K
    total = np.zeros(K)
    for _ in range(400):
        drawn, _ = kmq_draw_allocation(
            np.full(K, 1 / K),
            clusters,
            np.zeros(n, bool),
            rng.random(20),
            rng.random(n),
            portion=0.4,
            rounds=4,
            official_size=False,
        )
        total += drawn
    draws = 400 * 20
    assert total.sum() == draws
    assert np.all(np.abs(total - draws / K) < 5 * np.sqrt(draws * (1 / K) * (1 - 1 / K)))
    assert chisquare(total).pvalue > 1e-3


def test_draw_frequencies_follow_the_weights():
    rng = np.random.default_rng(5)
    w = np.array([0.1, 0.0, 0.6, 0.3])
    clusters = np.arange(400) % 4
    total = np.zeros(4)
    for _ in range(300):
        drawn, _ = kmq_draw_allocation(
            w, clusters, np.zeros(400, bool), rng.random(25), rng.random(400), portion=1.0
        )
        total += drawn
    draws = 300 * 25
    assert total[1] == 0
    assert np.all(np.abs(total - draws * w) <= 5 * np.sqrt(draws * w * (1 - w)))


def test_points_are_a_uniform_subset_of_the_unseen_points_of_a_cluster():
    """Every unseen point of a cluster is taken with probability take/available (5 sigma)."""
    rng = np.random.default_rng(2024)
    clusters = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    seen = np.array([True, False, False, False, False, False, False, False])
    counts = np.zeros(8)
    trials = 4000
    for _ in range(trials):
        _, indices = kmq_draw_allocation(
            np.array([1.0, 0.0]), clusters, seen, np.array([0.3, 0.6]), rng.random(8), portion=1.0, rounds=4,
            official_size=False,
        )  # fmt: skip
        assert indices.size == 2 and set(indices) <= {1, 2, 3, 4, 5}
        counts[indices] += 1
    p = 2 / 5
    assert np.all(np.abs(counts[1:6] - trials * p) < 5 * np.sqrt(trials * p * (1 - p)))
    assert counts[0] == 0 and counts[6:].sum() == 0


def test_only_the_first_s_draws_are_used():
    w, clusters, keys = np.array([0.5, 0.5]), np.array([0, 0, 1, 1]), np.array([0.4, 0.3, 0.2, 0.1])
    short = kmq_draw_allocation(w, clusters, np.zeros(4, bool), np.array([0.7]), keys, portion=0.5, rounds=2)
    long = kmq_draw_allocation(
        w, clusters, np.zeros(4, bool), np.array([0.7, 0.1, 0.2]), keys, portion=0.5, rounds=2
    )
    assert draw_size(4, 0.5, 2, 2) == 0  # official: int(4·0.5/2/2) = 0 draws
    np.testing.assert_array_equal(short[0], [0, 0])
    np.testing.assert_array_equal(long[0], [0, 0])
    drawn, indices = kmq_draw_allocation(
        w,
        clusters,
        np.zeros(4, bool),
        np.array([0.7, 0.1, 0.2]),
        keys,
        portion=1.0,
        rounds=2,
        official_size=False,
    )  # S = 2: u = 0.7 → 1, 0.1 → 0; 0.2 unused
    np.testing.assert_array_equal(drawn, [1, 1])
    np.testing.assert_array_equal(indices, [1, 3])


def test_exhausted_clusters_are_capped():
    drawn, indices = kmq_draw_allocation(
        np.array([1.0, 1.0]), np.array([0, 1, 0, 1]), np.array([True, False, True, True]),
        np.array([0.2, 0.4, 0.6, 0.8]), np.full(4, 0.5), portion=1.0, rounds=1, official_size=False,
    )  # fmt: skip
    np.testing.assert_array_equal(drawn, [2, 2])
    np.testing.assert_array_equal(indices, [1])  # cluster 0 has nothing left, cluster 1 one point


def test_bad_draws_are_refused():
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        kmq_draw_allocation(
            np.array([0.5, 0.5]), np.array([0, 1]), np.zeros(2, bool), np.array([1.0]), np.array([0.1, 0.2]),
            portion=1.0, rounds=2, official_size=False,
        )  # fmt: skip
    with pytest.raises(InputError, match="positive sum"):
        kmq_draw_allocation(
            np.zeros(2), np.array([0, 1]), np.zeros(2, bool), np.array([0.5]), np.array([0.1, 0.2]),
            portion=1.0, rounds=2, official_size=False,
        )  # fmt: skip
