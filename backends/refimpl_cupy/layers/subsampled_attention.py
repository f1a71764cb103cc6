"""Subsampled attention (SSA) on CuPy: cuBLAS products and fused masked-softmax kernels.

Mirrors ``refimpl/layers/subsampled_attention.py``. ``Q Kᵀ``, ``A V`` and the backward's
``G Vᵀ``, ``Aᵀ G``, ``S̄ K``, ``S̄ᵀ Q`` are batched ``xp.matmul``; the masked exponentials
``exp(s − m)`` on the kept keys (0 on the dropped ones, selected: no ``exp(−∞)``) and the
softmax cotangent ``A ⊙ (Ā − Σ A Ā)/√d_k`` are fused kernels; the row max and row sums are
reductions.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def masked_scores(scores, mask, scale):
        return xp.where(mask, scores * scale, -xp.inf)

    @fuse
    def masked_exp(scaled, mask, row_max):
        return xp.where(mask, xp.exp(xp.where(mask, scaled - row_max, 0)), 0)

    @fuse
    def score_cotangent(A, g_A, inner, scale):
        return scale * A * (g_A - inner)

    return SimpleNamespace(
        masked_scores=masked_scores, masked_exp=masked_exp, score_cotangent=score_cotangent
    )


kernels_for = kernel_set(_kernels)


def subsampled_attention_forward(q, k, v, S):
    xp, kern = xp_of(q), kernels_for(q)
    scale = q.dtype.type(1 / math.sqrt(q.shape[-1]))
    scaled = kern.masked_scores(xp.matmul(q, k.swapaxes(-1, -2)), S, scale)
    row_max = scaled.max(axis=-1, keepdims=True)  # finite: every row keeps a key
    weights = kern.masked_exp(scaled, S, row_max).astype(q.dtype)
    A = weights / weights.sum(axis=-1, keepdims=True)
    return xp.matmul(A, v), (q, k, v, A, scale)


def subsampled_attention_backward(residuals, g_o):
    q, k, v, A, scale = residuals
    xp, kern = xp_of(q), kernels_for(q)
    g_v = xp.matmul(A.swapaxes(-1, -2), g_o)
    g_A = xp.matmul(g_o, v.swapaxes(-1, -2))
    inner = (A * g_A).sum(axis=-1, keepdims=True)
    g_scores = kern.score_cotangent(A, g_A, inner, scale)
    return xp.matmul(g_scores, k), xp.matmul(g_scores.swapaxes(-1, -2), q), g_v


IMPLS = {"subsampled_attention": Impl(subsampled_attention_forward, subsampled_attention_backward)}
