"""Proximal matching loss: hand values, ℓ ∈ [0, 1), zero loss and zero (not NaN) gradient at
f = x, the official ExpDiracSrgt formula, the RMS form as a rescaled γ, the catalog's VJP."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import proximal_matching_loss

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _pair(seed, B=5, D=7, noise=0.3):  # noqa: N803
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, D))
    return x + noise * rng.standard_normal((B, D)), x


def _official_exp_dirac_srgt(f, x, sigma):
    """ZhenghanFang/learned-proximal-networks, lpn/utils/utils.py, transcribed to NumPy:
    dist = (input - target).pow(2).reshape(bsize, -1).sum(1).sqrt();
    exp_func(dist, sigma).mean() with exp_func(x, sigma) = -exp(-((x / sigma) ** 2)) + 1."""
    dist = np.sqrt(((f - x) ** 2).reshape(f.shape[0], -1).sum(1))
    return (-np.exp(-((dist / sigma) ** 2)) + 1).mean()


def test_proximal_matching_loss_hand_computed_value():
    f, x = np.array([[1.0, 1.0], [0.0, 0.0]]), np.zeros((2, 2))
    np.testing.assert_allclose(
        proximal_matching_loss(f, x, gamma=math.sqrt(2.0)), (1 - math.exp(-1)) / 2, rtol=1e-15
    )
    # γ = 1, one entry 3: 1 − e^−9; RMS over D = 2: 1 − e^−4.5
    f = np.array([[3.0, 0.0]])
    np.testing.assert_allclose(
        proximal_matching_loss(f, np.zeros((1, 2)), gamma=1.0), 1 - math.exp(-9.0), rtol=1e-15
    )
    np.testing.assert_allclose(
        proximal_matching_loss(f, np.zeros((1, 2)), gamma=1.0, normalize_by_dim=True),
        1 - math.exp(-4.5),
        rtol=1e-15,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_proximal_matching_loss_matches_the_official_exp_dirac_srgt(backend):
    f, x = _pair(1)
    sigma = 0.08 * math.sqrt(7) * 4  # the official σ_min·2^(S−1) at stage 0 with D = 7
    got = refimpl.vjp("proximal_matching_loss", f, x, gamma=sigma, backend=_backend(backend))[0]
    np.testing.assert_allclose(got, _official_exp_dirac_srgt(f, x, sigma), rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_proximal_matching_loss_is_zero_with_zero_gradient_at_f_equals_x(backend):
    f, x = _pair(2)
    f[2] = x[2]  # one exact row among others: the official sqrt-then-square gives NaN here
    loss, pullback = refimpl.vjp(
        "proximal_matching_loss", f, x, gamma=0.5, reduction="none", backend=_backend(backend)
    )
    assert loss[2] == 0.0
    assert np.all(loss[[0, 1, 3, 4]] > 0) and np.all(loss < 1)
    (g_f,) = pullback(np.linspace(1.0, 2.0, 5))
    assert np.all(np.isfinite(g_f))
    np.testing.assert_array_equal(g_f[2], 0.0)
    total, pullback = refimpl.vjp("proximal_matching_loss", x.copy(), x, gamma=0.5, backend=_backend(backend))
    assert float(total) == 0.0
    np.testing.assert_array_equal(pullback(np.asarray(1.0))[0], 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_proximal_matching_loss_gradient_matches_the_catalog_formula(backend):
    f, x = _pair(3)
    for gamma, normalize_by_dim in ((0.7, False), (0.25, True)):
        n = f.shape[1] if normalize_by_dim else 1
        _, pullback = refimpl.vjp(
            "proximal_matching_loss",
            f,
            x,
            gamma=gamma,
            normalize_by_dim=normalize_by_dim,
            backend=_backend(backend),
        )
        (g_f,) = pullback(np.asarray(1.5))
        u = ((f - x) ** 2).sum(1, keepdims=True) / n
        expected = 1.5 * (1 / 5) * np.exp(-u / gamma**2) * (1 / gamma**2) * (2 / n) * (f - x)
        np.testing.assert_allclose(g_f, expected, rtol=1e-12)


def test_proximal_matching_loss_rms_form_is_the_euclidean_form_with_gamma_over_sqrt_d():
    f, x = _pair(4, D=16)
    euclidean = proximal_matching_loss(f, x, gamma=0.08 * math.sqrt(16), reduction="none")
    rms = proximal_matching_loss(f, x, gamma=0.08, normalize_by_dim=True, reduction="none")
    np.testing.assert_allclose(rms, euclidean, rtol=1e-13)


def test_proximal_matching_loss_stays_in_zero_one_and_keeps_digits_at_small_distances():
    f, x = _pair(5, noise=30.0)
    far = proximal_matching_loss(f, x, gamma=0.01, reduction="none")
    np.testing.assert_array_equal(far, 1.0)  # saturated: ℓ → 1, never above
    _, pullback = refimpl.vjp(proximal_matching_loss, f, x, gamma=0.01)
    np.testing.assert_array_equal(pullback(np.asarray(1.0))[0], 0.0)  # exp underflows: 0, not NaN
    # u/γ² = 2e-12: ℓ = q − q²/2 + …; 1 − exp(−q) would keep about 4 digits
    tiny = proximal_matching_loss(np.array([[1e-6, -1e-6]]), np.zeros((1, 2)), gamma=1.0)
    q = 2e-12
    np.testing.assert_allclose(tiny, q - q * q / 2, rtol=1e-14)
    assert abs((1 - math.exp(-q)) - q) / q > 1e-6
    # monotone in the distance, for a fixed γ
    steps = np.linspace(0.0, 3.0, 7)[:, None] * np.ones((1, 3))
    values = proximal_matching_loss(steps, np.zeros((7, 3)), gamma=1.0, reduction="none")
    assert np.all(np.diff(values) > 0) and values[0] == 0.0 and values[-1] < 1.0


def test_proximal_matching_loss_refuses_non_positive_gamma_and_mismatched_shapes():
    f, x = _pair(6)
    with pytest.raises(refimpl.InputError, match="'gamma'"):
        proximal_matching_loss(f, x, gamma=0.0)
    with pytest.raises(refimpl.InputError, match="'x'"):
        proximal_matching_loss(f, x[:, :3], gamma=1.0)
