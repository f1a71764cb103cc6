"""SSO's target-space surrogate: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/optim/sso.py``. The forward reads z, z_t and ∇ℓ(z_t) once and keeps
two float64 sums per row (the linear term and the squared distance, or the code form's
one mean term); the rows' sums are added after the kernel. The backward is one fused
elementwise pass, ``z̄ = ḡ(∇ℓ + (z − z_t)/η)`` (paper) or ``ḡ/(nk)·(∇ℓ/η_c + 2(z − z_t))``
(code).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _sso_paper_rows(z, z_t, grad_t, linear, squares):
    k = z.shape[1]
    for i in prange(z.shape[0]):
        row_linear = 0.0
        row_squares = 0.0
        for j in range(k):
            d = np.float64(z[i, j]) - np.float64(z_t[i, j])
            row_linear += np.float64(grad_t[i, j]) * d
            row_squares += d * d
        linear[i] = row_linear
        squares[i] = row_squares


@parallel_kernel(fastmath={"reassoc"})
def _sso_code_rows(z, z_t, grad_t, inverse_eta, terms):
    k = z.shape[1]
    for i in prange(z.shape[0]):
        row_total = 0.0
        for j in range(k):
            z_ij = np.float64(z[i, j])
            d = z_ij - np.float64(z_t[i, j])
            row_total += np.float64(grad_t[i, j]) * z_ij * inverse_eta + d * d
        terms[i] = row_total


@parallel_kernel()
def _sso_backward_rows(z, z_t, grad_t, grad_scale, distance_scale, g_z):
    # z̄ = grad_scale·∇ℓ + distance_scale·(z − z_t)
    k = z.shape[1]
    for i in prange(z.shape[0]):
        for j in range(k):
            d = np.float64(z[i, j]) - np.float64(z_t[i, j])
            g_z[i, j] = grad_scale * np.float64(grad_t[i, j]) + distance_scale * d


def sso_surrogate_forward(z, z_t, grad_t, *, eta, loss_t=None, form="paper"):
    arrays = tuple(np.ascontiguousarray(a) for a in (z, z_t, grad_t))
    rows = z.shape[0]
    if form == "paper":
        linear, squares = np.empty(rows), np.empty(rows)
        _sso_paper_rows(*arrays, linear, squares)
        value = linear.sum() + squares.sum() / (2.0 * eta)
        if loss_t is not None:
            value += float(loss_t)
    else:
        terms = np.empty(rows)
        _sso_code_rows(*arrays, 1.0 / float(eta), terms)
        value = terms.sum() / z.size
    return z.dtype.type(value), (arrays, eta, form)


def sso_surrogate_backward(residuals, g_surrogate):
    (z, z_t, grad_t), eta, form = residuals
    g = float(np.asarray(g_surrogate, dtype=np.float64))
    if form == "paper":
        grad_scale, distance_scale = g, g / eta
    else:
        mean_scale = g / z.size
        grad_scale, distance_scale = mean_scale / eta, 2.0 * mean_scale
    g_z = np.empty(z.shape, dtype=z.dtype)
    _sso_backward_rows(z, z_t, grad_t, grad_scale, distance_scale, g_z)
    return (g_z,)


IMPLS = {"sso_surrogate": Impl(sso_surrogate_forward, sso_surrogate_backward)}
