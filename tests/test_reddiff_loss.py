"""RED-diff loss: the official formula, the weighting options, the VJP, and the Adam sampler step."""

from __future__ import annotations

import math

import numpy as np
import pytest

import refimpl
from refimpl.solvers import reddiff_loss

WEIGHTINGS = ("linear", "sqrt", "square", "log", "trunc_linear", "power2over3", "const")


def _problem(seed=0, B=2, D=6, M=3):  # noqa: N803
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((B, D))
    H = rng.standard_normal((M, D))  # noqa: N806
    y = rng.standard_normal((B, M))
    eps = rng.standard_normal((B, D))
    e_hat = rng.standard_normal((B, D))
    eps_x0 = rng.standard_normal((B, D))
    return mu, y, H, eps, e_hat, eps_x0


def _official(mu, y, H, eps, e_hat, eps_x0, alpha, weighting, grad_term_weight, obs_weight, sigma_x0):  # noqa: N803
    """NVlabs/RED-diff algos/reddiff.py REDDIFF.sample, transcribed in NumPy (one step)."""
    x0_pred = mu + sigma_x0 * eps_x0
    e_obs = y - x0_pred @ H.T
    loss_obs = (e_obs**2).mean() / 2
    loss_noise = ((e_hat - eps) * x0_pred).mean()
    snr_inv = math.sqrt(1 - alpha) / math.sqrt(alpha)
    if weighting == "sqrt":
        snr_inv = math.sqrt(snr_inv)
    elif weighting == "square":
        snr_inv = snr_inv**2
    elif weighting == "log":
        snr_inv = math.log(snr_inv + 1.0)
    elif weighting == "trunc_linear":
        snr_inv = min(snr_inv, 1.0)
    elif weighting == "power2over3":
        snr_inv = snr_inv ** (2 / 3)
    elif weighting == "const":
        snr_inv = snr_inv**0.0
    w_t = grad_term_weight * snr_inv
    return w_t * loss_noise + obs_weight * loss_obs


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_reddiff_loss_matches_official_formula(weighting):
    mu, y, H, eps, e_hat, eps_x0 = _problem(1)  # noqa: N806
    for alpha, sigma_x0 in ((0.07, 0.0), (0.6, 0.2)):
        got = reddiff_loss(
            mu,
            y,
            H,
            eps,
            e_hat,
            eps_x0,
            alpha_bar=alpha,
            weighting=weighting,
            grad_term_weight=0.4,
            obs_weight=1.5,
            sigma_x0=sigma_x0,
        )
        want = _official(mu, y, H, eps, e_hat, eps_x0, alpha, weighting, 0.4, 1.5, sigma_x0)
        np.testing.assert_allclose(float(got), want, rtol=1e-13)


def test_reddiff_lambda_multiplies_transformed_snr():
    mu, y, H, eps, e_hat, _ = _problem(2)  # noqa: N806
    kwargs = {"alpha_bar": 0.2, "weighting": "sqrt", "obs_weight": 0.0}  # s = 2
    one = float(reddiff_loss(mu, y, H, eps, e_hat, grad_term_weight=1.0, **kwargs))
    four = float(reddiff_loss(mu, y, H, eps, e_hat, grad_term_weight=4.0, **kwargs))
    assert four == pytest.approx(4.0 * one, rel=1e-13)  # λ·√s, not √(λ s) (which gives 2×)
    assert one == pytest.approx(math.sqrt(2.0) * np.mean((e_hat - eps) * mu), rel=1e-13)


def test_reddiff_vjp_is_catalog_formula():
    mu, y, H, eps, e_hat, _ = _problem(3)  # noqa: N806
    alpha, v, lam = 0.3, 1.3, 0.25
    _, vjp = refimpl.vjp(reddiff_loss, mu, y, H, eps, e_hat, alpha_bar=alpha, obs_weight=v)
    (g_mu,) = vjp(np.asarray(2.0))
    w = lam * math.sqrt(1 - alpha) / math.sqrt(alpha)
    want = 2.0 * (-v * (y - mu @ H.T) @ H / y.size + w * (e_hat - eps) / mu.size)
    np.testing.assert_allclose(g_mu, want, rtol=1e-12)


def test_reddiff_obs_term_minimized_by_least_squares():
    # with λ = 0 the loss is the data fit: its gradient vanishes at the least-squares solution
    rng = np.random.default_rng(4)
    H = rng.standard_normal((5, 3))  # noqa: N806
    y = rng.standard_normal((2, 5))
    mu = np.linalg.lstsq(H, y.T, rcond=None)[0].T
    zeros = np.zeros((2, 3))
    _, vjp = refimpl.vjp(reddiff_loss, mu, y, H, zeros, zeros, alpha_bar=0.5, grad_term_weight=0.0)
    np.testing.assert_allclose(vjp(np.asarray(1.0))[0], 0.0, atol=1e-12)


def test_reddiff_alpha_one_kills_denoiser_term_except_const():
    mu, y, H, eps, e_hat, _ = _problem(5)  # noqa: N806
    base = float(reddiff_loss(mu, y, H, eps, e_hat, alpha_bar=1.0, grad_term_weight=0.0))
    assert float(reddiff_loss(mu, y, H, eps, e_hat, alpha_bar=1.0)) == pytest.approx(base, rel=1e-14)
    const = float(reddiff_loss(mu, y, H, eps, e_hat, alpha_bar=1.0, weighting="const"))
    assert const == pytest.approx(base + 0.25 * np.mean((e_hat - eps) * mu), rel=1e-13)


def test_reddiff_refuses_sigma_x0_without_draws():
    mu, y, H, eps, e_hat, _ = _problem(6)  # noqa: N806
    with pytest.raises(refimpl.InputError, match="eps_x0"):
        reddiff_loss(mu, y, H, eps, e_hat, alpha_bar=0.5, sigma_x0=0.1)
