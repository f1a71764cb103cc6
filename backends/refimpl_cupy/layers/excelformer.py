"""ExcelFormer's layers on CuPy: fused gate kernels, cuBLAS products, a fused masked softmax.

Mirrors ``refimpl/layers/excelformer.py``. ``tanh_glu`` and ``glu_tokenizer``: one fused
kernel forward (``a ⊙ tanh(b)``, ``(x W1 + b1) ⊙ tanh(x W2 + b2)``) and one backward
(``ḡ t``, ``ḡ u (1 − t²)``), the parameter cotangents as sums over the batch axis.
``semi_permeable_attention``: projections, ``Q Kᵀ``, ``A V`` and the backward's products are
``xp.matmul``; the mask ``j ≤ i`` enters as a select (−∞ semantics) or, with ``mask_value``,
as the official additive constant, in fused kernels. As the reference, the keys are
``K⁰ = x W_kᵀ`` (the key bias shifts each score row by a constant) and ``b̄_k = 0``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def tanh_gate(a, b):
        return a * xp.tanh(b)

    @fuse
    def tanh_gate_backward(g, a, b):
        t = xp.tanh(b)
        return g * t, g * a * (1 - t * t)

    @fuse
    def tokens(x, W1, b1, W2, b2):  # noqa: N803
        return (x * W1 + b1) * xp.tanh(x * W2 + b2)

    @fuse
    def tokens_backward(g, x, W1, b1, W2, b2):  # noqa: N803
        t = xp.tanh(x * W2 + b2)
        return g * t, g * (x * W1 + b1) * (1 - t * t)

    @fuse
    def masked_exp(scores, allowed, row_max):
        return xp.where(allowed, xp.exp(xp.where(allowed, scores - row_max, 0)), 0)

    @fuse
    def score_cotangent(A, g_A, inner, scale):
        return scale * A * (g_A - inner)

    return SimpleNamespace(
        tanh_gate=tanh_gate,
        tanh_gate_backward=tanh_gate_backward,
        tokens=tokens,
        tokens_backward=tokens_backward,
        masked_exp=masked_exp,
        score_cotangent=score_cotangent,
    )


kernels_for = kernel_set(_kernels)


# -- tanh_glu ------------------------------------------------------------------------------------
def tanh_glu_forward(x):
    d = x.shape[-1] // 2
    a, b = x[..., :d], x[..., d:]
    return kernels_for(x).tanh_gate(a, b), (a, b)


def tanh_glu_backward(residuals, g_out):
    a, b = residuals
    g_a, g_b = kernels_for(a).tanh_gate_backward(g_out, a, b)
    return (xp_of(a).concatenate([g_a, g_b], axis=-1),)


# -- glu_tokenizer -------------------------------------------------------------------------------
def glu_tokenizer_forward(x, W1, b1, W2, b2):  # noqa: N803
    return kernels_for(x).tokens(x[:, :, None], W1, b1, W2, b2), (x, W1, b1, W2, b2)


def glu_tokenizer_backward(residuals, g_tokens):
    x, W1, b1, W2, b2 = residuals
    xs = x[:, :, None]
    g_u, g_v = kernels_for(x).tokens_backward(g_tokens, xs, W1, b1, W2, b2)
    g_x = (g_u * W1).sum(axis=-1) + (g_v * W2).sum(axis=-1)
    return g_x, (g_u * xs).sum(axis=0), g_u.sum(axis=0), (g_v * xs).sum(axis=0), g_v.sum(axis=0)


# -- semi_permeable_attention --------------------------------------------------------------------
def _split_heads(z, heads):
    batch, features, width = z.shape
    return z.reshape(batch, features, heads, width // heads).transpose(0, 2, 1, 3)


def _merge_heads(z):
    batch, heads, features, width = z.shape
    return z.transpose(0, 2, 1, 3).reshape(batch, features, heads * width)


def semi_permeable_attention_forward(x, W_q, b_q, W_k, b_k, W_v, b_v, *, n_heads, mask_value=None):  # noqa: N803
    xp, kern = xp_of(x), kernels_for(x)
    q = _split_heads(xp.matmul(x, W_q.T) + b_q, n_heads)
    k = _split_heads(xp.matmul(x, W_k.T), n_heads)  # K⁰: b_k shifts each score row by a constant
    v = _split_heads(xp.matmul(x, W_v.T) + b_v, n_heads)
    scale = x.dtype.type(1 / math.sqrt(q.shape[-1]))
    scores = xp.matmul(q, k.swapaxes(-1, -2)) * scale
    index = xp.arange(x.shape[1])
    allowed = index[None, :] <= index[:, None]
    if mask_value is None:  # −∞ semantics: a select
        row_max = xp.where(allowed, scores, -xp.inf).max(axis=-1, keepdims=True)
        weights = kern.masked_exp(scores, allowed, row_max)
    else:  # the official additive mask over every key
        shifted = scores + xp.where(allowed, 0, mask_value).astype(x.dtype)
        weights = xp.exp(shifted - shifted.max(axis=-1, keepdims=True))
    A = (weights / weights.sum(axis=-1, keepdims=True)).astype(x.dtype)
    return _merge_heads(xp.matmul(A, v)), (x, W_q, W_k, W_v, q, k, v, A, scale)


def semi_permeable_attention_backward(residuals, g_y):
    x, W_q, W_k, W_v, q, k, v, A, scale = residuals
    xp, kern = xp_of(x), kernels_for(x)
    g = _split_heads(g_y, q.shape[1])
    g_A = xp.matmul(g, v.swapaxes(-1, -2))
    inner = (A * g_A).sum(axis=-1, keepdims=True)
    g_scores = kern.score_cotangent(A, g_A, inner, scale)
    width = x.shape[-1]
    g_q = _merge_heads(xp.matmul(g_scores, k)).reshape(-1, width)
    g_k = _merge_heads(xp.matmul(g_scores.swapaxes(-1, -2), q)).reshape(-1, width)
    g_v = _merge_heads(xp.matmul(A.swapaxes(-1, -2), g)).reshape(-1, width)
    g_x = xp.matmul(g_q, W_q) + xp.matmul(g_k, W_k) + xp.matmul(g_v, W_v)
    rows = x.reshape(-1, width)
    g_b_k = xp.zeros(width, dtype=x.dtype)  # the rows of s̄ sum to zero
    return (
        g_x.reshape(x.shape),
        xp.matmul(g_q.T, rows),
        g_q.sum(axis=0),
        xp.matmul(g_k.T, rows),
        g_b_k,
        xp.matmul(g_v.T, rows),
        g_v.sum(axis=0),
    )


IMPLS = {
    "tanh_glu": Impl(tanh_glu_forward, tanh_glu_backward),
    "glu_tokenizer": Impl(glu_tokenizer_forward, glu_tokenizer_backward),
    "semi_permeable_attention": Impl(semi_permeable_attention_forward, semi_permeable_attention_backward),
}
