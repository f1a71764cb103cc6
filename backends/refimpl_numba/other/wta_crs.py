"""WTA-CRS matrix product: gathered columns and rows, one small BLAS product.

Mirrors ``refimpl/other/wta_crs.py``. The reference forms ``X diag(α) Z`` with the dense α
(n,); here only the k' ≤ |C| + s terms with α_i ≠ 0 are touched (an index drawn twice is
one term with the summed weight):

* forward: a Numba gather ``X_S = X[:, S]·α_S`` (M, k'), then ``Ŷ = X_S Z[S, :]`` by BLAS;
* backward: ``X̄[:, S] = (Ȳ Z[S, :]ᵀ)·α_S`` and ``Z̄[S, :] = α_S·(X[:, S]ᵀ Ȳ)`` (BLAS
  products of k' columns), scattered by Numba kernels into zero-filled arrays.

The gathers and scatters are memory-bound single passes and run on one thread: on two
shared cores a parallel region measured 4–6 times slower than the serial loop (waiting for
descheduled threads); the BLAS products are threaded.

α is computed as in the reference (float64, then rounded to the dtype): 1 on the |C|
largest p (ties: lowest index), ``(1 − P_C)/(s·p_i)`` summed over the draws of i.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.authoring import Impl
from refimpl.other.wta_crs import term_weights


@njit(cache=True)
def _gather_scaled(x, support, weights, out):
    for m in range(x.shape[0]):
        for t in range(support.shape[0]):
            out[m, t] = x[m, support[t]] * weights[t]


@njit(cache=True)
def _scatter_columns(values, support, weights, out):
    for m in range(values.shape[0]):
        for t in range(support.shape[0]):
            out[m, support[t]] = values[m, t] * weights[t]


@njit(cache=True)
def _scatter_rows(values, support, weights, out):
    for t in range(support.shape[0]):
        row = support[t]
        for j in range(values.shape[1]):
            out[row, j] = values[t, j] * weights[t]


def wta_crs_matmul_forward(
    x, z, p, sampled, *, num_deterministic, official_longtail=False, official_first_iteration=False
):
    dtype = x.dtype
    alpha = term_weights(p, sampled, num_deterministic, official_longtail, official_first_iteration)
    support = np.flatnonzero(alpha)  # the terms with a nonzero weight, ascending
    weights64 = alpha[support]
    weights = weights64.astype(dtype)
    x_c = np.ascontiguousarray(x)
    z_s = np.ascontiguousarray(z[support])
    x_s = np.empty((x.shape[0], support.shape[0]), dtype=dtype)
    _gather_scaled(x_c, support, weights, x_s)
    y = x_s @ z_s if support.shape[0] else np.zeros((x.shape[0], z.shape[1]), dtype=dtype)
    return y, (x_c, z_s, support, weights, z.shape)


def wta_crs_matmul_backward(residuals, g_y):
    x, z_s, support, weights, z_shape = residuals
    dtype = x.dtype
    g_x = np.zeros(x.shape, dtype=dtype)
    g_z = np.zeros(z_shape, dtype=dtype)
    if support.shape[0]:
        g_y = np.ascontiguousarray(g_y, dtype=dtype)
        _scatter_columns(np.ascontiguousarray(g_y @ z_s.T), support, weights, g_x)  # X̄ = Ȳ Zᵀ diag(α)
        x_s = np.take(x, support, axis=1)
        _scatter_rows(np.ascontiguousarray(x_s.T @ g_y), support, weights, g_z)  # Z̄ = diag(α) Xᵀ Ȳ
    return g_x, g_z


IMPLS = {"wta_crs_matmul": Impl(wta_crs_matmul_forward, wta_crs_matmul_backward)}
