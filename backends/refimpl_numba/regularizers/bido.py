"""BiDO: Numba kernels for the Gaussian kernel matrix and the biased HSIC.

Mirrors ``refimpl/regularizers/bido.py``. The kernel matrix is filled row by row in
parallel from **direct** squared differences ``Σ_d (z_id − z_jd)²`` accumulated in float64,
instead of the reference's Gram form ``r_i − 2⟨z_i, z_j⟩ + r_j``: no cancellation for
points far from the origin, and no negative round-off, so ``abs_distances`` (|D|) and the
reference's clamp at 0 coincide here (the flag is accepted and has nothing left to act on).
The backward applies the graph Laplacian of ``P = S + Sᵀ``, ``S = K̄ ⊙ K``, row by row
without forming P. HSIC centres implicitly (row, column and grand means of K and L) and
reduces in float64; nothing of size m × m is allocated beyond the outputs.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _gaussian_rows(Z, inverse_v, K):
    m, d = Z.shape
    for i in prange(m):
        for j in range(m):
            distance = 0.0
            for k in range(d):
                difference = np.float64(Z[i, k]) - np.float64(Z[j, k])
                distance += difference * difference
            K[i, j] = np.exp(-distance * inverse_v)


@parallel_kernel()
def _gaussian_backward_rows(Z, K, g_K, scale, g_Z):
    m, d = Z.shape
    for a in prange(m):
        accumulated = np.zeros(d)
        for j in range(m):
            weight = np.float64(g_K[a, j]) * K[a, j] + np.float64(g_K[j, a]) * K[j, a]  # P_aj
            for k in range(d):
                accumulated[k] += weight * (np.float64(Z[a, k]) - np.float64(Z[j, k]))
        for k in range(d):
            g_Z[a, k] = scale * accumulated[k]


def gaussian_kernel_matrix_forward(Z, *, sigma=5.0, bandwidth_scales_with_dim=False, abs_distances=False):
    v = 2.0 * sigma * sigma * (Z.shape[1] if bandwidth_scales_with_dim else 1)  # 2σ² (official: ·d)
    Z = np.ascontiguousarray(Z)
    K = np.empty((Z.shape[0], Z.shape[0]), dtype=Z.dtype)
    _gaussian_rows(Z, 1.0 / v, K)
    return K, (Z, K, v)


def gaussian_kernel_matrix_backward(residuals, g_K):
    Z, K, v = residuals
    g_Z = np.empty_like(Z)
    _gaussian_backward_rows(Z, K, np.ascontiguousarray(g_K), -2.0 / v, g_Z)
    return (g_Z,)


@parallel_kernel()
def _means(A, row_means, column_means):
    """Row and column means of A in float64; returns the grand mean."""
    m = A.shape[0]
    for i in prange(m):
        total = 0.0
        for j in range(m):
            total += A[i, j]
        row_means[i] = total / m
    for j in prange(m):
        total = 0.0
        for i in range(m):
            total += A[i, j]
        column_means[j] = total / m
    grand = 0.0
    for i in range(m):
        grand += row_means[i]
    return grand / m


@parallel_kernel()
def _centered_inner(K, L, row_means, column_means, grand):
    """``Σ_ij (HKH)_ij L_ji`` with ``(HKH)_ij = K_ij − r_i − c_j + g``."""
    m = K.shape[0]
    total = 0.0
    for i in prange(m):
        partial = 0.0
        for j in range(m):
            partial += (K[i, j] - row_means[i] - column_means[j] + grand) * L[j, i]
        total += partial
    return total


@parallel_kernel()
def _centered_transpose(A, row_means, column_means, grand, scale, out):
    """``out = scale · H Aᵀ H``: ``(H Aᵀ H)_ij = A_ji − c_i − r_j + g`` (r, c: row/column means of A)."""
    m = A.shape[0]
    for i in prange(m):
        for j in range(m):
            out[i, j] = scale * (A[j, i] - column_means[i] - row_means[j] + grand)


def hsic_forward(K, L):
    m = K.shape[0]
    K, L = np.ascontiguousarray(K), np.ascontiguousarray(L)
    row_means, column_means = np.empty(m), np.empty(m)
    grand = _means(K, row_means, column_means)
    value = _centered_inner(K, L, row_means, column_means, grand) / (m - 1) ** 2
    return np.asarray(value, dtype=K.dtype), (K, L)


def hsic_backward(residuals, g):
    K, L = residuals
    m = K.shape[0]
    scale = float(g) / (m - 1) ** 2
    g_K, g_L = np.empty_like(K), np.empty_like(L)
    row_means, column_means = np.empty(m), np.empty(m)
    grand = _means(L, row_means, column_means)
    _centered_transpose(L, row_means, column_means, grand, scale, g_K)
    grand = _means(K, row_means, column_means)
    _centered_transpose(K, row_means, column_means, grand, scale, g_L)
    return g_K, g_L


IMPLS = {
    "gaussian_kernel_matrix": Impl(gaussian_kernel_matrix_forward, gaussian_kernel_matrix_backward),
    "hsic": Impl(hsic_forward, hsic_backward),
}
