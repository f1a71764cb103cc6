"""VCB loss (HACO) on CuPy: one fused elementwise kernel + a sum.

Mirrors ``refimpl/losses/vcb.py``. The (V, 2) weight table is the reference's
``vcb_class_weights`` (computed on the host, a per-call cost in V only) and is gathered per
element by the label. From ``e = exp(−|z|)`` one kernel gives the weighted logit-form
cross-entropy ``softplus(u)`` (u = z for y = 0, −z for y = 1) plus ``λ(1 − y)σ(z)``, and the
element's derivative at unit cotangent ``w(1 − 2y)σ(u) + λ(1 − y)σ'(z)``; the backward scales
it by ``ḡ/(BV)``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl
from refimpl.losses.vcb import BCE_LOG_FLOOR, weight_table

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def vcb_terms(z, contact, weight_0, weight_1, fp_weight, clamp, cap):
        e = xp.exp(-abs(z))
        inverse = 1 / (1 + e)
        p = xp.where(z >= 0, inverse, e * inverse)  # σ(z)
        p_minus = xp.where(z >= 0, e * inverse, inverse)  # σ(−z)
        slope = e * inverse * inverse
        u = xp.where(contact, -z, z)
        bce = xp.maximum(u, 0) + xp.log1p(e)
        d_bce = xp.where(contact, -p_minus, p)
        clamped = clamp & (bce > cap)  # nn.BCELoss's log clamp: flat at 100
        bce = xp.where(clamped, cap, bce)
        d_bce = xp.where(clamped, 0, d_bce)
        weight = xp.where(contact, weight_1, weight_0)
        not_contact = 1 - contact.astype(z.dtype)
        term = weight * bce + fp_weight * not_contact * p
        unit = weight * d_bce + fp_weight * not_contact * slope
        return term, unit

    return SimpleNamespace(vcb_terms=vcb_terms)


kernels_for = kernel_set(_kernels)


def vcb_loss_forward(
    z,
    y,
    vertex_counts,
    global_counts,
    *,
    epoch,
    total_epochs,
    beta=0.9999,
    total_samples=1000.0,
    vertex_weight_max=0.3,
    min_samples=20.0,
    fp_weight=0.5,
    bce_log_clamp=False,
):
    xp = xp_of(z)
    k = kernels_for(z)
    # the (V, 2) table on the host, with the reference's own function
    weights = weight_table(
        vertex_counts if xp is np else vertex_counts.get(),
        global_counts if xp is np else global_counts.get(),
        epoch=epoch,
        total_epochs=total_epochs,
        beta=beta,
        total_samples=total_samples,
        vertex_weight_max=vertex_weight_max,
        min_samples=min_samples,
    )
    weights = xp.asarray(weights, dtype=z.dtype)
    dtype = z.dtype.type
    term, unit = k.vcb_terms(
        z,
        y == 1,
        weights[:, 0],
        weights[:, 1],
        dtype(fp_weight),
        xp.bool_(bce_log_clamp),
        dtype(-BCE_LOG_FLOOR),
    )
    loss = (term.sum(dtype=xp.float64) / z.size).astype(z.dtype)
    return loss, (unit,)


def vcb_loss_backward(residuals, g_loss):
    (unit,) = residuals
    scale = (g_loss.astype(unit.dtype) / unit.dtype.type(unit.size)).astype(unit.dtype)
    return ((unit * scale).astype(unit.dtype),)


IMPLS = {"vcb_loss": Impl(vcb_loss_forward, vcb_loss_backward)}
