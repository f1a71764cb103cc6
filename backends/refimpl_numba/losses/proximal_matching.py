"""Proximal matching loss: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/proximal_matching.py``: per row the squared distance ``u`` in
float64 (divided by D with ``normalize_by_dim``), ``ℓ = −expm1(−u/γ²)`` and the row's slope
``exp(−u/γ²)·2/(nγ²)``; the backward is one scaling pass ``f̄ = w·slope·(f − x)``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel
from .._vmath import exp, expm1


@parallel_kernel(fastmath={"reassoc"})
def _proximal_matching_rows(f, x, inverse_gamma2, inverse_scale, per_row, slope):
    for i in prange(f.shape[0]):
        squares = 0.0
        for d in range(f.shape[1]):
            difference = np.float64(f[i, d]) - np.float64(x[i, d])
            squares += difference * difference
        q = squares * inverse_scale * inverse_gamma2  # u/γ²
        per_row[i] = -expm1(-q)
        slope[i] = exp(-q) * inverse_gamma2 * 2.0 * inverse_scale


@parallel_kernel(fastmath={"reassoc"})
def _proximal_matching_backward_rows(f, x, factor, g_f):
    for i in prange(f.shape[0]):
        row_factor = factor[i]
        for d in range(f.shape[1]):
            g_f[i, d] = row_factor * (np.float64(f[i, d]) - np.float64(x[i, d]))


def proximal_matching_loss_forward(f, x, *, gamma, normalize_by_dim=False, reduction="mean"):
    f_rows, x_rows = np.ascontiguousarray(f), np.ascontiguousarray(x)
    batch = f.shape[0]
    inverse_scale = 1.0 / f.shape[1] if normalize_by_dim else 1.0
    per_row, slope = np.empty(batch, dtype=np.float64), np.empty(batch, dtype=np.float64)
    _proximal_matching_rows(
        f_rows, x_rows, 1.0 / (float(gamma) * float(gamma)), inverse_scale, per_row, slope
    )
    return reduce_rows(per_row, reduction, f.dtype), (f_rows, x_rows, slope, reduction)


def proximal_matching_loss_backward(residuals, g_loss):
    f, x, slope, reduction = residuals
    weight = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, f.shape[0])
    g_f = np.empty(f.shape, dtype=f.dtype)
    _proximal_matching_backward_rows(f, x, weight * slope, g_f)
    return (g_f,)


IMPLS = {"proximal_matching_loss": Impl(proximal_matching_loss_forward, proximal_matching_loss_backward)}
