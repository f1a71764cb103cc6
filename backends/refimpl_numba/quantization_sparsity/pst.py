"""PST masked weight: NumPy's BLAS for the low-rank products, Numba kernels for the rest.

Mirrors ``refimpl/quantization_sparsity/pst.py``. The products U V and A B (and, in the
backward, the four low-rank cotangents) go through ``np.dot``; one row-parallel kernel forms
W̃ and the importance S, the ⌊s·mn⌋ smallest scores are found by ``np.partition`` in
linear time, ties at the cut pruned in flat order (as the reference's stable argsort),
and one kernel forms ``W_eff = M ⊙ W̃``. The backward kernel writes
``S̄ = G ⊙ W̃`` and ``W̃̄ = G ⊙ M + sign(W̃) ⊙ S̄`` and the row sums ``S̄ 1`` in one pass.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


def _pruned_count(sparsity, size):
    return int(np.floor(sparsity * size))


@parallel_kernel()
def _importance_rows(w, uv, ab, r, c, beta, alpha1, alpha2, w_tilde, importance):
    for i in prange(w.shape[0]):
        for j in range(w.shape[1]):
            updated = w[i, j] + beta * uv[i, j]
            w_tilde[i, j] = updated
            importance[i, j] = abs(updated) + alpha1 * ab[i, j] + alpha2 * (r[i] + c[j])


@parallel_kernel()
def _masked_rows(w_tilde, mask, w_eff):
    for i in prange(w_tilde.shape[0]):
        for j in range(w_tilde.shape[1]):
            w_eff[i, j] = mask[i, j] * w_tilde[i, j]


@parallel_kernel()
def _backward_rows(g, w_tilde, mask, g_importance, g_w_tilde, g_r):
    for i in prange(g.shape[0]):
        total = 0.0
        for j in range(g.shape[1]):
            s_bar = g[i, j] * w_tilde[i, j]
            g_importance[i, j] = s_bar
            sign = (w_tilde[i, j] > 0) - (w_tilde[i, j] < 0)
            g_w_tilde[i, j] = g[i, j] * mask[i, j] + sign * s_bar
            total += np.float64(s_bar)
        g_r[i] = total


def _smallest_mask(importance, count):
    """0 at the ``count`` smallest scores, 1 elsewhere, as a stable ascending argsort would
    give, in linear time: every score below the count-th smallest value v is pruned, then
    the scores equal to v in flat order until ``count`` are."""
    flat = importance.ravel()
    mask = np.ones(flat.size, dtype=importance.dtype)
    if count > 0:
        value = np.partition(flat, count - 1)[count - 1]
        below = flat < value
        mask[below] = 0
        equal = np.flatnonzero(flat == value)  # increasing flat index: the lower one first
        mask[equal[: count - int(np.count_nonzero(below))]] = 0
    return mask.reshape(importance.shape)


def pst_masked_weight_forward(w, u, v, a, b, r, c, *, sparsity, beta=1.0, alpha1=1.0, alpha2=1.0):
    dtype = w.dtype.type
    w_tilde = np.empty_like(w)
    importance = np.empty_like(w)
    _importance_rows(
        np.ascontiguousarray(w), np.dot(u, v), np.dot(a, b), r, c,
        dtype(beta), dtype(alpha1), dtype(alpha2), w_tilde, importance,
    )  # fmt: skip
    mask = _smallest_mask(importance, _pruned_count(sparsity, w.size))
    w_eff = np.empty_like(w)
    _masked_rows(w_tilde, mask, w_eff)
    return w_eff, (w_tilde, mask, u, v, a, b, beta, alpha1, alpha2)


def pst_masked_weight_backward(residuals, g_w_eff):
    w_tilde, mask, u, v, a, b, beta, alpha1, alpha2 = residuals
    dtype = w_tilde.dtype.type
    g_importance = np.empty_like(w_tilde)
    g_w_tilde = np.empty_like(w_tilde)
    g_r = np.empty(w_tilde.shape[0])
    _backward_rows(np.ascontiguousarray(g_w_eff), w_tilde, mask, g_importance, g_w_tilde, g_r)
    g_u = dtype(beta) * np.dot(g_w_tilde, v.T)
    g_v = dtype(beta) * np.dot(u.T, g_w_tilde)
    g_a = dtype(alpha1) * np.dot(g_importance, b.T)
    g_b = dtype(alpha1) * np.dot(a.T, g_importance)
    g_r = (dtype(alpha2) * g_r).astype(w_tilde.dtype)
    g_c = dtype(alpha2) * g_importance.sum(axis=0)
    return g_u, g_v, g_a, g_b, g_r, g_c


IMPLS = {"pst_masked_weight": Impl(pst_masked_weight_forward, pst_masked_weight_backward)}
