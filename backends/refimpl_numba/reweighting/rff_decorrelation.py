"""L2R-GNN's weighted RFF decorrelation loss: Numba kernels around NumPy's BLAS.

Mirrors ``refimpl/reweighting/rff_decorrelation.py``. The features ``√2·cos(ωz + φ)`` (angles
in float64) and the masked reductions are row-parallel kernels; the products (``Ā = wᵀU/n``,
``C = (w ⊙ V)ᵀV/n``, ``V G``, ``G Ā``) go through ``np.dot``. The loss ``Σ M ⊙ C²`` is
accumulated in float64; the backward rebuilds ``G = 2 M ⊙ C`` from the saved C and the
cluster labels.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

SQRT2 = math.sqrt(2.0)


@parallel_kernel(fastmath={"reassoc"})
def _features_rows(Z, omega, phi, features):  # noqa: N803
    d, q = omega.shape
    for i in prange(Z.shape[0]):
        for a in range(d):
            z = np.float64(Z[i, a])
            for r in range(q):
                features[i, a * q + r] = SQRT2 * math.cos(np.float64(omega[a, r]) * z + np.float64(phi[a, r]))


@parallel_kernel(fastmath={"reassoc"})
def _masked_square_rows(covariance, labels, per_row):
    size = covariance.shape[0]
    for i in prange(size):
        total = 0.0
        for j in range(size):
            if labels[i] != labels[j]:
                c = np.float64(covariance[i, j])
                total += c * c
        per_row[i] = total


@parallel_kernel(fastmath={"reassoc"})
def _masked_gradient_rows(covariance, labels, g_covariance):
    size = covariance.shape[0]
    for i in prange(size):
        for j in range(size):
            g_covariance[i, j] = 2.0 * covariance[i, j] if labels[i] != labels[j] else 0.0


@parallel_kernel(fastmath={"reassoc"})
def _quadratic_rows(centered, product, cross, n, coefficient, weight, g_w):
    for k in prange(centered.shape[0]):
        total = 0.0
        for j in range(centered.shape[1]):
            total += np.float64(product[k, j]) * np.float64(centered[k, j])
        g_w[k] = weight * (total / n - coefficient * np.float64(cross[k]))


def weighted_rff_decorrelation_loss_forward(Z, w, clusters, omega, phi):  # noqa: N803
    dtype = Z.dtype
    n = Z.shape[0]
    features = np.empty((n, omega.size), dtype=dtype)
    _features_rows(np.ascontiguousarray(Z), np.ascontiguousarray(omega), np.ascontiguousarray(phi), features)
    mean = np.dot(w, features) / dtype.type(n)  # Ā_w
    centered = features - mean  # V
    covariance = np.dot((w[:, None] * centered).T, centered) / dtype.type(n)  # C
    labels = np.repeat(np.asarray(clusters, dtype=np.int64), omega.shape[1])
    per_row = np.empty(covariance.shape[0], dtype=np.float64)
    _masked_square_rows(covariance, labels, per_row)
    residuals = (features, centered, mean, covariance, labels, float(w.sum(dtype=np.float64)), n)
    return np.asarray(per_row.sum(), dtype=dtype), residuals


def weighted_rff_decorrelation_loss_backward(residuals, g_loss):
    features, centered, mean, covariance, labels, weight_sum, n = residuals
    g_covariance = np.empty_like(covariance)
    _masked_gradient_rows(covariance, labels, g_covariance)  # G = 2 M ⊙ C
    product = np.dot(centered, g_covariance)  # V G
    cross = np.dot(features, np.dot(g_covariance, mean))  # U G Ā
    g_w = np.empty(n, dtype=features.dtype)
    coefficient = 2.0 * (n - weight_sum) / (n * n)
    _quadratic_rows(centered, product, cross, float(n), coefficient, float(np.asarray(g_loss)), g_w)
    return (g_w,)


IMPLS = {
    "weighted_rff_decorrelation_loss": Impl(
        weighted_rff_decorrelation_loss_forward, weighted_rff_decorrelation_loss_backward
    )
}
