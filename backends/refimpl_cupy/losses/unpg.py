"""The UNPG loss on CuPy: matrix products, a fused margin kernel and a fused softmax cotangent.

Mirrors ``refimpl/losses/unpg.py``: ``cos = x̂ŵᵀ``, the ArcFace/CosFace target column, each row's
log-sum-exp joined with the appended columns' shared one (``logaddexp``), and in the backward
``c̄ = s ω (softmax − δ)·slope`` in one fused kernel followed by the products. The selection of
the kept negative pairs is the reference's box-and-whisker filter, run on the host (a sort
over the batch's pairs; reference-only), its pairs sent back to the device.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl, l2_normalize, l2_normalize_backward, logsumexp, reduce_rows, row_weights
from refimpl.losses.box_and_whisker import box_and_whisker_filter

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def arcface(cos_y, cos_m, sin_m, m):
        c = xp.minimum(xp.maximum(cos_y, -1), 1)
        sin_theta = xp.sqrt((1 - c) * (1 + c))  # no cancellation near c = ±1
        safe = xp.where(sin_theta > 0, sin_theta, 1)
        slope = xp.where(sin_theta > 0, cos_m + sin_m * c / safe, 0)  # 0 at the clip
        return xp.cos(xp.arccos(c) + m), slope

    @fuse
    def class_cotangent(logits, lse, factor, is_label, slope):
        return (factor * xp.exp(logits - lse) - factor * is_label) * xp.where(is_label > 0, slope, 1)

    return SimpleNamespace(arcface=arcface, class_cotangent=class_cotangent)


kernels_for = kernel_set(_kernels)


def unpg_loss_forward(x, weight, y, *, margin, s=64.0, m=0.5, w=1.5, reduction="mean"):
    xp = xp_of(x)
    kern = kernels_for(x)
    dtype = x.dtype.type
    batch = x.shape[0]
    rows = xp.arange(batch)
    x_hat, x_norm = l2_normalize(x)
    w_hat, w_norm = l2_normalize(weight)
    cos = x_hat @ w_hat.T
    cos_y = cos[rows, y]
    if margin == "cosface":
        target, slope = cos_y - dtype(m), xp.ones_like(cos_y)
    else:
        target, slope = kern.arcface(cos_y, dtype(math.cos(m)), dtype(math.sin(m)), dtype(m))
    logits = dtype(s) * cos
    logits[rows, y] = dtype(s) * target
    (kept, pairs), _ = box_and_whisker_filter.forward(
        x if xp is np else x.get(), y if xp is np else y.get(), w=w
    )  # the selection, on the host: reference-only
    appended = dtype(s) * xp.asarray(kept)
    lse_appended = logsumexp(appended) if appended.size else xp.asarray(-math.inf, dtype=x.dtype)
    lse = xp.logaddexp(logsumexp(logits, axis=-1), lse_appended)
    per_row = lse - logits[rows, y]
    residuals = (
        (x_hat, x_norm, w_hat, w_norm),
        logits,
        lse,
        y,
        slope,
        appended,
        lse_appended,
        xp.asarray(pairs),
        s,
    )
    return reduce_rows(per_row, reduction, x.dtype), (residuals, reduction)


def unpg_loss_backward(residuals, g_loss):
    (normalized, logits, lse, y, slope, appended, lse_appended, pairs, s), reduction = residuals
    x_hat, x_norm, w_hat, w_norm = normalized
    xp = xp_of(x_hat)
    kern = kernels_for(x_hat)
    dtype = x_hat.dtype
    batch, classes = logits.shape
    omega = row_weights(g_loss.astype(dtype), reduction, batch)
    is_label = (xp.arange(classes)[None, :] == y[:, None]).astype(dtype)
    factor = (dtype.type(s) * omega)[:, None]
    g_cos = kern.class_cotangent(logits, lse[:, None], factor, is_label, slope[:, None])
    g_x_hat = g_cos @ w_hat
    g_w_hat = g_cos.T @ x_hat
    if appended.size:
        # ā_p = exp(a_p − A)·Σ_i ω_i exp(A − lse_i): both exponents <= 0
        g_appended = xp.exp(appended - lse_appended) * (omega * xp.exp(lse_appended - lse)).sum()
        pair_cotangent = xp.zeros((batch, batch), dtype=dtype)
        pair_cotangent[pairs[:, 0], pairs[:, 1]] = dtype.type(s) * g_appended
        g_x_hat = g_x_hat + (pair_cotangent + pair_cotangent.T) @ x_hat
    g_x = l2_normalize_backward(x_hat, x_norm, g_x_hat)
    g_w = l2_normalize_backward(w_hat, w_norm, g_w_hat)
    return g_x.astype(dtype, copy=False), g_w.astype(dtype, copy=False)


IMPLS = {"unpg_loss": Impl(unpg_loss_forward, unpg_loss_backward)}
