"""AttSets' set pooling: NumPy's BLAS for the score map, Numba kernels for the per-set softmax.

Mirrors ``refimpl/layers/attsets.py``. The scores ``C⁰ = X W`` (the bias cancels in the
softmax over the set) and the backward's ``C̄ Wᵀ`` and ``Xᵀ C̄`` are NumPy matmuls (BLAS). One
set per ``prange`` iteration: the forward takes the per-feature max over the present
elements, the exponentials (``vexp``: ``exp32`` for float32 scores, the difference to the max
formed in float64), their sums and the weighted sum ``o`` with float64 accumulators of width
D; masked elements get weight 0 without an exponential. The backward writes
``C̄ = S ō (X − o)`` and the direct term ``ō ⊙ S`` of X̄ in one elementwise pass; ``b̄ = 0``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .._vmath import vexp


@parallel_kernel(fastmath={"reassoc"})
def _pool_sets(X, scores, present, S, o):
    batch, size, width = X.shape
    for s in prange(batch):
        top = np.full(width, -np.inf)  # per-feature max over the present elements
        for n in range(size):
            if present[s, n]:
                for d in range(width):
                    top[d] = max(top[d], np.float64(scores[s, n, d]))
        total = np.zeros(width)
        for n in range(size):
            if present[s, n]:
                for d in range(width):
                    e = vexp(scores.dtype.type(np.float64(scores[s, n, d]) - top[d]))  # ≤ 0: no overflow
                    S[s, n, d] = e
                    total[d] += np.float64(e)
            else:
                for d in range(width):
                    S[s, n, d] = 0
        pooled = np.zeros(width)
        for n in range(size):
            for d in range(width):
                weight = np.float64(S[s, n, d]) / total[d]
                S[s, n, d] = weight
                pooled[d] += weight * np.float64(X[s, n, d])
        for d in range(width):
            o[s, d] = pooled[d]


@parallel_kernel(fastmath={"reassoc"})
def _pool_sets_backward(X, S, o, g_o, g_scores, g_X):
    """``C̄ = S ō (X − o)`` into g_scores and ``ō ⊙ S`` into g_X."""
    batch, size, width = X.shape
    for s in prange(batch):
        for n in range(size):
            for d in range(width):
                g = np.float64(g_o[s, d])
                weight = np.float64(S[s, n, d])
                g_scores[s, n, d] = weight * g * (np.float64(X[s, n, d]) - np.float64(o[s, d]))
                g_X[s, n, d] = g * weight


def attsets_pooling_forward(X, W, b, mask=None):  # noqa: N803
    X = np.ascontiguousarray(X)
    batch, size, width = X.shape
    scores = np.dot(X.reshape(-1, width), W).reshape(X.shape)  # C⁰: the bias cancels
    present = np.ones((batch, size), dtype=np.bool_) if mask is None else np.ascontiguousarray(mask)
    S = np.empty_like(X)
    o = np.empty((batch, width), dtype=X.dtype)
    _pool_sets(X, scores, present, S, o)
    return o, (X, W, S, o)


def attsets_pooling_backward(residuals, g_o):
    X, W, S, o = residuals
    width = X.shape[-1]
    g_scores = np.empty_like(X)
    g_X = np.empty_like(X)
    _pool_sets_backward(X, S, o, np.ascontiguousarray(g_o), g_scores, g_X)
    g_score_rows = g_scores.reshape(-1, width)
    g_X += np.dot(g_score_rows, W.T).reshape(X.shape)
    g_W = np.dot(X.reshape(-1, width).T, g_score_rows)
    return g_X, g_W, np.zeros(width, dtype=X.dtype)  # b̄ = 0: Σ_n C̄_nd = 0


IMPLS = {"attsets_pooling": Impl(attsets_pooling_forward, attsets_pooling_backward)}
