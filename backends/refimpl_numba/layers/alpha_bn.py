"""α-BN (test-time batch statistics calibration): Numba kernels, parallel over channels.

Mirrors ``refimpl/layers/alpha_bn.py``. ``x`` is viewed as (N, C, H·W); each channel's
batch statistics (mean, then the two-pass variance) and the backward's two channel sums
accumulate in float64 over the N·H·W values, then the affine map (forward) or the input
gradient (backward) is written in one more pass. The residuals are the per-channel
``μ_b``, ``μ̂`` and ``r`` (float64); the backward recomputes x̂ from x.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.layers.alpha_bn import batch_weight

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _forward_channels(
    x, mean_source, var_source, gamma, beta, w_s, w_b, kappa, eps, y, mean_batch, mean_hat, rstd
):
    n, c_count, m = x.shape
    count = n * m
    for c in prange(c_count):
        total = 0.0
        for i in range(n):
            for j in range(m):
                total += x[i, c, j]
        mu = total / count
        sq = 0.0
        for i in range(n):
            for j in range(m):
                centered = x[i, c, j] - mu
                sq += centered * centered
        var_b = kappa * sq / count
        mu_hat = w_s * np.float64(mean_source[c]) + w_b * mu
        var_hat = w_s * np.float64(var_source[c]) + w_b * var_b
        r = 1.0 / np.sqrt(var_hat + eps)
        for i in range(n):
            for j in range(m):
                x_hat = x.dtype.type((x[i, c, j] - mu_hat) * r)
                y[i, c, j] = gamma[c] * x_hat + beta[c]
        mean_batch[c] = mu
        mean_hat[c] = mu_hat
        rstd[c] = r


@parallel_kernel(fastmath={"reassoc"})
def _backward_channels(x, mean_batch, mean_hat, rstd, gamma, g_y, stat_weight, kappa, g_x, g_gamma, g_beta):
    n, c_count, m = x.shape
    count = n * m
    for c in prange(c_count):
        r = rstd[c]
        mu_hat = mean_hat[c]
        mu = mean_batch[c]
        gam = np.float64(gamma[c])
        sum_g = 0.0
        sum_g_x_hat = 0.0
        for i in range(n):
            for j in range(m):
                x_hat = (x[i, c, j] - mu_hat) * r
                g = np.float64(g_y[i, c, j])
                sum_g += g
                sum_g_x_hat += g * x_hat
        g_gamma[c] = sum_g_x_hat
        g_beta[c] = sum_g
        mean_g = gam * sum_g / count  # mean of ĝ = γ G
        mean_g_x_hat = gam * sum_g_x_hat / count
        for i in range(n):
            for j in range(m):
                g_x[i, c, j] = r * (
                    gam * g_y[i, c, j]
                    - stat_weight * mean_g
                    - stat_weight * kappa * r * (x[i, c, j] - mu) * mean_g_x_hat
                )


def alpha_batch_norm_forward(
    x,
    mean_source,
    var_source,
    gamma,
    beta,
    *,
    alpha,
    alpha_weights,
    eps=1e-5,
    unbiased=False,
    detach_stats=False,
):
    n, c, h, w = x.shape
    x3 = np.ascontiguousarray(x).reshape(n, c, h * w)
    count = n * h * w
    w_b = batch_weight(alpha, alpha_weights)
    kappa = count / (count - 1) if unbiased else 1.0
    y = np.empty_like(x3)
    mean_batch = np.empty(c)
    mean_hat = np.empty(c)
    rstd = np.empty(c)
    _forward_channels(
        x3,
        mean_source,
        var_source,
        gamma,
        beta,
        1.0 - w_b,
        w_b,
        kappa,
        float(eps),
        y,
        mean_batch,
        mean_hat,
        rstd,
    )
    stat_weight = 0.0 if detach_stats else w_b
    return y.reshape(x.shape), (x3, mean_batch, mean_hat, rstd, gamma, stat_weight, kappa, x.shape)


def alpha_batch_norm_backward(residuals, g_y):
    x3, mean_batch, mean_hat, rstd, gamma, stat_weight, kappa, shape = residuals
    g3 = np.ascontiguousarray(g_y).reshape(x3.shape)
    g_x = np.empty_like(x3)
    g_gamma = np.empty(x3.shape[1])
    g_beta = np.empty(x3.shape[1])
    _backward_channels(x3, mean_batch, mean_hat, rstd, gamma, g3, stat_weight, kappa, g_x, g_gamma, g_beta)
    return g_x.reshape(shape), g_gamma.astype(x3.dtype), g_beta.astype(x3.dtype)


IMPLS = {"alpha_batch_norm": Impl(alpha_batch_norm_forward, alpha_batch_norm_backward)}
