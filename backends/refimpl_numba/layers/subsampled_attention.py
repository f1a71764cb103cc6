"""Subsampled attention (SSA): NumPy's BLAS for the products, a Numba row-parallel kernel for
the masked softmax and its backward.

Mirrors ``refimpl/layers/subsampled_attention.py``. The four (N × M)-sized products ``Q Kᵀ``,
``A V`` (forward) and ``G Vᵀ``, ``Aᵀ G``, ``S̄ K``, ``S̄ᵀ Q`` (backward) are NumPy's batched
matmuls. The softmax over each row's sampled keys runs in place on the score matrix, one query
row per iteration of a ``prange`` over the B·H·N rows: the row max over the kept keys, then
``exp(s − m)`` (``_vmath.vexp`` in float64) on the kept keys and 0 on the dropped ones, summed in
float64 and normalized. The backward overwrites ``Ā = G Vᵀ`` with
``s̄ = A ⊙ (Ā − Σ_j A_j Ā_j) / √d_k`` in one pass per row (float64 row sum).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .._vmath import vexp


@parallel_kernel()
def _masked_softmax_rows(scores, mask, scale):
    """``scores[r, i] ← softmax over {j : mask[r, i, j]} of scale·scores[r, i, j]`` (0 elsewhere)."""
    groups, rows, cols = scores.shape
    for index in prange(groups * rows):
        r, i = index // rows, index % rows
        row_max = -np.inf
        for j in range(cols):
            if mask[r, i, j]:
                row_max = max(row_max, np.float64(scores[r, i, j]) * scale)
        total = 0.0
        for j in range(cols):  # subtract the row max over the kept keys: exp cannot overflow
            weight = vexp(np.float64(scores[r, i, j]) * scale - row_max) if mask[r, i, j] else 0.0
            scores[r, i, j] = weight
            total += weight
        inverse = 1.0 / total  # ≥ 1: the row max contributes exp(0)
        for j in range(cols):
            scores[r, i, j] = np.float64(scores[r, i, j]) * inverse


@parallel_kernel()
def _softmax_backward_rows(A, g_A, scale):
    """``g_A[r, i] ← scale · A ⊙ (Ā − Σ_j A_j Ā_j)`` in place: the cotangent of the scores."""
    groups, rows, cols = A.shape
    for index in prange(groups * rows):
        r, i = index // rows, index % rows
        inner = 0.0
        for j in range(cols):
            inner += np.float64(A[r, i, j]) * np.float64(g_A[r, i, j])
        for j in range(cols):
            g_A[r, i, j] = scale * np.float64(A[r, i, j]) * (np.float64(g_A[r, i, j]) - inner)


def _groups(a):
    return a.reshape((-1,) + a.shape[-2:])


def subsampled_attention_forward(q, k, v, S):
    scale = 1 / np.sqrt(q.shape[-1])
    A = q @ np.swapaxes(k, -1, -2)
    _masked_softmax_rows(_groups(A), _groups(S), scale)
    return A @ v, (q, k, v, A, scale)


def subsampled_attention_backward(residuals, g_o):
    q, k, v, A, scale = residuals
    g_v = np.swapaxes(A, -1, -2) @ g_o
    g_scores = g_o @ np.swapaxes(v, -1, -2)
    _softmax_backward_rows(_groups(A), _groups(g_scores), scale)
    return g_scores @ k, np.swapaxes(g_scores, -1, -2) @ q, g_v


IMPLS = {"subsampled_attention": Impl(subsampled_attention_forward, subsampled_attention_backward)}
