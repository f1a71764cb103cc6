"""CRAIG-style coresets of Data-Efficient Augmentation: proxies, similarity, greedy, weights, budgets."""

from __future__ import annotations

import itertools
import math
import tracemalloc

import numpy as np
import pytest

import refimpl
from refimpl import InputError
from refimpl.data_selection import (
    class_budget_split,
    coreset_cluster_weights,
    craig_gradient_proxy,
    facility_location_greedy,
    facility_location_similarity,
)

KERNELS = ("submodlib_euclidean", "craig_max_minus_distance")


def facility_location_value(similarity: np.ndarray, selected) -> float:
    """F(S) = Σ_i max(0, max_{j∈S} s_ij), by definition (F(∅) = 0)."""
    if len(selected) == 0:
        return 0.0
    return float(np.maximum(similarity[:, list(selected)].max(axis=1), 0.0).sum())


# -- craig_gradient_proxy ---------------------------------------------------------------------------
def test_proxy_is_softmax_minus_one_hot_by_hand():
    z = np.array([[0.0, math.log(3.0)], [math.log(2.0), 0.0]])  # p = [1/4, 3/4], [2/3, 1/3]
    g = craig_gradient_proxy(z, np.array([1, 1]))
    np.testing.assert_allclose(g, [[0.25, -0.25], [2 / 3, -2 / 3]], rtol=1e-15, atol=1e-16)


def test_proxy_rows_sum_to_zero_and_stay_finite_for_saturated_logits():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]])
    g = craig_gradient_proxy(z, np.array([0, 1]))
    np.testing.assert_array_equal(g, [[0.0, 0.0, 0.0], [0.0, -1.0, 1.0]])
    rng = np.random.default_rng(0)
    g = craig_gradient_proxy(rng.standard_normal((50, 7)) * 5, rng.integers(0, 7, 50))
    np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-15)
    assert np.all(np.linalg.norm(g, axis=1) <= math.sqrt(2))


def test_proxy_use_linear_is_the_weight_gradient_of_a_linear_head():
    """∂CE(W h + b, y)/∂W = (p − e_y) hᵀ; the official flattening is class-major."""
    rng = np.random.default_rng(1)
    n, K, E = 5, 4, 3
    h, W, y = rng.standard_normal((n, E)), rng.standard_normal((K, E)), rng.integers(0, K, n)
    z = h @ W.T
    g = craig_gradient_proxy(z, y, h=h, use_linear=True)
    for i in range(n):  # central differences of the cross-entropy of row i w.r.t. W
        by_differences = np.zeros((K, E))
        for k, e in itertools.product(range(K), range(E)):
            step = np.zeros((K, E))
            step[k, e] = 1e-6

            def ce(weights, i=i):
                logits = h[i] @ weights.T
                return np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[y[i]]

            by_differences[k, e] = (ce(W + step) - ce(W - step)) / 2e-6
        np.testing.assert_allclose(g[i], by_differences.ravel(), rtol=1e-6, atol=1e-9)


def test_proxy_keeps_float32():
    z = np.zeros((2, 3), dtype=np.float32)
    assert craig_gradient_proxy(z, np.array([0, 2])).dtype == np.float32


# -- facility_location_similarity ----------------------------------------------------------------
def test_similarity_is_the_submodlib_kernel_by_hand():
    s = facility_location_similarity(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]]))  # d = 2
    expected = np.exp(-np.array([[0.0, 5.0, 4.0], [5.0, 0.0, 3.0], [4.0, 3.0, 0.0]]) / 2)
    np.testing.assert_allclose(s, expected, rtol=1e-15)
    assert np.all(np.diag(s) == 1.0)  # exactly, as submodlib writes it


def test_similarity_craig_kernel_is_max_distance_minus_distance():
    s = facility_location_similarity(np.array([[0.0], [1.0], [10.0]]), kernel="craig_max_minus_distance")
    np.testing.assert_array_equal(s, [[10.0, 9.0, 0.0], [9.0, 10.0, 1.0], [0.0, 1.0, 10.0]])


