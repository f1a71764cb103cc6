"""A2PR's actor loss and advantage-weighted VAE loss: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/a2pr.py``. Actor: one pass per row picks the BC target (ã where
``q_recon − v ≥ q_a − v``, else a), its weight ``m = c·(1[q_recon ≥ v] + 1[q_a > v])`` and
the row's ``m·Σ_k (π − target)²`` in float64; the Q term ``−λ·mean(q_pi)`` with
``λ = α/mean|q_pi|`` is two float64 sums over B values. The backward recomputes ``π − target``.
VAE: one pass per row for both terms, the reconstruction row and the latent row
(``½(expm1(2s) − 2s + μ²)``, ``s`` the clamped log σ, ``expm1`` from ``_vmath``); the same
pass writes ``σ² − 1`` (0 where the clamp is active) for the backward, which is then one
scaling pass. Row scalars are float64; the advantages are compared in the input dtype, as
the reference forms them.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .._vmath import expm1


@njit(cache=True)
def _recon_wins(q_recon, q_a, v):
    """``A_π ≥ A_a`` formed as differences, in the input dtype and without fast-math (so that
    ``(x − v) ≥ (y − v)`` is not simplified to ``x ≥ y``)."""
    return (q_recon - v) >= (q_a - v)


@njit(cache=True, inline="always")
def _squared_distance(pi, target, i):
    total = 0.0
    for k in range(pi.shape[1]):
        difference = np.float64(pi[i, k]) - np.float64(target[i, k])
        total += difference * difference
    return total


@parallel_kernel(fastmath={"reassoc"})
def _actor_rows(pi, a, a_recon, q_a, q_recon, v, bc_weight, row_bc, m, recon_wins):
    for i in prange(pi.shape[0]):
        wins = _recon_wins(q_recon[i], q_a[i], v[i])
        count = (1.0 if q_recon[i] >= v[i] else 0.0) + (1.0 if q_a[i] > v[i] else 0.0)
        m[i] = bc_weight * count
        recon_wins[i] = wins
        if wins:  # one loop per target: a branch inside the loop would stop vectorization
            row_bc[i] = m[i] * _squared_distance(pi, a_recon, i)
        else:
            row_bc[i] = m[i] * _squared_distance(pi, a, i)


@parallel_kernel(fastmath={"reassoc"})
def _actor_backward_rows(pi, a, a_recon, m, recon_wins, scale, g_pi, g_a_recon):
    action_dim = pi.shape[1]
    for i in prange(pi.shape[0]):
        factor = scale * m[i]  # 2 L̄ m_i/(B A)
        if recon_wins[i]:  # ā_recon = −π̄ where ã is the target
            for k in range(action_dim):
                g = factor * (np.float64(pi[i, k]) - np.float64(a_recon[i, k]))
                g_pi[i, k] = g
                g_a_recon[i, k] = -g
        else:
            for k in range(action_dim):
                g_pi[i, k] = factor * (np.float64(pi[i, k]) - np.float64(a[i, k]))
                g_a_recon[i, k] = 0.0


def a2pr_actor_loss_forward(pi, a, a_recon, q_pi, q_a, q_recon, v, *, alpha=2.5, bc_weight=1.0):
    inputs = tuple(np.ascontiguousarray(x) for x in (pi, a, a_recon, q_a, q_recon, v))
    batch, action_dim = pi.shape
    row_bc, m = np.empty(batch), np.empty(batch)
    recon_wins = np.empty(batch, dtype=np.bool_)
    _actor_rows(*inputs, float(bc_weight), row_bc, m, recon_wins)
    q = np.asarray(q_pi, dtype=np.float64)
    lam = float(alpha) / (np.abs(q).sum() / batch)  # λ = α/sg[mean|Q|]
    loss = -lam * (q.sum() / batch) + row_bc.sum() / (batch * action_dim)
    return np.asarray(loss, dtype=pi.dtype), (inputs[:3], m, recon_wins, lam)


def a2pr_actor_loss_backward(residuals, g_loss):
    (pi, a, a_recon), m, recon_wins, lam = residuals
    batch, action_dim = pi.shape
    g = float(np.asarray(g_loss))
    g_pi, g_a_recon = np.empty_like(pi), np.empty_like(pi)
    _actor_backward_rows(pi, a, a_recon, m, recon_wins, 2.0 * g / (batch * action_dim), g_pi, g_a_recon)
    g_q_pi = np.full(batch, -g * lam / batch, dtype=pi.dtype)  # −L̄ λ/B, λ held fixed
    return g_pi, g_q_pi, g_a_recon


@parallel_kernel(fastmath={"reassoc"})
def _vae_rows(recon, a, mu, log_std, q_a, v, vae_weight, low, high, row_recon, row_kl, weight, unit_log_std):
    action_dim, latent_dim = recon.shape[1], mu.shape[1]
    for i in prange(recon.shape[0]):
        w = vae_weight if q_a[i] > v[i] else 0.0  # w·1[Q(s, a) > V(s)]
        total = 0.0
        for k in range(action_dim):
            difference = np.float64(recon[i, k]) - np.float64(a[i, k])
            total += difference * difference
        weight[i] = w
        row_recon[i] = w * total
        kl = 0.0
        for j in range(latent_dim):
            raw = np.float64(log_std[i, j])
            s = min(max(raw, low), high)
            two_s = 2.0 * s
            e = expm1(two_s)  # σ² − 1
            mean = np.float64(mu[i, j])
            kl += e - two_s + mean * mean
            unit_log_std[i, j] = e if low <= raw <= high else 0.0  # torch.clamp's closed range
        row_kl[i] = 0.5 * kl


@parallel_kernel(fastmath={"reassoc"})
def _vae_backward_rows(
    recon, a, mu, weight, unit_log_std, recon_scale, latent_scale, g_recon, g_mu, g_log_std
):
    for i in prange(recon.shape[0]):
        factor = recon_scale * weight[i]  # 2 L̄ w_i/(B A)
        for k in range(recon.shape[1]):
            g_recon[i, k] = factor * (np.float64(recon[i, k]) - np.float64(a[i, k]))
        for j in range(mu.shape[1]):
            g_mu[i, j] = latent_scale * np.float64(mu[i, j])  # ½ L̄ μ/n
            g_log_std[i, j] = latent_scale * np.float64(unit_log_std[i, j])  # ½ L̄ (σ² − 1)/n


def a2pr_vae_loss_forward(
    recon, a, mu, log_std, q_a, v, *, vae_weight=1.0, log_std_min=-4.0, log_std_max=15.0
):
    inputs = tuple(np.ascontiguousarray(x) for x in (recon, a, mu, log_std, q_a, v))
    batch = recon.shape[0]
    low, high = np.float64(recon.dtype.type(log_std_min)), np.float64(recon.dtype.type(log_std_max))
    row_recon, row_kl, weight = np.empty(batch), np.empty(batch), np.empty(batch)
    unit_log_std = np.empty(mu.shape, dtype=mu.dtype)
    _vae_rows(*inputs, float(vae_weight), low, high, row_recon, row_kl, weight, unit_log_std)
    loss = row_recon.sum() / recon.size + 0.5 * (row_kl.sum() / mu.size)
    return np.asarray(loss, dtype=recon.dtype), (inputs[0], inputs[1], inputs[2], weight, unit_log_std)


def a2pr_vae_loss_backward(residuals, g_loss):
    recon, a, mu, weight, unit_log_std = residuals
    g = float(np.asarray(g_loss))
    g_recon, g_mu, g_log_std = np.empty_like(recon), np.empty_like(mu), np.empty_like(mu)
    _vae_backward_rows(
        recon, a, mu, weight, unit_log_std, 2.0 * g / recon.size, 0.5 * g / mu.size, g_recon, g_mu, g_log_std
    )
    return g_recon, g_mu, g_log_std


IMPLS = {
    "a2pr_actor_loss": Impl(a2pr_actor_loss_forward, a2pr_actor_loss_backward),
    "a2pr_vae_loss": Impl(a2pr_vae_loss_forward, a2pr_vae_loss_backward),
}
