"""OLinear's OrthoTrans transform and NormLin: BLAS products, Numba kernels for the elementwise work.

Mirrors ``refimpl/layers/olinear.py`` (``orthotrans_basis`` is a one-off construction and stays
reference-only). ``orthotrans_transform``: ``y = x Qᵀ + δ`` is one BLAS product (``np.dot``)
and a row-parallel kernel adding δ; the backward is one product and a chunked column sum for
δ̄ (float64 partials). ``normlin``: a row kernel forms ``S = softplus(W)`` with ``_vmath``'s
``exp``/``log1p``, the row sums in float64 and ``A = S/max(r, 1e-12)``; ``Y = A V`` is one
product over the variates with the batch folded into the columns; the backward is two
products (``V̄ = Aᵀ G``, ``G_A = G Vᵀ``) and a row kernel for
``W̄ = (G_A − ⟨G_A, A⟩_row)/r ⊙ sigmoid(W)``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel, reduction_chunks
from .._vmath import exp, log1p

ROW_NORM_EPS = 1e-12  # torch.nn.functional.normalize's clamp, as the reference


@parallel_kernel()
def _add_offset(y, offset):
    for i in prange(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] += offset[j]


@parallel_kernel()
def _column_sums(g, partial):
    n, t = g.shape
    chunks = partial.shape[0]
    for c in prange(chunks):
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            for j in range(t):
                partial[c, j] += np.float64(g[i, j])


def _as_rows(array):
    return np.ascontiguousarray(array).reshape(-1, array.shape[-1])


def orthotrans_transform_forward(x, q, offset, *, inverse=False):
    rows = _as_rows(x)
    y = np.dot(rows, q if inverse else q.T)  # per window: Q x (or Qᵀ x)
    _add_offset(y, offset)
    return y.reshape(x.shape), (q, inverse, x.shape)


def orthotrans_transform_backward(residuals, g_y):
    q, inverse, shape = residuals
    g_rows = _as_rows(g_y)
    g_x = np.dot(g_rows, q.T if inverse else q)  # x̄ = Qᵀ ȳ (or Q ȳ) per window
    chunks = reduction_chunks(g_rows.shape[0])
    partial = np.zeros((chunks, g_rows.shape[1]))
    _column_sums(g_rows, partial)
    return g_x.reshape(shape), partial.sum(axis=0).astype(g_y.dtype)


@parallel_kernel()
def _normalized_softplus_rows(w, a, r):
    n = w.shape[0]
    for i in prange(n):
        total = 0.0
        for j in range(n):
            u = np.float64(w[i, j])
            total += max(u, 0.0) + log1p(exp(-abs(u)))  # softplus without overflow
        r[i] = max(total, ROW_NORM_EPS)
        for j in range(n):
            u = np.float64(w[i, j])
            a[i, j] = (max(u, 0.0) + log1p(exp(-abs(u)))) / r[i]


@parallel_kernel()
def _weight_gradient_rows(w, a, r, g_a, g_w):
    n = w.shape[0]
    for i in prange(n):
        inner = 0.0
        if r[i] > ROW_NORM_EPS:  # the clamp is inactive: r depends on S
            for k in range(n):
                inner += np.float64(g_a[i, k]) * np.float64(a[i, k])
        for j in range(n):
            u = np.float64(w[i, j])
            e = exp(-abs(u))
            slope = 1.0 / (1.0 + e) if u >= 0 else e / (1.0 + e)  # sigmoid(W) without overflow
            g_w[i, j] = (np.float64(g_a[i, j]) - inner) / r[i] * slope


def _variates_first(array, n):
    """(..., N, D) → (N, batch·D): the batch folded into the columns of one product."""
    return np.ascontiguousarray(np.moveaxis(array.reshape(-1, n, array.shape[-1]), 1, 0)).reshape(n, -1)


def _variates_back(rows, shape):
    n, d = shape[-2], shape[-1]
    return np.moveaxis(rows.reshape(n, -1, d), 0, 1).reshape(shape)


def normlin_forward(w, v):
    n = w.shape[0]
    a = np.empty((n, n), dtype=w.dtype)
    r = np.empty(n)
    _normalized_softplus_rows(np.ascontiguousarray(w), a, r)
    v_rows = _variates_first(v, n)
    y = _variates_back(np.dot(a, v_rows), v.shape)
    return y, (w, a, r, v_rows, v.shape)


def normlin_backward(residuals, g_y):
    w, a, r, v_rows, shape = residuals
    n = w.shape[0]
    g_rows = _variates_first(g_y, n)
    g_v = _variates_back(np.dot(a.T, g_rows), shape)
    g_a = np.dot(g_rows, v_rows.T)  # Σ_b G[b] V[b]ᵀ
    g_w = np.empty((n, n), dtype=w.dtype)
    _weight_gradient_rows(np.ascontiguousarray(w), a, r, g_a, g_w)
    return g_w, g_v


IMPLS = {
    "orthotrans_transform": Impl(orthotrans_transform_forward, orthotrans_transform_backward),
    "normlin": Impl(normlin_forward, normlin_backward),
}
