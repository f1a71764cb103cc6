"""GroupSort: hand values, the stable tie rule, the full sort, gradient-norm preservation."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import groupsort_activation


def test_groupsort_hand_values_and_scattered_gradient():
    x = np.array([[1.0, 3.0, 2.0, 5.0, 4.0, 0.0]])
    y, pullback = refimpl.vjp(groupsort_activation, x, group_size=3)
    np.testing.assert_array_equal(y, [[3.0, 2.0, 1.0, 5.0, 4.0, 0.0]])
    (g_x,) = pullback(np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]))
    np.testing.assert_array_equal(g_x, [[3.0, 1.0, 2.0, 4.0, 5.0, 6.0]])


def test_groupsort_ties_keep_their_original_order():
    # values (2, 1, 2, 2): the stable order is indices (0, 2, 3, 1)
    x = np.array([[2.0, 1.0, 2.0, 2.0]])
    _, pullback = refimpl.vjp(groupsort_activation, x, group_size=4)
    (g_x,) = pullback(np.array([[10.0, 20.0, 30.0, 40.0]]))
    np.testing.assert_array_equal(g_x, [[10.0, 40.0, 20.0, 30.0]])


def test_groupsort_full_sort_and_identity_groups():
    x = np.random.default_rng(0).standard_normal((3, 7))
    np.testing.assert_array_equal(groupsort_activation(x, group_size=7), -np.sort(-x, axis=-1))
    np.testing.assert_array_equal(groupsort_activation(x, group_size=1), x)


def test_groupsort_preserves_the_gradient_norm_and_is_one_lipschitz():
    rng = np.random.default_rng(1)
    x, g_y = rng.standard_normal((6, 12)), rng.standard_normal((6, 12))
    _, pullback = refimpl.vjp(groupsort_activation, x, group_size=4)
    (g_x,) = pullback(g_y)
    np.testing.assert_allclose(np.linalg.norm(g_x, axis=-1), np.linalg.norm(g_y, axis=-1), rtol=1e-15)
    x2 = rng.standard_normal((6, 12))
    distance = np.linalg.norm(
        groupsort_activation(x, group_size=4) - groupsort_activation(x2, group_size=4), axis=-1
    )
    assert np.all(distance <= np.linalg.norm(x - x2, axis=-1) + 1e-12)


def test_groupsort_refuses_a_group_size_that_does_not_divide_d():
    with pytest.raises(refimpl.InputError, match="divisor"):
        groupsort_activation(np.ones((2, 6)), group_size=4)
