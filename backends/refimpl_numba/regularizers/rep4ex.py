"""Rep4Ex's linear invariance penalty: NumPy's BLAS for the products, Numba kernels for the rest.

Mirrors ``refimpl/regularizers/rep4ex.py``. BLAS (``np.dot``) computes the OLS residual
``R = Φ − U(UᵀΦ)`` (``U`` the orthonormal basis of ``[1, A]`` from the reference's
``action_basis``), the Gram matrices ``G = Z_c Z_cᵀ`` of the centred points and the
backward's ``P R`` and ``U(UᵀR̄)``. Row-parallel kernels do the elementwise work in float64
sums: centring with the squared norms (the centred points and their Gram in float64), the Gaussian kernels
``exp(−max((r_i + r_j) − 2G_ij, 0)/v)`` (``_vmath.exp``; ``K_ii = 1``), the row means, the
centred trace, ``K̄ = s·HLH`` and the Laplacian VJP ``R̄ = −(2/v)(diag(P1) R − P R)``.

Symmetry. NumPy's ``np.dot(Z, Z.T)`` is a symmetric rank-k update (exactly symmetric G), and
``r_i + r_j`` is commutative in floating point, so K and L are exactly symmetric: every
transposed index of the reference (``L_ji``, column means, ``S + Sᵀ``) is read row-major
(``L_ij``, row means, ``2S``), which keeps all passes over the n × n matrices contiguous.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.regularizers.rep4ex import action_basis

from .._jit import parallel_kernel
from .._vmath import exp


@parallel_kernel(fastmath={"reassoc"})
def _center_rows(Z, means, centered, squared_norms):
    for i in prange(Z.shape[0]):
        total = 0.0
        for k in range(Z.shape[1]):
            value = np.float64(Z[i, k]) - means[k]
            centered[i, k] = value
            total += value * value
        squared_norms[i] = total


@parallel_kernel(fastmath={"reassoc"})
def _gaussian_from_gram(G, squared_norms, inverse_v, K, row_means):
    n = G.shape[0]
    for i in prange(n):
        total = 0.0
        for j in range(n):
            distance = (squared_norms[i] + squared_norms[j]) - 2.0 * np.float64(G[i, j])
            K[i, j] = exp(-max(distance, 0.0) * inverse_v)  # clamp: Gram-form round-off below 0
        K[i, i] = 1.0  # D_ii = 0 exactly
        for j in range(n):
            total += np.float64(K[i, j])
        row_means[i] = total / n


@parallel_kernel(fastmath={"reassoc"})
def _centered_inner(K, L, means, grand, partial):
    """``partial_i = Σ_j (HKH)_ij L_ij`` with ``(HKH)_ij = K_ij − m_i − m_j + g`` (K, L symmetric)."""
    n = K.shape[0]
    for i in prange(n):
        total = 0.0
        for j in range(n):
            total += (np.float64(K[i, j]) - means[i] - means[j] + grand) * np.float64(L[i, j])
        partial[i] = total


@parallel_kernel(fastmath={"reassoc"})
def _laplacian_weights(L, means, grand, scale, K, P, degree):
    """``K̄ = scale·HLH``, ``P = 2 K̄ ⊙ K`` (= S + Sᵀ for symmetric K, K̄) and its row sums."""
    n = K.shape[0]
    for i in prange(n):
        total = 0.0
        for j in range(n):
            g_K = scale * (np.float64(L[i, j]) - means[i] - means[j] + grand)
            weight = 2.0 * g_K * np.float64(K[i, j])
            P[i, j] = weight
            total += weight
        degree[i] = total


@parallel_kernel(fastmath={"reassoc"})
def _laplacian_combine(R, degree, PR, scale, g_R):
    for i in prange(R.shape[0]):
        for k in range(R.shape[1]):
            g_R[i, k] = scale * (degree[i] * np.float64(R[i, k]) - np.float64(PR[i, k]))


def _gaussian(Z, v):
    """The Gaussian kernel matrix of the rows of Z and its row means (= column means).

    The centred points and their Gram matrix are float64 for either input dtype: a float32
    Gram of points of size 1e20 overflows, and ``(r_i + r_j) − 2·inf`` would turn a zero
    kernel entry into 1.
    """
    centered = np.empty(Z.shape, dtype=np.float64)
    squared_norms = np.empty(Z.shape[0])
    _center_rows(Z, Z.mean(axis=0, dtype=np.float64), centered, squared_norms)
    K = np.empty((Z.shape[0], Z.shape[0]), dtype=Z.dtype)
    row_means = np.empty(Z.shape[0])
    _gaussian_from_gram(np.dot(centered, centered.T), squared_norms, 1.0 / v, K, row_means)
    return K, row_means


def rep4ex_invariance_penalty_forward(Phi, A, *, sigma_residual, sigma_action, dependence):
    n = Phi.shape[0]
    U = action_basis(A)
    R = np.ascontiguousarray(Phi - np.dot(U, np.dot(U.T, Phi)))
    v_residual = 2.0 * sigma_residual * sigma_residual  # v = 2σ² (paper convention, as the reference)
    K, means_K = _gaussian(R, v_residual)
    L, means_L = _gaussian(np.ascontiguousarray(A), 2.0 * sigma_action * sigma_action)
    denominator = (n - 1) ** 2 if dependence == "hsic" else n * n
    partial = np.empty(n)
    _centered_inner(K, L, means_K, means_K.mean(), partial)
    value = partial.sum() / denominator
    return np.asarray(value, dtype=Phi.dtype), (U, R, K, L, means_L, v_residual, denominator)


def rep4ex_invariance_penalty_backward(residuals, g_penalty):
    U, R, K, L, means_L, v_residual, denominator = residuals
    n = K.shape[0]
    P = np.empty_like(K)
    degree = np.empty(n)
    _laplacian_weights(L, means_L, means_L.mean(), float(g_penalty) / denominator, K, P, degree)
    g_R = np.empty_like(R)
    _laplacian_combine(R, degree, np.dot(P, R), -2.0 / v_residual, g_R)
    return (g_R - np.dot(U, np.dot(U.T, g_R)),)


IMPLS = {
    "rep4ex_invariance_penalty": Impl(rep4ex_invariance_penalty_forward, rep4ex_invariance_penalty_backward)
}
