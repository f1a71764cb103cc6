"""The Z-loss: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/z_loss.py``. Two passes per row (mean, then the centered
variance: no ``E[o²] − μ²`` cancellation) give ``σ`` and the target's z-score; the backward
is ``ō_k = −(w s/σ)(δ_kc − 1/D − z_c z_k/D)`` with ``z_k`` recomputed from the saved μ, σ.
Row scalars are float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _z_loss_rows(o, c, a, b, eps, per_row, mean, sigma, slope):
    d = o.shape[1]
    for i in prange(o.shape[0]):
        total = 0.0
        for k in range(d):
            total += o[i, k]
        mu = total / d
        squares = 0.0
        for k in range(d):
            centered = o[i, k] - mu
            squares += centered * centered
        sd = math.sqrt(squares / d + eps)
        z_c = (o[i, c[i]] - mu) / sd
        x = a * (b - z_c)
        per_row[i] = (max(x, 0.0) + math.log1p(math.exp(-abs(x)))) / a  # stable softplus
        e = math.exp(-abs(x))
        slope[i] = 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)  # σ(x) without overflow
        mean[i] = mu
        sigma[i] = sd


@parallel_kernel(fastmath={"reassoc"})
def _z_loss_backward_rows(o, c, mean, sigma, slope, weight, g_o):
    d = o.shape[1]
    for i in prange(o.shape[0]):
        mu, sd = mean[i], sigma[i]
        inverse_sd = 1.0 / sd
        z_c = (o[i, c[i]] - mu) * inverse_sd
        factor = -weight[i] * slope[i] * inverse_sd  # ō_k = factor (δ_kc − (1 + z_c z_k)/D)
        per_class = -factor / d
        for k in range(d):
            z_k = (o[i, k] - mu) * inverse_sd
            g_o[i, k] = per_class * (1.0 + z_c * z_k)
        g_o[i, c[i]] += factor


def z_loss_forward(o, c, *, a, b, eps=0.0, reduction="mean"):
    work = np.ascontiguousarray(o)
    labels = np.ascontiguousarray(c, dtype=np.int64)
    batch = work.shape[0]
    per_row, mean, sigma, slope = (np.empty(batch, dtype=np.float64) for _ in range(4))
    _z_loss_rows(work, labels, float(a), float(b), float(eps), per_row, mean, sigma, slope)
    loss = reduce_rows(per_row, reduction, o.dtype)
    return loss, (work, labels, mean, sigma, slope, reduction)


def z_loss_backward(residuals, g_loss):
    work, labels, mean, sigma, slope, reduction = residuals
    batch = work.shape[0]
    weight = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, batch)
    g_o = np.empty(work.shape, dtype=work.dtype)
    _z_loss_backward_rows(work, labels, mean, sigma, slope, weight, g_o)
    return (g_o,)


IMPLS = {"z_loss": Impl(z_loss_forward, z_loss_backward)}
