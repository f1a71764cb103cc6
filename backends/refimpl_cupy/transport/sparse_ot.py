"""Sparse-simplex projection on CuPy: a stable row sort, a cumulative-sum threshold, a fused kernel.

Mirrors ``refimpl/transport/sparse_ot.py`` (``sparse_simplex_projection``; the OT objectives
are reference-only). ``argsort`` of ``−x`` is stable (CuPy's sort is, NumPy's with
``kind="stable"``), so the k kept entries are the same as the reference's at ties (lowest
index first). The backward is one fused kernel, ``x̄ = [y > 0](ȳ − mean_{y>0} ȳ)``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def threshold_values(u, theta):
        return xp.maximum(u - theta, 0)

    @fuse
    def projection_grad(y, g_y, mean):
        return xp.where(y > 0, g_y - mean, 0)

    return SimpleNamespace(threshold_values=threshold_values, projection_grad=projection_grad)


kernels_for = kernel_set(_kernels)


def sparse_simplex_projection_forward(x, *, max_nz):
    xp = xp_of(x)
    k = kernels_for(x)
    order = xp.argsort(-x, axis=-1, kind="stable")[..., :max_nz]
    kept = xp.take_along_axis(x, order, axis=-1)  # the kept values, descending
    u = kept - kept[..., :1]  # shift-invariant; the j = 1 test is exactly 1 > 0 at any magnitude
    cumulative = xp.cumsum(u, axis=-1) - 1
    ranks = xp.arange(1, u.shape[-1] + 1, dtype=x.dtype)
    rho = xp.count_nonzero(u - cumulative / ranks > 0, axis=-1)[..., None]
    theta = xp.take_along_axis(cumulative, rho - 1, axis=-1) / rho.astype(x.dtype)
    y = xp.zeros_like(x)
    xp.put_along_axis(y, order, k.threshold_values(u, theta), axis=-1)
    return y, y


def sparse_simplex_projection_backward(residuals, g_y):
    y = residuals
    k = kernels_for(y)
    support = y > 0
    mean = (g_y * support).sum(axis=-1, keepdims=True) / support.sum(axis=-1, keepdims=True).astype(y.dtype)
    return (k.projection_grad(y, g_y, mean).astype(y.dtype),)


IMPLS = {
    "sparse_simplex_projection": Impl(sparse_simplex_projection_forward, sparse_simplex_projection_backward)
}
