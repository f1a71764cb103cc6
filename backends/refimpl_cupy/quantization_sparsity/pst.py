"""PST masked weight on CuPy: cuBLAS low-rank products, fused elementwise kernels.

Mirrors ``refimpl/quantization_sparsity/pst.py``: one fused kernel forms W̃ and the
importance S, a partition finds the ⌊s·mn⌋ smallest S (ties at the cut pruned in
flat order, as the reference's stable argsort), one
fused kernel forms the backward's ``S̄ = G ⊙ W̃`` and ``W̃̄ = G ⊙ M + sign(W̃) ⊙ S̄``; the
low-rank products and their cotangents are matrix products.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def importance(w, uv, ab, r, c, beta, alpha1, alpha2):
        updated = w + beta * uv
        return updated, abs(updated) + alpha1 * ab + alpha2 * (r + c)

    @fuse
    def backward(g, w_tilde, mask):
        s_bar = g * w_tilde
        return s_bar, g * mask + xp.sign(w_tilde) * s_bar

    return SimpleNamespace(importance=importance, backward=backward)


kernels_for = kernel_set(_kernels)


def _smallest_mask(xp, importance, count):
    """0 at the ``count`` smallest scores (a stable ascending argsort's first ``count``), 1
    elsewhere: all below the count-th smallest value v, then those equal to v in flat order."""
    flat = importance.ravel()
    mask = xp.ones(flat.size, dtype=importance.dtype)
    if count > 0:
        value = xp.partition(flat, count - 1)[count - 1]
        below = flat < value
        mask[below] = 0
        equal = xp.flatnonzero(flat == value)  # increasing flat index: the lower one first
        mask[equal[: count - int(below.sum())]] = 0
    return mask.reshape(importance.shape)


def pst_masked_weight_forward(w, u, v, a, b, r, c, *, sparsity, beta=1.0, alpha1=1.0, alpha2=1.0):
    xp = xp_of(w)
    k = kernels_for(w)
    dtype = w.dtype.type
    w_tilde, importance = k.importance(
        w, u @ v, a @ b, r[:, None], c[None, :], dtype(beta), dtype(alpha1), dtype(alpha2)
    )
    mask = _smallest_mask(xp, importance, int(math.floor(sparsity * w.size)))
    return mask * w_tilde, (w_tilde, mask, u, v, a, b, beta, alpha1, alpha2)


def pst_masked_weight_backward(residuals, g_w_eff):
    w_tilde, mask, u, v, a, b, beta, alpha1, alpha2 = residuals
    k = kernels_for(w_tilde)
    dtype = w_tilde.dtype.type
    g_importance, g_w_tilde = k.backward(g_w_eff, w_tilde, mask)
    return (
        dtype(beta) * (g_w_tilde @ v.T),
        dtype(beta) * (u.T @ g_w_tilde),
        dtype(alpha1) * (g_importance @ b.T),
        dtype(alpha1) * (a.T @ g_importance),
        dtype(alpha2) * g_importance.sum(axis=1),
        dtype(alpha2) * g_importance.sum(axis=0),
    )


IMPLS = {"pst_masked_weight": Impl(pst_masked_weight_forward, pst_masked_weight_backward)}
