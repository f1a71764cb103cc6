"""f-distill: the weight table against r²f''(r), the official preprocessing, and the VSD loss."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import f_divergence_weight, vsd_loss

NO_PREPROCESSING = {"ratio_normalization": False, "normalize": False, "ratio_lower": 1e-3, "ratio_upper": 1e3}


def _second_derivative(f, r, h=1e-4):
    return (f(r + h) - 2 * f(r) + f(r - h)) / h**2


@pytest.mark.parametrize(
    ("divergence", "f", "factor"),
    [
        ("rkl", lambda r: -np.log(r), 1.0),
        ("kl", lambda r: r * np.log(r), 1.0),
        ("js", lambda r: r * np.log(2 * r / (1 + r)) + np.log(2 / (1 + r)), 1.0),
        ("neyman", lambda r: (1 - r) ** 2 / r, 0.5),
        ("sh", lambda r: (np.sqrt(r) - 1) ** 2, 2.0),
        ("jf", lambda r: (r - 1) * np.log(r), 1.0),
    ],
)
def test_weight_table_is_r_squared_f_second_derivative(divergence, f, factor):
    r = np.array([0.2, 0.7, 1.0, 2.5, 9.0])
    expected = factor * r**2 * _second_derivative(f, r)
    got = f_divergence_weight(np.log(r), np.zeros(5, int), divergence=divergence, **NO_PREPROCESSING)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_sf_weight_is_one_over_one_plus_r():
    r = np.array([0.5, 1.0, 4.0])
    got = f_divergence_weight(np.log(r), np.zeros(3, int), divergence="sf", **NO_PREPROCESSING)
    np.testing.assert_allclose(got, 1 / (1 + r), rtol=1e-15)


def test_official_preprocessing_clips_bins_and_normalizes():
    logit = np.array([1e4, -1e4, np.log(2.0), np.log(4.0)])
    bins = np.array([0, 0, 1, 1])
    h = f_divergence_weight(logit, bins, divergence="kl")
    # clip(exp(clip(ℓ, ±10)), 0.1, 20) = (20, 0.1, 2, 4); bin means (sum/(count + 1e-6)) 10.05 and 3
    r = np.array([20.0, 0.1, 2.0, 4.0])
    means = np.array([20.1 / (2 + 1e-6), 20.1 / (2 + 1e-6), 6 / (2 + 1e-6), 6 / (2 + 1e-6)])
    r = r / (means + 1e-6)
    np.testing.assert_allclose(h, r / (r.mean() + 1e-6), rtol=1e-14)


def test_neyman_weight_is_clamped_at_tiny_ratios():
    h = f_divergence_weight(
        np.array([-40.0]),
        np.zeros(1, int),
        divergence="neyman",
        logit_clip=50.0,
        ratio_lower=1e-30,
        ratio_normalization=False,
        normalize=False,
    )
    np.testing.assert_allclose(h, [1e8])


def test_rkl_weights_are_ones_and_vsd_with_ones_is_dmd2():
    h = f_divergence_weight(np.array([0.3, -5.0, 2.0]), np.zeros(3, int), divergence="rkl", normalize=False)
    np.testing.assert_array_equal(h, 1.0)
    rng = np.random.default_rng(0)
    x, fake, teacher = (
        rng.standard_normal((3, 2, 5)),
        rng.standard_normal((3, 2, 5)),
        rng.standard_normal((3, 2, 5)),
    )
    # DMD2 (FastGen without additional_scale): w = 1/(mean|x − teacher| + 1e-6)
    w = 1 / (np.abs(x - teacher).mean(axis=(1, 2), keepdims=True) + 1e-6)
    grad = (fake - teacher) * w
    assert vsd_loss(x, fake, teacher, h) == pytest.approx(0.5 * np.mean(grad**2), rel=1e-12)


def test_vsd_gradient_is_the_weighted_score_difference_over_numel():
    rng = np.random.default_rng(1)
    x, fake, teacher = (
        rng.standard_normal((4, 3, 2, 2)),
        rng.standard_normal((4, 3, 2, 2)),
        rng.standard_normal((4, 3, 2, 2)),
    )
    h = rng.uniform(0.5, 2, 4)
    _, pullback = refimpl.vjp(vsd_loss, x, fake, teacher, h)
    (g_x,) = pullback(np.array(2.0))
    w = h[:, None, None, None] / (np.abs(x - teacher).mean(axis=(1, 2, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(g_x, 2.0 * (fake - teacher) * w / x.size, rtol=1e-12)


def test_vsd_gradient_matches_differences_of_the_frozen_target_surrogate():
    # with the stop-gradient target c = x0 − vsd_grad frozen, L(x) = ½ mean((x − c)²)
    rng = np.random.default_rng(2)
    x, fake, teacher, h = (
        rng.standard_normal((2, 5)),
        rng.standard_normal((2, 5)),
        rng.standard_normal((2, 5)),
        np.ones(2),
    )
    _, pullback = refimpl.vjp(vsd_loss, x, fake, teacher, h)
    (g_x,) = pullback(np.array(1.0))
    w = 1 / (np.abs(x - teacher).mean(axis=1, keepdims=True) + 1e-6)
    target = x - (fake - teacher) * w
    surrogate = lambda v: 0.5 * np.mean((v - target) ** 2)  # noqa: E731
    step = 1e-6
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = step
        numeric[idx] = (surrogate(x + e) - surrogate(x - e)) / (2 * step)
    np.testing.assert_allclose(g_x, numeric, rtol=1e-7, atol=1e-12)


def test_vsd_at_the_teacher_prediction_is_finite_in_float32():
    x = np.ones((2, 3), np.float32)
    loss, pullback = refimpl.vjp(vsd_loss, x, x + np.float32(0.01), x.copy(), np.ones(2, np.float32))
    (g_x,) = pullback(np.array(1.0, np.float32))
    assert loss.dtype == g_x.dtype == np.float32
    assert np.isfinite(loss) and np.all(np.isfinite(g_x))
    np.testing.assert_allclose(g_x, 0.01 / 1e-6 / 6, rtol=1e-4)
