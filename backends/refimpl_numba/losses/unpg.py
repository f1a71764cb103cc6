"""The UNPG loss: NumPy's BLAS for the products, Numba row kernels for the softmax.

Mirrors ``refimpl/losses/unpg.py``. The cosines ``x̂ŵᵀ`` and the backward's ``c̄ŵ``, ``c̄ᵀx̂``
and pair term ``(P + Pᵀ)x̂`` are BLAS products; the selection of the kept negative pairs is
the reference's box-and-whisker filter (a sort, reference-only); the margin's target
column is the reference's ``margin_target`` (one value per row). The kernels form each
row's logits, its log-sum-exp joined with the appended columns' shared one, and in the
backward the class columns' cotangents; row scalars are float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl, l2_normalize, l2_normalize_backward, reduce_rows, row_weights
from refimpl.losses.box_and_whisker import box_and_whisker_filter
from refimpl.losses.unpg import margin_target

from .._jit import parallel_kernel
from .._vmath import exp, row_log_sum_exp, vexp


@parallel_kernel(fastmath={"reassoc"})
def _unpg_rows(cos, y, target, s, lse_appended, logits, lse, per_row):
    classes = cos.shape[1]
    for i in prange(cos.shape[0]):
        for c in range(classes):
            logits[i, c] = s * np.float64(cos[i, c])
        logits[i, y[i]] = s * np.float64(target[i])
        m, log_total = row_log_sum_exp(logits, i)  # the max is subtracted: no overflow at s = 64
        row = m + log_total
        if lse_appended == -math.inf:  # no kept pair: nothing appended
            joined = row
        else:  # logaddexp(row, A)
            high, low = max(row, lse_appended), min(row, lse_appended)
            joined = high + math.log1p(exp(low - high))
        lse[i] = joined
        per_row[i] = joined - np.float64(logits[i, y[i]])


@parallel_kernel(fastmath={"reassoc"})
def _unpg_backward_rows(logits, y, lse, omega, slope, s, g_cos):
    classes = logits.shape[1]
    for i in prange(logits.shape[0]):
        factor = s * omega[i]
        shift = lse[i]
        for c in range(classes):
            # softmax: the exponent is <= 0; rounded to the logits' dtype (float32: exp32, 8 lanes)
            g_cos[i, c] = factor * vexp(logits.dtype.type(np.float64(logits[i, c]) - shift))
        label = y[i]
        g_cos[i, label] = (np.float64(g_cos[i, label]) - factor) * slope[i]  # −δ, through the margin


def unpg_loss_forward(x, weight, y, *, margin, s=64.0, m=0.5, w=1.5, reduction="mean"):
    dtype = x.dtype
    batch = x.shape[0]
    labels = np.ascontiguousarray(y, dtype=np.int64)
    x_hat, x_norm = l2_normalize(x)
    w_hat, w_norm = l2_normalize(weight)
    cos = np.ascontiguousarray(np.dot(x_hat, w_hat.T))
    target, slope = margin_target(cos[np.arange(batch), labels], margin, m)
    (kept, pairs), _ = box_and_whisker_filter.forward(x, y, w=w)  # the selection: reference-only
    appended = kept.astype(np.float64) * float(s)
    if appended.size:
        peak = appended.max()
        lse_appended = peak + math.log(np.exp(appended - peak).sum())
    else:
        lse_appended = -math.inf
    logits = np.empty(cos.shape, dtype=dtype)
    lse = np.empty(batch, dtype=np.float64)
    per_row = np.empty(batch, dtype=np.float64)
    _unpg_rows(cos, labels, target, float(s), lse_appended, logits, lse, per_row)
    residuals = ((x_hat, x_norm, w_hat, w_norm), logits, lse, labels, slope, appended, lse_appended, pairs, s)
    return reduce_rows(per_row, reduction, dtype), (residuals, reduction)


def unpg_loss_backward(residuals, g_loss):
    (normalized, logits, lse, labels, slope, appended, lse_appended, pairs, s), reduction = residuals
    x_hat, x_norm, w_hat, w_norm = normalized
    dtype = x_hat.dtype
    batch = x_hat.shape[0]
    omega = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, batch)
    g_cos = np.empty(logits.shape, dtype=dtype)
    _unpg_backward_rows(logits, labels, lse, omega, np.asarray(slope, dtype=np.float64), float(s), g_cos)
    g_x_hat = np.dot(g_cos, w_hat)
    g_w_hat = np.dot(g_cos.T, x_hat)
    if appended.size:
        # ā_p = exp(a_p − A)·Σ_i ω_i exp(A − lse_i): both exponents <= 0
        g_appended = np.exp(appended - lse_appended) * (omega * np.exp(lse_appended - lse)).sum()
        pair_cotangent = np.zeros((batch, batch), dtype=dtype)
        pair_cotangent[pairs[:, 0], pairs[:, 1]] = float(s) * g_appended
        g_x_hat += np.dot(pair_cotangent + pair_cotangent.T, x_hat)
    g_x = l2_normalize_backward(x_hat, x_norm, g_x_hat)
    g_w = l2_normalize_backward(w_hat, w_norm, g_w_hat)
    return g_x.astype(dtype, copy=False), g_w.astype(dtype, copy=False)


IMPLS = {"unpg_loss": Impl(unpg_loss_forward, unpg_loss_backward)}
