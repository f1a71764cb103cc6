"""PFN bar distribution (NLL, half-normal-tailed NLL, mean) on CuPy: fused elementwise kernels + row
reductions.

Mirrors ``refimpl/losses/bar_distribution.py``. The forward keeps only the row
max and the row sum of ``exp(z − max)`` (not the probabilities); the backward's fused kernel
recomputes ``softmax(z)`` from them and subtracts the one-hot of the bucket by comparing a column index with
``k``, so no scatter is needed. The bucket search is ``searchsorted`` on the device.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl, reduce_rows
from refimpl.losses.bar_distribution import HALF_NORMAL_MEDIAN, LEFT_TAIL_CLAMP, bucket_means

from .._fuse import kernel_set, xp_of

_HALF_LOG_2_OVER_PI = 0.5 * math.log(2 / math.pi)


def _kernels(xp, fuse):
    @fuse
    def softmax_minus_onehot(z, m, inverse_total, columns, k, w):
        return w * xp.exp(z - m) * inverse_total - xp.where(columns == k, w, 0)

    @fuse
    def half_normal_nll_terms(y, k, last, anchor_left, anchor_right, s_left, s_right, interior_log_width):
        # −log density and ∂(−log density)/∂y of the tails; the interior's −log(1/w) = log w
        gap = anchor_left - y
        u_left = xp.maximum(gap, LEFT_TAIL_CLAMP)
        u_right = y - anchor_right
        left = k == 0
        right = k == last
        nll_left = xp.log(s_left) - _HALF_LOG_2_OVER_PI + u_left * u_left / (2 * s_left * s_left)
        nll_right = xp.log(s_right) - _HALF_LOG_2_OVER_PI + u_right * u_right / (2 * s_right * s_right)
        slope_left = xp.where(gap > LEFT_TAIL_CLAMP, -u_left / (s_left * s_left), 0)
        slope_right = u_right / (s_right * s_right)
        nll = xp.where(left, nll_left, xp.where(right, nll_right, interior_log_width))
        slope = xp.where(left, slope_left, xp.where(right, slope_right, 0))
        return nll, slope

    @fuse
    def mean_grad(z, m, inverse_total, means, mean, g_mean):
        return g_mean * xp.exp(z - m) * inverse_total * (means - mean)

    return SimpleNamespace(
        softmax_minus_onehot=softmax_minus_onehot,
        half_normal_nll_terms=half_normal_nll_terms,
        mean_grad=mean_grad,
    )


kernels_for = kernel_set(_kernels)


def _row_max_and_sum(xp, z):
    """``m = max_j z_j`` and ``Σ_j exp(z_j − m)``. The backward forms ``p = exp(z − m)/Σ``, not
    ``exp(z − lse)``: at |z| ~ 1e4 a float32 lse has lost the digits of ``log Σ``."""
    m = z.max(axis=-1, keepdims=True)  # subtract the row max: exp cannot overflow
    return m, xp.exp(z - m).sum(axis=-1, keepdims=True)


def _nll_forward(z, borders, y, reduction, tails):
    xp = xp_of(z)
    k_ = kernels_for(z)
    dtype = z.dtype
    buckets = z.shape[-1]
    k = xp.searchsorted(borders, y.reshape(-1)).reshape(y.shape) - 1  # right-closed buckets
    k = xp.where(y == borders[0], 0, k)
    if tails:
        k = xp.clip(k, 0, buckets - 1)
    m, total = _row_max_and_sum(xp, z)
    log_p_k = (xp.take_along_axis(z, k[..., None], axis=-1) - m - xp.log(total))[..., 0]
    log_widths = xp.log(borders[1:] - borders[:-1])
    if tails:
        s_left = (borders[1] - borders[0]) / dtype.type(HALF_NORMAL_MEDIAN)
        s_right = (borders[-1] - borders[-2]) / dtype.type(HALF_NORMAL_MEDIAN)
        nll_density, d_y = k_.half_normal_nll_terms(
            y, k, buckets - 1, borders[1], borders[-2], s_left, s_right, log_widths[k]
        )
    else:
        nll_density, d_y = log_widths[k], None
    per_element = nll_density - log_p_k
    return reduce_rows(per_element, reduction, dtype), (z, m, 1 / total, k, d_y, reduction)


def _nll_backward(residuals, g_loss):
    z, m, inverse_total, k, d_y, reduction = residuals
    xp = xp_of(z)
    g = g_loss.astype(z.dtype)
    w = g / k.size if reduction == "mean" else g  # per element for "none", else a 0-d weight
    columns = xp.arange(z.shape[-1])
    g_z = kernels_for(z).softmax_minus_onehot(z, m, inverse_total, columns, k[..., None], w[..., None])
    if d_y is None:
        return (g_z.astype(z.dtype),)
    return g_z.astype(z.dtype), (w * d_y).astype(z.dtype)  # d_y has y's shape


def bar_distribution_nll_forward(z, borders, y, *, reduction="mean"):
    return _nll_forward(z, borders, y, reduction, False)


def full_support_bar_distribution_nll_forward(z, borders, y, *, reduction="mean"):
    return _nll_forward(z, borders, y, reduction, True)


def bar_distribution_mean_forward(z, borders, *, full_support=True):
    xp = xp_of(z)
    m, total = _row_max_and_sum(xp, z)
    inverse_total = 1 / total
    means = bucket_means(borders, full_support)
    mean = (xp.exp(z - m) * inverse_total * means).sum(axis=-1)
    return mean.astype(z.dtype), (z, m, inverse_total, means, mean)


def bar_distribution_mean_backward(residuals, g_mean):
    z, m, inverse_total, means, mean = residuals
    g_z = kernels_for(z).mean_grad(
        z, m, inverse_total, means, mean[..., None], g_mean.astype(z.dtype)[..., None]
    )
    return (g_z.astype(z.dtype),)


IMPLS = {
    "bar_distribution_nll": Impl(bar_distribution_nll_forward, _nll_backward),
    "full_support_bar_distribution_nll": Impl(full_support_bar_distribution_nll_forward, _nll_backward),
    "bar_distribution_mean": Impl(bar_distribution_mean_forward, bar_distribution_mean_backward),
}
