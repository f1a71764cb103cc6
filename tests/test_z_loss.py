"""Z-loss: known values, shift/scale invariance, gradient identities, σ = 0."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import z_loss


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 7)) * 3, rng.integers(0, 7, size=6)


def test_z_loss_known_value():
    # z = [1, −1]; a(b − z_c) = 0: softplus(0)/a = log 2
    np.testing.assert_allclose(z_loss(np.array([[1.0, -1.0]]), np.array([0]), a=1.0, b=1.0), math.log(2))
    # z = [1, −1], c = 1: (1/2) softplus(2·(0.5 + 1)) = log(1 + e³)/2
    np.testing.assert_allclose(
        z_loss(np.array([[5.0, 3.0]]), np.array([1]), a=2.0, b=0.5), math.log1p(math.exp(3.0)) / 2
    )


def test_z_loss_hand_computed_three_outputs():
    o, c = np.array([[3.0, 0.0, 0.0]]), np.array([0])
    # μ = 1, σ = √2, z_c = 2/√2 = √2
    expected = math.log1p(math.exp(1.5 * (0.2 - math.sqrt(2)))) / 1.5
    np.testing.assert_allclose(z_loss(o, c, a=1.5, b=0.2), expected, rtol=1e-15)


def test_z_loss_is_invariant_to_shift_and_positive_scale(batch):
    o, c = batch
    base = z_loss(o, c, a=2.0, b=1.0, reduction="none")
    for scale, shift in ((1e-3, 0.0), (7.0, -40.0), (1e5, 3.0)):
        np.testing.assert_allclose(
            z_loss(scale * o + shift, c, a=2.0, b=1.0, reduction="none"), base, rtol=1e-9
        )


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_z_loss_gradient_is_orthogonal_to_ones_and_to_the_outputs(batch, backend):
    o, c = batch
    _, pullback = refimpl.vjp("z_loss", o, c, a=2.0, b=1.0, reduction="none", backend=backend)
    (g_o,) = pullback(np.linspace(0.5, 2.0, 6))
    np.testing.assert_allclose(g_o.sum(axis=1), 0.0, atol=1e-15)  # shift invariance
    np.testing.assert_allclose((o * g_o).sum(axis=1), 0.0, atol=1e-13)  # scale invariance


def test_z_loss_gradient_matches_the_catalog_formula(batch):
    o, c = batch
    a, b = 0.7, -0.3
    _, pullback = refimpl.vjp(z_loss, o, c, a=a, b=b, reduction="sum")
    (g_o,) = pullback(np.array(1.0))
    d = o.shape[1]
    mu, sigma = o.mean(axis=1, keepdims=True), o.std(axis=1, keepdims=True)
    z = (o - mu) / sigma
    z_c = z[np.arange(6), c][:, None]
    s = 1 / (1 + np.exp(-a * (b - z_c)))
    expected = -(s / sigma) * (np.eye(d)[c] - 1 / d - z_c * z / d)
    np.testing.assert_allclose(g_o, expected, rtol=1e-12, atol=1e-15)


def test_z_loss_with_two_outputs_is_constant_and_has_zero_gradient():
    o, c = np.array([[0.3, -2.0], [5.0, 9.0]]), np.array([0, 0])
    loss, pullback = refimpl.vjp(z_loss, o, c, a=1.0, b=0.0, reduction="none")
    # z_c = ±1 whatever the values: softplus(∓1)
    np.testing.assert_allclose(loss, [math.log1p(math.exp(-1.0)), math.log1p(math.exp(1.0))])
    np.testing.assert_allclose(pullback(np.ones(2))[0], 0.0, atol=1e-16)


def test_z_loss_saturated_softplus_is_finite_and_linear():
    o, c = np.array([[1.0, 0.0, -1.0]]), np.array([2])  # z_c = −√1.5
    loss = z_loss(o, c, a=100.0, b=5.0)
    np.testing.assert_allclose(loss, 5.0 + math.sqrt(1.5), rtol=1e-12)  # softplus(x)/a ≈ x/a
    assert z_loss(o, np.array([0]), a=100.0, b=-5.0) < 1e-200


def test_z_loss_equal_outputs_need_eps():
    o, c = np.array([[2.0, 2.0, 2.0]]), np.array([1])
    with pytest.raises(refimpl.InputError, match="all outputs equal in row 0"):
        z_loss(o, c, a=1.0, b=1.0)
    loss, pullback = refimpl.vjp(z_loss, o, c, a=1.0, b=1.0, eps=1e-6)
    np.testing.assert_allclose(loss, math.log1p(math.e))  # z = 0: softplus(1)
    assert np.all(np.isfinite(pullback(np.array(1.0))[0]))


def test_z_loss_requires_a_and_b_and_two_outputs():
    o, c = np.array([[1.0, 2.0, 0.0]]), np.array([0])
    with pytest.raises(refimpl.InputError, match="'a'"):
        z_loss(o, c, b=0.0)
    with pytest.raises(refimpl.InputError, match="'b'"):
        z_loss(o, c, a=1.0)
    with pytest.raises(refimpl.InputError, match="D >= 2"):
        z_loss(np.ones((2, 1)), np.array([0, 0]), a=1.0, b=0.0, eps=1.0)


def test_z_loss_large_offset_keeps_float32_digits():
    rng = np.random.default_rng(4)
    o = (1000.0 + rng.standard_normal((4, 8))).astype(np.float32)
    c = np.array([0, 3, 5, 7])
    single = z_loss(o, c, a=2.0, b=1.0, reduction="none")
    double = z_loss(o.astype(np.float64), c, a=2.0, b=1.0, reduction="none")
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, double, rtol=1e-4)  # two-pass variance: no E[o²] − μ² cancellation
