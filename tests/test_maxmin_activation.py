"""MaxMin: hand values, the tie rule, the two pairings, 1-Lipschitz and gradient-norm preservation."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import groupsort_activation, maxmin_activation


def test_maxmin_hand_values_in_both_pairings():
    x = np.array([[1.0, 3.0, 2.0, -1.0]])
    np.testing.assert_array_equal(maxmin_activation(x), [[3.0, 1.0, 2.0, -1.0]])
    np.testing.assert_array_equal(maxmin_activation(x, pairing="halves"), [[2.0, 3.0, 1.0, -1.0]])


def test_maxmin_tie_keeps_the_first_member_first_and_routes_the_gradient_straight():
    x = np.array([[2.0, 2.0, 0.0, -0.0]])
    y, pullback = refimpl.vjp(maxmin_activation, x)
    np.testing.assert_array_equal(y, x)
    assert np.signbit(y[0, 3])  # −0.0 stays in the min slot: no swap on 0 = −0
    (g_x,) = pullback(np.array([[1.0, 2.0, 3.0, 4.0]]))
    np.testing.assert_array_equal(g_x, [[1.0, 2.0, 3.0, 4.0]])


@pytest.mark.parametrize("pairing", ["adjacent", "halves"])
def test_maxmin_preserves_the_gradient_norm_row_by_row(pairing):
    rng = np.random.default_rng(0)
    x, g_y = rng.standard_normal((5, 8)), rng.standard_normal((5, 8))
    _, pullback = refimpl.vjp(maxmin_activation, x, pairing=pairing)
    (g_x,) = pullback(g_y)
    np.testing.assert_allclose(np.linalg.norm(g_x, axis=-1), np.linalg.norm(g_y, axis=-1), rtol=1e-15)
    assert not np.array_equal(g_x, g_y)  # some pair did swap


def test_maxmin_is_one_lipschitz_and_preserves_sums_and_norms():
    rng = np.random.default_rng(1)
    x, x2 = rng.standard_normal((50, 6)), rng.standard_normal((50, 6))
    y, y2 = maxmin_activation(x), maxmin_activation(x2)
    assert np.all(np.linalg.norm(y - y2, axis=-1) <= np.linalg.norm(x - x2, axis=-1) + 1e-12)
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-15)
    np.testing.assert_allclose(y.sum(axis=-1), x.sum(axis=-1), rtol=1e-13)


def test_maxmin_adjacent_equals_groupsort_of_size_two():
    x = np.random.default_rng(2).standard_normal((4, 10))
    np.testing.assert_array_equal(maxmin_activation(x), groupsort_activation(x, group_size=2))


def test_maxmin_halves_matches_the_soc_code():
    # singlasahil14/SOC MaxMin.forward: a, b = z.split(D/2); cat([max(a, b), min(a, b)])
    x = np.random.default_rng(3).standard_normal((3, 8))
    a, b = x[:, :4], x[:, 4:]
    np.testing.assert_array_equal(
        maxmin_activation(x, pairing="halves"), np.concatenate([np.maximum(a, b), np.minimum(a, b)], axis=1)
    )


def test_maxmin_refuses_an_odd_number_of_features():
    with pytest.raises(refimpl.InputError, match="even"):
        maxmin_activation(np.ones((2, 5)))
