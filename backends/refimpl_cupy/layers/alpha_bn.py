"""α-BN (test-time batch statistics calibration) on CuPy: channel reductions, fused maps.

Mirrors ``refimpl/layers/alpha_bn.py``: the batch statistics are reductions over the
(N, H, W) axes accumulated in float64 (two-pass variance), mixed with the source
statistics per channel; one fused kernel each writes ``y = γ (x − μ̂) r + β`` and the input
gradient ``x̄ = r [ĝ − w_b mean ĝ − w_b κ r (x − μ_b) mean(ĝ x̂)]``. Residuals are the
per-channel ``μ_b``, ``μ̂`` and ``r``; the backward recomputes x̂.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl
from refimpl.layers.alpha_bn import batch_weight

from .._fuse import kernel_set, xp_of

_AXES = (0, 2, 3)


def _kernels(xp, fuse):
    @fuse
    def normalize_affine(x, mean_hat, rstd, gamma, beta):
        return gamma * ((x - mean_hat) * rstd).astype(x.dtype) + beta

    @fuse
    def input_grad(g_y, x, gamma, rstd, mean_batch, mean_g, mean_g_x_hat, stat_weight, kappa):
        return rstd * (
            gamma * g_y - stat_weight * mean_g - stat_weight * kappa * rstd * (x - mean_batch) * mean_g_x_hat
        )

    return SimpleNamespace(normalize_affine=normalize_affine, input_grad=input_grad)


kernels_for = kernel_set(_kernels)


def _channel(v):
    return v[None, :, None, None]


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
    k = kernels_for(x)
    xp = xp_of(x)
    count = x.shape[0] * x.shape[2] * x.shape[3]
    w_b = batch_weight(alpha, alpha_weights)
    w_s = 1.0 - w_b
    kappa = count / (count - 1) if unbiased else 1.0
    mean_batch = x.sum(axis=_AXES, dtype=xp.float64) / count
    centered = x - _channel(mean_batch)  # float64
    var_batch = kappa * (centered * centered).sum(axis=_AXES) / count
    mean_hat = w_s * mean_source.astype(xp.float64) + w_b * mean_batch
    rstd = 1.0 / xp.sqrt(w_s * var_source.astype(xp.float64) + w_b * var_batch + eps)
    y = k.normalize_affine(x, _channel(mean_hat), _channel(rstd), _channel(gamma), _channel(beta)).astype(
        x.dtype
    )
    stat_weight = 0.0 if detach_stats else w_b
    return y, (x, mean_batch, mean_hat, rstd, gamma, stat_weight, kappa)


def alpha_batch_norm_backward(residuals, g_y):
    x, mean_batch, mean_hat, rstd, gamma, stat_weight, kappa = residuals
    k = kernels_for(x)
    xp = xp_of(x)
    count = x.shape[0] * x.shape[2] * x.shape[3]
    x_hat = (x - _channel(mean_hat)) * _channel(rstd)  # float64
    sum_g = g_y.sum(axis=_AXES, dtype=xp.float64)
    sum_g_x_hat = (g_y * x_hat).sum(axis=_AXES)
    gamma64 = gamma.astype(xp.float64)
    g_x = k.input_grad(
        g_y,
        x,
        _channel(gamma64),
        _channel(rstd),
        _channel(mean_batch),
        _channel(gamma64 * sum_g / count),
        _channel(gamma64 * sum_g_x_hat / count),
        stat_weight,
        kappa,
    ).astype(x.dtype)
    return g_x, sum_g_x_hat.astype(x.dtype), sum_g.astype(x.dtype)


IMPLS = {"alpha_batch_norm": Impl(alpha_batch_norm_forward, alpha_batch_norm_backward)}
