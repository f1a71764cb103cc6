"""WiSE-FT / BANG: Numba kernels for the weight interpolation and the output-space ensemble.

Mirrors ``refimpl/merging/wise_ft.py``. The interpolation is one elementwise pass over the
flattened parameter, parallel over elements, in the input dtype with the coefficients
``1 − α`` and ``α`` rounded once to it (as the reference). The ensemble is one pass over the
positions (rows of the (n, K) member stack): ``s_k = log p_k + log w_k`` in float64, its max
``m``, ``e_k = exp(s_k − m)`` (``_vmath.vexp``: ``exp32`` for float32 rows, as
``row_log_sum_exp``), ``log p̄ = m + log Σ e_k`` and the
responsibilities ``r_k = e_k/Σ e`` kept for the backward ``ḡ_{log p_k} = r_k·ḡ`` (one
elementwise pass).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .._vmath import log, vexp


@parallel_kernel()
def _interpolate(pre, ft, one_minus_alpha, alpha, theta):
    for j in prange(pre.shape[0]):
        theta[j] = one_minus_alpha * pre[j] + alpha * ft[j]


def wise_ft_interpolate_forward(theta_pre, theta_ft, *, alpha=0.5):
    dtype = theta_pre.dtype.type
    pre = np.ascontiguousarray(theta_pre).reshape(-1)
    ft = np.ascontiguousarray(theta_ft).reshape(-1)
    theta = np.empty(pre.shape[0], dtype=theta_pre.dtype)
    _interpolate(pre, ft, dtype(1.0 - alpha), dtype(alpha), theta)
    return theta.reshape(theta_pre.shape), None


@parallel_kernel(fastmath={"reassoc"})
def _ensemble_rows(log_probs, log_weights, log_mean, responsibilities):
    n, count = log_probs.shape
    for j in prange(n):
        m = -math.inf
        for k in range(count):
            m = max(m, np.float64(log_probs[j, k]) + log_weights[k])
        total = 0.0
        for k in range(count):
            # ≤ 0, rounded to the input dtype: a float32 row takes exp32, 8 lanes wide
            e = np.float64(vexp(log_probs.dtype.type(np.float64(log_probs[j, k]) + log_weights[k] - m)))
            responsibilities[j, k] = e
            total += e
        log_mean[j] = m + log(total)
        inverse_total = 1.0 / total
        for k in range(count):
            responsibilities[j, k] = responsibilities[j, k] * inverse_total


@parallel_kernel()
def _ensemble_backward_rows(responsibilities, g_log_mean, g_log_probs):
    n, count = responsibilities.shape
    for j in prange(n):
        g = g_log_mean[j]
        for k in range(count):
            g_log_probs[j, k] = responsibilities[j, k] * g


def output_space_ensemble_forward(log_probs, weights=None):
    count = log_probs.shape[-1]
    if weights is None:
        log_weights = np.full(count, -math.log(count))  # w_k = 1/K
    else:
        with np.errstate(divide="ignore"):  # w_k = 0: log w_k = −inf, the member is ignored
            log_weights = np.log(np.asarray(weights, dtype=np.float64))
    rows = np.ascontiguousarray(log_probs).reshape(-1, count)
    log_mean = np.empty(rows.shape[0], dtype=log_probs.dtype)
    responsibilities = np.empty(rows.shape, dtype=log_probs.dtype)
    _ensemble_rows(rows, log_weights, log_mean, responsibilities)
    return log_mean.reshape(log_probs.shape[:-1]), (responsibilities, log_probs.shape)


def output_space_ensemble_backward(residuals, g_log_mean):
    responsibilities, shape = residuals
    g_log_probs = np.empty_like(responsibilities)
    g = np.ascontiguousarray(g_log_mean, dtype=responsibilities.dtype).reshape(-1)
    _ensemble_backward_rows(responsibilities, g, g_log_probs)
    return (g_log_probs.reshape(shape),)


IMPLS = {
    "wise_ft_interpolate": Impl(wise_ft_interpolate_forward),
    "output_space_ensemble": Impl(output_space_ensemble_forward, output_space_ensemble_backward),
}
