"""PS-KD soft-target cross-entropy on CuPy: fused elementwise kernels + row reductions.

Mirrors ``pskd_loss`` in ``refimpl/losses/pskd.py``: ``ℓ = −Σ_k t_k ((z_k − m) − log Σ exp(z − m))``;
the backward's fused kernel recomputes ``p = exp(z − m)/Σ`` from the row max and sum
(not ``exp(z − lse)``, which loses float32 digits at |z| ~ 1e4): ``z̄ = w (p Σt − t)``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def shifted_exp(z, m):
        return xp.exp(z - m)  # subtract the row max: exp cannot overflow

    @fuse
    def weighted_log_p(t, z, m, log_total):
        return t * ((z - m) - log_total)

    @fuse
    def pskd_grad(z, t, m, inverse_total, target_mass, w):
        # p = exp(z − m)/Σ: exp(z − (m + log Σ)) would round m + log Σ to the ulp of m in float32
        return w * (xp.exp(z - m) * inverse_total * target_mass - t)

    return SimpleNamespace(shifted_exp=shifted_exp, weighted_log_p=weighted_log_p, pskd_grad=pskd_grad)


kernels_for = kernel_set(_kernels)


def pskd_loss_forward(z, targets, *, reduction="mean"):
    xp = xp_of(z)
    k = kernels_for(z)
    m = z.max(axis=-1, keepdims=True)
    total = k.shifted_exp(z, m).sum(axis=-1, keepdims=True)
    log_total = xp.log(total)
    per_row = -k.weighted_log_p(targets, z, m, log_total).sum(axis=-1)
    target_mass = targets.sum(axis=-1, keepdims=True)
    return reduce_rows(per_row, reduction, z.dtype), (z, targets, m, 1 / total, target_mass, reduction)


def pskd_loss_backward(residuals, g_loss):
    z, targets, m, inverse_total, target_mass, reduction = residuals
    k = kernels_for(z)
    g = g_loss.astype(z.dtype)
    w = row_weights(g, reduction, z.shape[0])[:, None]
    return (k.pskd_grad(z, targets, m, inverse_total, target_mass, w).astype(z.dtype),)


IMPLS = {"pskd_loss": Impl(pskd_loss_forward, pskd_loss_backward)}
