"""Layer normalization on CuPy: fused normalize/affine and gradient kernels.

Mirrors ``refimpl/layers/layer_norm.py``: two-pass statistics (mean, then mean of the
squared deviations) as reductions, then one fused kernel each for ``y = γ x̂ + β`` and for
``x̄ = rstd·(ĝ − mean ĝ − x̂·mean(ĝ x̂))``. Residuals are ``mean`` and ``rstd`` per row; the
backward recomputes x̂ instead of storing it.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl, row_norm

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def normalize_affine(x, mean, rstd, gamma, beta):
        return gamma * ((x - mean) * rstd) + beta

    @fuse
    def row_mean_squared_deviation(x, mean):
        return xp.sum((x - mean) * (x - mean), axis=-1)

    @fuse
    def rstd_of(sum_sq, d, eps):
        return 1 / xp.sqrt(sum_sq / d + eps)

    @fuse
    def x_hat_and_g(x, mean, rstd, gamma, g_y):
        return (x - mean) * rstd, g_y * gamma

    @fuse
    def input_grad(g_x_hat, x_hat, rstd, mean_g, mean_g_x_hat):
        return rstd * (g_x_hat - mean_g - x_hat * mean_g_x_hat)

    return SimpleNamespace(
        normalize_affine=normalize_affine,
        row_mean_squared_deviation=row_mean_squared_deviation,
        rstd_of=rstd_of,
        x_hat_and_g=x_hat_and_g,
        input_grad=input_grad,
    )


kernels_for = kernel_set(_kernels)


def layer_norm_forward(x, gamma, beta, *, eps=1e-5):
    k = kernels_for(x)
    d = x.shape[-1]
    mean = x.sum(axis=-1, keepdims=True) / d
    sum_sq = k.row_mean_squared_deviation(x, mean)[..., None]
    rstd = k.rstd_of(sum_sq, d, eps)
    xp = xp_of(x)
    overflow = ~xp.isfinite(sum_sq)  # the squares overflowed: σ = ‖x − μ‖/√D scaled (as the reference)
    if bool(overflow.any()):
        rstd = xp.where(overflow, math.sqrt(d) / row_norm(x - mean), rstd).astype(x.dtype)
    y = k.normalize_affine(x, mean, rstd, gamma, beta)
    return y, (x, mean, rstd, gamma)


def layer_norm_backward(residuals, g_y):
    x, mean, rstd, gamma = residuals
    k = kernels_for(x)
    x_hat, g_x_hat = k.x_hat_and_g(x, mean, rstd, gamma, g_y)
    mean_g = g_x_hat.mean(axis=-1, keepdims=True)
    mean_g_x_hat = (g_x_hat * x_hat).mean(axis=-1, keepdims=True)
    g_x = k.input_grad(g_x_hat, x_hat, rstd, mean_g, mean_g_x_hat)
    d = x.shape[-1]
    rows_g = g_y.reshape(-1, d)
    g_gamma = (rows_g * x_hat.reshape(-1, d)).sum(axis=0)
    g_beta = rows_g.sum(axis=0)
    return g_x, g_gamma, g_beta


IMPLS = {"layer_norm": Impl(layer_norm_forward, layer_norm_backward)}
