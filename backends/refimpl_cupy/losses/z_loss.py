"""The Z-loss on CuPy: fused elementwise kernels + row reductions.

Mirrors ``refimpl/losses/z_loss.py``: a two-pass standard deviation (mean, then the centered
squares), the target's z-score, a stable softplus; the backward is one fused kernel,
``ō_k = −(w s/σ)(δ_kc − 1/D − z_c z_k/D)``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl, reduce_rows, row_norm, row_weights

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def squared(o, mu):
        centered = o - mu
        return centered * centered

    @fuse
    def softplus_and_sigmoid(x, inverse_a):
        e = xp.exp(-abs(x))
        return (xp.maximum(x, 0) + xp.log1p(e)) * inverse_a, xp.where(x >= 0, 1 / (1 + e), e / (1 + e))

    @fuse
    def z_loss_grad(o, mu, inverse_sigma, z_c, is_label, factor, inverse_d):
        z = (o - mu) * inverse_sigma
        return factor * (is_label - (1 + z_c * z) * inverse_d)

    return SimpleNamespace(
        squared=squared, softplus_and_sigmoid=softplus_and_sigmoid, z_loss_grad=z_loss_grad
    )


kernels_for = kernel_set(_kernels)


def z_loss_forward(o, c, *, a, b, eps=0.0, reduction="mean"):
    xp = xp_of(o)
    k = kernels_for(o)
    dtype = o.dtype.type
    labels = c.astype(xp.int64)[:, None]
    mu = o.mean(axis=-1, keepdims=True)
    variance = k.squared(o, mu).mean(axis=-1, keepdims=True)
    sigma = xp.sqrt(variance + dtype(eps))
    redo = ~xp.isfinite(variance) | ((variance < xp.finfo(o.dtype).tiny) & (eps == 0))
    if bool(redo.any()):  # as the reference: σ from the norm computed scaled
        d = o.shape[-1]
        sigma = xp.where(redo, row_norm(o - mu, d * eps) / math.sqrt(d), sigma).astype(o.dtype)
    z_c = ((xp.take_along_axis(o, labels, axis=1) - mu) / sigma)[:, 0]
    per_row, slope = k.softplus_and_sigmoid(dtype(a) * (dtype(b) - z_c), dtype(1 / a))
    return reduce_rows(per_row, reduction, o.dtype), (o, labels, mu, sigma, z_c, slope, reduction)


def z_loss_backward(residuals, g_loss):
    o, labels, mu, sigma, z_c, slope, reduction = residuals
    xp = xp_of(o)
    k = kernels_for(o)
    batch, num_outputs = o.shape
    g = g_loss.astype(o.dtype)
    factor = (-row_weights(g, reduction, batch) * slope)[:, None] / sigma
    is_label = (xp.arange(num_outputs)[None, :] == labels).astype(o.dtype)
    g_o = k.z_loss_grad(o, mu, 1 / sigma, z_c[:, None], is_label, factor, o.dtype.type(1 / num_outputs))
    return (g_o.astype(o.dtype),)


IMPLS = {"z_loss": Impl(z_loss_forward, z_loss_backward)}
