"""LDR-KL and ALDR-KL losses: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/ldr_kl.py``. The three logit normalizations share one form,
``z̃ = u/s`` with ``s = mean_k |u_k|``: ``u = z, s = 1`` ("none"), ``u = softplus(z)``
("softplus_mean") and ``u = z`` ("l1", ``K z/‖z‖₁ = z/mean|z|``), so one kernel serves all
three, and their VJPs share ``g_u = (g − sign(u)⟨g, u⟩/(K s))/s``. One pass per row
normalizes, forms ``a = b/λ_i`` and evaluates ``λ_i (m + log1p(mean expm1(a − m)))``; the
worst-case distribution ``q = softmax(a)`` is kept for the backward. Row scalars are float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl import Impl

_MODES = {"none": 0, "softplus_mean": 1, "l1": 2}


@njit(cache=True, inline="always")
def _softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@njit(cache=True, inline="always")
def _sigmoid(x):
    e = math.exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


@njit(cache=True, inline="always")
def _u(v, mode):
    return _softplus(v) if mode == 1 else float(v)


@njit(parallel=True, cache=True)
def _ldr_rows(z, y, c, lam, mode, q, scale, per_row):
    num_classes = z.shape[1]
    for i in prange(z.shape[0]):
        s = 1.0
        if mode != 0:
            total = 0.0
            for k in range(num_classes):
                total += abs(_u(z[i, k], mode))
            s = total / num_classes
        label = y[i]
        z_tilde_y = _u(z[i, label], mode) / s
        inverse_lam = 1.0 / lam[i]
        m = -math.inf
        for k in range(num_classes):
            margin = 0.0 if k == label else c + _u(z[i, k], mode) / s - z_tilde_y
            a = margin * inverse_lam
            q[i, k] = a
            m = max(m, a)
        acc = 0.0
        for k in range(num_classes):
            acc += math.expm1(q[i, k] - m)  # every exponent is <= 0
        per_row[i] = lam[i] * (m + math.log1p(acc / num_classes))
        normalizer = acc + num_classes  # Σ_k exp(a_k − m)
        for k in range(num_classes):
            q[i, k] = math.exp(q[i, k] - m) / normalizer
        scale[i] = s


@njit(parallel=True, cache=True)
def _ldr_backward_rows(z, y, q, scale, mode, weight, g_z):
    num_classes = z.shape[1]
    for i in prange(z.shape[0]):
        w = weight[i]
        label = y[i]
        if mode == 0:
            for k in range(num_classes):
                g_z[i, k] = w * (q[i, k] - (1.0 if k == label else 0.0))
            continue
        s = scale[i]
        g_dot_u = 0.0
        for k in range(num_classes):
            g = w * (q[i, k] - (1.0 if k == label else 0.0))
            g_dot_u += g * _u(z[i, k], mode)
        correction = g_dot_u / (num_classes * s)
        for k in range(num_classes):
            g = w * (q[i, k] - (1.0 if k == label else 0.0))
            if mode == 1:  # u = softplus(z) > 0, du/dz = σ(z)
                g_z[i, k] = (g - correction) / s * _sigmoid(z[i, k])
            else:  # u = z: sign(z)
                v = float(z[i, k])
                sign = 1.0 if v > 0 else (-1.0 if v < 0 else 0.0)
                g_z[i, k] = (g - sign * correction) / s


def _reduce(per_row, reduction, dtype):
    if reduction == "mean":
        return np.asarray(per_row.mean(), dtype=dtype)
    if reduction == "sum":
        return np.asarray(per_row.sum(), dtype=dtype)
    return per_row.astype(dtype)


def _row_weights(g_loss, reduction, batch):
    g = np.asarray(g_loss, dtype=np.float64)
    if reduction == "none":
        return np.ascontiguousarray(g.reshape(batch))
    if reduction == "mean":
        return np.full(batch, float(g) / batch)
    return np.full(batch, float(g))


def _forward(z, y, c, lam_rows, normalize):
    work = np.ascontiguousarray(z)
    labels = np.ascontiguousarray(y, dtype=np.int64)
    mode = _MODES[normalize]
    q = np.empty(work.shape, dtype=np.float64)
    scale = np.empty(work.shape[0], dtype=np.float64)
    per_row = np.empty(work.shape[0], dtype=np.float64)
    _ldr_rows(work, labels, float(c), lam_rows, mode, q, scale, per_row)
    return work, labels, mode, q, scale, per_row


def ldr_kl_loss_forward(z, y, *, c=0.1, lam=10.0, normalize="none", reduction="mean"):
    lam_rows = np.full(z.shape[0], float(lam))
    work, labels, mode, q, scale, per_row = _forward(z, y, c, lam_rows, normalize)
    return _reduce(per_row, reduction, z.dtype), (work, labels, mode, q, scale, reduction)


def ldr_kl_loss_backward(residuals, g_loss):
    work, labels, mode, q, scale, reduction = residuals
    g_z = np.empty(work.shape, dtype=work.dtype)
    _ldr_backward_rows(work, labels, q, scale, mode, _row_weights(g_loss, reduction, work.shape[0]), g_z)
    return (g_z,)


def aldr_kl_loss_forward(z, y, lam, ids, *, c=0.1, lam0=10.0, alpha=2.0, normalize="none", reduction="mean"):
    lam_rows = np.ascontiguousarray(lam[ids], dtype=np.float64)
    work, labels, mode, q, scale, per_row = _forward(z, y, c, lam_rows, normalize)
    per_row -= alpha * math.log(z.shape[1]) / (2 * lam0) * (lam_rows - lam0) ** 2
    return _reduce(per_row, reduction, z.dtype), (work, labels, mode, q, scale, reduction)


IMPLS = {
    "ldr_kl_loss": Impl(ldr_kl_loss_forward, ldr_kl_loss_backward),
    "aldr_kl_loss": Impl(aldr_kl_loss_forward, ldr_kl_loss_backward),
}
