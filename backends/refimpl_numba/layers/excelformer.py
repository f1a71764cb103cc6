"""ExcelFormer's layers: Numba kernels for the gates and the masked softmax, NumPy's BLAS for
the attention's products.

Mirrors ``refimpl/layers/excelformer.py``.

* ``tanh_glu``: one row-parallel pass ``out = a ⊙ tanh(b)``; the backward recomputes
  ``t = tanh(b)`` from x (no residual array) and writes ``[ḡ t, ḡ a (1 − t²)]``. Elements are
  widened to float64 and tanh is ``_vmath.tanh``, inlined (branch-free, so the loop
  vectorizes; ``math.tanh`` is a C-library call per element and keeps the loop scalar).
* ``glu_tokenizer``: one pass per row forms ``u = x W1 + b1`` and ``t = tanh(x W2 + b2)``
  (float64, tanh as in ``tanh_glu``);
  the backward recomputes them, writes x̄ per row, and reduces W̄1, b̄1, W̄2, b̄2 over the rows
  per thread chunk in float64, then sums the chunks.
* ``semi_permeable_attention``: the projections, ``Q Kᵀ`` and ``A V`` (and the backward's
  products) are NumPy matmuls (BLAS); the masked softmax over each (batch, head, query) row
  runs in a kernel that only visits the allowed keys ``j ≤ i`` (row max and sum in float64,
  ``vexp`` for the exponentials; the masked entries are written as 0). With the official
  additive mask (``mask_value``) the kernel adds it to the masked keys and takes the softmax
  over the whole row, as the reference. The backward's ``s̄ = A (Ā − Σ A Ā)`` is a second
  row-parallel kernel. As the reference, the keys are ``K⁰ = x W_kᵀ`` (the key bias shifts
  each score row by a constant) and ``b̄_k = 0``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel, reduction_chunks
from .._vmath import tanh, vexp

# ``_vmath.tanh`` is inlined into the loops; the kernels use ``error_model="numpy"`` so that its
# division (by 2 + e ∈ (1, 2], which cannot fail) brings no zero-division branch into the loop.


# -- tanh_glu ------------------------------------------------------------------------------------
@parallel_kernel(fastmath={"reassoc"}, error_model="numpy")
def _tanh_glu_rows(x, out):
    n, d = out.shape
    for i in prange(n):
        for j in range(d):
            b = np.float64(x[i, d + j])
            out[i, j] = np.float64(x[i, j]) * tanh(b)


@parallel_kernel(fastmath={"reassoc"}, error_model="numpy")
def _tanh_glu_backward_rows(x, g, g_x):
    n, d = g.shape
    for i in prange(n):
        for j in range(d):
            b = np.float64(x[i, d + j])
            t = tanh(b)
            g_ij = np.float64(g[i, j])
            g_x[i, j] = g_ij * t
            g_x[i, d + j] = g_ij * np.float64(x[i, j]) * (1.0 - t * t)


def tanh_glu_forward(x):
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    out = np.empty((rows.shape[0], rows.shape[1] // 2), dtype=x.dtype)
    _tanh_glu_rows(rows, out)
    return out.reshape(*x.shape[:-1], -1), (rows, x.shape)


def tanh_glu_backward(residuals, g_out):
    rows, shape = residuals
    g = np.ascontiguousarray(g_out).reshape(rows.shape[0], -1)
    g_x = np.empty_like(rows)
    _tanh_glu_backward_rows(rows, g, g_x)
    return (g_x.reshape(shape),)


# -- glu_tokenizer -------------------------------------------------------------------------------
@parallel_kernel(fastmath={"reassoc"}, error_model="numpy")
def _tokenizer_rows(x, W1, b1, W2, b2, tokens):
    batch, features = x.shape
    width = W1.shape[1]
    for i in prange(batch):
        for j in range(features):
            xi = np.float64(x[i, j])
            for k in range(width):
                u = xi * np.float64(W1[j, k]) + np.float64(b1[j, k])
                v = xi * np.float64(W2[j, k]) + np.float64(b2[j, k])
                tokens[i, j, k] = u * tanh(v)


@parallel_kernel(fastmath={"reassoc"}, error_model="numpy")
def _tokenizer_backward_rows(x, W1, b1, W2, b2, g, g_x, g_W1, g_b1, g_W2, g_b2):
    batch, features = x.shape
    width = W1.shape[1]
    chunks = g_W1.shape[0]
    for c in prange(chunks):
        for i in range(c * batch // chunks, (c + 1) * batch // chunks):
            for j in range(features):
                xi = np.float64(x[i, j])
                total = 0.0
                for k in range(width):
                    u = xi * np.float64(W1[j, k]) + np.float64(b1[j, k])
                    v = xi * np.float64(W2[j, k]) + np.float64(b2[j, k])
                    t = tanh(v)
                    g_ijk = np.float64(g[i, j, k])
                    g_u = g_ijk * t
                    g_v = g_ijk * u * (1.0 - t * t)
                    total += g_u * np.float64(W1[j, k]) + g_v * np.float64(W2[j, k])
                    g_W1[c, j, k] += g_u * xi
                    g_b1[c, j, k] += g_u
                    g_W2[c, j, k] += g_v * xi
                    g_b2[c, j, k] += g_v
                g_x[i, j] = total


def glu_tokenizer_forward(x, W1, b1, W2, b2):  # noqa: N803
    x, W1, b1, W2, b2 = (np.ascontiguousarray(a) for a in (x, W1, b1, W2, b2))
    tokens = np.empty((*x.shape, W1.shape[1]), dtype=x.dtype)
    _tokenizer_rows(x, W1, b1, W2, b2, tokens)
    return tokens, (x, W1, b1, W2, b2)


def glu_tokenizer_backward(residuals, g_tokens):
    x, W1, b1, W2, b2 = residuals
    g = np.ascontiguousarray(g_tokens)
    chunks = reduction_chunks(x.shape[0], most=16)
    partials = [np.zeros((chunks, *W1.shape)) for _ in range(4)]
    g_x = np.empty_like(x)
    _tokenizer_backward_rows(x, W1, b1, W2, b2, g, g_x, *partials)
    return (g_x, *(p.sum(axis=0).astype(x.dtype) for p in partials))


# -- semi_permeable_attention --------------------------------------------------------------------
@parallel_kernel(fastmath={"reassoc"})
def _masked_softmax_rows(scores, additive, mask_value, A):
    """Row r of the (B·H·F, F) scores is query i = r mod F: keys j ≤ i (or all, additively)."""
    n, features = scores.shape
    for r in prange(n):
        i = r % features
        last = features - 1 if additive else i
        top = -np.inf
        for j in range(last + 1):
            s = np.float64(scores[r, j]) + (mask_value if j > i else 0.0)
            top = max(top, s)
        total = 0.0
        for j in range(last + 1):
            s = np.float64(scores[r, j]) + (mask_value if j > i else 0.0)
            e = vexp(scores.dtype.type(s - top))
            A[r, j] = e
            total += np.float64(e)
        inverse = scores.dtype.type(1.0 / total)
        for j in range(last + 1):
            A[r, j] *= inverse
        for j in range(last + 1, features):
            A[r, j] = 0


@parallel_kernel(fastmath={"reassoc"})
def _softmax_backward_rows(A, g_A, scale):
    """``g_A ← scale · A (Ā − Σ A Ā)`` in place, row by row."""
    n, features = A.shape
    for r in prange(n):
        dot = 0.0
        for j in range(features):
            dot += np.float64(A[r, j]) * np.float64(g_A[r, j])
        dot_t = A.dtype.type(dot)
        s = A.dtype.type(scale)
        for j in range(features):
            g_A[r, j] = s * A[r, j] * (g_A[r, j] - dot_t)


def _split_heads(z, heads):
    batch, features, width = z.shape
    return np.ascontiguousarray(z.reshape(batch, features, heads, width // heads).transpose(0, 2, 1, 3))


def _merge_heads(z):
    batch, heads, features, width = z.shape
    return z.transpose(0, 2, 1, 3).reshape(batch, features, heads * width)


def semi_permeable_attention_forward(x, W_q, b_q, W_k, b_k, W_v, b_v, *, n_heads, mask_value=None):  # noqa: N803
    batch, features, width = x.shape
    rows = np.ascontiguousarray(x).reshape(-1, width)
    q = _split_heads((rows @ W_q.T + b_q).reshape(x.shape), n_heads)
    k = _split_heads((rows @ W_k.T).reshape(x.shape), n_heads)  # K⁰: b_k shifts score rows by constants
    v = _split_heads((rows @ W_v.T + b_v).reshape(x.shape), n_heads)
    scale = 1 / math.sqrt(width // n_heads)
    scores = np.matmul(q, np.swapaxes(k, -1, -2)) * x.dtype.type(scale)
    A = np.empty_like(scores)
    additive = mask_value is not None
    _masked_softmax_rows(
        scores.reshape(-1, features),
        additive,
        0.0 if mask_value is None else float(mask_value),
        A.reshape(-1, features),
    )
    y = _merge_heads(np.matmul(A, v))
    return y, (rows, W_q, W_k, W_v, q, k, v, A, scale, x.shape)


def semi_permeable_attention_backward(residuals, g_y):
    rows, W_q, W_k, W_v, q, k, v, A, scale, shape = residuals
    features = shape[1]
    g = _split_heads(np.asarray(g_y), q.shape[1])
    g_v = np.matmul(np.swapaxes(A, -1, -2), g)
    g_scores = np.matmul(g, np.swapaxes(v, -1, -2))
    _softmax_backward_rows(A.reshape(-1, features), g_scores.reshape(-1, features), scale)
    width = shape[-1]
    g_q = _merge_heads(np.matmul(g_scores, k)).reshape(-1, width)
    g_k = _merge_heads(np.matmul(np.swapaxes(g_scores, -1, -2), q)).reshape(-1, width)
    g_v = _merge_heads(g_v).reshape(-1, width)
    g_x = g_q @ W_q + g_k @ W_k + g_v @ W_v
    g_b_k = np.zeros(width, dtype=rows.dtype)  # the rows of s̄ sum to zero
    return (
        g_x.reshape(shape),
        g_q.T @ rows,
        g_q.sum(axis=0),
        g_k.T @ rows,
        g_b_k,
        g_v.T @ rows,
        g_v.sum(axis=0),
    )


IMPLS = {
    "tanh_glu": Impl(tanh_glu_forward, tanh_glu_backward),
    "glu_tokenizer": Impl(glu_tokenizer_forward, glu_tokenizer_backward),
    "semi_permeable_attention": Impl(semi_permeable_attention_forward, semi_permeable_attention_backward),
}
