"""Loki scores on CuPy: one fused squaring kernel and two cuBLAS products.

Mirrors ``refimpl/other/loki.py``: ``s = −P (D ∘ D)`` and ``P̄ = −s̄ (D ∘ D)ᵀ``, with the sign
folded into the squared metric (``−D²``, one fused elementwise kernel), which the backward
reuses. On the host the same functions run as plain NumPy.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set


def _kernels(xp, fuse):
    @fuse
    def negative_square(d):
        return -(d * d)

    return SimpleNamespace(negative_square=negative_square)


kernels_for = kernel_set(_kernels)


def loki_scores_forward(P, D):  # noqa: N803 - the reference's signature
    negative_squared = kernels_for(D).negative_square(D)
    scores = P @ negative_squared  # s = P (−D ∘ D)
    return scores.astype(P.dtype, copy=False), negative_squared


def loki_scores_backward(residuals, g_scores):
    negative_squared = residuals
    g_probs = g_scores.astype(negative_squared.dtype) @ negative_squared.T  # P̄ = −s̄ (D∘D)ᵀ
    return (g_probs,)


IMPLS = {"loki_scores": Impl(loki_scores_forward, loki_scores_backward)}
