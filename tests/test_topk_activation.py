"""Top-k activation: hand values, both tie rules, the masked gradient, k = D and k above the positives."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import topk_activation


def test_topk_hand_values_and_masked_gradient():
    h = np.array([[0.0, 3.0, 1.0, 2.5, 2.0]])
    y, pullback = refimpl.vjp(topk_activation, h, k=2)
    np.testing.assert_array_equal(y, [[0.0, 3.0, 0.0, 2.5, 0.0]])
    (g_h,) = pullback(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]))
    np.testing.assert_array_equal(g_h, [[0.0, 2.0, 0.0, 4.0, 0.0]])


def test_topk_exactly_k_breaks_ties_by_lowest_index():
    h = np.array([[1.0, 3.0, 3.0, 0.5, 3.0], [2.0, 1.0, 1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(
        topk_activation(h, k=2), [[0.0, 3.0, 3.0, 0.0, 0.0], [2.0, 1.0, 0.0, 0.0, 0.0]]
    )
    assert (topk_activation(h, k=2) != 0).sum(axis=-1).tolist() == [2, 2]


def test_topk_threshold_keeps_every_entry_at_the_kth_value():
    h = np.array([[1.0, 3.0, 3.0, 0.5, 3.0], [2.0, 1.0, 1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(
        topk_activation(h, k=2, tie_rule="threshold"), [[0.0, 3.0, 3.0, 0.0, 3.0], [2.0, 1.0, 1.0, 1.0, 0.0]]
    )


def test_topk_matches_a_full_sort_without_ties():
    rng = np.random.default_rng(0)
    h = np.maximum(rng.standard_normal((20, 16)), 0.0) + rng.random((20, 16)) * 1e-3
    k = 5
    order = np.argsort(-h, axis=-1, kind="stable")[:, :k]
    expected = np.zeros_like(h)
    np.put_along_axis(expected, order, np.take_along_axis(h, order, axis=-1), axis=-1)
    for tie_rule in ("exactly_k", "threshold"):
        np.testing.assert_array_equal(topk_activation(h, k=k, tie_rule=tie_rule), expected)


def test_topk_with_k_equal_to_d_is_the_identity():
    h = np.random.default_rng(1).standard_normal((3, 6))
    np.testing.assert_array_equal(topk_activation(h, k=6), h)


def test_topk_with_k_above_the_positives_keeps_zeros_harmlessly():
    h = np.array([[0.0, 2.0, 0.0, 0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(topk_activation(h, k=4), h)
    _, pullback = refimpl.vjp(topk_activation, h, k=4)
    (g_h,) = pullback(np.ones((1, 6)))
    np.testing.assert_array_equal(g_h, [[1.0, 1.0, 1.0, 0.0, 1.0, 0.0]])  # the two first zeros


def test_topk_refuses_k_above_d():
    with pytest.raises(refimpl.InputError, match="at most"):
        topk_activation(np.ones((2, 3)), k=4)
