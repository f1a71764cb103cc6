"""Comp-sum losses Φ_τ on CuPy: fused elementwise kernels + row reductions.

Mirrors ``refimpl/losses/comp_sum.py``: ``log p_y = (z_y − m) − log Σ exp(z − m)``,
``ℓ = −expm1((τ−1) log p_y)/(τ−1)`` (``−log p_y`` at τ = 1); the backward's fused kernel
recomputes ``p = exp(z − m)/Σ`` from the row max and sum: ``z̄ = w p_y^{τ−1}(p − e_y)``.
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
    def comp_sum_grad(z, m, inverse_total, is_label, factor):
        # p = exp(z − m)/Σ: exp(z − (m + log Σ)) would round m + log Σ to the ulp of m in float32
        return factor * (xp.exp(z - m) * inverse_total - is_label)

    return SimpleNamespace(shifted_exp=shifted_exp, comp_sum_grad=comp_sum_grad)


kernels_for = kernel_set(_kernels)


def comp_sum_loss_forward(z, y, *, tau, reduction="mean"):
    xp = xp_of(z)
    k = kernels_for(z)
    labels = y.astype(xp.int64)[:, None]
    m = z.max(axis=-1, keepdims=True)
    total = k.shifted_exp(z, m).sum(axis=-1, keepdims=True)
    log_total = xp.log(total)
    log_p_y = ((xp.take_along_axis(z, labels, axis=1) - m) - log_total)[:, 0]
    s = z.dtype.type(tau - 1.0)
    per_row = -log_p_y if tau == 1.0 else -xp.expm1(s * log_p_y) / s
    residuals = (z, labels, m, 1 / total, xp.exp(s * log_p_y), reduction)
    return reduce_rows(per_row, reduction, z.dtype), residuals


def comp_sum_loss_backward(residuals, g_loss):
    z, labels, m, inverse_total, p_y_power, reduction = residuals
    xp = xp_of(z)
    k = kernels_for(z)
    batch, num_classes = z.shape
    g = g_loss.astype(z.dtype)
    w = row_weights(g, reduction, batch)
    is_label = (xp.arange(num_classes)[None, :] == labels).astype(z.dtype)
    g_z = k.comp_sum_grad(z, m, inverse_total, is_label, (w * p_y_power)[:, None])
    return (g_z.astype(z.dtype),)


IMPLS = {"comp_sum_loss": Impl(comp_sum_loss_forward, comp_sum_loss_backward)}
