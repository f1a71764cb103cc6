"""Pinball loss, weighted interval score and quantile aggregation: Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/quantile_aggregation.py``. Every kernel reads a row once and
accumulates in float64 (written back in the input dtype). The tie rule of the reference is
kept exactly: ``H(v) = (sign(v) + 1)/2`` is ½ at v = 0, so a tie y = q gets the midpoint of
the subdifferential (``½ − τ`` for the pinball loss).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel

MEAN, SUM, NONE = 0, 1, 2
REDUCTION = {"mean": MEAN, "sum": SUM, "none": NONE}


@njit(cache=True, inline="always")
def _heaviside_half(v):
    return (np.sign(v) + 1.0) * 0.5


@parallel_kernel()
def _pinball_rows(y, q, tau, rho, row_sum):
    for i in prange(q.shape[0]):
        total = 0.0
        for j in range(q.shape[1]):
            u = np.float64(y[i]) - np.float64(q[i, j])
            t = np.float64(tau[j])
            value = max(t * u, (t - 1.0) * u)
            rho[i, j] = value
            total += value
        row_sum[i] = total


@parallel_kernel()
def _pinball_backward_rows(y, q, tau, g, g_q):
    """``g`` (N, L): the cotangent of each ρ (the reduction's weight already applied)."""
    for i in prange(q.shape[0]):
        for j in range(q.shape[1]):
            u = np.float64(y[i]) - np.float64(q[i, j])
            g_q[i, j] = (_heaviside_half(-u) - np.float64(tau[j])) * np.float64(g[i, j])


def _reduce(row_sum, count, reduction, dtype):
    if reduction == "mean":
        return np.asarray(row_sum.sum() / count, dtype=dtype)
    return np.asarray(row_sum.sum(), dtype=dtype)


def _per_entry_cotangent(g_loss, shape, reduction, count):
    if reduction == "none":
        return np.ascontiguousarray(g_loss, dtype=np.float64)
    scale = float(g_loss) / count if reduction == "mean" else float(g_loss)
    return np.full(shape, scale)


def pinball_loss_forward(y, q, tau, *, reduction="mean"):
    y, q, tau = (np.ascontiguousarray(a) for a in (y, q, tau))
    rho = np.empty_like(q)
    row_sum = np.empty(q.shape[0], dtype=np.float64)
    _pinball_rows(y, q, tau, rho, row_sum)
    loss = rho if reduction == "none" else _reduce(row_sum, q.size, reduction, q.dtype)
    return loss, (y, q, tau, reduction)


def pinball_loss_backward(residuals, g_loss):
    y, q, tau, reduction = residuals
    g = _per_entry_cotangent(g_loss, q.shape, reduction, q.size)
    g_q = np.empty_like(q)
    _pinball_backward_rows(y, q, tau, g, g_q)
    return (g_q,)


@parallel_kernel()
def _wis_rows(y, q, tau, per_sample):
    levels = q.shape[1]
    k_count = levels // 2
    c = 1.0 / (k_count + 0.5)
    for i in prange(q.shape[0]):
        target = np.float64(y[i])
        total = 0.5 * abs(target - np.float64(q[i, k_count]))
        for k in range(k_count):
            lower = np.float64(q[i, k])
            upper = np.float64(q[i, levels - 1 - k])
            alpha = 2.0 * np.float64(tau[k])
            interval = (upper - lower) + (2.0 / alpha) * max(lower - target, 0.0)
            interval += (2.0 / alpha) * max(target - upper, 0.0)
            total += alpha / 2.0 * interval
        per_sample[i] = c * total


@parallel_kernel()
def _wis_backward_rows(y, q, tau, g, g_q):
    levels = q.shape[1]
    k_count = levels // 2
    c = 1.0 / (k_count + 0.5)
    for i in prange(q.shape[0]):
        target = np.float64(y[i])
        scale = c * g[i]
        g_q[i, k_count] = scale * 0.5 * np.sign(np.float64(q[i, k_count]) - target)
        for k in range(k_count):
            half_alpha = np.float64(tau[k])
            g_q[i, k] = scale * (_heaviside_half(np.float64(q[i, k]) - target) - half_alpha)
            upper = np.float64(q[i, levels - 1 - k])
            g_q[i, levels - 1 - k] = scale * (half_alpha - _heaviside_half(target - upper))


def weighted_interval_score_forward(y, q, tau, *, reduction="mean"):
    y, q, tau = (np.ascontiguousarray(a) for a in (y, q, tau))
    per_sample = np.empty(q.shape[0], dtype=np.float64)
    _wis_rows(y, q, tau, per_sample)
    loss = reduce_rows(per_sample, reduction, q.dtype)
    return loss, (y, q, tau, reduction)


def weighted_interval_score_backward(residuals, g_loss):
    y, q, tau, reduction = residuals
    g = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, q.shape[0])
    g_q = np.empty_like(q)
    _wis_backward_rows(y, q, tau, g, g_q)
    return (g_q,)


