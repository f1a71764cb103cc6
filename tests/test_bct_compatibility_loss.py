"""bct_compatibility_loss (BT²): the old classifier's cross-entropy on the first d coordinates."""

import numpy as np

import refimpl
from refimpl.layers import bct_compatibility_loss, cayley_orthogonal


def _inputs(seed=0, batch=5, classes=4, d=3, extra=2):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((batch, d + extra)),
        rng.integers(0, classes, size=batch),
        rng.standard_normal((classes, d)),
        rng.standard_normal(classes),
    )


def test_bct_loss_equals_a_direct_cross_entropy():
    z, y, weight, bias = _inputs()
    logits = z[:, :3] @ weight.T + bias
    expected = np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(5), y])
    np.testing.assert_allclose(bct_compatibility_loss(z, y, weight, bias=bias), expected, rtol=1e-13)


def test_bct_loss_ignores_the_added_coordinates():
    z, y, weight, bias = _inputs(1)
    moved = z.copy()
    moved[:, 3:] += 100.0
    assert bct_compatibility_loss(moved, y, weight, bias=bias) == bct_compatibility_loss(
        z, y, weight, bias=bias
    )
    _, pullback = refimpl.vjp(bct_compatibility_loss, z, y, weight, bias=bias)
    (g_z,) = pullback(np.float64(1.0))
    np.testing.assert_array_equal(g_z[:, 3:], 0.0)
    assert np.abs(g_z[:, :3]).min() > 0


def test_bct_loss_gradient_matches_finite_differences_and_sums_over_rows():
    z, y, weight, bias = _inputs(2)
    _, pullback = refimpl.vjp(bct_compatibility_loss, z, y, weight, bias=bias, reduction="sum")
    (g_z,) = pullback(np.float64(2.0))
    h = 1e-6
    for index in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[index] = h
        plus = bct_compatibility_loss(z + step, y, weight, bias=bias, reduction="sum")
        minus = bct_compatibility_loss(z - step, y, weight, bias=bias, reduction="sum")
        np.testing.assert_allclose(g_z[index], 2.0 * (plus - minus) / (2 * h), atol=1e-7)


def test_bct_loss_through_the_cayley_basis_change_keeps_the_old_model_when_r_is_identity():
    # with S symmetric, R = I: z = φ_new, and the loss is the old classifier's cross-entropy on φ_new[:d]
    z, y, weight, _ = _inputs(3)
    s = np.ones((5, 5))
    r = cayley_orthogonal(s)
    np.testing.assert_array_equal(r, np.eye(5))
    np.testing.assert_allclose(
        bct_compatibility_loss(z @ r.T, y, weight), bct_compatibility_loss(z, y, weight), rtol=1e-15
    )


def test_bct_loss_hand_value_and_shift_invariance():
    z = np.array([[1.0, 0.0, 5.0]])
    loss = bct_compatibility_loss(z, np.array([0]), np.eye(2), bias=np.array([1e4, 1e4]))
    np.testing.assert_allclose(loss, np.log1p(np.exp(-1.0)), rtol=1e-12)
