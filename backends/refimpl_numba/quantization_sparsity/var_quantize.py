"""VAR multi-scale VQ loss: Numba kernels, parallel over the (B·C·H·W) positions.

Mirrors ``refimpl/quantization_sparsity/var_quantize.py``. The forward sums ``(f̂_k − f)²``
in float64 per position block (blocks in parallel, partial sums then added); the backward
writes ``f̂̄_k = s(f̂_k − f)`` and ``f̄ = −βs Σ_k (f̂_k − f)`` (s = 2L̄/(Kn)) in one pass,
recomputing the differences instead of storing them.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

BLOCK = 4096


@parallel_kernel(fastmath={"reassoc"})
def _squares(f, f_hats, partial):
    scales, size = f_hats.shape
    for block in prange(partial.shape[0]):
        total = 0.0
        for k in range(scales):
            for i in range(block * BLOCK, min(size, (block + 1) * BLOCK)):
                difference = np.float64(f_hats[k, i]) - np.float64(f[i])
                total += difference * difference
        partial[block] = total


@parallel_kernel(fastmath={"reassoc"})
def _backward(f, f_hats, scale, beta_scale, g_f, g_f_hats):
    scales, size = f_hats.shape
    for i in prange(size):
        total = 0.0
        for k in range(scales):
            difference = np.float64(f_hats[k, i]) - np.float64(f[i])
            g_f_hats[k, i] = scale * difference
            total += difference
        g_f[i] = -beta_scale * total


def multiscale_vq_loss_forward(f, f_hats, *, beta=0.25):
    flat_f = np.ascontiguousarray(f).reshape(-1)
    flat_hats = np.ascontiguousarray(f_hats).reshape(f_hats.shape[0], -1)
    partial = np.empty(-(-flat_f.size // BLOCK))
    _squares(flat_f, flat_hats, partial)
    loss = (1.0 + beta) / (f_hats.shape[0] * f.size) * partial.sum()
    return np.asarray(loss, dtype=f.dtype), (flat_f, flat_hats, f_hats.shape, beta)


def multiscale_vq_loss_backward(residuals, g_loss):
    flat_f, flat_hats, shape, beta = residuals
    scale = 2.0 * float(np.asarray(g_loss)) / (flat_hats.size)
    g_f = np.empty_like(flat_f)
    g_f_hats = np.empty_like(flat_hats)
    _backward(flat_f, flat_hats, scale, beta * scale, g_f, g_f_hats)
    return g_f.reshape(shape[1:]), g_f_hats.reshape(shape)


IMPLS = {"multiscale_vq_loss": Impl(multiscale_vq_loss_forward, multiscale_vq_loss_backward)}
