"""L2R-GNN's weighted RFF decorrelation loss on CuPy: fused elementwise kernels + matmuls.

Mirrors ``refimpl/reweighting/rff_decorrelation.py``: one fused kernel for the features
``√2·cos(ωz + φ)``, matrix products for ``Ā``, ``C = (w ⊙ V)ᵀV/n``, ``V G`` and ``G Ā``, and a
fused masked square for ``L = Σ M ⊙ C²`` and ``G = 2 M ⊙ C``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def features(z, omega, phi, sqrt2):
        return sqrt2 * xp.cos(z * omega + phi)

    @fuse
    def masked(covariance, between):
        return xp.where(between, covariance, 0)

    return SimpleNamespace(features=features, masked=masked)


kernels_for = kernel_set(_kernels)


def weighted_rff_decorrelation_loss_forward(Z, w, clusters, omega, phi):  # noqa: N803
    xp = xp_of(Z)
    k = kernels_for(Z)
    dtype = Z.dtype.type
    n = Z.shape[0]
    features = k.features(Z[:, :, None], omega[None], phi[None], dtype(math.sqrt(2.0))).reshape(n, -1)
    mean = (w @ features) / dtype(n)
    centered = features - mean
    covariance = ((w[:, None] * centered).T @ centered) / dtype(n)
    labels = xp.repeat(clusters, omega.shape[1])
    masked = k.masked(covariance, labels[:, None] != labels[None, :])
    loss = (masked * covariance).sum()
    return loss.astype(Z.dtype), (features, centered, mean, masked, w.sum(), n)


def weighted_rff_decorrelation_loss_backward(residuals, g_loss):
    features, centered, mean, masked, weight_sum, n = residuals
    dtype = features.dtype.type
    g_covariance = dtype(2) * masked
    quadratic = ((centered @ g_covariance) * centered).sum(axis=1) / dtype(n)
    cross = features @ (g_covariance @ mean)
    g_w = quadratic - (dtype(2) * (dtype(n) - weight_sum) / dtype(n * n)) * cross
    return ((g_loss.astype(features.dtype) * g_w).astype(features.dtype),)


IMPLS = {
    "weighted_rff_decorrelation_loss": Impl(
        weighted_rff_decorrelation_loss_forward, weighted_rff_decorrelation_loss_backward
    )
}
