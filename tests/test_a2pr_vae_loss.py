"""A2PR's advantage-weighted VAE loss: hand values, the official code's form, the indicator,
the clamp's gradient mask, the element-mean KL and its stable evaluation near σ = 1."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import a2pr_vae_loss

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _loss(*args, backend="numpy", **kwargs):
    return _backend(backend).get("a2pr_vae_loss")(*args, **kwargs)


def _official_vae_loss(recon, action, mean, raw_log_std, q_vae, value, vae_weight):
    """``VAE.forward``'s clamp and ``A2PR.train``'s VAE loss in ltlhuuu/A2PR, transcribed line by
    line in NumPy (column vectors (B, 1) for the critic and value outputs, as there)."""
    log_std = np.clip(raw_log_std, -4, 15)
    std = np.exp(log_std)
    embedding = q_vae[:, None] > value[:, None]
    weight_emb = vae_weight * embedding
    recon_loss = (weight_emb * np.square(recon - action)).mean()
    kl_loss = -0.5 * (1 + np.log(std**2) - mean**2 - std**2).mean()
    return recon_loss + 0.5 * kl_loss


def _random_batch(seed, batch=16, action_dim=3):
    rng = np.random.default_rng(seed)
    recon, a = rng.standard_normal((2, batch, action_dim))
    mu = rng.standard_normal((batch, 2 * action_dim))
    log_std = rng.standard_normal((batch, 2 * action_dim))
    log_std[0, 0], log_std[1, 1] = -6.0, 16.0  # both sides of the clamp
    q_a, v = rng.standard_normal((2, batch)) * 10
    return recon, a, mu, log_std, q_a, v


def test_vae_loss_matches_hand_computed_value_and_cotangents():
    recon, a = np.array([[1.0], [5.0]]), np.zeros((2, 1))
    mu, log_std = np.array([[2.0], [0.0]]), np.array([[math.log(2.0)], [0.0]])
    q_a, v = np.array([2.0, 0.0]), np.ones(2)
    loss, pullback = refimpl.vjp(a2pr_vae_loss, recon, a, mu, log_std, q_a, v)
    # L_rec = (1 + 0)/2 (row 1: q_a < v); KL = mean(½(3 − 2 ln 2 + 4), 0); loss = L_rec + KL/2
    kl = 0.5 * (0.5 * (3.0 - 2.0 * math.log(2.0) + 4.0))
    np.testing.assert_allclose(loss, 0.5 + 0.5 * kl, rtol=1e-15)
    g_recon, g_mu, g_log_std = pullback(np.array(1.0))
    np.testing.assert_allclose(g_recon, [[1.0], [0.0]], rtol=1e-15)  # 2(recon − a)/(B A)
    np.testing.assert_allclose(g_mu, [[0.5], [0.0]], rtol=1e-15)  # ½ μ/n, n = 2
    np.testing.assert_allclose(g_log_std, [[0.75], [0.0]], rtol=1e-15)  # ½(σ² − 1)/n = ½·3/2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("vae_weight", [1.0, 0.5, 3.0])
def test_vae_loss_matches_the_official_code(backend, vae_weight):
    args = _random_batch(0)
    got = _loss(*args, vae_weight=vae_weight, backend=backend)
    np.testing.assert_allclose(got, _official_vae_loss(*args, vae_weight), rtol=1e-12)


def test_defaults_are_the_official_ones():
    args = _random_batch(1)
    np.testing.assert_array_equal(
        a2pr_vae_loss(*args), a2pr_vae_loss(*args, vae_weight=1.0, log_std_min=-4.0, log_std_max=15.0)
    )
    np.testing.assert_allclose(a2pr_vae_loss(*args), _official_vae_loss(*args, 1.0), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_kl_is_an_element_mean_weighted_one_half(backend):
    # recon = a: only the KL remains; per element ½(σ² − 1 − log σ² + μ²), averaged over B·Z
    mu = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    log_std = np.zeros((2, 3))
    zeros = np.zeros((2, 1))
    got = _loss(zeros, zeros, mu, log_std, np.ones(2), np.zeros(2), backend=backend)
    np.testing.assert_allclose(got, 0.5 * (0.5 * (1.0 + 4.0) / 6), rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_positive_advantage_rows_are_reconstructed(backend):
    recon, a, mu, log_std, q_a, v = _random_batch(2, batch=8)
    v = np.where(np.arange(8) < 4, q_a + 1.0, q_a)  # rows 0–3: q_a < v; rows 4–7: q_a = v (strict >)
    loss, pullback = refimpl.vjp("a2pr_vae_loss", recon, a, mu, log_std, q_a, v, backend=_backend(backend))
    g_recon, _, _ = pullback(np.array(1.0))
    assert np.all(g_recon == 0)
    # the reconstructions do not enter the loss at all
    np.testing.assert_array_equal(loss, _loss(recon + 5.0, a, mu, log_std, q_a, v, backend=backend))
    v[5] = q_a[5] - 1.0  # one row with a positive advantage
    _, pullback = refimpl.vjp("a2pr_vae_loss", recon, a, mu, log_std, q_a, v, backend=_backend(backend))
    g_recon, _, _ = pullback(np.array(1.0))
    np.testing.assert_allclose(g_recon[5], 2 * (recon[5] - a[5]) / recon.size, rtol=1e-14)
    assert np.all(np.delete(g_recon, 5, axis=0) == 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_clamped_log_std_gets_no_gradient_and_the_bounds_pass_it(backend):
    mu, zeros = np.zeros((1, 4)), np.zeros((1, 1))
    log_std = np.array([[-6.0, -4.0, 0.5, 15.0]])
    _, pullback = refimpl.vjp(
        "a2pr_vae_loss", zeros, zeros, mu, log_std, np.ones(1), np.zeros(1), backend=_backend(backend)
    )
    _, _, g_log_std = pullback(np.array(1.0))
    # ½(σ² − 1)/n with n = 4; 0 beyond the clamp; on the bounds the gradient passes (torch.clamp)
    expected = [0.0, 0.125 * math.expm1(-8.0), 0.125 * math.expm1(1.0), 0.125 * math.expm1(30.0)]
    np.testing.assert_allclose(g_log_std[0], expected, rtol=1e-13)
    # beyond the clamp the loss equals the one at the bound
    np.testing.assert_array_equal(
        _loss(zeros, zeros, mu, log_std, np.ones(1), np.zeros(1), backend=backend),
        _loss(
            zeros, zeros, mu, np.array([[-4.0, -4.0, 0.5, 15.0]]), np.ones(1), np.zeros(1), backend=backend
        ),
    )


def test_gradients_match_finite_differences_inside_the_clamp():
    recon, a, mu, log_std, q_a, v = _random_batch(3, batch=4, action_dim=2)
    log_std = np.clip(log_std, -3.0, 3.0)
    args = [recon, a, mu, log_std, q_a, v]
    _, pullback = refimpl.vjp(a2pr_vae_loss, *args)
    grads = dict(zip((0, 2, 3), pullback(np.array(1.0)), strict=True))
    h = 1e-6
    for position, grad in grads.items():
        for index in [(0, 0), (3, 1)]:
            up, down = [x.copy() for x in args], [x.copy() for x in args]
            up[position][index] += h
            down[position][index] -= h
            numeric = (a2pr_vae_loss(*up) - a2pr_vae_loss(*down)) / (2 * h)
            np.testing.assert_allclose(grad[index], numeric, rtol=1e-6, atol=1e-11)


@pytest.mark.parametrize("backend", BACKENDS)
def test_near_unit_std_keeps_the_kl_digits(backend):
    # log σ = 1e-6: per element ½(expm1(2s) − 2s) = s² + (2/3)s³ + … = 1e-12 (1 + 6.7e-7)
    s = 1e-6
    zeros = np.zeros((1, 1))
    got = _loss(zeros, zeros, np.zeros((1, 1)), np.full((1, 1), s), np.zeros(1), np.ones(1), backend=backend)
    exact = 0.5 * (s * s + (2.0 / 3.0) * s**3)
    np.testing.assert_allclose(got, exact, rtol=1e-9)
    # the code's 1 + log σ² − σ² form loses most digits there
    naive = 0.5 * -0.5 * (1 + np.log(np.exp(s) ** 2) - np.exp(s) ** 2)
    assert abs(naive - exact) > 1e-6 * exact


def test_prior_gives_zero_kl_and_zero_latent_gradients():
    recon, a = np.ones((2, 2)), np.zeros((2, 2))
    loss, pullback = refimpl.vjp(
        a2pr_vae_loss, recon, a, np.zeros((2, 4)), np.zeros((2, 4)), np.ones(2), np.zeros(2)
    )
    np.testing.assert_allclose(loss, 1.0, rtol=1e-15)  # the reconstruction term alone
    _, g_mu, g_log_std = pullback(np.array(1.0))
    assert np.all(g_mu == 0) and np.all(g_log_std == 0)


def test_float32_stays_float32():
    args = [x.astype(np.float32) for x in _random_batch(4)]
    loss, pullback = refimpl.vjp(a2pr_vae_loss, *args)
    assert loss.dtype == np.float32
    assert all(g.dtype == np.float32 for g in pullback(np.float32(1.0)))
    np.testing.assert_allclose(loss, a2pr_vae_loss(*[x.astype(float) for x in args]), rtol=1e-5)


def test_bad_input_is_refused():
    x, z, q = np.ones((2, 1)), np.zeros((2, 2)), np.array([1.0, 2.0])
    with pytest.raises(refimpl.InputError, match=r"'log_std_max'.*log_std_min < log_std_max"):
        a2pr_vae_loss(x, x, z, z, q, q, log_std_min=2.0, log_std_max=1.0)
    with pytest.raises(refimpl.InputError, match="'vae_weight'"):
        a2pr_vae_loss(x, x, z, z, q, q, vae_weight=-1.0)
    with pytest.raises(refimpl.InputError, match="'log_std'"):
        a2pr_vae_loss(x, x, z, np.zeros((2, 3)), q, q)
