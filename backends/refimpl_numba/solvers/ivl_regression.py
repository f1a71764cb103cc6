"""IVL regression in Numba: LAPACK/BLAS through NumPy for the factorizations and products, one
parallel pass building the stacked least-squares system.

Mirrors ``refimpl/solvers/ivl_regression.py``: Q from the QR of G, the design
``[QᵀX; √α X]`` and target ``[Qᵀy; √α y]`` (the scaled half written by a row-parallel kernel into
the preallocated stack), β̂ by least squares; backward ``ᾱ = −⟨R⁻ᵀβ̄, R⁻ᵀXᵀ(Xβ̂ − y)⟩`` with R
from the QR of the design. The work is two QR factorizations and a few products: the kernel only
saves the copies NumPy's concatenate would make.
"""

from __future__ import annotations

import numpy as np
from numba import prange
from scipy.linalg import solve_triangular

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _stack_rows(q_t_x, q_t_y, x, y, root, design, target):
    m = q_t_x.shape[0]
    for i in prange(m + x.shape[0]):
        if i < m:
            for j in range(x.shape[1]):
                design[i, j] = q_t_x[i, j]
            target[i] = q_t_y[i]
        else:
            for j in range(x.shape[1]):
                design[i, j] = root * x[i - m, j]
            target[i] = root * y[i - m]


def ivl_regression_forward(X, y, G, alpha):  # noqa: N803
    x, g = np.ascontiguousarray(X), np.ascontiguousarray(G)
    q, _ = np.linalg.qr(g)
    m, (n, p) = q.shape[1], x.shape
    design = np.empty((m + n, p), dtype=x.dtype)
    target = np.empty(m + n, dtype=x.dtype)
    _stack_rows(
        np.dot(q.T, x), np.dot(q.T, y), x, np.ascontiguousarray(y), np.sqrt(float(alpha)), design, target
    )
    beta = np.linalg.lstsq(design, target, rcond=None)[0].astype(X.dtype, copy=False)
    return beta, (x, y, design, beta)


def ivl_regression_backward(residuals, g_beta):
    x, y, design, beta = residuals
    r_factor = np.linalg.qr(design, mode="r")
    whitened_g = solve_triangular(r_factor, g_beta, trans="T")  # R⁻ᵀβ̄
    whitened_gradient = solve_triangular(r_factor, np.dot(x.T, np.dot(x, beta) - y), trans="T")
    g_alpha = -np.dot(whitened_g, whitened_gradient)
    return (np.asarray(g_alpha, dtype=x.dtype),)


IMPLS = {"ivl_regression": Impl(ivl_regression_forward, ivl_regression_backward)}
