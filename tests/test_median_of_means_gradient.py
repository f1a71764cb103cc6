"""Median of means of per-example gradients: group means, coordinate-wise median, even-K tie rule."""

import numpy as np
import pytest

import refimpl
from refimpl.optim import median_of_means_gradient


def _backend(name):
    if name == "cupy[host]":
        from refimpl_cupy import host_backend

        return host_backend()
    return refimpl.backend(name)


def test_one_group_gives_the_mean():
    g = np.random.default_rng(0).standard_normal((9, 4))
    np.testing.assert_allclose(median_of_means_gradient(g, np.zeros(9, dtype=int)), g.mean(0), rtol=1e-15)


def test_singleton_groups_give_the_coordinate_wise_median():
    g = np.random.default_rng(1).standard_normal((7, 3))
    np.testing.assert_array_equal(median_of_means_gradient(g, np.arange(7)), np.median(g, axis=0))


def test_even_number_of_groups_averages_the_two_middle_means():
    g = np.array([[1.0], [4.0], [2.0], [10.0]])
    # group means 1, 4, 2, 10 → sorted 1, 2, 4, 10 → (2 + 4)/2, not torch.median's lower value 2
    assert median_of_means_gradient(g, np.array([0, 1, 2, 3]))[0] == 3.0


def test_hand_example_with_unequal_groups():
    g = np.array([[1.0, 0.0], [3.0, 2.0], [10.0, -4.0], [0.0, 6.0], [2.0, 2.0]])
    # means: group 0 rows 0,1,4 → (2, 4/3); group 1 row 2 → (10, −4); group 2 row 3 → (0, 6)
    np.testing.assert_allclose(
        median_of_means_gradient(g, np.array([0, 0, 1, 2, 0])), [2.0, 4 / 3], rtol=1e-15
    )


def test_a_planted_outlier_does_not_move_the_aggregate_much():
    rng = np.random.default_rng(2)
    g = 1.0 + 0.01 * rng.standard_normal((30, 5))
    groups = np.arange(30) % 3
    clean = median_of_means_gradient(g, groups)
    g[4] = 1e8
    robust = median_of_means_gradient(g, groups)
    assert np.abs(robust - clean).max() < 0.05  # the mean would move by ~3e6
    assert np.abs(g.mean(0) - clean).max() > 1e6


def test_empty_group_is_refused():
    with pytest.raises(refimpl.InputError, match="group 1"):
        median_of_means_gradient(np.ones((3, 2)), np.array([0, 2, 2]))


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
@pytest.mark.parametrize("k", [1, 3, 4, 50])
def test_fast_backends_agree(backend, k):
    rng = np.random.default_rng(k)
    g = rng.standard_normal((200, 600))
    groups = rng.permutation(np.concatenate([np.arange(k), rng.integers(0, k, 200 - k)]))
    ref = median_of_means_gradient(g, groups)
    got = _backend(backend).get("median_of_means_gradient")(g, groups)
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-14)
