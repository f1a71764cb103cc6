"""Cosine power annealing: the paper's closed form, the official empirical rescaling, endpoints."""

import numpy as np
import pytest

import refimpl
from refimpl.optim import cosine_power_annealing


def official_cosine_power_annealing(
    epochs, max_lr=0.1, min_lr=1e-4, exponent_order=10, max_epoch=None, warmup_epochs=None
):
    """ahundt/sharpDARTS cnn/cosine_power_annealing.py, transcribed step by step in NumPy."""
    epochs = np.array(epochs, dtype=np.int64)
    if max_epoch is None:
        max_epoch = np.max(epochs)
    if warmup_epochs:
        warmups = epochs <= warmup_epochs
        max_epoch = max_epoch - warmup_epochs
        epochs = epochs - warmup_epochs
    cos_proportions = (1 + np.cos(np.pi * epochs / max_epoch)) / 2
    if exponent_order == 1:
        power = cos_proportions
    else:
        power = np.power(exponent_order, cos_proportions + 1)
    power = power - np.min(power)
    power = power / np.max(power)
    if warmup_epochs:
        power[warmups] = np.arange(1, warmup_epochs + 1) / float(warmup_epochs)
    return power * (max_lr - min_lr) + min_lr


@pytest.mark.parametrize(
    ("total", "kwargs"),
    [
        (10, {}),
        (300, {"max_lr": 0.2, "exponent_order": 10, "min_lr": 1e-4}),  # the official ImageNet example
        (1000, {"max_lr": 0.025, "exponent_order": 2, "min_lr": 1e-3}),  # the official CIFAR-10 example
        (60, {"exponent_order": 1}),
        (40, {"exponent_order": 3.5, "warmup_epochs": 5}),
        (12, {"exponent_order": 10, "warmup_epochs": 1}),
    ],
)
def test_cosine_power_annealing_empirical_matches_the_official_code(total, kwargs):
    epochs = np.arange(total) + 1
    want = official_cosine_power_annealing(epochs, **kwargs)
    got = cosine_power_annealing(
        epochs,
        normalization="empirical",
        **{k: float(v) if k == "exponent_order" else v for k, v in kwargs.items()},
    )
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-17)


def test_cosine_power_annealing_empirical_matches_the_official_code_when_resuming():
    epochs = np.arange(30, 51)
    want = official_cosine_power_annealing(epochs, max_epoch=50, exponent_order=4)
    got = cosine_power_annealing(epochs, exponent_order=4.0, max_epoch=50, normalization="empirical")
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert got[0] == 0.1  # the first supplied epoch is rescaled to max_lr


def test_cosine_power_annealing_known_values_from_the_catalog():
    epochs = np.arange(1, 11)
    closed = cosine_power_annealing(epochs, max_lr=1.0, min_lr=0.0)
    empirical = cosine_power_annealing(epochs, max_lr=1.0, min_lr=0.0, normalization="empirical")
    np.testing.assert_allclose(closed[:3], [0.93912, 0.78069, 0.58016], atol=5e-6)
    np.testing.assert_allclose(empirical[:3], [1.0, 0.83129, 0.61777], atol=5e-6)


def test_cosine_power_annealing_closed_form_is_the_papers_formula():
    epochs = np.arange(1, 51)
    for k in (1.5, 2.0, 10.0, 100.0):
        p = (1 + np.cos(np.pi * epochs / 50)) / 2
        q = (k ** (p + 1) - k) / (k**2 - k)
        got = cosine_power_annealing(epochs, exponent_order=k, max_lr=0.3, min_lr=0.01)
        np.testing.assert_allclose(got, 0.01 + q * 0.29, rtol=1e-13)


def test_cosine_power_annealing_endpoints():
    epochs = np.arange(1, 101)
    for normalization in ("closed_form", "empirical"):
        lr = cosine_power_annealing(epochs, max_lr=0.1, min_lr=1e-4, normalization=normalization)
        assert lr[-1] == 1e-4  # p_E = 0: exactly min_lr
        assert np.all(np.diff(lr) < 0)  # strictly decreasing
        assert lr[0] <= 0.1
    # epoch 0 (p = 1) is exactly max_lr in the closed form, epoch 1 slightly below
    assert cosine_power_annealing(np.array([1]), max_epoch=100)[0] < 0.1
    assert cosine_power_annealing(np.array([1]), max_epoch=100, normalization="closed_form")[0] > 0.0999


def test_cosine_power_annealing_k_one_is_cosine_annealing_and_the_closed_form_is_continuous_there():
    epochs = np.arange(1, 21)
    cosine = 1e-3 + (1 + np.cos(np.pi * epochs / 20)) / 2 * (0.5 - 1e-3)
    np.testing.assert_allclose(
        cosine_power_annealing(epochs, exponent_order=1.0, max_lr=0.5, min_lr=1e-3), cosine, rtol=1e-14
    )
    near = cosine_power_annealing(epochs, exponent_order=1.0 + 1e-9, max_lr=0.5, min_lr=1e-3)
    np.testing.assert_allclose(near, cosine, rtol=1e-8)


def test_cosine_power_annealing_larger_order_decays_faster():
    epochs = np.arange(1, 31)
    slow = cosine_power_annealing(epochs, exponent_order=2.0)
    fast = cosine_power_annealing(epochs, exponent_order=50.0)
    assert np.all(fast[:-1] < slow[:-1])


def test_cosine_power_annealing_warmup_is_linear_then_anneals():
    lr = cosine_power_annealing(np.arange(1, 21), warmup_epochs=4, max_lr=1.0, min_lr=0.0)
    np.testing.assert_allclose(lr[:4], [0.25, 0.5, 0.75, 1.0], rtol=1e-15)
    p = (1 + np.cos(np.pi * np.arange(1, 17) / 16)) / 2
    np.testing.assert_allclose(lr[4:], (10 ** (p + 1) - 10) / 90, rtol=1e-13)


def test_cosine_power_annealing_refuses_bad_input():
    with pytest.raises(refimpl.InputError, match="exponent_order"):
        cosine_power_annealing(np.arange(1, 5), exponent_order=0.5)
    with pytest.raises(refimpl.InputError, match="0/0"):
        cosine_power_annealing(np.array([4]), normalization="empirical")
