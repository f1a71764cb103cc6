"""AAER on CuPy: fused row variations and a fused masked backward.

Mirrors ``refimpl/regularizers/aaer.py``: ``‖o_org,i − o_i‖²`` per row from one fused squared
difference, the AAE mask ``ℓ_before > ℓ_after``, the set means as masked sums; the backward
is ``ō = (2wλ1λ3/B)·1[AAE]·(o − o_org)`` in one kernel.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def squared_difference(after, before):
        difference = after - before
        return difference * difference

    @fuse
    def logits_grad(after, before, row_scale):
        return row_scale * (after - before)

    return SimpleNamespace(squared_difference=squared_difference, logits_grad=logits_grad)


kernels_for = kernel_set(_kernels)


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
    xp = xp_of(loss_after)
    k = kernels_for(loss_after)
    batch = loss_after.shape[0]
    abnormal = loss_before > loss_after
    variation = k.squared_difference(logits_after, logits_before).sum(axis=-1, dtype=xp.float64)
    abnormal_count = int(abnormal.sum())
    normal_count = batch - abnormal_count
    loss = float(loss_after.mean(dtype=xp.float64))
    active = abnormal_count > 0 and normal_count > 0
    gated = False
    if active:
        gap = float(xp.where(abnormal, loss_before - loss_after, 0).sum(dtype=xp.float64)) / abnormal_count
        variation_abnormal = float(xp.where(abnormal, variation, 0).sum()) / abnormal_count
        variation_normal = float(xp.where(abnormal, 0, variation).sum()) / normal_count
        excess = variation_abnormal - variation_normal
        gated = excess >= 0  # official max(t, 0) keeps t on a tie
        loss += lambda1 * abnormal_count / batch * (lambda2 * gap + lambda3 * max(excess, 0.0))
    residuals = (
        logits_before,
        logits_after,
        abnormal,
        active,
        gated,
        lambda1,
        lambda2,
        lambda3,
        detach_loss_gap,
    )
    return xp.asarray(loss, dtype=loss_after.dtype), residuals


def aaer_loss_backward(residuals, g_loss):
    before, after, abnormal, active, gated, lambda1, lambda2, lambda3, detach_loss_gap = residuals
    xp = xp_of(after)
    k = kernels_for(after)
    batch = after.shape[0]
    w = float(g_loss)
    g_loss_after = xp.full(batch, w / batch, dtype=xp.float64)
    if active and not detach_loss_gap:
        g_loss_after -= (w * lambda1 * lambda2 / batch) * abnormal
    scale = 2 * w * lambda1 * lambda3 / batch if active and gated else 0.0
    row_scale = (abnormal * scale).astype(after.dtype)[:, None]
    g_logits = k.logits_grad(after, before, row_scale)
    return g_loss_after.astype(after.dtype), g_logits.astype(after.dtype)


IMPLS = {"aaer_loss": Impl(aaer_loss_forward, aaer_loss_backward)}