@pytest.mark.parametrize("kernel", KERNELS)
def test_blocked_similarity_equals_the_dense_one_bit_for_bit(kernel):
    rng = np.random.default_rng(2)
    g = rng.standard_normal((37, 5)) * 2
    dense = facility_location_similarity(g, kernel=kernel, block_size=37)
    for block_size in (1, 4, 10, 36, 100):
        np.testing.assert_array_equal(
            facility_location_similarity(g, kernel=kernel, block_size=block_size), dense
        )
    np.testing.assert_array_equal(dense, dense.T)
    # against an independent float64 computation
    distances = np.sqrt(((g[:, None, :] - g[None, :, :]) ** 2).sum(-1))
    reference = np.exp(-distances / 5) if kernel == KERNELS[0] else distances.max() - distances
    np.testing.assert_allclose(dense, reference, rtol=1e-13, atol=1e-13)


def test_close_points_keep_an_accurate_distance():
    """The direct form: ‖a‖² + ‖b‖² − 2⟨a, b⟩ would lose ~half the digits here."""
    a = np.array([[1e4, 1e4], [1e4 + 1e-4, 1e4]])
    s = facility_location_similarity(a, kernel="craig_max_minus_distance")
    np.testing.assert_allclose(s[0, 0] - s[0, 1], 1e-4, rtol=1e-8)


# -- facility_location_greedy ---------------------------------------------------------------------
def _greedy_one_class(similarity, k, lazy=True):
    n = similarity.shape[0]
    return facility_location_greedy(
        similarity, np.zeros(n, dtype=np.int64), np.array([k]), kernel="precomputed", lazy=lazy
    )


def test_greedy_reaches_one_minus_one_over_e_of_the_optimum_on_many_instances():
    rng = np.random.default_rng(3)
    worst = np.inf
    for trial in range(300):
        n = int(rng.integers(2, 9))
        k = int(rng.integers(1, min(n, 4) + 1))
        if trial % 3 == 0:  # a random non-negative similarity (not a metric kernel)
            similarity = rng.random((n, n))
        else:
            g = rng.standard_normal((n, int(rng.integers(1, 4)))) * rng.choice([0.3, 3.0])
            similarity = facility_location_similarity(g, kernel=KERNELS[trial % 2])
        indices, gains = _greedy_one_class(similarity, k)
        value = facility_location_value(similarity, indices)
        optimum = max(
            facility_location_value(similarity, subset) for subset in itertools.combinations(range(n), k)
        )
        assert value >= (1 - 1 / math.e) * optimum - 1e-12
        np.testing.assert_allclose(gains.sum(), value, rtol=1e-12)
        worst = min(worst, value / optimum)
    assert worst < 1.0  # the bound is exercised: greedy is not always optimal here


@pytest.mark.parametrize("kernel", [*KERNELS, "precomputed"])
def test_lazy_greedy_returns_exactly_the_plain_greedy_sequence(kernel):
    rng = np.random.default_rng(4)
    for _ in range(15):
        n, C = int(rng.integers(5, 60)), int(rng.integers(1, 4))
        g = rng.standard_normal((n, int(rng.integers(1, 5))))
        if kernel == "precomputed":
            g = facility_location_similarity(g)
        y = rng.integers(0, C, n)
        budgets = np.array([rng.integers(0, c + 1) for c in np.bincount(y, minlength=C)])
        block_size = int(rng.integers(1, n + 3))
        lazy = facility_location_greedy(g, y, budgets, kernel=kernel, lazy=True, block_size=block_size)
        plain = facility_location_greedy(g, y, budgets, kernel=kernel, lazy=False, block_size=block_size)
        np.testing.assert_array_equal(lazy[0], plain[0])
        np.testing.assert_array_equal(lazy[1], plain[1])  # bit for bit
        assert lazy[0].dtype == np.int64


