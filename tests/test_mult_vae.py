"""Mult-VAE: known values, Mult-DAE at β = 0, the KL at the prior, gradient identities, the β schedule."""

import math

import numpy as np
import pytest
from scipy import special

import refimpl
from refimpl.losses import mult_vae_beta_schedule, mult_vae_loss, multinomial_log_likelihood

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((4, 7)) * 2
CLICKS = (RNG.random((4, 7)) < 0.4).astype(np.float64)
MU = RNG.standard_normal((4, 3))
LOGVAR = RNG.standard_normal((4, 3))


def test_log_likelihood_known_value_and_gradient():
    f, x = np.zeros((1, 4)), np.array([[1.0, 0.0, 1.0, 0.0]])
    ll, pullback = refimpl.vjp(multinomial_log_likelihood, f, x)
    np.testing.assert_allclose(ll, [2 * math.log(0.25)], rtol=1e-15)
    (g_f,) = pullback(np.array([1.0]))
    np.testing.assert_allclose(g_f, [[0.5, -0.5, 0.5, -0.5]], atol=1e-15)  # x − p·Σx


def test_log_likelihood_matches_scipy_log_softmax():
    expected = (CLICKS * special.log_softmax(LOGITS, axis=-1)).sum(axis=-1)
    np.testing.assert_allclose(multinomial_log_likelihood(LOGITS, CLICKS), expected, rtol=1e-14)


def test_loss_known_value():
    f, x = np.zeros((1, 4)), np.array([[1.0, 0.0, 1.0, 0.0]])
    loss = mult_vae_loss(f, x, np.array([[1.0, 0.0]]), np.zeros((1, 2)), beta=0.2)
    np.testing.assert_allclose(loss, 2 * math.log(4) + 0.2 * 0.5, rtol=1e-15)


def test_beta_zero_is_the_dae_likelihood_and_leaves_mu_and_logvar_without_gradient():
    loss, pullback = refimpl.vjp(mult_vae_loss, LOGITS, CLICKS, MU, LOGVAR, beta=0.0)
    np.testing.assert_allclose(loss, -multinomial_log_likelihood(LOGITS, CLICKS).mean(), rtol=1e-15)
    g_f, g_mu, g_logvar = pullback(np.array(1.0))
    _, ll_pullback = refimpl.vjp(multinomial_log_likelihood, LOGITS, CLICKS)
    np.testing.assert_allclose(g_f, ll_pullback(np.full(4, -1 / 4))[0], rtol=1e-15)
    np.testing.assert_array_equal(g_mu, 0.0)
    np.testing.assert_array_equal(g_logvar, 0.0)


def test_kl_is_zero_with_zero_gradient_at_the_prior():
    zeros = np.zeros((4, 3))
    loss, pullback = refimpl.vjp(mult_vae_loss, LOGITS, CLICKS, zeros, zeros, beta=1.0)
    np.testing.assert_allclose(loss, -multinomial_log_likelihood(LOGITS, CLICKS).mean(), rtol=1e-15)
    _, g_mu, g_logvar = pullback(np.array(1.0))
    np.testing.assert_array_equal(g_mu, 0.0)
    np.testing.assert_array_equal(g_logvar, 0.0)


def test_kl_term_matches_the_gaussian_kl_to_the_standard_normal():
    beta = 0.7
    kl = mult_vae_loss(LOGITS, CLICKS, MU, LOGVAR, beta=beta) - mult_vae_loss(
        LOGITS, CLICKS, MU, LOGVAR, beta=0.0
    )
    variance = np.exp(LOGVAR)
    # KL(N(mu, σ²) ‖ N(0, 1)) = log(1/σ) + (σ² + mu²)/2 − ½ per dimension
    per_user = (-0.5 * LOGVAR + (variance + MU**2) / 2 - 0.5).sum(axis=-1)
    np.testing.assert_allclose(kl, beta * per_user.mean(), rtol=1e-12)


