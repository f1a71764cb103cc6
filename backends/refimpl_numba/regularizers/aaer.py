"""AAER: Numba kernels, parallel over rows.

Mirrors ``refimpl/regularizers/aaer.py``. One pass per row gives the AAE flag
``ℓ_before > ℓ_after`` and the variation ``‖o_org,i − o_i‖²`` (float64); the batch sums over
the two sets are taken on those (B,) arrays. The backward writes
``ō_i = (2wλ1λ3/B)(o_i − o_org,i)`` on the AAE rows (gate active) and 0 elsewhere in one pass.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _variation_rows(loss_before, logits_before, loss_after, logits_after, abnormal, variation):
    for i in prange(logits_after.shape[0]):
        abnormal[i] = loss_before[i] > loss_after[i]
        total = 0.0
        for k in range(logits_after.shape[1]):
            difference = np.float64(logits_after[i, k]) - np.float64(logits_before[i, k])
            total += difference * difference
        variation[i] = total


@parallel_kernel()
def _logits_grad_rows(logits_before, logits_after, abnormal, scale, g_logits):
    for i in prange(logits_after.shape[0]):
        if abnormal[i]:
            for k in range(logits_after.shape[1]):
                g_logits[i, k] = scale * (np.float64(logits_after[i, k]) - np.float64(logits_before[i, k]))
        else:
            for k in range(logits_after.shape[1]):
                g_logits[i, k] = 0.0


def aaer_loss_forward(
    loss_before,
    logits_before,
    loss_after,
    logits_after,
    *,
    lambda1=1.0,
    lambda2=4.0,
    lambda3=1.5,
    detach_loss_gap=False,
):
    batch = loss_after.shape[0]
    before, after = np.ascontiguousarray(logits_before), np.ascontiguousarray(logits_after)
    abnormal = np.empty(batch, dtype=np.bool_)
    variation = np.empty(batch, dtype=np.float64)
    _variation_rows(loss_before, before, loss_after, after, abnormal, variation)
    abnormal_count = int(abnormal.sum())
    normal_count = batch - abnormal_count
    loss = loss_after.mean(dtype=np.float64)
    active = abnormal_count > 0 and normal_count > 0
    gated = False
    if active:
        gap = (loss_before[abnormal].astype(np.float64) - loss_after[abnormal]).sum() / abnormal_count
        excess = variation[abnormal].sum() / abnormal_count - variation[~abnormal].sum() / normal_count
        gated = bool(excess >= 0)  # official max(t, 0) keeps t on a tie
        loss += lambda1 * abnormal_count / batch * (lambda2 * gap + lambda3 * max(excess, 0.0))
    residuals = (before, after, abnormal, active, gated, lambda1, lambda2, lambda3, detach_loss_gap)
    return np.asarray(loss, dtype=loss_after.dtype), residuals


def aaer_loss_backward(residuals, g_loss):
    before, after, abnormal, active, gated, lambda1, lambda2, lambda3, detach_loss_gap = residuals
    batch = after.shape[0]
    w = float(np.asarray(g_loss))
    g_loss_after = np.full(batch, w / batch, dtype=np.float64)
    if active and not detach_loss_gap:
        g_loss_after -= (w * lambda1 * lambda2 / batch) * abnormal
    g_logits = np.empty(after.shape, dtype=after.dtype)
    scale = 2 * w * lambda1 * lambda3 / batch if active and gated else 0.0
    _logits_grad_rows(before, after, abnormal & (scale != 0.0), scale, g_logits)
    return g_loss_after.astype(after.dtype), g_logits


IMPLS = {"aaer_loss": Impl(aaer_loss_forward, aaer_loss_backward)}
