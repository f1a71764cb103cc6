"""OFQ's StatsQ and QKR: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/quantization_sparsity/ofq.py``. One pass per row computes the scale
``s = 2·mean|W|`` (accumulated in float64, stored in the dtype of W); one fused pass then
clips, rounds half to even (``np.rint``, never half away from zero) and rescales, in the
dtype of W and in the reference's order of operations, so a weight gets the reference's
level whenever it gets the reference's scale. The straight-through backward is a copy of
the cotangent; QKR's product and its backward are BLAS matrix products.
``fastmath={"reassoc"}`` lets LLVM vectorize the float64 sums of |W| (it only reorders
additions); the level kernel is strict (its division and ``rint`` decide the ties).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

UPPER_CLIP_GAP = 1e-6  # w̃ ≤ 1 − 1e-6 (the official clip_val/2 − 1e-6)


@parallel_kernel(fastmath={"reassoc"})
def _row_scales(W, scale):
    """scale[r] = 2·mean_j |W[r, j]| for a (rows, C) weight."""
    rows, cols = W.shape
    for r in prange(rows):
        total = 0.0
        for j in range(cols):
            total += abs(W[r, j])
        scale[r] = 2.0 * (total / cols)


@parallel_kernel(fastmath={"reassoc"})
def _head_shared_scales(W, scale):
    """scale[r] = 2·mean_h (mean_j |W[h, r, j]|) for a (H, R, C) weight."""
    heads, rows, cols = W.shape
    for r in prange(rows):
        total = 0.0
        for h in range(heads):
            head_total = 0.0
            for j in range(cols):
                head_total += abs(W[h, r, j])
            total += head_total / cols
        scale[r] = 2.0 * (total / heads)


@parallel_kernel()
def _quantize_rows(W, scale, period, n, clamp_levels, out):
    """out = s·(rint(n·clip(W/s, −1, 1 − 1e-6) − ½) + ½)/n, row r using scale[r % period]."""
    rows, cols = W.shape
    one = W.dtype.type(1.0)
    upper = W.dtype.type(1.0 - UPPER_CLIP_GAP)
    half = W.dtype.type(0.5)
    levels = W.dtype.type(n)
    lowest, highest = -levels, levels - one
    for r in prange(rows):
        s = scale[r % period]
        for j in range(cols):
            w_tilde = min(max(W[r, j] / s, -one), upper)
            k = np.rint(levels * w_tilde - half)  # round half to even
            if clamp_levels:
                k = min(max(k, lowest), highest)
            out[r, j] = s * ((k + half) / levels)


def _quantize(W, scale, period, bits, clamp_levels):
    rows = W.reshape(-1, W.shape[-1])
    out = np.empty_like(rows)
    _quantize_rows(rows, scale, period, float(2.0 ** (bits - 1)), bool(clamp_levels), out)
    return out.reshape(W.shape)


def _scales(W):
    """StatsQ's scale as a flat array in the dtype of W, and the rows that share one entry."""
    scale = np.empty(W.shape[-2], dtype=np.float64)  # one per row (2-D) or per row index (3-D)
    if W.ndim == 2:
        _row_scales(W, scale)
    else:
        _head_shared_scales(W, scale)
    return scale.astype(W.dtype), scale.shape[0]


def statsq_quantize_forward(W, *, bits, clamp_levels=False):
    work = np.ascontiguousarray(W)
    scale, period = _scales(work)
    return _quantize(work, scale, period, bits, clamp_levels), work.dtype


def statsq_quantize_backward(residuals, g_w_q):
    dtype = residuals
    return (np.array(g_w_q, dtype=dtype, copy=True),)  # the straight-through estimator


def qkr_quantize_forward(W_q, W_k, *, bits, clamp_levels=False, per_head_scale=False):
    W_qk = np.ascontiguousarray(np.matmul(np.swapaxes(W_q, -1, -2), W_k))
    if per_head_scale:  # one scale per row of every head: the rows of (H·D, D)
        flat = W_qk.reshape(-1, W_qk.shape[-1])
        scale = np.empty(flat.shape[0], dtype=np.float64)
        _row_scales(flat, scale)
        scale, period = scale.astype(W_qk.dtype), flat.shape[0]
    else:
        scale, period = _scales(W_qk)
    return _quantize(W_qk, scale, period, bits, clamp_levels), (W_q, W_k)


def qkr_quantize_backward(residuals, g_w_qk):
    W_q, W_k = residuals
    G = np.asarray(g_w_qk, dtype=W_q.dtype)
    return np.matmul(W_k, np.swapaxes(G, -1, -2)), np.matmul(W_q, G)  # W_k Gᵀ, W_q G per head


IMPLS = {
    "statsq_quantize": Impl(statsq_quantize_forward, statsq_quantize_backward),
    "qkr_quantize": Impl(qkr_quantize_forward, qkr_quantize_backward),
}
