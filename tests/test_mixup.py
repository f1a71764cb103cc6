"""MixUp: hand values, endpoints, identity partner, shared permutation, scatter-add backward."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import mixup


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((5, 4)), np.eye(3)[rng.integers(0, 3, size=5)], rng.permutation(5)


def test_mixup_hand_computed_rows():
    x = np.array([[1.0, 0.0], [3.0, 4.0]])
    x_mixed, y_mixed = mixup(x, np.eye(2), np.array([0.25, 0.6]), np.array([1, 0]))
    np.testing.assert_allclose(x_mixed, [[2.5, 3.0], [0.6 * 3 + 0.4 * 1, 0.6 * 4]], rtol=1e-15)
    np.testing.assert_allclose(y_mixed, [[0.25, 0.75], [0.4, 0.6]], rtol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_mixup_endpoints_return_a_row_exactly(batch, backend):
    x, Y, perm = batch
    ones, _ = refimpl.vjp("mixup", x, Y, np.ones(5), perm, backend=backend)
    zeros, _ = refimpl.vjp("mixup", x, Y, np.zeros(5), perm, backend=backend)
    np.testing.assert_array_equal(ones[0], x)
    np.testing.assert_array_equal(ones[1], Y)
    np.testing.assert_array_equal(zeros[0], x[perm])
    np.testing.assert_array_equal(zeros[1], Y[perm])


def test_mixup_labels_use_the_same_partner_and_weight_as_inputs(batch):
    x, Y, perm = batch
    lam = np.array([0.1, 0.4, 0.5, 0.8, 0.95])
    # features = the labels themselves: mixing them as inputs must give the mixed labels
    x_mixed, y_mixed = mixup(Y.copy(), Y, lam, perm)
    np.testing.assert_array_equal(x_mixed, y_mixed)
    # each mixed label keeps total mass 1 and puts λ_i on y_i, 1 − λ_i on y_{π(i)}
    np.testing.assert_allclose(y_mixed.sum(axis=1), 1.0, rtol=1e-15)
    same = Y.argmax(1) == Y[perm].argmax(1)
    expected_own = np.where(same, 1.0, lam)
    np.testing.assert_allclose(y_mixed[np.arange(5), Y.argmax(1)], expected_own, rtol=1e-15)


def test_mixup_identity_partner_is_the_identity(batch):
    x, Y, _ = batch
    lam = np.linspace(0.0, 1.0, 5)
    (x_mixed, y_mixed), pullback = refimpl.vjp(mixup, x, Y, lam, np.arange(5))
    np.testing.assert_allclose(x_mixed, x, rtol=1e-15)
    np.testing.assert_allclose(y_mixed, Y, rtol=1e-15)
    g = np.arange(20.0).reshape(5, 4)
    np.testing.assert_allclose(pullback((g, np.ones((5, 3))))[0], g, rtol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_mixup_backward_scatters_the_partner_weight(backend):
    rng = np.random.default_rng(1)
    x, Y = rng.standard_normal((4, 3)), np.eye(2)[[0, 1, 1, 0]]
    lam, perm = np.array([0.2, 0.5, 0.7, 0.9]), np.array([3, 3, 0, 1])  # row 3 partners twice
    g = rng.standard_normal((4, 3))
    _, pullback = refimpl.vjp("mixup", x, Y, lam, perm, backend=backend)
    (g_x,) = pullback((g, np.zeros((4, 2))))
    expected = lam[:, None] * g
    expected[3] += 0.8 * g[0] + 0.5 * g[1]
    expected[0] += 0.3 * g[2]
    expected[1] += 0.1 * g[3]
    np.testing.assert_allclose(g_x, expected, rtol=1e-14)
    # a permutation moves the whole cotangent mass: Σ x̄ = Σ ḡ
    _, pullback = refimpl.vjp("mixup", x, Y, lam, np.array([1, 2, 3, 0]), backend=backend)
    np.testing.assert_allclose(pullback((g, np.zeros((4, 2))))[0].sum(0), g.sum(0), rtol=1e-13)


def test_mixup_refuses_coefficients_outside_the_unit_interval(batch):
    x, Y, perm = batch
    with pytest.raises(refimpl.InputError, match=r"\[0, 1\].*row 2"):
        mixup(x, Y, np.array([0.5, 0.5, 1.2, 0.5, 0.5]), perm)
