"""OFQ's StatsQ and QKR on CuPy: a row reduction for the scale, one fused kernel for the levels.

Mirrors ``refimpl/quantization_sparsity/ofq.py``. The fused kernel clips, rounds with
``rint`` (half to even: CUDA's ``round()`` rounds half away from zero and would move every
tie) and rescales, in the reference's order of operations. The straight-through backward is
a copy of the cotangent; QKR's product and its backward are batched matrix products.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of

UPPER_CLIP_GAP = 1e-6  # w̃ ≤ 1 − 1e-6 (the official clip_val/2 − 1e-6)


def _kernels(xp, fuse):
    @fuse
    def statsq_levels(W, scale, levels, one, upper, half, lowest, highest):
        w_tilde = xp.minimum(xp.maximum(W / scale, -one), upper)
        k = xp.rint(levels * w_tilde - half)  # round half to even
        k = xp.minimum(xp.maximum(k, lowest), highest)  # ±inf unless clamp_levels
        return scale * ((k + half) / levels)

    return SimpleNamespace(statsq_levels=statsq_levels)


kernels_for = kernel_set(_kernels)


def _scale(W):
    """StatsQ's scale: per row (o, 1) for 2-D, (1, R, 1) shared by the heads for 3-D."""
    magnitude = abs(W)
    if W.ndim == 2:
        return 2 * magnitude.mean(axis=1, keepdims=True)
    return 2 * magnitude.mean(axis=-1, keepdims=True).mean(axis=0, keepdims=True)


def _levels(W, scale, bits, clamp_levels):
    xp = xp_of(W)
    dtype = W.dtype.type
    levels = dtype(2.0 ** (bits - 1))
    lowest, highest = (-levels, levels - 1) if clamp_levels else (dtype(-xp.inf), dtype(xp.inf))
    return kernels_for(W).statsq_levels(
        W, scale, levels, dtype(1.0), dtype(1.0 - UPPER_CLIP_GAP), dtype(0.5), dtype(lowest), dtype(highest)
    )


def statsq_quantize_forward(W, *, bits, clamp_levels=False):
    return _levels(W, _scale(W), bits, clamp_levels).astype(W.dtype, copy=False), W.dtype


def statsq_quantize_backward(residuals, g_w_q):
    dtype = residuals
    return (g_w_q.astype(dtype, copy=True),)  # the straight-through estimator


def qkr_quantize_forward(W_q, W_k, *, bits, clamp_levels=False, per_head_scale=False):
    xp = xp_of(W_q)
    W_qk = xp.matmul(xp.swapaxes(W_q, -1, -2), W_k)
    if per_head_scale:  # the official (H·D, D) reshape: one scale per row of every head
        scale = 2 * abs(W_qk).mean(axis=-1, keepdims=True)
    else:
        scale = _scale(W_qk)
    return _levels(W_qk, scale, bits, clamp_levels).astype(W_q.dtype, copy=False), (W_q, W_k)


def qkr_quantize_backward(residuals, g_w_qk):
    W_q, W_k = residuals
    xp = xp_of(W_q)
    G = g_w_qk.astype(W_q.dtype, copy=False)
    return xp.matmul(W_k, xp.swapaxes(G, -1, -2)), xp.matmul(W_q, G)  # W_k Gᵀ, W_q G per head


IMPLS = {
    "statsq_quantize": Impl(statsq_quantize_forward, statsq_quantize_backward),
    "qkr_quantize": Impl(qkr_quantize_forward, qkr_quantize_backward),
}
