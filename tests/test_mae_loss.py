"""MAE loss: known values, the bound and symmetry, saturation, gradient formula, official code."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import mae_loss


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 5)) * 3, rng.integers(0, 5, size=6)


def _loss(*args, **kwargs):
    return refimpl.vjp("mae_loss", *args, **kwargs)[0]


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_mae_loss_known_values():
    loss, pullback = refimpl.vjp(mae_loss, np.array([[0.0, 0.0]]), np.array([0]))
    np.testing.assert_allclose(loss, 1.0, rtol=1e-15)  # p = [½, ½]: 2(1 − ½)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], [[-0.5, 0.5]], rtol=1e-15)
    e2 = math.exp(2.0)
    loss = mae_loss(np.array([[2.0, 0.0]]), np.array([0]), reduction="none")
    np.testing.assert_allclose(loss, [2 / (e2 + 1)], rtol=1e-14)  # 0.2384…
    # K = 3 uniform: ℓ = 2·(2/3) whatever the label
    np.testing.assert_allclose(mae_loss(np.zeros((2, 3)), np.array([0, 2]), reduction="sum"), 8 / 3)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_mae_loss_is_the_l1_distance_to_the_one_hot_label(batch, backend):
    z, y = batch
    one_hot = np.eye(5)[y]
    expected = np.abs(one_hot - _softmax(z)).sum(axis=1)
    got = _loss(z, y, reduction="none", backend=backend)
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    np.testing.assert_allclose(_loss(z, y, backend=backend), expected.mean(), rtol=1e-13)
    np.testing.assert_allclose(_loss(z, y, reduction="sum", backend=backend), expected.sum(), rtol=1e-13)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_mae_loss_is_bounded_by_0_and_2(backend):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((200, 7)) * rng.choice([0.1, 5.0, 100.0], size=(200, 1))
    loss = _loss(z, rng.integers(0, 7, size=200), reduction="none", backend=backend)
    assert np.all(loss >= 0) and np.all(loss <= 2)
    assert loss.min() < 1e-6 and loss.max() > 2 - 1e-6  # scale 100 reaches both ends


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_mae_loss_is_symmetric(backend):
    # Ghosh et al.: Σ_k ℓ(z, k) = 2(K − 1) for every z (the condition for noise tolerance)
    rng = np.random.default_rng(2)
    for num_classes in (1, 2, 3, 10):
        z = rng.standard_normal((4, num_classes)) * 4
        total = sum(_loss(z, np.full(4, k), reduction="none", backend=backend) for k in range(num_classes))
        np.testing.assert_allclose(total, 2 * (num_classes - 1), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_mae_loss_gradient_is_minus_two_p_y_times_one_hot_minus_p(batch, backend):
    z, y = batch
    g = np.linspace(0.5, 2.0, 6)
    _, pullback = refimpl.vjp("mae_loss", z, y, reduction="none", backend=backend)
    (g_z,) = pullback(g)
    p = _softmax(z)
    p_y = p[np.arange(6), y][:, None]
    expected = g[:, None] * (-2 * p_y * (np.eye(5)[y] - p))
    np.testing.assert_allclose(g_z, expected, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(g_z.sum(axis=1), 0.0, atol=1e-15)  # shift invariance


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_mae_loss_keeps_precision_as_p_y_goes_to_1(backend):
    z, y = np.array([[40.0, 0.0, -3.0]]), np.array([0])
    q = (1 + math.exp(-3.0)) * math.exp(-40.0)  # Σ_{k≠y} p_k to first order (p_y = 1 − O(e⁻⁴⁰))
    loss = _loss(z, y, reduction="none", backend=backend)
    np.testing.assert_allclose(loss, [2 * q], rtol=1e-12)  # 2(1 − p_y) would round to 0


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_mae_loss_gradient_vanishes_at_p_y_0_and_1(backend):
    z = np.array([[60.0, 0.0, 0.0], [0.0, 60.0, 0.0], [1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]])
    y = np.array([0, 0, 0, 0])  # p_y → 1, p_y → 0, and both again at ±1e4
    loss, pullback = refimpl.vjp("mae_loss", z, y, reduction="none", backend=backend)
    np.testing.assert_allclose(loss, [0.0, 2.0, 0.0, 2.0], atol=1e-25)
    (g_z,) = pullback(np.ones(4))
    assert np.all(np.isfinite(g_z))
    np.testing.assert_allclose(g_z, 0.0, atol=1e-25)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_mae_loss_with_one_class_is_zero(backend):
    z, y = np.array([[2.5], [-1.0]]), np.array([0, 0])
    loss, pullback = refimpl.vjp("mae_loss", z, y, reduction="none", backend=backend)
    np.testing.assert_array_equal(loss, [0.0, 0.0])
    np.testing.assert_array_equal(pullback(np.ones(2))[0], np.zeros((2, 1)))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_mae_loss_float32_stays_float32(batch, backend):
    z, y = batch
    single = z.astype(np.float32) * 1e3  # large logits: exp without the max shift overflows
    loss, pullback = refimpl.vjp("mae_loss", single, y, reduction="none", backend=backend)
    (g_z,) = pullback(np.ones(6, dtype=np.float32))
    assert loss.dtype == np.float32 and g_z.dtype == np.float32
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(g_z))
    np.testing.assert_allclose(loss, mae_loss(single.astype(np.float64), y, reduction="none"), atol=1e-6)


def test_mae_loss_official_formula_without_the_absolute_value_is_zero():
    # Optimization-AI/ICML2023_LDR, loss.py, MAELoss.forward, transcribed in NumPy:
    # torch.mean(torch.sum(y_true − softmax(y_pred), dim=1)) with one-hot y_true
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((8, 6)) * 3, rng.integers(0, 6, size=8)
    one_hot = np.eye(6)[y]
    official = np.sum(one_hot - _softmax(z), axis=1).mean()
    assert abs(official) < 1e-15  # the recorded deviation ldr-mae-loss-missing-abs
    with_abs = np.sum(np.abs(one_hot - _softmax(z)), axis=1).mean()  # the paper's MAE
    np.testing.assert_allclose(mae_loss(z, y), with_abs, rtol=1e-14)
    assert mae_loss(z, y) > 0.1


def test_mae_loss_refuses_bad_labels():
    with pytest.raises(refimpl.InputError, match="'y'"):
        mae_loss(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(refimpl.InputError, match="'reduction'"):
        mae_loss(np.zeros((2, 3)), np.array([0, 1]), reduction="max")
