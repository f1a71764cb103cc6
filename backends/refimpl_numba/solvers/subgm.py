"""The ℓ1 matrix-sensing loss and one SubGM step in Numba: BLAS products through NumPy, fused passes.

Mirrors ``refimpl/solvers/subgm.py``. The residuals ``r = A_flat · vec(UUᵀ) − y`` and the
sign-weighted sum ``S = Σ_i sign(r_i) A_i = sign(r)ᵀ A_flat`` are matrix-vector products through
NumPy's BLAS (in the input dtype, as the reference): the two passes over A (m·d² values) are the
whole cost and memory bound, and hand-written parallel passes were measured no faster. One pass
forms ``sign(r)`` and ``Σ|r|`` (float64 accumulator), one symmetrizes ``S + Sᵀ`` scaled by 1/m,
and a last small product gives ``G = (S + Sᵀ)U/m``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@njit(cache=True)
def _signs_and_l1(residuals, signs):
    total = 0.0
    for i in range(residuals.shape[0]):
        value = np.float64(residuals[i])
        total += abs(value)
        signs[i] = 1.0 if value > 0 else (-1.0 if value < 0 else 0.0)  # sign(0) = 0
    return total


@parallel_kernel()
def _symmetrize_rows(s, scale, out):
    for j in prange(s.shape[0]):
        for k in range(s.shape[1]):
            out[j, k] = (s[j, k] + s[k, j]) * scale


def _residuals(u, a, y):
    m, d, _ = a.shape
    a_flat = a.reshape(m, d * d)
    return a_flat, np.dot(a_flat, np.dot(u, u.T).reshape(d * d)) - y


def _subgradient(u, a_flat, signs, m):
    d = u.shape[0]
    s = np.dot(signs, a_flat).reshape(d, d)
    symmetric = np.empty_like(s)
    _symmetrize_rows(s, 1.0 / m, symmetric)
    return np.dot(symmetric, u)


def robust_matrix_sensing_l1_loss_forward(U, A, y):  # noqa: N803
    u, a = np.ascontiguousarray(U), np.ascontiguousarray(A)
    a_flat, residuals = _residuals(u, a, y)
    signs = np.empty_like(residuals)
    total = _signs_and_l1(residuals, signs)
    return np.asarray(total / a.shape[0], dtype=U.dtype), (u, a_flat, signs)


def robust_matrix_sensing_l1_loss_backward(residuals, g_loss):
    u, a_flat, signs = residuals
    g_u = _subgradient(u, a_flat, signs, a_flat.shape[0]) * u.dtype.type(g_loss)
    return (g_u.astype(u.dtype, copy=False),)


def subgm_step_forward(U, A, y, *, eta0, rho, t, normalization):  # noqa: N803
    u, a = np.ascontiguousarray(U), np.ascontiguousarray(A)
    a_flat, residuals = _residuals(u, a, y)
    signs = np.empty_like(residuals)
    total = _signs_and_l1(residuals, signs)
    g = _subgradient(u, a_flat, signs, a.shape[0])
    eta = eta0 * rho**t
    if normalization == "frobenius":
        norm = float(np.linalg.norm(g))
        eta = eta / norm if norm > 0 else 0.0
    u_new = u - U.dtype.type(eta) * g
    return (u_new.astype(U.dtype, copy=False), np.asarray(total / a.shape[0], dtype=U.dtype)), None


IMPLS = {
    "robust_matrix_sensing_l1_loss": Impl(
        robust_matrix_sensing_l1_loss_forward, robust_matrix_sensing_l1_loss_backward
    ),
    "subgm_step": Impl(subgm_step_forward),
}