def test_logit_gradient_sums_to_zero_per_user():
    _, pullback = refimpl.vjp(mult_vae_loss, LOGITS, CLICKS, MU, LOGVAR, beta=0.2)
    g_f, g_mu, g_logvar = pullback(np.array(1.0))
    np.testing.assert_allclose(g_f.sum(axis=-1), 0.0, atol=1e-15)
    np.testing.assert_allclose(g_mu, 0.2 * MU / 4, rtol=1e-15)
    np.testing.assert_allclose(g_logvar, 0.2 * 0.5 * (np.exp(LOGVAR) - 1) / 4, rtol=1e-14)


def test_user_without_clicks_contributes_nothing_to_the_likelihood():
    x = CLICKS.copy()
    x[1] = 0.0
    ll, pullback = refimpl.vjp(multinomial_log_likelihood, LOGITS, x)
    assert ll[1] == 0.0
    np.testing.assert_array_equal(pullback(np.ones(4))[0][1], 0.0)


def test_large_logits_stay_finite_in_float32():
    f = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], np.float32)
    x = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], np.float32)
    ll, pullback = refimpl.vjp(multinomial_log_likelihood, f, x)
    (g_f,) = pullback(np.ones(2, np.float32))
    assert ll.dtype == g_f.dtype == np.float32
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(g_f))
    np.testing.assert_allclose(g_f[1], [0.0, 0.0, 0.0], atol=1e-6)  # p = [0, ½, ½], x − 2p = 0


def test_float32_in_float32_out():
    args = [a.astype(np.float32) for a in (LOGITS, CLICKS, MU, LOGVAR)]
    loss, pullback = refimpl.vjp(mult_vae_loss, *args, beta=0.2)
    assert loss.dtype == np.float32
    assert all(g.dtype == np.float32 for g in pullback(np.array(1.0, np.float32)))


def test_beta_schedule_matches_the_official_ramp_and_cap():
    t = np.array([0, 1, 20000, 39999, 40000, 40001, 10**7])
    np.testing.assert_allclose(
        mult_vae_beta_schedule(t), [0.0, 5e-6, 0.1, 0.199995, 0.2, 0.2, 0.2], rtol=1e-15, atol=0
    )
    np.testing.assert_array_equal(mult_vae_beta_schedule(t, total_anneal_steps=0), np.full(7, 0.2))
    np.testing.assert_allclose(
        mult_vae_beta_schedule(np.array([0, 3, 10, 12]), anneal_cap=1.0, total_anneal_steps=10),
        [0, 0.3, 1, 1],
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mult_vae_loss(LOGITS, -CLICKS - 1, MU, LOGVAR, beta=0.2), r"'x'.*>= 0"),
        (lambda: mult_vae_loss(LOGITS, CLICKS, MU, LOGVAR, beta=-1.0), r"'beta'.*>= 0"),
        (lambda: mult_vae_loss(LOGITS, CLICKS, MU, LOGVAR[:, :2], beta=0.2), "d = 3"),
        (lambda: multinomial_log_likelihood(LOGITS, CLICKS[:, :3]), "I = 7"),
        (lambda: mult_vae_beta_schedule(np.array([-1])), r"values in \[0"),
    ],
)
def test_bad_input_raises_a_clear_input_error(call, message):
    with pytest.raises(refimpl.InputError, match=message):
        call()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_backends_agree_on_the_known_value(backend):
    f, x = np.zeros((1, 4)), np.array([[1.0, 0.0, 1.0, 0.0]])
    loss, pullback = refimpl.vjp(
        "mult_vae_loss", f, x, np.array([[1.0, 0.0]]), np.zeros((1, 2)), beta=0.2, backend=backend
    )
    np.testing.assert_allclose(loss, 2 * math.log(4) + 0.2 * 0.5, rtol=1e-15)
    g_f, g_mu, g_logvar = pullback(np.array(1.0))
    np.testing.assert_allclose(g_f, [[-0.5, 0.5, -0.5, 0.5]], atol=1e-15)
    np.testing.assert_allclose(g_mu, [[0.2, 0.0]], atol=1e-15)
    np.testing.assert_allclose(g_logvar, [[0.0, 0.0]], atol=1e-15)