def test_ties_go_to_the_lowest_index():
    # every similarity equal: every gain ties at every step
    indices, gains = _greedy_one_class(np.full((6, 6), 0.5), 4)
    np.testing.assert_array_equal(indices, [0, 1, 2, 3])
    np.testing.assert_array_equal(gains, [3.0, 0.0, 0.0, 0.0])
    # far-apart points: exp(−1000) underflows, every gain is exactly 1
    far = np.arange(5.0)[::-1, None] * 1e3
    for lazy in (True, False):
        indices, gains = facility_location_greedy(far, np.zeros(5, dtype=np.int64), np.array([3]), lazy=lazy)
        np.testing.assert_array_equal(indices, [0, 1, 2])
        np.testing.assert_array_equal(gains, [1.0, 1.0, 1.0])
    # duplicated points: the lower index of a duplicate pair comes first
    rng = np.random.default_rng(5)
    points = rng.standard_normal((4, 2))
    duplicated = np.vstack([points, points])  # i and i + 4 equal
    for lazy in (True, False):
        indices, _ = facility_location_greedy(
            duplicated, np.zeros(8, dtype=np.int64), np.array([8]), lazy=lazy
        )
        assert sorted(indices[:4]) == [0, 1, 2, 3]  # a duplicate only after its twin, with gain 0
        np.testing.assert_array_equal(indices[4:], [4, 5, 6, 7])


def test_kernel_path_equals_the_precomputed_similarity_path():
    rng = np.random.default_rng(6)
    g = rng.standard_normal((40, 3))
    y = rng.integers(0, 2, 40)
    budgets = np.array([5, 7])
    for kernel in KERNELS:
        direct = facility_location_greedy(g, y, budgets, kernel=kernel, block_size=7)
        # CRAIG's max D is per class: precompute class by class
        similarity = np.zeros((40, 40))
        for c in range(2):
            members = np.flatnonzero(y == c)
            similarity[np.ix_(members, members)] = facility_location_similarity(g[members], kernel=kernel)
        via_matrix = facility_location_greedy(similarity, y, budgets, kernel="precomputed")
        np.testing.assert_array_equal(direct[0], via_matrix[0])
        np.testing.assert_array_equal(direct[1], via_matrix[1])


def test_per_class_selection_layout_and_gains():
    rng = np.random.default_rng(7)
    g, y = rng.standard_normal((30, 2)), rng.integers(0, 3, 30)
    counts = np.bincount(y, minlength=3)
    budgets = np.array([2, 0, counts[2]])  # nothing from class 1, all of class 2
    indices, gains = facility_location_greedy(g, y, budgets)
    np.testing.assert_array_equal(y[indices], [0, 0] + [2] * counts[2])
    np.testing.assert_array_equal(np.sort(indices[2:]), np.flatnonzero(y == 2))
    assert np.all(np.diff(gains[2:]) <= 1e-15)  # non-increasing within a class (submodular)
    assert gains.dtype == np.float64
    # determinism: the same call gives the same bits
    again = facility_location_greedy(g, y, budgets)
    np.testing.assert_array_equal(again[0], indices)
    np.testing.assert_array_equal(again[1], gains)


def test_greedy_selection_does_not_depend_on_float32_rounding_path():
    rng = np.random.default_rng(8)
    g32 = rng.standard_normal((50, 4)).astype(np.float32)
    y = rng.integers(0, 2, 50)
    idx32, gains32 = facility_location_greedy(g32, y, np.array([6, 6]))
    idx64, gains64 = facility_location_greedy(g32.astype(np.float64), y, np.array([6, 6]))
    np.testing.assert_array_equal(idx32, idx64)
    assert gains32.dtype == np.float32
    np.testing.assert_array_equal(gains32, gains64.astype(np.float32))


