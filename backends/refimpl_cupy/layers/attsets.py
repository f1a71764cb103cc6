"""AttSets' set pooling on CuPy: a cuBLAS score map and fused masked-softmax kernels.

Mirrors ``refimpl/layers/attsets.py``: ``C⁰ = X W`` (the bias cancels in the softmax over the
set) and the backward's ``C̄ Wᵀ``, ``Xᵀ C̄`` are ``xp.matmul``; the masked exponential and the
backward's ``C̄ = S ō (X − o)`` with the direct term ``ō ⊙ S`` are fused kernels; ``b̄ = 0``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def masked_exp(scores, present, top):
        return xp.where(present, xp.exp(xp.where(present, scores - top, 0)), 0)

    @fuse
    def pool_backward(S, g_o, X, o):
        return S * g_o * (X - o), g_o * S

    return SimpleNamespace(masked_exp=masked_exp, pool_backward=pool_backward)


kernels_for = kernel_set(_kernels)


def attsets_pooling_forward(X, W, b, mask=None):  # noqa: N803
    xp, kern = xp_of(X), kernels_for(X)
    scores = xp.matmul(X, W)  # C⁰: the bias is constant over the set axis
    present = xp.ones(X.shape[:2], dtype=bool) if mask is None else mask
    present = present[:, :, None]
    top = xp.where(present, scores, -xp.inf).max(axis=1, keepdims=True)  # exp cannot overflow
    weights = kern.masked_exp(scores, present, top).astype(X.dtype)
    S = weights / weights.sum(axis=1, keepdims=True)
    o = (S * X).sum(axis=1)
    return o, (X, W, S, o)


def attsets_pooling_backward(residuals, g_o):
    X, W, S, o = residuals
    xp, kern = xp_of(X), kernels_for(X)
    g_scores, g_X = kern.pool_backward(S, g_o[:, None, :], X, o[:, None, :])
    width = X.shape[-1]
    g_X = g_X + xp.matmul(g_scores, W.T)
    g_W = xp.matmul(X.reshape(-1, width).T, g_scores.reshape(-1, width))
    return g_X, g_W, xp.zeros(width, dtype=X.dtype)


IMPLS = {"attsets_pooling": Impl(attsets_pooling_forward, attsets_pooling_backward)}
