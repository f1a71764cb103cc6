"""One Newton–Schulz step in Numba: BLAS products through NumPy, fused elementwise passes.

Mirrors ``refimpl/solvers/newton_schulz.py``. The forward forms ``P = S M`` and ``M P`` with
NumPy's BLAS (in the input dtype, as the reference) and one parallel pass writes
``M' = 2M − M P``; the backward forms ``Ḡ Pᵀ`` and ``(MS)ᵀḠ`` with BLAS and one pass writes
``M̄ = 2Ḡ − Ḡ Pᵀ − (MS)ᵀḠ``, with ``(MS)ᵀḠ = Sᵀ(MᵀḠ)`` and ``S̄ = −(MᵀḠ)Mᵀ`` sharing ``MᵀḠ``
(four backward products, six in all).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _step_rows(m, m_p, out):
    for i in prange(m.shape[0]):
        for j in range(m.shape[1]):
            out[i, j] = 2 * m[i, j] - m_p[i, j]


@parallel_kernel()
def _grad_m_rows(g, g_pt, mst_g, out):
    for i in prange(g.shape[0]):
        for j in range(g.shape[1]):
            out[i, j] = 2 * g[i, j] - g_pt[i, j] - mst_g[i, j]


def newton_schulz_step_forward(M, S):  # noqa: N803
    m, s = np.ascontiguousarray(M), np.ascontiguousarray(S)
    s_m = np.dot(s, m)
    m_p = np.dot(m, s_m)
    out = np.empty_like(m)
    _step_rows(m, m_p, out)
    return out, (m, s, s_m)


def newton_schulz_step_backward(residuals, g_m_next):
    m, s, s_m = residuals
    g = np.ascontiguousarray(g_m_next, dtype=m.dtype)
    g_pt = np.dot(g, s_m.T)
    mt_g = np.dot(m.T, g)  # shared: (MS)ᵀḠ = Sᵀ(MᵀḠ) and S̄ = −(MᵀḠ)Mᵀ
    mst_g = np.dot(s.T, mt_g)
    g_m = np.empty_like(m)
    _grad_m_rows(g, g_pt, mst_g, g_m)
    g_s = np.dot(mt_g, m.T)
    np.negative(g_s, out=g_s)
    return g_m, g_s


IMPLS = {"newton_schulz_step": Impl(newton_schulz_step_forward, newton_schulz_step_backward)}
