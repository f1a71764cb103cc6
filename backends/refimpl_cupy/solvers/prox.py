"""Soft thresholding and group soft thresholding on CuPy: fused elementwise kernels.

Mirrors ``refimpl/solvers/prox.py``: ``S_λ(v) = sign(v)·max(|v| − λ, 0)`` with the mask
``|v| > λ`` for the backward; per row, ``y = max(0, 1 − τ/‖u‖)·u`` (the norm from ``row_norm``,
scaled where the squares leave the range) and ``ū = ȳ − (τ/‖u‖)(ȳ − û⟨û, ȳ⟩)``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, row_norm

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def soft_threshold(v, lam):
        return xp.sign(v) * xp.maximum(abs(v) - lam, 0), abs(v) > lam

    @fuse
    def masked(g, active):
        return xp.where(active, g, 0)

    @fuse
    def shrink_rows(u, norm, threshold):
        keep = (norm > threshold) | (threshold == 0)  # τ = 0: the identity, the zero row included
        return xp.where(keep, 1 - threshold / xp.where(norm > 0, norm, 1), 0) * u

    @fuse
    def group_grad(g, u, inverse_norm, shrink, along, keep):
        return xp.where(keep, g - shrink * (g - u * inverse_norm * along), 0)

    return SimpleNamespace(
        soft_threshold=soft_threshold, masked=masked, shrink_rows=shrink_rows, group_grad=group_grad
    )


kernels_for = kernel_set(_kernels)


def soft_threshold_forward(v, *, lam):
    k = kernels_for(v)
    x, active = k.soft_threshold(v, v.dtype.type(lam))
    return x.astype(v.dtype, copy=False), active


def soft_threshold_backward(residuals, g_x):
    active = residuals
    k = kernels_for(g_x)
    return (k.masked(g_x, active),)


def group_soft_threshold_forward(u, *, t, beta):
    k = kernels_for(u)
    threshold = float(t) * float(beta)
    norm = row_norm(u)
    y = k.shrink_rows(u, norm, threshold).astype(u.dtype, copy=False)
    return y, (u, norm, threshold)


def group_soft_threshold_backward(residuals, g_y):
    u, norm, threshold = residuals
    xp = xp_of(u)
    k = kernels_for(u)
    g = g_y.astype(u.dtype, copy=False)
    keep = (norm > threshold) | (threshold == 0)
    inverse_norm = 1 / xp.where(norm > 0, norm, 1)
    along = (u * inverse_norm * g).sum(axis=-1, keepdims=True)  # ⟨û, ȳ⟩
    shrink = (threshold * inverse_norm).astype(u.dtype, copy=False)
    g_u = k.group_grad(g, u, inverse_norm, shrink, along, keep)
    return (g_u.astype(u.dtype, copy=False),)


IMPLS = {
    "soft_threshold": Impl(soft_threshold_forward, soft_threshold_backward),
    "group_soft_threshold": Impl(group_soft_threshold_forward, group_soft_threshold_backward),
}
