"""StableMax: published values, invariants and the float32 pitfall, on every backend."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import stablemax, stablemax_cross_entropy
from refimpl.losses.stablemax import s_of


def test_stablemax_cross_entropy_matches_published_example():
    z, y = np.array([[1.0, -2.0, 0.5]]), np.array([2])
    np.testing.assert_allclose(stablemax(z), [[0.5217391, 0.0869565, 0.3913043]], atol=5e-8)
    loss, pullback = refimpl.vjp(stablemax_cross_entropy, z, y)
    np.testing.assert_allclose(loss, 0.9382696, atol=5e-8)
    (g_z,) = pullback(np.array(1.0))
    np.testing.assert_allclose(g_z, [[0.2608696, 0.0289855, -0.4057971]], atol=5e-8)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_float32_logit_exactly_one_has_finite_gradient(backend):
    # the official two-branch select gives NaN here in float32 (catalog: [nan, 0.029, -0.406])
    z, y = np.array([[1.0, -2.0, 0.5]], np.float32), np.array([2])
    loss, pullback = refimpl.vjp("stablemax_cross_entropy", z, y, backend=backend)
    (g_z,) = pullback(np.array(1.0, np.float32))
    assert g_z.dtype == np.float32
    np.testing.assert_allclose(g_z, [[0.2608696, 0.0289855, -0.4057971]], atol=1e-6)


def test_s_and_its_derivative_are_one_at_zero_from_both_sides():
    h = 1e-8
    assert s_of(np.array(0.0)) == 1.0
    right = (s_of(np.array(h)) - s_of(np.array(0.0))) / h
    left = (s_of(np.array(0.0)) - s_of(np.array(-h))) / h
    np.testing.assert_allclose([left, right], [1.0, 1.0], atol=1e-7)


def test_rows_sum_to_one_and_shift_changes_the_result():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 7)) * 10
    p = stablemax(z)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-14)
    # not shift-invariant: an implementation that subtracts the row max is wrong
    assert np.abs(stablemax(z + 3.0) - p).max() > 1e-3


def test_large_logits_stay_finite_in_float32():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], np.float32)
    loss, pullback = refimpl.vjp(stablemax_cross_entropy, z, np.array([1, 2]), reduction="none")
    (g_z,) = pullback(np.ones(2, np.float32))
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(g_z))
    # the last row is uniform: every class has probability 1/3
    np.testing.assert_allclose(loss[1], np.log(3.0), rtol=1e-6)


def test_one_class_loss_and_gradient_are_zero():
    loss, pullback = refimpl.vjp(stablemax_cross_entropy, np.array([[4.0], [-2.0]]), np.array([0, 0]))
    assert loss == 0.0
    np.testing.assert_array_equal(pullback(np.array(1.0))[0], 0.0)


def test_reductions_agree():
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    per_row = stablemax_cross_entropy(z, y, reduction="none")
    np.testing.assert_allclose(stablemax_cross_entropy(z, y, reduction="sum"), per_row.sum())
    np.testing.assert_allclose(stablemax_cross_entropy(z, y), per_row.mean())


def test_official_float64_upcast_returns_the_input_dtype():
    z = np.array([[1.0, -2.0, 0.5]], np.float32)
    loss = stablemax_cross_entropy(z, np.array([2]), compute_in_float64=True)
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss, 0.9382696, rtol=1e-7)
