"""Residual vector quantization: one Numba pass per row, parallel over rows.

Mirrors ``refimpl/quantization_sparsity/residual_vq.py``. For each row and depth the
squared distances to the K codewords are direct differences accumulated in float64 (no
``‖r‖² − 2r·e + ‖e‖²`` cancellation; reassociated, so the sum over C vectorizes), the first
strict minimum is kept (ties: lowest index), and the residual and ẑ are updated in the input
dtype, in the reference's order. Nothing of size N·K is allocated. The backward is
ẑ̄ + Σ_d r̄_{d−1}.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _rvq_rows(z, codebooks, indices, z_q, residuals):
    depth, codes, width = codebooks.shape
    for n in prange(z.shape[0]):
        residual = z[n].copy()
        total = np.zeros(width, dtype=z.dtype)
        for d in range(depth):
            residuals[d, n] = residual
            best = 0
            best_distance = np.inf
            for k in range(codes):
                distance = 0.0
                for c in range(width):
                    difference = np.float64(residual[c]) - np.float64(codebooks[d, k, c])
                    distance += difference * difference
                if distance < best_distance:  # strict: the lowest index keeps a tie
                    best_distance = distance
                    best = k
            indices[n, d] = best
            for c in range(width):
                total[c] = total[c] + codebooks[d, best, c]
                residual[c] = residual[c] - codebooks[d, best, c]
        z_q[n] = total


def residual_vector_quantize_forward(z, codebooks):
    z = np.ascontiguousarray(z)
    codebooks = np.ascontiguousarray(codebooks)
    depth = codebooks.shape[0]
    indices = np.empty((z.shape[0], depth), dtype=np.int64)
    z_q = np.empty_like(z)
    residuals = np.empty((depth, *z.shape), dtype=z.dtype)
    _rvq_rows(z, codebooks, indices, z_q, residuals)
    return (indices, z_q, residuals), z.dtype


def residual_vector_quantize_backward(dtype, cotangents):
    _, g_z_q, g_residuals = cotangents
    g_z = np.asarray(g_z_q, dtype=dtype) + np.asarray(g_residuals, dtype=dtype).sum(axis=0)
    return (g_z.astype(dtype, copy=False),)


IMPLS = {
    "residual_vector_quantize": Impl(residual_vector_quantize_forward, residual_vector_quantize_backward)
}
