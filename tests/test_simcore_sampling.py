"""simcore_sampling: SimCore's round-robin coreset of the open set around the target centroids."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

import refimpl
from refimpl import InputError

simcore_sampling = refimpl.data_selection.simcore_sampling


def _official_greedy(sim, sampling_nums, keys, stop=False, stop_thresh=0.95, patience=20):
    """util/sampling.py, greedy, transcribed in NumPy (stable descending sorts; the final
    np.random.choice(list(tmp), size, replace=False) drawn as the smallest keys). Returns the set."""
    n, k_count = sim.shape
    queues = [deque(np.argsort(-sim[:, k], kind="stable")) for k in range(k_count)]
    indices, tmp = set(), set()
    flag, threshold = 1, 0
    while len(indices) < sampling_nums:
        func_value = 0
        for q, queue in enumerate(queues):
            while True:
                i = queue.popleft()
                if i not in indices:
                    break
            tmp.update({i})
            if stop:
                func_value += sim[i, q] / k_count
        if flag == patience:
            threshold = func_value * stop_thresh
        flag += 1
        if stop and func_value < threshold:
            break
        if len(indices) + len(tmp) > sampling_nums:
            tmp = set(sorted(tmp, key=lambda i: keys[i])[: sampling_nums - len(indices)])
        indices.update(tmp)
        tmp = set()
    return indices


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_hand_computed_rounds_with_a_shared_pick():
    z = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    c = np.array([[1.0, 0.1], [0.1, 1.0]])
    indices, values = simcore_sampling(z, c, np.zeros(4), budget=3)
    np.testing.assert_array_equal(indices, [0, 1, 2])
    cos = 1 / np.sqrt(1.01)  # ⟨e_0, (1, 0.1)/‖·‖⟩
    both = 1.1 / np.sqrt(2 * 1.01)  # ⟨(1, 1)/√2, (1, 0.1)/‖·‖⟩, for both centroids
    np.testing.assert_allclose(values, [cos, both], rtol=1e-15)


def test_one_centroid_gives_the_nearest_neighbours_of_its_direction():
    rng = np.random.default_rng(4)
    z, c = rng.standard_normal((30, 5)), rng.standard_normal((1, 5))
    indices, values = simcore_sampling(z, c, rng.random(30), budget=7)
    cosines = _unit(z) @ _unit(c)[0]
    np.testing.assert_array_equal(indices, np.argsort(-cosines, kind="stable")[:7])
    np.testing.assert_allclose(values, cosines[indices], rtol=1e-13)


def test_ties_go_to_the_lowest_index():
    z = np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [3.0, 0.0]])  # 1, 2, 3 share one direction
    indices, _ = simcore_sampling(z, np.array([[1.0, 0.0]]), np.zeros(4), budget=2)
    np.testing.assert_array_equal(indices, [1, 2])


@pytest.mark.parametrize("stop", [False, True])
def test_matches_the_official_greedy(stop):
    rng = np.random.default_rng(157)
    z, c = rng.standard_normal((60, 8)), rng.standard_normal((5, 8)) + 0.5
    sim = _unit(z) @ _unit(c).T
    keys = rng.random(60)
    budget = 60 if stop else 23
    official = _official_greedy(sim, budget, keys, stop=stop, stop_thresh=0.95, patience=2)
    indices, values = simcore_sampling(z, c, keys, budget=budget, stop=stop, patience=2)
    assert set(indices.tolist()) == official
    assert len(indices) == len(official)
    if stop:
        assert values[-1] < 0.95 * values[1]  # the stopping round
        assert np.all(values[1:-1] >= 0.95 * values[1])


def test_the_stopping_rule_drops_the_round_below_the_threshold():
    z = np.array([[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.0, 1.0], [-1.0, 0.2]])
    indices, values = simcore_sampling(
        z, np.array([[1.0, 0.0]]), np.zeros(5), budget=5, stop=True, patience=1
    )
    np.testing.assert_array_equal(indices, [0, 1])
    np.testing.assert_allclose(values, [1.0, 0.9 / np.hypot(0.9, 0.1), np.sqrt(0.5)], rtol=1e-15)
    # without stop the budget is spent
    indices, _ = simcore_sampling(z, np.array([[1.0, 0.0]]), np.zeros(5), budget=5)
    np.testing.assert_array_equal(indices, [0, 1, 2, 3, 4])


def test_negative_similarity_before_patience_stops_as_the_official_code():
    z = np.array([[-1.0, 0.0], [-1.0, 0.5]])
    indices, values = simcore_sampling(z, np.array([[1.0, 0.0]]), np.zeros(2), budget=2, stop=True)
    assert indices.size == 0 and values.size == 1
    np.testing.assert_allclose(values, [-1 / np.sqrt(1.25)], rtol=1e-15)  # z_1 is the nearest


def test_budget_above_n_selects_everything_once():
    rng = np.random.default_rng(2)
    indices, _ = simcore_sampling(
        rng.standard_normal((9, 3)), rng.standard_normal((4, 3)), rng.random(9), budget=100
    )
    np.testing.assert_array_equal(np.sort(indices), np.arange(9))


def test_truncated_last_round_is_a_uniform_subset_of_its_picks():
    """Round 1 of 3 centroids picks {0, 1, 3}; budget 2 keeps each with probability 2/3 (5 sigma)."""
    z = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    c = np.array([[1.0, 0.1], [0.1, 1.0], [-1.0, 0.0]])
    indices, _ = simcore_sampling(z, c, np.array([0.9, 0.5, 0.1, 0.3]), budget=2)
    np.testing.assert_array_equal(indices, [1, 3])  # the two smallest keys among 0, 1, 3
    rng = np.random.default_rng(99)
    counts = np.zeros(4)
    trials = 3000
    for _ in range(trials):
        counts[simcore_sampling(z, c, rng.random(4), budget=2)[0]] += 1
    p = 2 / 3
    assert counts[2] == 0
    assert np.all(np.abs(counts[[0, 1, 3]] - trials * p) < 5 * np.sqrt(trials * p * (1 - p)))


def test_zero_rows_are_refused():
    with pytest.raises(InputError, match="non-zero norm"):
        simcore_sampling(np.array([[1.0, 0.0], [0.0, 0.0]]), np.ones((1, 2)), np.zeros(2), budget=1)
