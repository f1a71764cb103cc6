"""The WDM Kantorovich–Rubinstein estimate: Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/wdm.py``. Each row gives its diagonal entry and the sum of its
off-diagonal entries (skipping the diagonal, so no ``ΣF − tr F`` cancellation), in float64;
``Î = Σ_i F_ii/N − Σ_i Σ_{j≠i} F_ij/(N(N − 1))``. The backward fills ``−ḡ/(N(N − 1))`` with
``ḡ/N`` on the diagonal.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _wdm_rows(scores, diagonal, off_diagonal):
    n = scores.shape[0]
    for i in prange(n):
        total = 0.0
        for j in range(i):  # two branch-free loops around the diagonal: both vectorize
            total += np.float64(scores[i, j])
        for j in range(i + 1, n):
            total += np.float64(scores[i, j])
        off_diagonal[i] = total
        diagonal[i] = np.float64(scores[i, i])


@parallel_kernel()
def _wdm_backward_rows(on_diagonal, off_diagonal, g_scores):
    n = g_scores.shape[0]
    for i in prange(n):
        for j in range(n):
            g_scores[i, j] = off_diagonal
        g_scores[i, i] = on_diagonal


def wdm_kr_estimate_forward(F):  # noqa: N803
    scores = np.ascontiguousarray(F)
    n = scores.shape[0]
    diagonal, off_diagonal = np.empty(n), np.empty(n)
    _wdm_rows(scores, diagonal, off_diagonal)
    estimate = diagonal.sum() / n - off_diagonal.sum() / (n * (n - 1))
    return np.asarray(estimate, dtype=F.dtype), (n, F.dtype)


def wdm_kr_estimate_backward(residuals, g_estimate):
    n, dtype = residuals
    g = float(np.asarray(g_estimate))
    g_scores = np.empty((n, n), dtype=dtype)
    _wdm_backward_rows(g / n, -g / (n * (n - 1)), g_scores)
    return (g_scores,)


IMPLS = {"wdm_kr_estimate": Impl(wdm_kr_estimate_forward, wdm_kr_estimate_backward)}
