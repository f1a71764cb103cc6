"""Residual vector quantization on CuPy: chunked direct-difference distances.

Mirrors ``refimpl/quantization_sparsity/residual_vq.py``. Per depth the squared distances
of a block of rows to all K codewords are direct differences (one fused square kernel and a
sum over C; no ``‖r‖² − 2r·e + ‖e‖²`` cancellation), in blocks of rows so that the
(rows, K, C) differences stay below ~2²⁴ elements. The tie rule is explicit rather than left
to the reduction: the index is the smallest k whose distance equals the row's minimum. The
residual and ẑ are updated in the input dtype in the reference's order.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of

BLOCK_ELEMENTS = 1 << 24


def _kernels(xp, fuse):
    @fuse
    def squared_difference(r, e):
        difference = r - e
        return difference * difference

    @fuse
    def first_minimum(distances, minimum, positions, codes):
        # the index where the minimum sits, K elsewhere: the smallest of these is the lowest tie
        return xp.where(distances == minimum, positions, codes)

    return SimpleNamespace(squared_difference=squared_difference, first_minimum=first_minimum)


kernels_for = kernel_set(_kernels)


def _nearest(xp, k, residual, codebook):
    rows, width = residual.shape
    codes = codebook.shape[0]
    block = max(1, BLOCK_ELEMENTS // max(1, codes * width))
    positions = xp.arange(codes, dtype=xp.int64)[None, :]
    chosen = xp.empty(rows, dtype=xp.int64)
    for start in range(0, rows, block):
        part = residual[start : start + block]
        # in float64, as the reference: float32 squares overflow at |r − e| ~ 2e19
        distances = k.squared_difference(
            part[:, None, :].astype(xp.float64), codebook[None, :, :].astype(xp.float64)
        ).sum(axis=2)
        minimum = distances.min(axis=1, keepdims=True)
        chosen[start : start + block] = k.first_minimum(distances, minimum, positions, codes).min(axis=1)
    return chosen


def residual_vector_quantize_forward(z, codebooks):
    xp = xp_of(z)
    k = kernels_for(z)
    depth = codebooks.shape[0]
    indices = xp.empty((z.shape[0], depth), dtype=xp.int64)
    residuals = xp.empty((depth, *z.shape), dtype=z.dtype)
    residual = z
    z_q = xp.zeros_like(z)
    for d in range(depth):
        residuals[d] = residual
        chosen = _nearest(xp, k, residual, codebooks[d])
        quantized = codebooks[d][chosen]
        indices[:, d] = chosen
        z_q = z_q + quantized
        residual = residual - quantized
    return (indices, z_q, residuals), z.dtype


def residual_vector_quantize_backward(dtype, cotangents):
    _, g_z_q, g_residuals = cotangents
    g_z = g_z_q.astype(dtype, copy=False) + g_residuals.astype(dtype, copy=False).sum(axis=0)
    return (g_z.astype(dtype, copy=False),)


IMPLS = {
    "residual_vector_quantize": Impl(residual_vector_quantize_forward, residual_vector_quantize_backward)
}
