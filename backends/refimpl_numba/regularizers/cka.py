"""Linear CKA and the representational-alignment loss: Numba kernels around NumPy's BLAS.

Mirrors ``refimpl/regularizers/cka.py``. The products (the centred Grams ``K = X̂X̂ᵀ``,
``L = ŶŶᵀ`` and the backward's ``K̄ X̂``) go through NumPy's BLAS (``np.dot``); the kernels,
parallel over rows, do the rest: column means (float64), centring and the power-of-two
rescaling, the three Frobenius sums ``⟨K, L⟩``, ``‖K‖²``, ``‖L‖²`` per row (float64), the
combination ``K̄ = w(L − c K)`` and the final column-centring ``X̄ = C(2 K̄ X̂)/s``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.regularizers.bido import _power_of_two_scale

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _column_means(X, means):
    n, p = X.shape
    blocks = (p + 63) // 64
    for block in prange(blocks):  # 64 columns per task, read along the rows (row-major order)
        start = block * 64
        stop = min(start + 64, p)
        totals = np.zeros(stop - start, dtype=np.float64)
        for i in range(n):
            for k in range(start, stop):
                totals[k - start] += np.float64(X[i, k])
        for k in range(start, stop):
            means[k] = totals[k - start] / n


@parallel_kernel(fastmath={"reassoc"})
def _center_rows(X, means, centered, row_max):
    for i in prange(X.shape[0]):
        largest = 0.0
        for k in range(X.shape[1]):
            value = np.float64(X[i, k]) - means[k]
            centered[i, k] = value
            largest = max(largest, abs(np.float64(centered[i, k])))
        row_max[i] = largest


@parallel_kernel(fastmath={"reassoc"})
def _scale_rows(A, factor):
    for i in prange(A.shape[0]):
        for k in range(A.shape[1]):
            A[i, k] = np.float64(A[i, k]) * factor


@parallel_kernel(fastmath={"reassoc"})
def _gram_sums(K, L, sums):
    for i in prange(K.shape[0]):
        inner = 0.0
        squares_k = 0.0
        squares_l = 0.0
        for j in range(K.shape[1]):
            k = np.float64(K[i, j])
            l_ = np.float64(L[i, j])
            inner += k * l_
            squares_k += k * k
            squares_l += l_ * l_
        sums[i, 0] = inner
        sums[i, 1] = squares_k
        sums[i, 2] = squares_l


@parallel_kernel(fastmath={"reassoc"})
def _combine(L, K, weight, ratio, g_K):
    for i in prange(K.shape[0]):
        for j in range(K.shape[1]):
            g_K[i, j] = weight * (np.float64(L[i, j]) - ratio * np.float64(K[i, j]))


@parallel_kernel(fastmath={"reassoc"})
def _center_columns_scaled(A, means, factor, out):
    for i in prange(A.shape[0]):
        for k in range(A.shape[1]):
            out[i, k] = (np.float64(A[i, k]) - means[k]) * factor


def _centered_scaled(X):
    X = np.ascontiguousarray(X)
    means = np.empty(X.shape[1], dtype=np.float64)
    _column_means(X, means)
    centered = np.empty_like(X)
    row_max = np.empty(X.shape[0], dtype=np.float64)
    _center_rows(X, means, centered, row_max)
    scale = _power_of_two_scale(row_max)  # a power of two near max|X_c|
    _scale_rows(centered, 1.0 / scale)
    return centered, scale


def _cka_value(X, Y):
    X_hat, scale_x = _centered_scaled(X)
    Y_hat, scale_y = _centered_scaled(Y)
    K = np.dot(X_hat, X_hat.T)
    L = np.dot(Y_hat, Y_hat.T)
    sums = np.empty((K.shape[0], 3), dtype=np.float64)
    _gram_sums(K, L, sums)
    h, squares_k, squares_l = sums.sum(axis=0)
    norm_K, norm_L = math.sqrt(squares_k), math.sqrt(squares_l)
    return h / (norm_K * norm_L), (X_hat, Y_hat, scale_x, scale_y, K, L, h, norm_K, norm_L)


def _side_backward(A_hat, scale, own, other, h, norm_own, weight):
    """``C(2 K̄ Â)/s`` with ``K̄ = w(other − (h/‖own‖²) own)``."""
    g_gram = np.empty_like(own)
    _combine(other, own, weight, h / norm_own / norm_own, g_gram)
    product = np.dot(g_gram, A_hat)
    means = np.empty(product.shape[1], dtype=np.float64)
    _column_means(product, means)
    g_A = np.empty_like(product)
    _center_columns_scaled(product, means, 2.0 / scale, g_A)
    return g_A


def _cka_backward(residuals, g, need_y=True):
    X_hat, Y_hat, scale_x, scale_y, K, L, h, norm_K, norm_L = residuals
    weight = float(g) / (norm_K * norm_L)
    g_X = _side_backward(X_hat, scale_x, K, L, h, norm_K, weight)
    g_Y = _side_backward(Y_hat, scale_y, L, K, h, norm_L, weight) if need_y else None
    return g_X, g_Y


def linear_cka_forward(X, Y):
    cka, residuals = _cka_value(X, Y)
    return np.asarray(cka, dtype=X.dtype), residuals


def linear_cka_backward(residuals, g_cka):
    return _cka_backward(residuals, g_cka)


def representational_alignment_loss_forward(target, guide, *, alpha=1.0, token_sim=False):
    batch = target.shape[0]
    if token_sim:
        pairs = [(target[:, t], guide[:, t]) for t in range(target.shape[1])]
    else:
        pairs = [(target.reshape(batch, -1), guide.reshape(batch, -1))]
    terms = [_cka_value(A, G) for A, G in pairs]
    total = sum(1.0 - cka for cka, _ in terms)
    loss = np.asarray(alpha * total, dtype=target.dtype)
    return loss, ([residuals for _, residuals in terms], target.shape, alpha, token_sim)


def representational_alignment_loss_backward(residuals, g_loss):
    per_term, shape, alpha, token_sim = residuals
    g_terms = [_cka_backward(r, -alpha * float(g_loss), need_y=False)[0] for r in per_term]
    g_target = np.stack(g_terms, axis=1) if token_sim else g_terms[0].reshape(shape)
    return (g_target,)


IMPLS = {
    "linear_cka": Impl(linear_cka_forward, linear_cka_backward),
    "representational_alignment_loss": Impl(
        representational_alignment_loss_forward, representational_alignment_loss_backward
    ),
}
