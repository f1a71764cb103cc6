"""Gradient coherence on Numba: one pass over the (m, P) per-example gradients.

Mirrors ``refimpl/other/gradient_coherence.py``. The gradients are read once, in row order:
each row adds into a float64 column-sum vector ``Σ_i g_i`` (P,) and its squared norm into
``Σ_i ‖g_i‖²``; then ``α = ‖Σ_i g_i‖²/(m·Σ_i ‖g_i‖²)`` (= ‖ḡ‖²/mean ‖g_i‖²). The pass is
parallel over blocks of columns for large inputs, each block summing its own columns and
its part of the squared norms (serial below 2²⁰ elements).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

PARALLEL_MIN_SIZE = 1 << 20
BLOCK = 4096  # columns per parallel task: a float64 block of the column sums stays in L1/L2


def _block_sums(g, block, column_sums, block_squares):
    """column_sums[j] = Σ_i g[i, j]; block_squares[t] = Σ_i Σ_{j in block t} g[i, j]² (float64)."""
    m, p = g.shape
    for t in prange(block_squares.shape[0]):
        start = t * block
        stop = min(start + block, p)
        squares = 0.0
        for j in range(start, stop):
            column_sums[j] = 0.0
        for i in range(m):
            for j in range(start, stop):
                value = np.float64(g[i, j])
                column_sums[j] += value
                squares += value * value
        block_squares[t] = squares


_block_sums_kernel = parallel_kernel(min_elements=PARALLEL_MIN_SIZE, fastmath={"reassoc"})(_block_sums)


def gradient_coherence_forward(g):
    m, p = g.shape
    blocks = max((p + BLOCK - 1) // BLOCK, 1)
    column_sums = np.empty(p)
    block_squares = np.zeros(blocks)
    _block_sums_kernel(np.ascontiguousarray(g), BLOCK, column_sums, block_squares)
    alpha = (column_sums @ column_sums) / (m * block_squares.sum())
    return (np.asarray(alpha, dtype=g.dtype), np.asarray(1.0 / m, dtype=g.dtype)), None


IMPLS = {"gradient_coherence": Impl(gradient_coherence_forward)}
