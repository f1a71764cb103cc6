"""A2PR's actor loss and advantage-weighted VAE loss on CuPy: fused elementwise kernels + means.

Mirrors ``refimpl/losses/a2pr.py``. The per-row selections (ã or a as the BC target, the
weights ``m`` and ``w·1[q_a > v]``) are O(B) array expressions; the (B, A) and (B, Z) work is
one fused kernel per direction: the masked squares, and the latent KL terms
``½(expm1(2s) − 2s + μ²)`` with ``s`` the clamped log σ. The backward kernels recompute the
differences and ``expm1(2s)`` from the inputs (no (B, ·) residuals beyond the inputs).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def bc_squares(pi, a, a_recon, recon_wins, m):
        difference = pi - xp.where(recon_wins, a_recon, a)
        return m * (difference * difference)

    @fuse
    def bc_grads(pi, a, a_recon, recon_wins, factor):
        g_pi = factor * (pi - xp.where(recon_wins, a_recon, a))  # 2 L̄ m (π − target)/(B A)
        return g_pi, xp.where(recon_wins, -g_pi, 0 * g_pi)

    @fuse
    def weighted_squares(recon, a, weight):
        difference = recon - a
        return weight * (difference * difference)

    @fuse
    def kl_terms(mu, log_std, low, high):
        two_s = 2 * xp.minimum(xp.maximum(log_std, low), high)
        return 0.5 * (xp.expm1(two_s) - two_s + mu * mu)

    @fuse
    def recon_grad(recon, a, factor):
        return factor * (recon - a)

    @fuse
    def latent_grads(mu, log_std, low, high, half_over_n):
        e = xp.expm1(2 * xp.minimum(xp.maximum(log_std, low), high))  # σ² − 1
        inside = (log_std >= low) & (log_std <= high)  # torch.clamp's closed range
        return half_over_n * mu, xp.where(inside, half_over_n * e, 0 * e)

    return SimpleNamespace(
        bc_squares=bc_squares,
        bc_grads=bc_grads,
        weighted_squares=weighted_squares,
        kl_terms=kl_terms,
        recon_grad=recon_grad,
        latent_grads=latent_grads,
    )


kernels_for = kernel_set(_kernels)


def a2pr_actor_loss_forward(pi, a, a_recon, q_pi, q_a, q_recon, v, *, alpha=2.5, bc_weight=1.0):
    xp = xp_of(pi)
    k = kernels_for(pi)
    dtype = pi.dtype.type
    lam = dtype(alpha) / xp.abs(q_pi).mean()  # λ = α/sg[mean|Q|]
    recon_wins = ((q_recon - v) >= (q_a - v))[:, None]  # the advantages, as the code forms them
    m = dtype(bc_weight) * ((q_recon >= v).astype(pi.dtype) + (q_a > v).astype(pi.dtype))
    loss = -lam * q_pi.mean() + k.bc_squares(pi, a, a_recon, recon_wins, m[:, None]).mean()
    return xp.asarray(loss, dtype=pi.dtype), (pi, a, a_recon, recon_wins, m, lam)


def a2pr_actor_loss_backward(residuals, g_loss):
    pi, a, a_recon, recon_wins, m, lam = residuals
    xp = xp_of(pi)
    k = kernels_for(pi)
    batch, action_dim = pi.shape
    g = g_loss.astype(pi.dtype)
    factor = (g * pi.dtype.type(2 / (batch * action_dim)) * m)[:, None]
    g_pi, g_a_recon = k.bc_grads(pi, a, a_recon, recon_wins, factor)
    g_q_pi = xp.full(batch, -g * lam / batch, dtype=pi.dtype)  # −L̄ λ/B, λ held fixed
    return g_pi.astype(pi.dtype), g_q_pi, g_a_recon.astype(pi.dtype)


def a2pr_vae_loss_forward(
    recon, a, mu, log_std, q_a, v, *, vae_weight=1.0, log_std_min=-4.0, log_std_max=15.0
):
    xp = xp_of(recon)
    k = kernels_for(recon)
    dtype = recon.dtype.type
    low, high = dtype(log_std_min), dtype(log_std_max)
    weight = dtype(vae_weight) * (q_a > v).astype(recon.dtype)  # w·1[Q(s, a) > V(s)]
    recon_term = k.weighted_squares(recon, a, weight[:, None]).mean()
    kl = k.kl_terms(mu, log_std, low, high).mean()
    loss = recon_term + dtype(0.5) * kl
    return xp.asarray(loss, dtype=recon.dtype), (recon, a, mu, log_std, weight, low, high)


def a2pr_vae_loss_backward(residuals, g_loss):
    recon, a, mu, log_std, weight, low, high = residuals
    k = kernels_for(recon)
    dtype = recon.dtype.type
    g = g_loss.astype(recon.dtype)
    g_recon = k.recon_grad(recon, a, (g * dtype(2 / recon.size) * weight)[:, None])
    g_mu, g_log_std = k.latent_grads(mu, log_std, low, high, g * dtype(0.5 / mu.size))
    return tuple(x.astype(recon.dtype) for x in (g_recon, g_mu, g_log_std))


IMPLS = {
    "a2pr_actor_loss": Impl(a2pr_actor_loss_forward, a2pr_actor_loss_backward),
    "a2pr_vae_loss": Impl(a2pr_vae_loss_forward, a2pr_vae_loss_backward),
}
