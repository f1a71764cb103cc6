"""Mixture-of-Gaussians NLL: M = 1 is the Gaussian NLL, the direct mixture density on moderate
inputs, far components and tiny σ through the log-sum-exp, the catalog's VJP formulas,
invariances."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import mixture_of_gaussians_nll

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _nll(*args, backend="numpy", **kwargs):
    return _backend(backend).get("mixture_of_gaussians_nll")(*args, **kwargs)


def _mixture(seed, N=4, M=3, C=5):  # noqa: N803
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((N, C))
    mu = e[:, None, :] + rng.standard_normal((N, M, C)) * 0.7
    log_sigma = rng.standard_normal((N, M, C)) * 0.3
    logits = rng.standard_normal((N, M))
    return e, logits, mu, log_sigma


def _direct_density(e, logits, mu, log_sigma):
    """Σ_m π_m Π_c N(e_c; μ_mc, σ_mc²) evaluated literally (no logs): fine for moderate inputs."""
    pi = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    sigma = np.exp(log_sigma)
    densities = np.exp(-0.5 * ((e[:, None, :] - mu) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
    return (pi * densities.prod(-1)).sum(-1), pi, densities.prod(-1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixture_of_gaussians_nll_matches_the_direct_mixture_density(backend):
    args = _mixture(1)
    density, _, _ = _direct_density(*args)
    got = _nll(*args, reduction="none", backend=backend)
    np.testing.assert_allclose(got, -np.log(density), rtol=1e-12)
    np.testing.assert_allclose(_nll(*args, backend=backend), -np.log(density).mean(), rtol=1e-12)
    np.testing.assert_allclose(
        _nll(*args, reduction="sum", backend=backend), -np.log(density).sum(), rtol=1e-12
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixture_of_gaussians_nll_with_one_component_is_the_gaussian_nll(backend):
    e, _, mu, log_sigma = _mixture(2, M=1)
    logits = np.full((4, 1), 3.7)  # any logit: π = 1
    sigma = np.exp(log_sigma[:, 0])
    gaussian_nll = (0.5 * ((e - mu[:, 0]) / sigma) ** 2 + log_sigma[:, 0] + 0.5 * math.log(2 * math.pi)).sum(
        -1
    )
    loss, pullback = refimpl.vjp(
        "mixture_of_gaussians_nll", e, logits, mu, log_sigma, reduction="none", backend=_backend(backend)
    )
    np.testing.assert_allclose(loss, gaussian_nll, rtol=1e-13)
    g_e, g_logits, g_mu, g_log_sigma = pullback(np.ones(4))
    np.testing.assert_array_equal(g_logits, 0.0)  # π − γ = 1 − 1
    np.testing.assert_allclose(g_e, (e - mu[:, 0]) / sigma**2, rtol=1e-12)
    np.testing.assert_allclose(g_mu[:, 0], -(e - mu[:, 0]) / sigma**2, rtol=1e-12)
    np.testing.assert_allclose(g_log_sigma[:, 0], 1 - ((e - mu[:, 0]) / sigma) ** 2, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixture_of_gaussians_nll_gradients_match_the_catalog_formulas(backend):
    e, logits, mu, log_sigma = _mixture(3)
    density, pi, component = _direct_density(e, logits, mu, log_sigma)
    gamma = pi * component / density[:, None]  # responsibilities from the literal densities
    sigma2 = np.exp(2 * log_sigma)
    cotangent = 0.7
    _, pullback = refimpl.vjp(
        "mixture_of_gaussians_nll", e, logits, mu, log_sigma, backend=_backend(backend)
    )  # mean over N = 4 rows
    g_e, g_logits, g_mu, g_log_sigma = pullback(np.asarray(cotangent))
    w = cotangent / 4
    diff = e[:, None, :] - mu
    np.testing.assert_allclose(g_mu, -w * gamma[:, :, None] * diff / sigma2, rtol=1e-10)
    np.testing.assert_allclose(
        g_log_sigma, -w * gamma[:, :, None] * (diff**2 / sigma2 - 1), rtol=1e-10, atol=1e-15
    )
    np.testing.assert_allclose(g_logits, w * (pi - gamma), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(g_e, w * (gamma[:, :, None] * diff / sigma2).sum(1), rtol=1e-10)
    # the logits' gradient sums to 0 per row; e's gradient is minus the sum of the means'
    np.testing.assert_allclose(g_logits.sum(-1), 0.0, atol=1e-15)
    np.testing.assert_allclose(g_e, -g_mu.sum(1), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mixture_of_gaussians_nll_far_component_with_tiny_sigma_has_zero_gradients(backend, dtype):
    # component 0 at the target with σ = 0.01, component 1 at |e − μ|/σ = 1e4 with σ = 0.005
    e = np.array([[0.3, -0.2]])
    mu = np.array([[[0.31, -0.19], [50.3, 49.8]]])
    log_sigma = np.log(np.array([[[0.01, 0.01], [0.005, 0.005]]]))
    logits = np.array([[0.0, 2.0]])  # the far component even has the larger prior π_1 = 0.88
    args = tuple(a.astype(dtype) for a in (e, logits, mu, log_sigma))
    loss, pullback = refimpl.vjp("mixture_of_gaussians_nll", *args, backend=_backend(backend))
    pi_0 = 1 / (1 + math.exp(2.0))
    near = -(math.log(pi_0) - 2 * (0.5 + math.log(0.01) + 0.5 * math.log(2 * math.pi)))  # t = ±1
    np.testing.assert_allclose(loss, near, rtol=1e-12 if dtype == np.float64 else 1e-5)
    assert loss.dtype == dtype
    g_e, g_logits, g_mu, g_log_sigma = pullback(np.asarray(1.0, dtype=dtype))
    np.testing.assert_array_equal(g_mu[0, 1], 0.0)  # γ_1 = 0 exactly: no 0·inf
    np.testing.assert_array_equal(g_log_sigma[0, 1], 0.0)
    np.testing.assert_allclose(g_logits, [[pi_0 - 1, 1 - pi_0]], rtol=1e-12 if dtype == np.float64 else 1e-5)
    np.testing.assert_allclose(g_e, [[-100.0, -100.0]], rtol=1e-10 if dtype == np.float64 else 1e-4)  # t/σ
    # the literal mixture density: π_1 N_1 underflows to 0, which is right here
    with np.errstate(under="ignore"):
        density, _, _ = _direct_density(e, logits, mu, log_sigma)
    np.testing.assert_allclose(float(loss), -np.log(density[0]), rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixture_of_gaussians_nll_stays_finite_where_every_density_underflows(backend):
    # |t| = 20 in each of C = 4 dimensions: log N_m = −800 − 2 log(2π); exp gives 0
    e = np.zeros((1, 4))
    mu = np.array([20.0, -20.0, 20.0])[None, :, None] * np.ones((1, 3, 4))
    mu[0, 2, 0] = 21.0  # component 2: Σ½t² = 800 + 20.5
    log_sigma = np.zeros((1, 3, 4))
    logits = np.zeros((1, 3))
    with np.errstate(under="ignore"):
        density, _, _ = _direct_density(e, logits, mu, log_sigma)
    assert density[0] == 0.0  # the literal formula gives ℓ = inf
    got = _nll(e, logits, mu, log_sigma, backend=backend)
    # −log(⅓ e^−800 (2 + e^−20.5)) − 2 log 2π
    expected = 800 + 4 * 0.5 * math.log(2 * math.pi) + math.log(3.0) - math.log(2 + math.exp(-20.5))
    np.testing.assert_allclose(got, expected, rtol=1e-14)


def test_mixture_of_gaussians_nll_tiny_sigma_keeps_the_huge_log_density():
    # σ = e^−300 in 3 dimensions, t = 0: log N = 900 − 3·½log(2π); exp(900) overflows float64
    e = np.zeros((1, 3))
    mu = np.zeros((1, 2, 3))
    log_sigma = np.full((1, 2, 3), -300.0)
    log_sigma[0, 1] = -299.0  # component 1: log N smaller by 3
    logits = np.zeros((1, 2))
    expected = -(900 - 3 * 0.5 * math.log(2 * math.pi) + math.log(0.5 * (1 + math.exp(-3.0))))
    for backend in BACKENDS:
        np.testing.assert_allclose(_nll(e, logits, mu, log_sigma, backend=backend), expected, rtol=1e-14)


def test_mixture_of_gaussians_nll_is_invariant_to_shifts_and_equivariant_to_scaling():
    e, logits, mu, log_sigma = _mixture(4)
    base = mixture_of_gaussians_nll(e, logits, mu, log_sigma, reduction="none")
    # translating target and means together, and adding a constant to a row's logits
    shifted = mixture_of_gaussians_nll(e + 3.0, logits - 7.0, mu + 3.0, log_sigma, reduction="none")
    np.testing.assert_allclose(shifted, base, rtol=1e-12)
    # scaling space by k: densities divide by k^C, so ℓ grows by C log k
    k, num_dims = 2.5, e.shape[1]
    scaled = mixture_of_gaussians_nll(k * e, logits, k * mu, log_sigma + math.log(k), reduction="none")
    np.testing.assert_allclose(scaled, base + num_dims * math.log(k), rtol=1e-12)
    # identical components: the mixture is one Gaussian, whatever the logits
    single = mixture_of_gaussians_nll(e, logits[:, :1], mu[:, :1], log_sigma[:, :1], reduction="none")
    tripled = mixture_of_gaussians_nll(
        e, logits, np.repeat(mu[:, :1], 3, axis=1), np.repeat(log_sigma[:, :1], 3, axis=1), reduction="none"
    )
    np.testing.assert_allclose(tripled, single, rtol=1e-12)


def test_mixture_of_gaussians_nll_refuses_mismatched_shapes():
    e, logits, mu, log_sigma = _mixture(5)
    with pytest.raises(refimpl.InputError, match="'mu'"):
        mixture_of_gaussians_nll(e, logits, mu[:, :2], log_sigma)  # M differs from the logits'
    with pytest.raises(refimpl.InputError, match="'log_sigma'"):
        mixture_of_gaussians_nll(e, logits, mu, log_sigma[..., :3])  # C differs
