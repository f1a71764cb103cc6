"""Winsorized mean of per-example gradients: clip to the (c+1)-th order statistics, then average."""

import numpy as np
import pytest

import refimpl
from refimpl.optim import winsorized_gradient


def _backend(name):
    if name == "cupy[host]":
        from refimpl_cupy import host_backend

        return host_backend()
    return refimpl.backend(name)


def test_level_zero_gives_the_mean():
    g = np.random.default_rng(0).standard_normal((9, 4))
    np.testing.assert_allclose(winsorized_gradient(g, level=0), g.mean(0), rtol=1e-15)


def test_largest_level_gives_the_median():
    g = np.random.default_rng(1).standard_normal((9, 4))
    np.testing.assert_allclose(winsorized_gradient(g, level=4), np.median(g, axis=0), rtol=1e-15)


def test_hand_example():
    g = np.array([[0.0, 5.0], [1.0, -1.0], [2.0, 0.0], [100.0, 1.0]])
    np.testing.assert_allclose(winsorized_gradient(g, level=1), [1.5, 0.5], rtol=1e-15)


def test_matches_a_loop_over_coordinates():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((11, 6))
    c = 3
    expected = []
    for column in g.T:
        s = sorted(column)
        expected.append(np.mean([min(max(v, s[c]), s[-1 - c]) for v in column]))
    np.testing.assert_allclose(winsorized_gradient(g, level=c), expected, rtol=1e-14)


def test_planted_outliers_up_to_c_are_neutralized():
    rng = np.random.default_rng(4)
    g = rng.standard_normal((20, 5))
    clean = winsorized_gradient(g, level=2)
    g[3], g[7] = 1e9, -1e9
    assert np.abs(winsorized_gradient(g, level=2) - clean).max() < 1.0


def test_crossing_bounds_are_refused():
    with pytest.raises(refimpl.InputError, match="level"):
        winsorized_gradient(np.ones((4, 2)), level=2)


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
@pytest.mark.parametrize("level", [0, 1, 5, 99])
def test_fast_backends_agree(backend, level):
    g = np.random.default_rng(level).standard_normal((200, 600))
    ref = winsorized_gradient(g, level=level)
    got = _backend(backend).get("winsorized_gradient")(g, level=level)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)
