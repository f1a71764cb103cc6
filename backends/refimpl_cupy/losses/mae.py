"""The MAE loss for classification on CuPy: fused elementwise kernels + row reductions.

Mirrors ``refimpl/losses/mae.py``: ``e = exp(z − m)`` (m the row max), ``q = Σ_{k≠y} e_k / Σ_k e_k``
(the off-label mass, no ``1 − p_y`` cancellation) and ``ℓ = 2q``; the backward is one fused
kernel recomputing ``p`` from the row max and normalizer: ``z̄_j = 2 w p_y p_j`` (j ≠ y),
``z̄_y = −2 w p_y q``.
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
    def off_label(e, is_label):
        return xp.where(is_label, 0, e)

    @fuse
    def mae_grad(z, m, inverse_total, is_label, factor, q):
        # factor = 2 w p_y: 2 w p_y p_j off the label, −2 w p_y q at it
        return xp.where(is_label, -factor * q, factor * xp.exp(z - m) * inverse_total)

    return SimpleNamespace(shifted_exp=shifted_exp, off_label=off_label, mae_grad=mae_grad)


kernels_for = kernel_set(_kernels)


def mae_loss_forward(z, y, *, reduction="mean"):
    xp = xp_of(z)
    k = kernels_for(z)
    labels = y.astype(xp.int64)[:, None]
    is_label = xp.arange(z.shape[1])[None, :] == labels
    m = z.max(axis=-1, keepdims=True)
    e = k.shifted_exp(z, m)
    inverse_total = 1 / e.sum(axis=-1, keepdims=True)
    q = k.off_label(e, is_label).sum(axis=-1, keepdims=True) * inverse_total  # Σ_{k≠y} p_k
    p_y = xp.take_along_axis(e, labels, axis=1) * inverse_total
    per_row = (2 * q)[:, 0]
    residuals = (z, is_label, m, inverse_total, p_y, q, reduction)
    return reduce_rows(per_row, reduction, z.dtype), residuals


def mae_loss_backward(residuals, g_loss):
    z, is_label, m, inverse_total, p_y, q, reduction = residuals
    k = kernels_for(z)
    dtype = z.dtype
    w = row_weights(g_loss.astype(dtype), reduction, z.shape[0])[:, None]
    g_z = k.mae_grad(z, m, inverse_total, is_label, 2 * w * p_y, q)
    return (g_z.astype(dtype),)


IMPLS = {"mae_loss": Impl(mae_loss_forward, mae_loss_backward)}
