"""LDR-KL and ALDR-KL losses on CuPy: fused elementwise kernels + row reductions.

Mirrors ``refimpl/losses/ldr_kl.py``. The three logit normalizations are ``z̃ = u/s`` with
``s = mean_k |u_k|`` (``u = z, s = 1`` for "none", ``u = softplus(z)`` for
"softplus_mean", ``u = z`` for "l1"), and their VJPs share
``g_u = (g − sign(u)⟨g, u⟩/(K s))/s``. ``log mean exp`` is ``m + log1p(mean expm1(a − m))``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def softplus(z):
        return xp.maximum(z, 0) + xp.log1p(xp.exp(-abs(z)))

    @fuse
    def margins(u, inverse_s, u_y, c, not_label, inverse_lam):
        # a = b/λ with b_k = c·1[k≠y] + z̃_k − z̃_y (b_y = 0)
        return xp.where(not_label, c + (u - u_y) * inverse_s, 0) * inverse_lam

    @fuse
    def shifted_expm1(a, m):
        return xp.expm1(a - m)  # every exponent is <= 0

    @fuse
    def worst_case(a, m, inverse_normalizer):
        return xp.exp(a - m) * inverse_normalizer

    @fuse
    def label_grad(q, not_label, w):
        return w * (q - xp.where(not_label, 0, 1))

    @fuse
    def normalization_grad(g, sign_u, correction, inverse_s, du_dz):
        return (g - sign_u * correction) * inverse_s * du_dz

    @fuse
    def sigmoid(z):
        e = xp.exp(-abs(z))
        return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))

    return SimpleNamespace(
        softplus=softplus,
        margins=margins,
        shifted_expm1=shifted_expm1,
        worst_case=worst_case,
        label_grad=label_grad,
        normalization_grad=normalization_grad,
        sigmoid=sigmoid,
    )


kernels_for = kernel_set(_kernels)


def _forward(z, y, c, lam_rows, normalize):
    xp = xp_of(z)
    k = kernels_for(z)
    num_classes = z.shape[1]
    if normalize == "softplus_mean":
        u = k.softplus(z)
        s = u.mean(axis=-1, keepdims=True)
    elif normalize == "l1":
        u = z
        s = abs(z).mean(axis=-1, keepdims=True)
    else:
        u = z
        s = xp.ones((z.shape[0], 1), dtype=z.dtype)
    labels = y.astype(xp.int64)
    not_label = xp.arange(num_classes)[None, :] != labels[:, None]
    u_y = xp.take_along_axis(u, labels[:, None], axis=1)
    a = k.margins(u, 1 / s, u_y, z.dtype.type(c), not_label, (1 / lam_rows)[:, None])
    m = a.max(axis=-1, keepdims=True)
    acc = k.shifted_expm1(a, m).sum(axis=-1, keepdims=True)
    per_row = lam_rows * (m + xp.log1p(acc / num_classes))[:, 0]
    q = k.worst_case(a, m, 1 / (acc + num_classes))
    return per_row, (z, u, s, not_label, q, normalize)


def ldr_kl_loss_forward(z, y, *, c=0.1, lam=10.0, normalize="none", reduction="mean"):
    xp = xp_of(z)
    lam_rows = xp.full(z.shape[0], lam, dtype=z.dtype)
    per_row, residuals = _forward(z, y, c, lam_rows, normalize)
    return reduce_rows(per_row, reduction, z.dtype), (residuals, reduction)


def ldr_kl_loss_backward(residuals, g_loss):
    (z, u, s, not_label, q, normalize), reduction = residuals
    xp = xp_of(z)
    k = kernels_for(z)
    batch, num_classes = z.shape
    g = g_loss.astype(z.dtype)
    w = row_weights(g, reduction, batch)[:, None]
    g_z_tilde = k.label_grad(q, not_label, w)
    if normalize == "none":
        return (g_z_tilde.astype(z.dtype),)
    correction = (g_z_tilde * u).sum(axis=-1, keepdims=True) / (num_classes * s)
    if normalize == "softplus_mean":  # u = softplus(z) > 0, du/dz = σ(z)
        g_z = k.normalization_grad(g_z_tilde, 1, correction, 1 / s, k.sigmoid(z))
    else:  # u = z
        g_z = k.normalization_grad(g_z_tilde, xp.sign(z), correction, 1 / s, 1)
    return (g_z.astype(z.dtype),)


def aldr_kl_loss_forward(z, y, lam, ids, *, c=0.1, lam0=10.0, alpha=2.0, normalize="none", reduction="mean"):
    lam_rows = lam[ids]
    per_row, residuals = _forward(z, y, c, lam_rows, normalize)
    per_row = per_row - alpha * math.log(z.shape[1]) / (2 * lam0) * (lam_rows - lam0) ** 2
    return reduce_rows(per_row, reduction, z.dtype), (residuals, reduction)


IMPLS = {
    "ldr_kl_loss": Impl(ldr_kl_loss_forward, ldr_kl_loss_backward),
    "aldr_kl_loss": Impl(aldr_kl_loss_forward, ldr_kl_loss_backward),
}
