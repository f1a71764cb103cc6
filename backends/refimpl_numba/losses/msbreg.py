"""MSBReg's multiview centroid and Brownian diffusive losses: fused Numba row kernels.

Mirrors ``refimpl/losses/msbreg.py``. The V·B embeddings are rows of D entries, processed in
parallel; each row's norm is a float64 sum of squares, taken again scaled by the largest
entry where that sum leaves the float64 range (float64 inputs beyond ~1e154 or below
~1e-154), as ``row_norm`` does. The forward keeps only the norms (and the cosines of the
Brownian loss); the backward recomputes ``ẑ = z/‖z‖`` and applies ``(I − ẑẑᵀ)/‖z‖``. The
centroids are scaled on the fly by their saved inverse norms (no normalized copy of ``c``);
the direction ``û`` is normalized once, in float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel

_TINY = np.finfo(np.float64).tiny
_HUGE = np.finfo(np.float64).max


@njit(cache=True, nogil=True)
def _row_norm(x, i):
    """``‖x[i]‖`` in float64: the plain sum of squares, or ``s·‖x[i]/s‖`` (s the largest |entry|)
    where that sum over- or underflows."""
    total = 0.0
    for d in range(x.shape[1]):
        value = np.float64(x[i, d])
        total += value * value
    if _TINY <= total <= _HUGE:
        return math.sqrt(total)
    largest = 0.0
    for d in range(x.shape[1]):
        largest = max(largest, abs(np.float64(x[i, d])))
    total = 0.0
    for d in range(x.shape[1]):
        value = np.float64(x[i, d]) / largest
        total += value * value
    return largest * math.sqrt(total)


@parallel_kernel(fastmath={"reassoc"})
def _inverse_norms(x, inverse_norm):
    for i in prange(x.shape[0]):
        inverse_norm[i] = 1.0 / _row_norm(x, i)


@parallel_kernel(fastmath={"reassoc"})
def _centroid_rows(z, c, c_scale, per_row, norm):
    """Row r = (v, b): ``‖z_r‖`` and ``ℓ_r = ‖z_r/‖z_r‖ − ĉ_b‖²`` (``ĉ_b = c_b·c_scale_b``)."""
    images = c.shape[0]
    for r in prange(z.shape[0]):
        b = r % images
        n = _row_norm(z, r)
        inverse_n, inverse_c = 1.0 / n, c_scale[b]
        total = 0.0
        for d in range(z.shape[1]):
            difference = np.float64(z[r, d]) * inverse_n - np.float64(c[b, d]) * inverse_c
            total += difference * difference
        norm[r] = n
        per_row[r] = total


@parallel_kernel(fastmath={"reassoc"})
def _centroid_backward_rows(z, c, c_scale, norm, weight, g_z):
    """``z̄_r = (2w_r/‖z_r‖)(δ − ẑ⟨ẑ, δ⟩)`` with ``δ = ẑ − ĉ_b``."""
    images = c.shape[0]
    for r in prange(z.shape[0]):
        b = r % images
        inverse_n, inverse_c = 1.0 / norm[r], c_scale[b]
        dot = 0.0
        for d in range(z.shape[1]):
            z_hat = np.float64(z[r, d]) * inverse_n
            dot += z_hat * (z_hat - np.float64(c[b, d]) * inverse_c)
        scale = 2.0 * weight[r] * inverse_n
        for d in range(z.shape[1]):
            z_hat = np.float64(z[r, d]) * inverse_n
            g_z[r, d] = scale * ((z_hat - np.float64(c[b, d]) * inverse_c) - z_hat * dot)


@parallel_kernel(fastmath={"reassoc"})
def _brownian_rows(z, u_hat, cosine, norm):
    """Row r: ``‖z_r‖`` and ``cos(z_r, u) = ⟨z_r, û⟩/‖z_r‖``."""
    for r in prange(z.shape[0]):
        n = _row_norm(z, r)
        total = 0.0
        for d in range(z.shape[1]):
            total += np.float64(z[r, d]) * u_hat[d]
        norm[r] = n
        cosine[r] = total / n


@parallel_kernel(fastmath={"reassoc"})
def _brownian_backward_rows(z, u_hat, cosine, norm, weight, g_z):
    """``z̄_r = (w_r/‖z_r‖)(û − ẑ_r cos_r)``."""
    for r in prange(z.shape[0]):
        inverse_n = 1.0 / norm[r]
        scale = weight[r] * inverse_n
        for d in range(z.shape[1]):
            g_z[r, d] = scale * (u_hat[d] - np.float64(z[r, d]) * inverse_n * cosine[r])


def _inverse_row_norms(x):
    """``1/‖x_i‖`` per row of a 2-D array, in float64 (the rows are scaled on the fly: no
    normalized copy of x is allocated)."""
    inverse_norm = np.empty(x.shape[0], dtype=np.float64)
    _inverse_norms(x, inverse_norm)
    return inverse_norm


def multiview_centroid_loss_forward(z, c, *, reduction="mean"):
    views, images, dims = z.shape
    rows = np.ascontiguousarray(z).reshape(views * images, dims)
    centroids = np.ascontiguousarray(c)
    c_scale = _inverse_row_norms(centroids)
    per_row, norm = np.empty(views * images), np.empty(views * images)
    _centroid_rows(rows, centroids, c_scale, per_row, norm)
    loss = reduce_rows(per_row.reshape(views, images), reduction, z.dtype)
    return loss, (rows, centroids, c_scale, norm, z.shape, reduction)


def multiview_centroid_loss_backward(residuals, g_loss):
    rows, centroids, c_scale, norm, shape, reduction = residuals
    weight = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, rows.shape[0])
    g_z = np.empty(rows.shape, dtype=rows.dtype)
    _centroid_backward_rows(rows, centroids, c_scale, norm, weight, g_z)
    return (g_z.reshape(shape),)


def brownian_diffusive_loss_forward(z, u, *, reduction="mean"):
    views, images, dims = z.shape
    rows = np.ascontiguousarray(z).reshape(views * images, dims)
    direction = np.ascontiguousarray(u).reshape(1, dims)
    u_hat = direction[0].astype(np.float64) * _inverse_row_norms(direction)[0]
    cosine, norm = np.empty(views * images), np.empty(views * images)
    _brownian_rows(rows, u_hat, cosine, norm)
    loss = reduce_rows(cosine.reshape(views, images), reduction, z.dtype)
    return loss, (rows, u_hat, cosine, norm, z.shape, reduction)


def brownian_diffusive_loss_backward(residuals, g_loss):
    rows, u_hat, cosine, norm, shape, reduction = residuals
    weight = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, rows.shape[0])
    g_z = np.empty(rows.shape, dtype=rows.dtype)
    _brownian_backward_rows(rows, u_hat, cosine, norm, weight, g_z)
    return (g_z.reshape(shape),)


IMPLS = {
    "multiview_centroid_loss": Impl(multiview_centroid_loss_forward, multiview_centroid_loss_backward),
    "brownian_diffusive_loss": Impl(brownian_diffusive_loss_forward, brownian_diffusive_loss_backward),
}
