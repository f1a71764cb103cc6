"""StableMax and StableMax cross-entropy on CuPy: fused elementwise kernels + row reductions.

Mirrors ``refimpl/losses/stablemax.py``. Each fused kernel reads the logits once; ``s``
is branch-free, ``max(z, 0) + 1/(1 - min(z, 0))``, so no lane of a warp diverges.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def s_of(z):
        return xp.maximum(z, 0) + 1 / (1 - xp.minimum(z, 0))

    @fuse
    def row_sum_s(z):
        return xp.sum(xp.maximum(z, 0) + 1 / (1 - xp.minimum(z, 0)), axis=-1)

    @fuse
    def stablemax_grad(p, z, g_p, g_dot_p):
        return p * (g_p - g_dot_p) / (1 + abs(z))

    @fuse
    def cross_entropy_grad(z, inverse_total, scale):
        # s(z)/(1 + |z|) is 1 for z >= 0 and 1/(1 - z)² for z < 0: t² with one division
        t = 1 / (1 - xp.minimum(z, 0))
        return t * t * inverse_total * scale

    return SimpleNamespace(
        s_of=s_of,
        row_sum_s=row_sum_s,
        stablemax_grad=stablemax_grad,
        cross_entropy_grad=cross_entropy_grad,
    )


kernels_for = kernel_set(_kernels)


def stablemax_forward(z):
    k = kernels_for(z)
    s = k.s_of(z)
    p = s / s.sum(axis=-1, keepdims=True)
    return p, (p, z)


def stablemax_backward(residuals, g_p):
    p, z = residuals
    k = kernels_for(z)
    g_dot_p = (g_p * p).sum(axis=-1, keepdims=True)
    return (k.stablemax_grad(p, z, g_p, g_dot_p),)


def stablemax_cross_entropy_forward(z, y, *, reduction="mean", compute_in_float64=False):
    xp = xp_of(z)
    k = kernels_for(z)
    dtype = z.dtype
    work = z.astype(xp.float64) if compute_in_float64 else z
    total = k.row_sum_s(work)
    label_logit = xp.take_along_axis(work, y[:, None].astype(xp.int64), axis=1)[:, 0]
    per_row = xp.log(total) - xp.sign(label_logit) * xp.log1p(abs(label_logit))
    return reduce_rows(per_row, reduction, dtype), (work, y, total, reduction, dtype)


def stablemax_cross_entropy_backward(residuals, g_loss):
    work, y, total, reduction, dtype = residuals
    xp = xp_of(work)
    k = kernels_for(work)
    batch = work.shape[0]
    g = g_loss.astype(work.dtype)
    scale = row_weights(g, reduction, batch)[:, None]
    g_z = k.cross_entropy_grad(work, (1 / total)[:, None], scale)
    rows = xp.arange(batch)
    label_logit = work[rows, y]
    g_z[rows, y] -= scale[:, 0] / (1 + abs(label_logit))
    return (g_z.astype(dtype),)


IMPLS = {
    "stablemax": Impl(stablemax_forward, stablemax_backward),
    "stablemax_cross_entropy": Impl(stablemax_cross_entropy_forward, stablemax_cross_entropy_backward),
}
