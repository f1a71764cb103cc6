"""Loki scores: a Numba squaring kernel and NumPy's BLAS for the two products.

Mirrors ``refimpl/other/loki.py``: ``s = −P (D ∘ D)`` and ``P̄ = −s̄ (D ∘ D)ᵀ``. The op is two
matrix products plus one elementwise square of the (K, Y) metric, so the products go to
NumPy's BLAS (``np.dot``) and the kernel squares D with the sign folded in (``−D²``), parallel
over its rows; the squared metric is kept for the backward.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _negative_squares(distances, out):
    for i in prange(distances.shape[0]):
        for y in range(distances.shape[1]):
            d = distances[i, y]
            out[i, y] = -(d * d)


def loki_scores_forward(P, D):  # noqa: N803 - the reference's signature
    negative_squared = np.empty(D.shape, dtype=D.dtype)
    _negative_squares(np.ascontiguousarray(D), negative_squared)
    scores = np.dot(P, negative_squared)  # s = P (−D ∘ D)
    return scores.astype(P.dtype, copy=False), negative_squared


def loki_scores_backward(residuals, g_scores):
    negative_squared = residuals
    g_probs = np.dot(np.asarray(g_scores, dtype=negative_squared.dtype), negative_squared.T)  # P̄ = −s̄ (D∘D)ᵀ
    return (g_probs,)


IMPLS = {"loki_scores": Impl(loki_scores_forward, loki_scores_backward)}
