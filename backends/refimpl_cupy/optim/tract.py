"""TrAct linear layer on CuPy: cuBLAS products, a fused bias epilogue, a Cholesky solve.

Mirrors ``refimpl/optim/tract.py``. ``y = x Wᵀ`` and ``x̄ = G W`` are ``xp.matmul``
(cuBLAS on a GPU), the bias is added by one fused kernel. The weight gradient is computed
in float64, as in the reference: the Gram matrix of the smaller side (``XᵀX`` for b ≥ n,
``XXᵀ`` for b < n), scaled by 1/b with λ on its diagonal, factorized by
``xp.linalg.cholesky`` (cuSOLVER's potrf on a GPU) and solved by two triangular solves
(``cupyx.scipy.linalg.solve_triangular`` on a GPU, SciPy's on the host); never an inverse.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    if xp.__name__ == "cupy":
        from cupyx.scipy.linalg import solve_triangular
    else:
        from scipy.linalg import solve_triangular

    @fuse
    def add_bias(y, bias):
        return y + bias

    def ridge_solve(gram, inverse_rows, lam, rhs):
        """``(gram/b + λI)⁻¹ rhs`` through the Cholesky factor L (``L Lᵀ``), two triangular solves."""
        system = gram * inverse_rows
        system[xp.arange(system.shape[0]), xp.arange(system.shape[0])] += lam
        lower = xp.linalg.cholesky(system)
        half = solve_triangular(lower, rhs, lower=True)
        return solve_triangular(lower, half, lower=True, trans="T")

    return SimpleNamespace(add_bias=add_bias, ridge_solve=ridge_solve)


kernels_for = kernel_set(_kernels)


def tract_linear_forward(x, W, bias, *, lam=0.1):  # noqa: N803 - the reference's W
    xp = xp_of(x)
    y = kernels_for(x).add_bias(xp.matmul(x, W.T), bias)
    return y, (x, W, float(lam))


def tract_linear_backward(residuals, g_y):
    x, W, lam = residuals
    xp = xp_of(x)
    k = kernels_for(x)
    rows, features = x.shape
    g_x = xp.matmul(g_y, W)
    g_bias = g_y.sum(axis=0)
    x64 = x.astype(xp.float64, copy=False)
    g64 = g_y.astype(xp.float64, copy=False)
    if rows >= features:  # (n, n): W̄ = (M⁻¹ XᵀG)ᵀ, M = XᵀX/b + λI
        g_W = k.ridge_solve(xp.matmul(x64.T, x64), 1.0 / rows, lam, xp.matmul(x64.T, g64)).T
    else:  # (b, b): W̄ = (K⁻¹ G)ᵀ X, K = XXᵀ/b + λI
        g_W = xp.matmul(k.ridge_solve(xp.matmul(x64, x64.T), 1.0 / rows, lam, g64).T, x64)
    return g_x, g_W.astype(x.dtype), g_bias


IMPLS = {"tract_linear": Impl(tract_linear_forward, tract_linear_backward)}