@njit(cache=True)
def _softmax_columns(theta):
    """softmax over axis 0 of (J, L) logits, per column, max-shifted, in float64."""
    members, levels = theta.shape
    w = np.empty((members, levels))
    for col in range(levels):
        largest = -np.inf
        for j in range(members):
            largest = max(largest, np.float64(theta[j, col]))
        total = 0.0
        for j in range(members):
            w[j, col] = np.exp(np.float64(theta[j, col]) - largest)
            total += w[j, col]
        for j in range(members):
            w[j, col] /= total
    return w


@parallel_kernel(fastmath={"reassoc"})
def _aggregate_rows(members, w, out):
    for n in prange(members.shape[0]):
        for col in range(members.shape[2]):
            total = 0.0
            for j in range(members.shape[1]):
                total += w[j, col] * np.float64(members[n, j, col])
            out[n, col] = total


@parallel_kernel(fastmath={"reassoc"})
def _aggregate_backward(members, w, g, g_members, g_w):
    n_rows, count, levels = members.shape
    for n in prange(n_rows):
        for j in range(count):
            for col in range(levels):
                g_members[n, j, col] = np.float64(g[n, col]) * w[j, col]
    for j in prange(count):  # w̄_jl = Σ_n ḡ_nl Q_njl, rows outer so the inner loop is contiguous
        total = np.zeros(levels)
        for n in range(n_rows):
            for col in range(levels):
                total[col] += np.float64(g[n, col]) * np.float64(members[n, j, col])
        g_w[j, :] = total


def quantile_aggregation_forward(member_quantiles, theta):
    members = np.ascontiguousarray(member_quantiles)
    per_level = theta.ndim == 2
    logits = np.ascontiguousarray(theta if per_level else theta[:, None])
    w = _softmax_columns(logits)
    if not per_level:
        w = np.ascontiguousarray(np.broadcast_to(w, members.shape[1:]))
    out = np.empty((members.shape[0], members.shape[2]), dtype=members.dtype)
    _aggregate_rows(members, w, out)
    return out, (members, w, per_level, theta.dtype)


def quantile_aggregation_backward(residuals, g_quantiles):
    members, w, per_level, dtype = residuals
    g_members = np.empty_like(members)
    g_w = np.empty(w.shape, dtype=np.float64)
    _aggregate_backward(members, w, np.ascontiguousarray(g_quantiles), g_members, g_w)
    if per_level:  # the softmax VJP per column: w ⊙ (w̄ − ⟨w, w̄⟩)
        g_theta = w * (g_w - (w * g_w).sum(axis=0, keepdims=True))
    else:
        w_global, g_w_global = w[:, 0], g_w.sum(axis=1)
        g_theta = w_global * (g_w_global - (w_global * g_w_global).sum())
    return g_members, g_theta.astype(dtype)


IMPLS = {
    "pinball_loss": Impl(pinball_loss_forward, pinball_loss_backward),
    "weighted_interval_score": Impl(weighted_interval_score_forward, weighted_interval_score_backward),
    "quantile_aggregation": Impl(quantile_aggregation_forward, quantile_aggregation_backward),
}
