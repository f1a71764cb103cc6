"""Diagonal-Gaussian KL: hand values, KL ≥ 0 with equality iff q = p, the three
parameterizations, quadrature, Mult-VAE's official prior KL, the catalog's VJP formulas."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import diag_gaussian_kl

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _kl(*args, backend="numpy", **kwargs):
    return _backend(backend).get("diag_gaussian_kl")(*args, **kwargs)


def _gaussians(seed, shape=(5, 7)):
    rng = np.random.default_rng(seed)
    mu_q, mu_p = rng.standard_normal(shape) * 2, rng.standard_normal(shape)
    log_std_q, log_std_p = rng.standard_normal(shape) * 0.7, rng.standard_normal(shape) * 0.7
    return mu_q, log_std_q, mu_p, log_std_p


def _as(parameterization, log_std):
    return {"log_var": 2 * log_std, "log_std": log_std, "std": np.exp(log_std)}[parameterization]


def test_diag_gaussian_kl_hand_computed_values():
    zeros = np.zeros((1, 2))
    # KL(N(1, 1)‖N(0, 1)) = ½; KL(N(0, 4)‖N(0, 1)) = −log 2 + 4/2 − ½
    got = diag_gaussian_kl(np.array([[1.0, 0.0]]), np.array([[0.0, math.log(4.0)]]), zeros, zeros)
    np.testing.assert_allclose(got, [0.5 + 1.5 - math.log(2.0)], rtol=1e-15)
    # KL(N(3, 1)‖N(1, 2²)) = log 2 + (1 + 4)/8 − ½
    got = diag_gaussian_kl(
        np.array([3.0]), np.array([1.0]), np.array([1.0]), np.array([2.0]), parameterization="std"
    )
    np.testing.assert_allclose(got, math.log(2.0) + 0.125, rtol=1e-15)
    assert got.shape == ()


def test_diag_gaussian_kl_is_not_symmetric():
    one, four = np.array([1.0]), np.array([4.0])
    zero = np.array([0.0])
    forward = diag_gaussian_kl(zero, four, zero, one, parameterization="std")  # q wider than p
    reverse = diag_gaussian_kl(zero, one, zero, four, parameterization="std")
    np.testing.assert_allclose(forward, -math.log(4.0) + 8.0 - 0.5, rtol=1e-15)
    np.testing.assert_allclose(reverse, math.log(4.0) + 1.0 / 32.0 - 0.5, rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("parameterization", ["log_var", "log_std", "std"])
def test_diag_gaussian_kl_is_positive_and_zero_with_zero_gradients_only_at_q_equals_p(
    backend, parameterization
):
    mu_q, log_std_q, mu_p, log_std_p = _gaussians(1)
    scale_q, scale_p = _as(parameterization, log_std_q), _as(parameterization, log_std_p)
    kw = {"parameterization": parameterization}
    assert np.all(_kl(mu_q, scale_q, mu_p, scale_p, backend=backend, **kw) > 0.1)
    # moving only the mean, or only the scale, of one dimension already makes it positive
    moved_mean, moved_scale = mu_q.copy(), log_std_q.copy()
    moved_mean[:, 3] += 1e-3
    moved_scale[:, 3] += 1e-3
    for args in ((moved_mean, scale_q), (mu_q, _as(parameterization, moved_scale))):
        assert np.all(_kl(*args, mu_q, scale_q, backend=backend, **kw) > 0)
    kl, pullback = refimpl.vjp(
        "diag_gaussian_kl", mu_q, scale_q, mu_q, scale_q, backend=_backend(backend), **kw
    )
    np.testing.assert_array_equal(kl, 0.0)  # exactly: e = v = t = 0
    for gradient in pullback(np.linspace(0.5, 2.0, 5)):
        np.testing.assert_array_equal(gradient, 0.0)


def test_diag_gaussian_kl_parameterizations_agree_with_chain_rule_gradients():
    mu_q, log_std_q, mu_p, log_std_p = _gaussians(2)
    cotangent = np.linspace(-1.0, 2.0, 5)
    results = {}
    for parameterization in ("log_var", "log_std", "std"):
        kl, pullback = refimpl.vjp(
            diag_gaussian_kl,
            mu_q,
            _as(parameterization, log_std_q),
            mu_p,
            _as(parameterization, log_std_p),
            parameterization=parameterization,
        )
        results[parameterization] = kl, pullback(cotangent)
    kl_var, (g_mu_q, g_var_q, g_mu_p, g_var_p) = results["log_var"]
    for parameterization in ("log_std", "std"):
        np.testing.assert_allclose(results[parameterization][0], kl_var, rtol=1e-13)
        np.testing.assert_allclose(results[parameterization][1][0], g_mu_q, rtol=1e-13)
        np.testing.assert_allclose(results[parameterization][1][2], g_mu_p, rtol=1e-13)
    # ℓ = 2s = 2 log σ: ∂/∂s = 2 ∂/∂ℓ and ∂/∂σ = (2/σ) ∂/∂ℓ
    _, (_, g_s_q, _, g_s_p) = results["log_std"]
    np.testing.assert_allclose(g_s_q, 2 * g_var_q, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g_s_p, 2 * g_var_p, rtol=1e-12, atol=1e-15)
    _, (_, g_sigma_q, _, g_sigma_p) = results["std"]
    np.testing.assert_allclose(g_sigma_q, 2 * g_var_q / np.exp(log_std_q), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g_sigma_p, 2 * g_var_p / np.exp(log_std_p), rtol=1e-12, atol=1e-15)


def test_diag_gaussian_kl_matches_numerical_integration_in_one_dimension():
    # KL(q‖p) = ∫ q(z) log(q(z)/p(z)) dz on a fine grid, independent of the closed form
    for mu_q, sigma_q, mu_p, sigma_p in ((0.3, 0.5, -1.0, 1.7), (2.0, 1.5, 1.0, 0.8), (0.0, 1.0, 0.0, 1.0)):
        z = np.linspace(mu_q - 14 * sigma_q, mu_q + 14 * sigma_q, 400001)
        log_q = -0.5 * ((z - mu_q) / sigma_q) ** 2 - math.log(sigma_q) - 0.5 * math.log(2 * math.pi)
        log_p = -0.5 * ((z - mu_p) / sigma_p) ** 2 - math.log(sigma_p) - 0.5 * math.log(2 * math.pi)
        integral = np.trapezoid(np.exp(log_q) * (log_q - log_p), z)
        got = diag_gaussian_kl(
            np.array([mu_q]),
            np.array([sigma_q]),
            np.array([mu_p]),
            np.array([sigma_p]),
            parameterization="std",
        )
        np.testing.assert_allclose(got, integral, rtol=1e-9, atol=1e-12)


def _mult_vae_official_kl(mu_q, logvar_q):
    """dawenl/vae_cf (VAE_ML.ipynb, MultVAE.build_graph): the prior N(0, I) KL, transcribed
    from TensorFlow: tf.reduce_sum(0.5 * (-logvar_q + tf.exp(logvar_q) + mu_q**2 - 1), axis=1)."""
    return np.sum(0.5 * (-logvar_q + np.exp(logvar_q) + mu_q**2 - 1), axis=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_diag_gaussian_kl_to_the_standard_normal_is_mult_vaes_official_kl(backend):
    mu_q, log_std_q, _, _ = _gaussians(3)
    logvar_q = 2 * log_std_q
    zeros = np.zeros_like(mu_q)
    got = _kl(mu_q, logvar_q, zeros, zeros, backend=backend)
    np.testing.assert_allclose(got, _mult_vae_official_kl(mu_q, logvar_q), rtol=1e-13)
    # and the KL term of refimpl's own mult_vae_loss (no clicks: the likelihood term is 0)
    no_clicks = np.zeros((5, 3))
    loss = refimpl.losses.mult_vae_loss(no_clicks, no_clicks, mu_q, logvar_q, beta=1.0)
    np.testing.assert_allclose(loss, got.mean(), rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("parameterization", ["log_var", "log_std", "std"])
def test_diag_gaussian_kl_gradients_match_the_catalog_formulas(backend, parameterization):
    mu_q, log_std_q, mu_p, log_std_p = _gaussians(4)
    sigma_q, sigma_p = np.exp(log_std_q), np.exp(log_std_p)
    weight, d = 0.3, mu_q.shape[1]
    _, pullback = refimpl.vjp(
        "diag_gaussian_kl",
        mu_q,
        _as(parameterization, log_std_q),
        mu_p,
        _as(parameterization, log_std_p),
        parameterization=parameterization,
        weight=weight,
        normalize_by_dim=True,
        backend=_backend(backend),
    )
    cotangent = np.linspace(0.5, 2.5, 5)
    g_mu_q, g_scale_q, g_mu_p, g_scale_p = pullback(cotangent)
    w = (weight / d) * cotangent[:, None]
    delta = mu_q - mu_p
    np.testing.assert_allclose(g_mu_q, w * delta / sigma_p**2, rtol=1e-12)
    np.testing.assert_allclose(g_mu_p, -w * delta / sigma_p**2, rtol=1e-12)
    if parameterization == "std":
        expected_q = -1 / sigma_q + sigma_q / sigma_p**2
        expected_p = 1 / sigma_p - (sigma_q**2 + delta**2) / sigma_p**3
    elif parameterization == "log_std":
        expected_q = sigma_q**2 / sigma_p**2 - 1
        expected_p = 1 - (sigma_q**2 + delta**2) / sigma_p**2
    else:
        expected_q = 0.5 * (sigma_q**2 / sigma_p**2 - 1)
        expected_p = 0.5 * (1 - (sigma_q**2 + delta**2) / sigma_p**2)
    np.testing.assert_allclose(g_scale_q, w * expected_q, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(g_scale_p, w * expected_p, rtol=1e-11, atol=1e-14)


def test_diag_gaussian_kl_pv_rnn_weighting_is_w_over_d_times_the_kl():
    mu_q, log_std_q, mu_p, log_std_p = _gaussians(5, shape=(2, 3, 4))
    args = (mu_q, 2 * log_std_q, mu_p, 2 * log_std_p)
    plain = diag_gaussian_kl(*args)
    assert plain.shape == (2, 3)
    np.testing.assert_allclose(diag_gaussian_kl(*args, weight=0.25), 0.25 * plain, rtol=1e-15)
    np.testing.assert_allclose(
        diag_gaussian_kl(*args, weight=0.25, normalize_by_dim=True), plain / 16, rtol=1e-15
    )
    np.testing.assert_array_equal(diag_gaussian_kl(*args, weight=0.0), 0.0)  # w = 0: PV-RNN as a plain RNN
    # one KL per leading index: the same as the rows computed one by one
    np.testing.assert_allclose(plain[1, 2], diag_gaussian_kl(*(a[1, 2] for a in args)), rtol=1e-15)


def test_diag_gaussian_kl_near_q_equals_p_keeps_its_digits():
    # Δ = 0, σ_q²/σ_p² = e^v with v = 1e-6: KL = ½(e^v − 1 − v) = ½(v²/2 + v³/6 + v⁴/24 + …)
    v = 1e-6
    zero = np.zeros(1)
    got = diag_gaussian_kl(zero, np.array([v]), zero, zero)
    np.testing.assert_allclose(got, 0.5 * (v**2 / 2 + v**3 / 6 + v**4 / 24), rtol=1e-8)
    # the textbook form log σ_p − log σ_q + σ_q²/(2σ_p²) − ½ keeps only ~3 digits here
    textbook = -v / 2 + math.exp(v) / 2 - 0.5
    assert abs(textbook - float(got)) / float(got) > 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_diag_gaussian_kl_large_log_variances_stay_finite_in_float32(backend):
    # exp(±100) overflows / underflows float32; only the differences ℓ_q − ℓ_p = ±1 matter
    mu_q = np.array([[1e-22, 0.0], [5.0, -2e22]])
    mu_p = np.array([[-1e-22, 0.0], [3e21, 1e22]])
    log_var_q = np.array([[-100.0, -99.0], [101.0, 99.0]])
    log_var_p = np.array([[-101.0, -100.0], [100.0, 100.0]])
    args = (mu_q, log_var_q, mu_p, log_var_p)
    expected = diag_gaussian_kl(*args)
    single = _kl(*(a.astype(np.float32) for a in args), backend=backend)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, expected, rtol=1e-5)
    # row 0, dimension 0: ½(e − 1 − 1 + (2e-22)² e^101)
    first = 0.5 * (math.e - 2 + (2e-22) ** 2 * math.exp(101.0))
    np.testing.assert_allclose(
        diag_gaussian_kl(mu_q[:1, :1], log_var_q[:1, :1], mu_p[:1, :1], log_var_p[:1, :1]),
        [first],
        rtol=1e-14,
    )


def test_diag_gaussian_kl_refuses_non_positive_standard_deviations():
    mu, sigma = np.zeros((2, 3)), np.ones((2, 3))
    bad = sigma.copy()
    bad[1, 0] = 0.0
    with pytest.raises(refimpl.InputError, match=r"'scale_q'.*σ > 0.*index \(1, 0\)"):
        diag_gaussian_kl(mu, bad, mu, sigma, parameterization="std")
    with pytest.raises(refimpl.InputError, match=r"'scale_p'.*σ > 0"):
        diag_gaussian_kl(mu, sigma, mu, -sigma, parameterization="std")
    # the same numbers are valid log-variances: per dimension ½(e^v − 1 − v) with v = ℓ_q + 1
    one, two = 0.5 * (math.e - 2), 0.5 * (math.exp(2.0) - 3)
    np.testing.assert_allclose(diag_gaussian_kl(mu, bad, mu, -sigma), [3 * two, one + 2 * two], rtol=1e-14)
    with pytest.raises(refimpl.InputError, match="'mu_p'"):
        diag_gaussian_kl(mu, sigma, np.zeros((2, 4)), sigma)  # nothing is broadcast
