"""StableMax and StableMax cross-entropy: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/stablemax.py``. ``s`` is evaluated branch-free,
``max(z, 0) + 1/(1 - min(z, 0))``: the if/else form stops LLVM from vectorizing the
inner loop. Row sums accumulate in float64 (exact enough for float32 inputs, and the
``fastmath={"reassoc"}`` lets LLVM vectorize those float64 sums; it reorders float64
additions only, and the conformance tolerances were measured with it).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._buffers import output
from .._jit import parallel_kernel


@njit(cache=True, inline="always")
def _s(v):
    # constants of v's own type: a float64 literal would promote float32 math to float64
    zero = v - v
    one = zero + 1
    return max(v, zero) + one / (one - min(v, zero))


@parallel_kernel(fastmath={"reassoc"})
def _stablemax_rows(z, p):
    for i in prange(z.shape[0]):
        total = 0.0
        for j in range(z.shape[1]):
            s = _s(z[i, j])
            p[i, j] = s
            total += s
        inverse = 1.0 / total
        for j in range(z.shape[1]):
            p[i, j] = p[i, j] * inverse


@parallel_kernel(fastmath={"reassoc"})
def _stablemax_backward_rows(p, z, g_p, g_z):
    for i in prange(z.shape[0]):
        g_dot_p = 0.0
        for j in range(z.shape[1]):
            g_dot_p += g_p[i, j] * p[i, j]
        for j in range(z.shape[1]):
            g_z[i, j] = p[i, j] * (g_p[i, j] - g_dot_p) / (1.0 + abs(z[i, j]))


def stablemax_forward(z):
    rows = np.ascontiguousarray(z).reshape(-1, z.shape[-1])
    p = np.empty_like(rows)
    _stablemax_rows(rows, p)
    return p.reshape(z.shape), (p, rows, z.shape)


def stablemax_backward(residuals, g_p):
    p, rows, shape = residuals
    g_z = np.empty_like(rows)
    _stablemax_backward_rows(p, rows, np.ascontiguousarray(g_p).reshape(rows.shape), g_z)
    return (g_z.reshape(shape),)


@parallel_kernel(fastmath={"reassoc"})
def _cross_entropy_rows(z, y, loss, total_s):
    for i in prange(z.shape[0]):
        total = 0.0
        for j in range(z.shape[1]):
            total += _s(z[i, j])
        label_logit = z[i, y[i]]
        log_s_label = np.log1p(abs(label_logit)) * np.sign(label_logit)
        loss[i] = np.log(total) - log_s_label
        total_s[i] = total


@parallel_kernel(fastmath={"reassoc"})
def _cross_entropy_backward_rows(z, y, total_s, scale, g_z):
    for i in prange(z.shape[0]):
        inverse = z.dtype.type(scale[i] / total_s[i])
        for j in range(z.shape[1]):
            # s(v)/(1 + |v|) is 1 for v >= 0 and 1/(1 - v)² for v < 0: t² with one division
            v = z[i, j]
            zero = v - v
            t = (zero + 1) / (1 - min(v, zero))
            g_z[i, j] = inverse * (t * t)
        v = z[i, y[i]]
        g_z[i, y[i]] -= scale[i] / (1.0 + abs(v))


def stablemax_cross_entropy_forward(z, y, *, reduction="mean", compute_in_float64=False):
    dtype = z.dtype
    work = np.ascontiguousarray(z, dtype=np.float64 if compute_in_float64 else z.dtype)
    labels = np.ascontiguousarray(y, dtype=np.int64)
    per_row = np.empty(work.shape[0], dtype=np.float64)
    total_s = np.empty(work.shape[0], dtype=np.float64)
    _cross_entropy_rows(work, labels, per_row, total_s)
    loss = reduce_rows(per_row, reduction, dtype)
    return loss, (work, labels, total_s, reduction, dtype)


def stablemax_cross_entropy_backward(residuals, g_loss, *, out=None):
    """``out``: optional buffer for the cotangent of ``z``."""
    work, labels, total_s, reduction, dtype = residuals
    batch = work.shape[0]
    scale = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, batch)
    g_z = output(out, work, dtype)
    _cross_entropy_backward_rows(work, labels, total_s, scale, g_z)
    return (g_z,)


IMPLS = {
    "stablemax": Impl(stablemax_forward, stablemax_backward),
    "stablemax_cross_entropy": Impl(stablemax_cross_entropy_forward, stablemax_cross_entropy_backward),
}
