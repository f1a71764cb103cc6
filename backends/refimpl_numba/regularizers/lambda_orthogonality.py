"""λ-orthogonality regularization: NumPy's BLAS for the two products, Numba kernels for the rest.

Mirrors ``refimpl/regularizers/lambda_orthogonality.py``: ``W Wᵀ`` and the backward's
``E W`` by NumPy's BLAS (``np.dot``); one row-parallel kernel subtracts the identity in place
and sums each row's squares in float64 (``x = ‖E‖_F``), another scales ``E W`` by
``2ḡ(s + ασ'x)/x``. The sigmoid and its slope are evaluated once, as scalars, from
``e = exp(−|α(x − λ)|)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _subtract_identity_rows(E, row_squares):
    for i in prange(E.shape[0]):
        E[i, i] = np.float64(E[i, i]) - 1.0
        total = 0.0
        for j in range(E.shape[1]):
            value = np.float64(E[i, j])
            total += value * value
        row_squares[i] = total


@parallel_kernel(fastmath={"reassoc"})
def _scale_rows(A, factor, out):
    for i in prange(A.shape[0]):
        for j in range(A.shape[1]):
            out[i, j] = np.float64(A[i, j]) * factor


def lambda_orthogonality_penalty_forward(W, *, alpha, lam=12.0):
    W = np.ascontiguousarray(W)
    E = np.dot(W, W.T)
    row_squares = np.empty(E.shape[0], dtype=np.float64)
    _subtract_identity_rows(E, row_squares)
    x = math.sqrt(row_squares.sum())
    u = alpha * (x - lam)
    e = math.exp(-abs(u))  # the sigmoid from exp(−|u|): no overflow for either sign
    switch = 1.0 / (1.0 + e) if u >= 0 else e / (1.0 + e)
    slope = e / ((1.0 + e) * (1.0 + e))
    return np.asarray(switch * x, dtype=W.dtype), (W, E, x, switch, slope, alpha)


def lambda_orthogonality_penalty_backward(residuals, g_penalty):
    W, E, x, switch, slope, alpha = residuals
    g_W = np.empty_like(W)
    if x == 0:  # exactly orthonormal rows: subgradient 0
        g_W[...] = 0
        return (g_W,)
    factor = 2.0 * float(g_penalty) * (switch + alpha * slope * x) / x
    _scale_rows(np.dot(E, W), factor, g_W)
    return (g_W,)


IMPLS = {
    "lambda_orthogonality_penalty": Impl(
        lambda_orthogonality_penalty_forward, lambda_orthogonality_penalty_backward
    )
}
