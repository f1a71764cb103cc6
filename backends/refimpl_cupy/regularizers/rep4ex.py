"""Rep4Ex's linear invariance penalty on CuPy: cuBLAS products and fused kernel/centring kernels.

Mirrors ``refimpl/regularizers/rep4ex.py``: the OLS residual ``R = Φ − U(UᵀΦ)`` (``U`` the
orthonormal basis of ``[1, A]``, from the reference's ``action_basis`` on the host), squared
distances in Gram form of the centred points, the Gaussian kernels fused with the clamp,
``tr(K H L H)`` from row/column means, and the backward ``K̄ = s·HLH``, the Laplacian VJP
``R̄ = −(2/v)(diag(P1) − P)R`` and ``Φ̄ = R̄ − U(UᵀR̄)``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl
from refimpl.regularizers.rep4ex import action_basis

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def gaussian(r_i, gram, r_j, inverse_v):
        return xp.exp(-xp.maximum(r_i - 2 * gram + r_j, 0) * inverse_v)

    @fuse
    def centered(A, row_means, column_means, grand, scale):
        return scale * (A - row_means - column_means + grand)

    return SimpleNamespace(gaussian=gaussian, centered=centered)


kernels_for = kernel_set(_kernels)


def _gaussian(Z, v):
    xp = xp_of(Z)
    k = kernels_for(Z)
    Z = Z - Z.mean(axis=0)  # distances are shift-invariant: centre first (less cancellation)
    r = (Z * Z).sum(axis=1)
    K = k.gaussian(r[:, None], Z @ Z.T, r[None, :], Z.dtype.type(1 / v)).astype(Z.dtype)
    xp.fill_diagonal(K, 1)  # D_ii = 0 exactly
    return K


def _centered(A, scale):
    k = kernels_for(A)
    row_means = A.mean(axis=1, keepdims=True)
    column_means = A.mean(axis=0, keepdims=True)
    return k.centered(A, row_means, column_means, A.mean(), A.dtype.type(scale)).astype(A.dtype)


def rep4ex_invariance_penalty_forward(Phi, A, *, sigma_residual, sigma_action, dependence):
    xp = xp_of(Phi)
    n = Phi.shape[0]
    U = xp.asarray(action_basis(A.get() if xp is not np else A))
    R = Phi - U @ (U.T @ Phi)
    v_residual = 2.0 * sigma_residual * sigma_residual
    K = _gaussian(R, v_residual)
    L = _gaussian(A, 2.0 * sigma_action * sigma_action)
    denominator = (n - 1) ** 2 if dependence == "hsic" else n * n
    value = xp.sum(_centered(K, 1.0) * L) / Phi.dtype.type(denominator)
    return value.astype(Phi.dtype), (U, R, K, L, v_residual, denominator)


def rep4ex_invariance_penalty_backward(residuals, g_penalty):
    U, R, K, L, v_residual, denominator = residuals
    g_K = _centered(L, float(g_penalty) / denominator)
    S = g_K * K
    P = S + S.T
    g_R = R.dtype.type(-2.0 / v_residual) * (P.sum(axis=1)[:, None] * R - P @ R)
    return ((g_R - U @ (U.T @ g_R)).astype(R.dtype),)


IMPLS = {
    "rep4ex_invariance_penalty": Impl(rep4ex_invariance_penalty_forward, rep4ex_invariance_penalty_backward)
}
