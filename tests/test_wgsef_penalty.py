"""WGSEF penalty: singleton groups reduce it to the SEF, k = G limits, group-sparse weights,
hand values, the gradient's direction per group, and the unpinned composition being required."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import sparse_envelope_function, wgsef_penalty


@pytest.fixture
def groups():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 4)), rng.uniform(0.5, 2.0, 6)


def test_wgsef_singleton_groups_with_unit_weights_is_the_sef():
    x = np.random.default_rng(1).standard_normal(7)
    for k in (1, 3, 7):
        np.testing.assert_allclose(
            wgsef_penalty(x[:, None], np.ones(7), k=k, composition="envelope"),
            sparse_envelope_function(x, k=k),
            rtol=1e-14,
        )


def test_wgsef_is_sef_of_the_weighted_group_norms(groups):
    x, weights = groups
    u = weights * np.linalg.norm(x, axis=1)
    for k in (1, 2, 6):
        envelope = sparse_envelope_function(u, k=k)
        np.testing.assert_allclose(
            wgsef_penalty(x, weights, k=k, composition="envelope"), envelope, rtol=1e-14
        )
        np.testing.assert_allclose(
            wgsef_penalty(x, weights, k=k, composition="envelope_minus_half_norm"),
            envelope - 0.5 * (u * u).sum(),
            rtol=1e-12,
            atol=1e-12,
        )


def test_wgsef_minus_half_norm_vanishes_on_k_group_sparse_weights(groups):
    x, weights = groups
    x = x.copy()
    x[[1, 3, 4]] = 0.0  # 3 nonzero groups
    for k in (3, 4, 6):
        penalty, pullback = refimpl.vjp(
            wgsef_penalty, x, weights, k=k, composition="envelope_minus_half_norm"
        )
        assert abs(float(penalty)) < 1e-12
        np.testing.assert_allclose(pullback(np.array(1.0))[0], 0.0, atol=1e-12)
    assert wgsef_penalty(x, weights, k=2, composition="envelope_minus_half_norm") > 0.1


def test_wgsef_hand_values():
    x = np.array([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0]])  # norms [5, 1, 1]; k = 2: θ = 2
    assert wgsef_penalty(x, np.ones(3), k=2, composition="envelope") == 14.5
    assert wgsef_penalty(x, np.ones(3), k=2, composition="envelope_minus_half_norm") == 1.0
    # ω = [1, 2, 2]: u = [5, 2, 2], θ = 4 < 5: ½(25 + 16)
    assert wgsef_penalty(x, np.array([1.0, 2.0, 2.0]), k=2, composition="envelope") == 20.5


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_wgsef_gradient_is_the_sef_slope_along_each_group(backend, groups):
    x, weights = groups
    x = x.copy()
    x[2] = 0.0
    u = weights * np.linalg.norm(x, axis=1)
    _, pullback = refimpl.vjp("wgsef_penalty", x, weights, k=2, composition="envelope", backend=backend)
    (g_x,) = pullback(np.array(2.0))
    _, sef_pullback = refimpl.vjp(sparse_envelope_function, u, k=2)
    (slope,) = sef_pullback(np.array(2.0))
    norms = np.linalg.norm(x, axis=1)
    expected = np.zeros_like(x)
    nonzero = norms > 0
    expected[nonzero] = (slope * weights)[nonzero, None] * x[nonzero] / norms[nonzero, None]
    np.testing.assert_allclose(g_x, expected, rtol=1e-12)
    assert np.all(g_x[2] == 0.0)


def test_wgsef_requires_the_composition_and_valid_k_and_weights():
    x = np.ones((3, 2))
    with pytest.raises(refimpl.InputError, match="composition"):
        wgsef_penalty(x, np.ones(3), k=2)
    with pytest.raises(refimpl.InputError, match="k <= G = 3"):
        wgsef_penalty(x, np.ones(3), k=4, composition="envelope")
    with pytest.raises(refimpl.InputError, match="ω_g >= 0"):
        wgsef_penalty(x, np.array([1.0, -1.0, 1.0]), k=2, composition="envelope")
