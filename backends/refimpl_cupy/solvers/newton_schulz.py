"""One Newton–Schulz step on CuPy: cuBLAS products and fused elementwise combinations.

Mirrors ``refimpl/solvers/newton_schulz.py``: ``M' = 2M − M(SM)``; backward
``M̄ = 2Ḡ − Ḡ(SM)ᵀ − (MS)ᵀḠ`` (one fused kernel after the products), ``S̄ = −MᵀḠMᵀ``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set


def _kernels(xp, fuse):
    @fuse
    def step(m, m_p):
        return 2 * m - m_p

    @fuse
    def grad_m(g, g_pt, mst_g):
        return 2 * g - g_pt - mst_g

    return SimpleNamespace(step=step, grad_m=grad_m)


kernels_for = kernel_set(_kernels)


def newton_schulz_step_forward(M, S):  # noqa: N803
    k = kernels_for(M)
    s_m = S @ M
    m_next = k.step(M, M @ s_m)
    return m_next.astype(M.dtype, copy=False), (M, S, s_m)


def newton_schulz_step_backward(residuals, g_m_next):
    M, S, s_m = residuals  # noqa: N806
    k = kernels_for(M)
    g = g_m_next.astype(M.dtype, copy=False)
    mt_g = M.T @ g  # shared: (MS)ᵀḠ = Sᵀ(MᵀḠ) and S̄ = −(MᵀḠ)Mᵀ
    g_m = k.grad_m(g, g @ s_m.T, S.T @ mt_g)
    g_s = -(mt_g @ M.T)
    return g_m.astype(M.dtype, copy=False), g_s.astype(M.dtype, copy=False)


IMPLS = {"newton_schulz_step": Impl(newton_schulz_step_forward, newton_schulz_step_backward)}
