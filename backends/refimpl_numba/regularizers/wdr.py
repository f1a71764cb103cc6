"""EQ-Net weight distribution regularization: Numba kernels, parallel over the tensors.

Mirrors ``refimpl/regularizers/wdr.py``. Per tensor, three reductions in float64 (the mean;
the centered squares, for the unbiased std; then z³ and z⁴ of ``z = (W − μ)/s``); the
backward is one elementwise pass per tensor,
``W̄ = a_K [(4/n)(z³ − S) − (4/(n − 1)) K z]/s + a_S [(3/n)(z² − mean z²) − (3/(n − 1)) S z]/s``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.regularizers.wdr import segment_offsets

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _wdr_moments(w, offsets, first, mean, sd, kurtosis, skewness, second):
    for layer in prange(first, offsets.shape[0] - 1):
        start, stop = offsets[layer], offsets[layer + 1]
        n = stop - start
        total = 0.0
        for j in range(start, stop):
            total += np.float64(w[j])
        mu = total / n
        squares = 0.0
        for j in range(start, stop):
            d = np.float64(w[j]) - mu
            squares += d * d
        s = math.sqrt(squares / (n - 1))
        inverse_s = 1.0 / s
        sum2 = 0.0
        sum3 = 0.0
        sum4 = 0.0
        for j in range(start, stop):
            z = (np.float64(w[j]) - mu) * inverse_s
            z2 = z * z
            sum2 += z2
            sum3 += z2 * z
            sum4 += z2 * z2
        mean[layer] = mu
        sd[layer] = s
        second[layer] = sum2 / n
        skewness[layer] = sum3 / n
        kurtosis[layer] = sum4 / n


@parallel_kernel(fastmath={"reassoc"})
def _wdr_grad(w, offsets, first, mean, sd, kurtosis, skewness, second, weight_k, weight_s, g_w):
    for layer in prange(first, offsets.shape[0] - 1):
        start, stop = offsets[layer], offsets[layer + 1]
        n = stop - start
        mu, inverse_s = mean[layer], 1.0 / sd[layer]
        big_k, big_s, m2 = kurtosis[layer], skewness[layer], second[layer]
        a_k, a_s = weight_k[layer] * inverse_s, weight_s[layer] * inverse_s
        for j in range(start, stop):
            z = (np.float64(w[j]) - mu) * inverse_s
            z2 = z * z
            dk = (4.0 / n) * (z2 * z - big_s) - (4.0 / (n - 1)) * big_k * z
            ds = (3.0 / n) * (z2 - m2) - (3.0 / (n - 1)) * big_s * z
            g_w[j] = a_k * dk + a_s * ds


def wdr_loss_forward(w, sizes, *, kurt_rate=0.015, skew_rate=1.0, kurtosis_target=1.8, exclude_first=True):
    work = np.ascontiguousarray(w)
    offsets = segment_offsets(sizes)
    layers = offsets.shape[0] - 1
    first = 1 if exclude_first else 0
    mean, sd, kurtosis, skewness, second = (np.zeros(layers, dtype=np.float64) for _ in range(5))
    _wdr_moments(work, offsets, first, mean, sd, kurtosis, skewness, second)
    m = layers - first
    loss = (
        kurt_rate * float(np.sum((kurtosis[first:] - kurtosis_target) ** 2)) / m
        + skew_rate * float(np.sum(skewness[first:] ** 2)) / m
    )
    residuals = (
        work,
        offsets,
        first,
        mean,
        sd,
        kurtosis,
        skewness,
        second,
        kurt_rate,
        skew_rate,
        kurtosis_target,
    )
    return np.asarray(loss, dtype=w.dtype), residuals


def wdr_loss_backward(residuals, g_loss):
    work, offsets, first, mean, sd, kurtosis, skewness, second, kurt_rate, skew_rate, kurtosis_target = (
        residuals
    )
    g = float(g_loss)
    m = offsets.shape[0] - 1 - first
    weight_k = g * 2.0 * kurt_rate * (kurtosis - kurtosis_target) / m
    weight_s = g * 2.0 * skew_rate * skewness / m
    g_w = np.zeros(work.shape, dtype=work.dtype)
    _wdr_grad(work, offsets, first, mean, sd, kurtosis, skewness, second, weight_k, weight_s, g_w)
    return (g_w,)


IMPLS = {"wdr_loss": Impl(wdr_loss_forward, wdr_loss_backward)}
