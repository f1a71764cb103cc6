"""PFN bar distribution (NLL, half-normal-tailed NLL, mean): fused Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/bar_distribution.py``. One pass per row finds the row max, the
log-sum-exp and the target's bucket (binary search over the borders); the backward
recomputes ``softmax(z) − onehot(k)`` from the saved log-sum-exp, so no (rows, M)
probability array is kept between the passes. Scalars of a row are carried in float64
(exact enough for float32 inputs); outputs take the input dtype.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl, reduce_rows, row_weights
from refimpl.losses.bar_distribution import HALF_NORMAL_MEDIAN, LEFT_TAIL_CLAMP, bucket_means

from .._jit import parallel_kernel
from .._vmath import row_log_sum_exp, vexp

_HALF_LOG_2_OVER_PI = 0.5 * math.log(2 / math.pi)


@parallel_kernel(fastmath={"reassoc"})
def _nll_rows(z, borders, y, tails, loss, lse, bucket, d_y):
    buckets = z.shape[1]
    b_second = float(borders[1])
    b_before_last = float(borders[buckets - 1])
    s_left = (float(borders[1]) - float(borders[0])) / HALF_NORMAL_MEDIAN
    s_right = (float(borders[buckets]) - float(borders[buckets - 1])) / HALF_NORMAL_MEDIAN
    for i in prange(z.shape[0]):
        m, log_total = row_log_sum_exp(z, i)
        target = y[i]
        k = np.searchsorted(borders, target) - 1  # right-closed buckets (b_k, b_{k+1}]
        if target == borders[0]:
            k = 0
        if tails:
            k = min(max(k, 0), buckets - 1)
        # (z_k − m) − log Σ, never z_k − (m + log Σ): that would round at the size of the logits
        log_p_k = (float(z[i, k]) - m) - log_total
        slope = 0.0
        if tails and k == 0:
            gap = b_second - float(target)
            u = max(gap, LEFT_TAIL_CLAMP)
            log_density = _HALF_LOG_2_OVER_PI - math.log(s_left) - u * u / (2 * s_left * s_left)
            if gap > LEFT_TAIL_CLAMP:
                slope = -u / (s_left * s_left)
        elif tails and k == buckets - 1:
            u = float(target) - b_before_last
            log_density = _HALF_LOG_2_OVER_PI - math.log(s_right) - u * u / (2 * s_right * s_right)
            slope = u / (s_right * s_right)
        else:
            log_density = -math.log(float(borders[k + 1]) - float(borders[k]))
        loss[i] = -(log_p_k + log_density)
        lse[0, i] = m
        lse[1, i] = log_total
        bucket[i] = k
        d_y[i] = slope


@parallel_kernel(fastmath={"reassoc"})
def _nll_backward_rows(z, lse, bucket, weight, g_z):
    for i in prange(z.shape[0]):
        w, m, log_total = weight[i], lse[0, i], lse[1, i]
        for j in range(z.shape[1]):
            g_z[i, j] = w * vexp(z.dtype.type((z[i, j] - m) - log_total))
        g_z[i, bucket[i]] -= w


def _nll_forward(z, borders, y, reduction, tails):
    dtype = z.dtype
    rows = np.ascontiguousarray(z).reshape(-1, z.shape[-1])
    targets = np.ascontiguousarray(y, dtype=dtype).reshape(-1)
    count = rows.shape[0]
    per_row = np.empty(count, dtype=np.float64)
    lse = np.empty((2, count), dtype=np.float64)  # per row: the max m and log Σ exp(z − m)
    bucket = np.empty(count, dtype=np.int64)
    d_y = np.empty(count, dtype=np.float64)
    _nll_rows(rows, np.ascontiguousarray(borders), targets, tails, per_row, lse, bucket, d_y)
    loss = reduce_rows(per_row, reduction, dtype)
    if reduction == "none":
        loss = loss.reshape(y.shape)
    return loss, (rows, lse, bucket, d_y, reduction, z.shape, y.shape, dtype)


def _nll_backward(residuals, g_loss, with_y):
    rows, lse, bucket, d_y, reduction, z_shape, y_shape, dtype = residuals
    count = rows.shape[0]
    weight = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, count)
    g_z = np.empty(rows.shape, dtype=dtype)
    _nll_backward_rows(rows, lse, bucket, weight, g_z)
    if not with_y:
        return (g_z.reshape(z_shape),)
    return g_z.reshape(z_shape), (weight * d_y).astype(dtype).reshape(y_shape)


def bar_distribution_nll_forward(z, borders, y, *, reduction="mean"):
    return _nll_forward(z, borders, y, reduction, False)


def bar_distribution_nll_backward(residuals, g_loss):
    return _nll_backward(residuals, g_loss, False)


def full_support_bar_distribution_nll_forward(z, borders, y, *, reduction="mean"):
    return _nll_forward(z, borders, y, reduction, True)


def full_support_bar_distribution_nll_backward(residuals, g_loss):
    return _nll_backward(residuals, g_loss, True)


@parallel_kernel(fastmath={"reassoc"})
def _mean_rows(z, means, lse, mean):
    for i in prange(z.shape[0]):
        m, log_total = row_log_sum_exp(z, i)
        total = 0.0
        for j in range(z.shape[1]):
            total += vexp(z.dtype.type((z[i, j] - m) - log_total)) * means[j]
        lse[0, i] = m
        lse[1, i] = log_total
        mean[i] = total


@parallel_kernel(fastmath={"reassoc"})
def _mean_backward_rows(z, means, lse, mean, g_mean, g_z):
    for i in prange(z.shape[0]):
        m, log_total = lse[0, i], lse[1, i]
        for j in range(z.shape[1]):
            g_z[i, j] = g_mean[i] * vexp(z.dtype.type((z[i, j] - m) - log_total)) * (means[j] - mean[i])


def bar_distribution_mean_forward(z, borders, *, full_support=True):
    dtype = z.dtype
    rows = np.ascontiguousarray(z).reshape(-1, z.shape[-1])
    means = bucket_means(borders.astype(np.float64), full_support)
    lse = np.empty((2, rows.shape[0]), dtype=np.float64)  # per row: m and log Σ exp(z − m)
    mean = np.empty(rows.shape[0], dtype=np.float64)
    _mean_rows(rows, means, lse, mean)
    return mean.astype(dtype).reshape(z.shape[:-1]), (rows, means, lse, mean, z.shape, dtype)


def bar_distribution_mean_backward(residuals, g_mean):
    rows, means, lse, mean, shape, dtype = residuals
    g = np.ascontiguousarray(g_mean, dtype=np.float64).reshape(-1)
    g_z = np.empty(rows.shape, dtype=dtype)
    _mean_backward_rows(rows, means, lse, mean, g, g_z)
    return (g_z.reshape(shape),)


IMPLS = {
    "bar_distribution_nll": Impl(bar_distribution_nll_forward, bar_distribution_nll_backward),
    "full_support_bar_distribution_nll": Impl(
        full_support_bar_distribution_nll_forward, full_support_bar_distribution_nll_backward
    ),
    "bar_distribution_mean": Impl(bar_distribution_mean_forward, bar_distribution_mean_backward),
}