def _peak_greedy_memory(n, classes, block_size, budget_fraction):
    rng = np.random.default_rng(9)
    z = rng.standard_normal((n, 10)) * 2
    y = rng.integers(0, classes, n)
    g = craig_gradient_proxy(z, y % 10)
    budgets = (np.bincount(y, minlength=classes) * budget_fraction).astype(np.int64)
    tracemalloc.start()
    try:
        indices, _ = facility_location_greedy(g, y, budgets, lazy=True, block_size=block_size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return indices, budgets, peak, int(np.bincount(y).max())


def test_greedy_memory_is_bounded_by_the_block_not_n_squared():
    n, block_size = 3000, 64
    indices, budgets, peak, largest_class = _peak_greedy_memory(n, 3, block_size, 0.05)
    assert indices.shape[0] == budgets.sum()
    bound = 4 * block_size * largest_class * 8 + 64 * n  # a few block-sized rows + O(n) state
    assert peak < bound, (peak, bound)
    assert peak < n * n * 8 / 20  # far below the dense matrix


@pytest.mark.slow
def test_greedy_on_50000_proxies_in_bounded_memory():
    """CIFAR-10 scale: n = 50 000, 10 classes of ~5 000, a 10% coreset (the paper's setting)."""
    n, block_size = 50_000, 512
    indices, budgets, peak, largest_class = _peak_greedy_memory(n, 10, block_size, 0.1)
    assert indices.shape[0] == budgets.sum()
    assert np.unique(indices).shape[0] == indices.shape[0]
    bound = 4 * block_size * largest_class * 8 + 64 * n  # ~85 MB; n × n float64 would be 20 GB
    assert peak < bound, (peak, bound)


# -- coreset_cluster_weights ------------------------------------------------------------------------
def test_cluster_sizes_sum_to_the_class_sizes():
    rng = np.random.default_rng(10)
    g, y = rng.standard_normal((60, 3)), rng.integers(0, 3, 60)
    budgets = np.array([4, 5, 6])
    indices, _ = facility_location_greedy(g, y, budgets)
    sizes, clusters = coreset_cluster_weights(g, y, indices, normalize=False, block_size=7)
    for c in range(3):
        assert sizes[y[indices] == c].sum() == np.sum(y == c)
    assert np.all(clusters >= 0)
    np.testing.assert_array_equal(y[indices[clusters]], y)  # represented within the class
    # each point's representative is its most similar selected point of its class
    similarity = facility_location_similarity(g)
    for i in range(60):
        same = np.flatnonzero(y[indices] == y[i])
        assert clusters[i] == same[np.argmax(similarity[i, indices[same]])]
    np.testing.assert_array_equal(np.bincount(clusters, minlength=15), sizes)


def test_weights_are_normalized_to_the_coreset_size():
    rng = np.random.default_rng(11)
    g, y = rng.standard_normal((40, 2)), rng.integers(0, 2, 40)
    indices, _ = facility_location_greedy(g, y, np.array([3, 4]))
    sizes, _ = coreset_cluster_weights(g, y, indices, normalize=False)
    weights, _ = coreset_cluster_weights(g, y, indices)
    np.testing.assert_allclose(weights, sizes / sizes.sum() * 7, rtol=1e-15)
    np.testing.assert_allclose(weights.sum(), 7.0, rtol=1e-14)


def test_zero_size_cluster_gets_weight_one():
    points = np.array([[0.0, 0.0], [1.0, 1.0], [4.0, 0.0]])
    g = np.vstack([points, points[1:2]])  # point 3 duplicates point 1
    sizes, clusters = coreset_cluster_weights(
        g, np.zeros(4, dtype=np.int64), np.array([1, 3, 2]), normalize=False
    )
    np.testing.assert_array_equal(clusters, [0, 0, 2, 0])  # the tie goes to the earlier selected 1
    np.testing.assert_array_equal(sizes, [3.0, 1.0, 1.0])  # 3's empty cluster counts 1


def test_craig_kernel_ignores_points_at_zero_similarity():
    g = np.array([[0.0], [1.0], [10.0]])
    sizes, clusters = coreset_cluster_weights(
        g, np.zeros(3, dtype=np.int64), np.array([0]), kernel="craig_max_minus_distance", normalize=False
    )
    np.testing.assert_array_equal(clusters, [0, 0, -1])
    np.testing.assert_array_equal(sizes, [2.0])  # |V_c| minus the ignored point


# -- class_budget_split ------------------------------------------------------------------------------
def test_equal_split_follows_the_official_redistribution():
    # q = ⌈200/4⌉ = 50; class 2 has 30 < 50: extra = 20, |M| = 1, the others get +20
    budgets = class_budget_split(np.array([500, 500, 30, 500]), np.arange(4), budget=200)
    np.testing.assert_array_equal(budgets, [70, 70, 30, 70])
    # two minority classes: extra = 10 + 5 = 15, each other class gets ⌈15/2⌉ = 8
    budgets = class_budget_split(np.array([100, 40, 45, 100]), np.arange(4), budget=200)
    np.testing.assert_array_equal(budgets, [58, 40, 45, 58])
    # no minority: exactly ⌈B/C⌉ each
    np.testing.assert_array_equal(class_budget_split(np.array([9, 9, 9]), np.arange(3), budget=7), [3, 3, 3])
    assert class_budget_split(np.array([9, 9]), np.arange(2), budget=7).dtype == np.int64


def test_proportional_split_sums_to_the_budget_with_the_given_decrements():
    counts = np.array([3, 3, 3])
    np.testing.assert_array_equal(
        class_budget_split(counts, np.array([2, 0, 1]), budget=4, equal_num=False), [1, 2, 1]
    )
    np.testing.assert_array_equal(
        class_budget_split(counts, np.array([1, 2, 0]), budget=4, equal_num=False), [2, 1, 1]
    )
    rng = np.random.default_rng(12)
    for _ in range(200):
        counts = rng.integers(0, 30, size=int(rng.integers(1, 8)))
        counts[0] += 1
        budget = int(rng.integers(0, counts.sum() + 1))
        budgets = class_budget_split(counts, rng.permutation(counts.shape[0]), budget=budget, equal_num=False)
        assert budgets.sum() == budget
        assert np.all((budgets >= 0) & (budgets <= counts))
        assert np.all(np.abs(budgets - counts * budget / counts.sum()) <= 1)  # within one of proportional


# -- errors -----------------------------------------------------------------------------------------
def test_bad_inputs_raise_input_error():
    g, y = np.zeros((4, 2)), np.array([0, 0, 1, 1])
    with pytest.raises(InputError, match=r"facility_location_greedy: argument 'budgets'.*k_1 = 3"):
        facility_location_greedy(g, y, np.array([1, 3]))
    with pytest.raises(InputError, match="square"):
        facility_location_greedy(g, y, np.array([1, 1]), kernel="precomputed")
    with pytest.raises(InputError, match="finite"):
        facility_location_greedy(np.array([[np.inf], [0.0]]), np.array([0, 0]), np.array([1]))
    with pytest.raises(InputError, match="distinct"):
        coreset_cluster_weights(g, y, np.array([2, 2]))
    with pytest.raises(InputError, match="use_linear"):
        craig_gradient_proxy(g, y, use_linear=True)
    with pytest.raises(InputError, match="B <= n"):
        class_budget_split(np.array([1, 2]), np.arange(2), budget=4)
    with pytest.raises(InputError, match="permutation"):
        class_budget_split(np.array([1, 2]), np.array([0, 0]), budget=2, equal_num=False)
    with pytest.raises(refimpl.NotDifferentiableError):
        refimpl.vjp("facility_location_greedy", g, y, np.array([1, 1]))
