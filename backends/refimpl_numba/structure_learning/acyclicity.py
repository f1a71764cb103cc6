"""Acyclicity functions with Numba: nonnegative matrix exponential and powers, and the M-matrix
elimination compiled.

Mirrors ``refimpl/structure_learning/acyclicity.py``: the same cancellation-free algorithms
(``exp(A) − I`` by an 18-term Taylor series on ``A/2^k`` and squarings of ``2F + F·F``;
``(I + B)^k − I`` by binary powering of ``F + G + FG``; Gaussian elimination of ``I − B``
without pivoting, kept as ``N ≥ 0``, and nonnegative triangular inverses), so h is exactly 0
on a DAG here too. The matrix products go to BLAS through ``np.dot``; the elimination, the
substitutions and the fused gradients are compiled loops (the reference runs them as d
Python steps of vectorized updates, which dominates its time for small and medium d).
Everything stays in the input dtype, like the reference.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from refimpl.authoring import Impl

TAYLOR_TERMS = 18


@njit(cache=True)
def _exp_minus_identity(A):
    d = A.shape[0]
    norm = 0.0
    for i in range(d):
        row = 0.0
        for j in range(d):
            row += A[i, j]
        norm = max(norm, row)
    F = np.empty_like(A)
    if not np.isfinite(norm):
        F[:] = np.inf
        return F
    squarings = 0
    if norm > 0.5:
        squarings = int(math.ceil(math.log2(norm / 0.5)))
    scale = A.dtype.type(1.0 / 2.0**squarings)  # a power of two: exact
    B = np.empty_like(A)
    for i in range(d):
        for j in range(d):
            B[i, j] = A[i, j] * scale
    F[:] = B
    term = B.copy()
    for m in range(2, TAYLOR_TERMS + 1):
        term = np.dot(term, B)
        divisor = A.dtype.type(m)
        for i in range(d):
            for j in range(d):
                term[i, j] = term[i, j] / divisor
                F[i, j] += term[i, j]
    for _ in range(squarings):
        square = np.dot(F, F)
        for i in range(d):
            for j in range(d):
                F[i, j] = 2 * F[i, j] + square[i, j]
    return F


@njit(cache=True)
def _compose(F, G):
    product = np.dot(F, G)
    d = F.shape[0]
    for i in range(d):
        for j in range(d):
            product[i, j] += F[i, j] + G[i, j]
    return product


@njit(cache=True)
def _power_minus_identity(B, k):
    result = np.zeros_like(B)
    base = B.copy()
    while k:
        if k & 1:
            result = _compose(result, base)
        k >>= 1
        if k:
            base = _compose(base, base)
    return result


@njit(cache=True)
def _trace64(F):
    total = 0.0
    for i in range(F.shape[0]):
        total += F[i, i]
    return total


@njit(cache=True)
def _gradient_2w_times_transpose_plus_identity(W, F, g):
    """``g · 2W ∘ (I + F)ᵀ``, fused."""
    d = W.shape[0]
    out = np.empty_like(W)
    for i in range(d):
        for j in range(d):
            value = F[j, i]
            if i == j:
                value += 1
            out[i, j] = g * (2 * W[i, j]) * value
    return out


@njit(cache=True)
def _m_matrix_factor(B):
    """Elimination of ``I − B`` without pivoting, kept as ``N ≥ 0`` (see the reference).
    Returns N and the first step with a non-positive pivot (−1: inside the domain)."""
    d = B.shape[0]
    N = B.copy()
    for k in range(d):
        q_k = N[k, k]
        if not q_k < 1:
            return N, k
        pivot = 1 - q_k
        for i in range(k + 1, d):
            N[i, k] = N[i, k] / pivot
        for i in range(k + 1, d):
            multiplier = N[i, k]
            if multiplier != 0:
                for j in range(k + 1, d):
                    N[i, j] += multiplier * N[k, j]
    return N, -1


@njit(cache=True)
def _neg_log_det(N):
    """``−Σ log1p(−q_k)`` over the diagonal q of N, in float64."""
    total = 0.0
    for k in range(N.shape[0]):
        total -= math.log1p(-float(N[k, k]))
    return total


@njit(cache=True)
def _m_matrix_inverse(N):
    """``U^{-1} L^{-1}`` from the factors in N, by nonnegative substitutions."""
    d = N.shape[0]
    lower_inverse = np.zeros_like(N)
    for k in range(d):
        lower_inverse[k, k] = 1
        for j in range(k):
            multiplier = N[k, j]
            if multiplier != 0:
                for c in range(j + 1):
                    lower_inverse[k, c] += multiplier * lower_inverse[j, c]
    upper_inverse = np.zeros_like(N)
    for k in range(d - 1, -1, -1):
        upper_inverse[k, k] = 1
        for j in range(k + 1, d):
            u = N[k, j]
            if u != 0:
                for c in range(j, d):
                    upper_inverse[k, c] += u * upper_inverse[j, c]
        pivot = 1 - N[k, k]
        for c in range(k, d):
            upper_inverse[k, c] = upper_inverse[k, c] / pivot
    return np.dot(upper_inverse, lower_inverse)


@njit(cache=True)
def _scaled_transpose_product(factor, inverse, g_over_s):
    """``(g/s) · factor ∘ inverseᵀ``, fused."""
    d = factor.shape[0]
    out = np.empty_like(factor)
    for i in range(d):
        for j in range(d):
            out[i, j] = g_over_s * factor[i, j] * inverse[j, i]
    return out


def _scalar(value, dtype):
    return np.asarray(value, dtype=dtype)


# -- notears_acyclicity_exp ------------------------------------------------------------------------
def notears_acyclicity_exp_forward(W):
    W = np.ascontiguousarray(W)
    F = _exp_minus_identity(W * W)
    return _scalar(_trace64(F), W.dtype), (W, F)


def notears_acyclicity_exp_backward(residuals, g_h):
    W, F = residuals
    return (_gradient_2w_times_transpose_plus_identity(W, F, W.dtype.type(g_h)),)


# -- poly_acyclicity ---------------------------------------------------------------------------------
def poly_acyclicity_forward(W):
    W = np.ascontiguousarray(W)
    d = W.shape[0]
    B = (W * W) / W.dtype.type(d)
    F_before = _power_minus_identity(B, d - 1)
    F = _compose(F_before, B)
    return _scalar(_trace64(F), W.dtype), (W, F_before)


def poly_acyclicity_backward(residuals, g_h):
    W, F_before = residuals
    return (_gradient_2w_times_transpose_plus_identity(W, F_before, W.dtype.type(g_h)),)


# -- dagma_acyclicity_logdet ---------------------------------------------------------------------------
def dagma_acyclicity_logdet_forward(W, *, s=1.0):
    W = np.ascontiguousarray(W)
    s = W.dtype.type(s)
    N, failed = _m_matrix_factor((W * W) / s)
    h = _neg_log_det(N) if failed < 0 else np.inf  # outside (a boundary rounding): refused
    return _scalar(h, W.dtype), (W, N, s)


def dagma_acyclicity_logdet_backward(residuals, g_h):
    W, N, s = residuals
    inverse = _m_matrix_inverse(N)  # (I − W∘W/s)^{-1} = s (sI − W∘W)^{-1}
    two_w = 2 * W
    return (_scaled_transpose_product(two_w, inverse, W.dtype.type(g_h) / s),)


# -- topo_acyclicity_logdet_abs -----------------------------------------------------------------------
def topo_acyclicity_logdet_abs_forward(W, *, s=1.0, check_domain=True):
    W = np.ascontiguousarray(W)
    s = W.dtype.type(s)
    A = np.abs(W)
    if check_domain:
        N, failed = _m_matrix_factor(A / s)
        h = _neg_log_det(N) if failed < 0 else np.inf
        return _scalar(h, W.dtype), (W, N, None, s)
    d = W.shape[0]
    M = s * np.eye(d, dtype=W.dtype) - A
    _, log_abs_det = np.linalg.slogdet(M)
    h = -log_abs_det + d * np.log(s)
    inverse = np.linalg.inv(M) if np.isfinite(log_abs_det) else None
    return _scalar(h, W.dtype), (W, None, inverse, s)


def topo_acyclicity_logdet_abs_backward(residuals, g_h):
    W, N, inverse, s = residuals
    g = W.dtype.type(g_h)
    if N is not None:
        return (_scaled_transpose_product(np.sign(W), _m_matrix_inverse(N), g / s),)
    return (_scaled_transpose_product(np.sign(W), np.ascontiguousarray(inverse), g),)


IMPLS = {
    "notears_acyclicity_exp": Impl(notears_acyclicity_exp_forward, notears_acyclicity_exp_backward),
    "poly_acyclicity": Impl(poly_acyclicity_forward, poly_acyclicity_backward),
    "dagma_acyclicity_logdet": Impl(dagma_acyclicity_logdet_forward, dagma_acyclicity_logdet_backward),
    "topo_acyclicity_logdet_abs": Impl(
        topo_acyclicity_logdet_abs_forward, topo_acyclicity_logdet_abs_backward
    ),
}
