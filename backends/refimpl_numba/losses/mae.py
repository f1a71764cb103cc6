"""The MAE loss for classification: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/mae.py``. Per row, after the max: ``u_k = exp(z_k − m)`` (kept for
the backward: writing it costs far less than a second exp pass), the off-label mass
``Σ_{k≠y} u_k`` and the normalizer ``Σ_{k≠y} u_k + u_y``, so ``q = Σ_{k≠y} p_k`` needs no
``1 − p_y`` cancellation and ``ℓ = 2q ≤ 2``; the backward is ``z̄_j = 2 w p_y u_j/Σu``
(j ≠ y), ``z̄_y = −2 w p_y q``. Row scalars are float64; ``exp`` is the vectorizable one of
``_vmath``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel
from .._vmath import vexp


@parallel_kernel(fastmath={"reassoc"})
def _mae_rows(z, y, shifted_exp, per_row, inverse_total, label_p, others_p):
    num_classes = z.shape[1]
    for i in prange(z.shape[0]):
        m = -math.inf
        for k in range(num_classes):
            m = max(m, np.float64(z[i, k]))
        for k in range(num_classes):
            shifted_exp[i, k] = vexp(z.dtype.type(np.float64(z[i, k]) - m))  # ≤ 0: no overflow
        label = y[i]
        others = 0.0  # Σ_{k≠y} exp(z_k − m), two branch-free loops around the label
        for k in range(label):
            others += np.float64(shifted_exp[i, k])
        for k in range(label + 1, num_classes):
            others += np.float64(shifted_exp[i, k])
        at_label = np.float64(shifted_exp[i, label])
        total = others + at_label  # rounding is monotone: others ≤ total, so q ≤ 1 and ℓ ≤ 2
        inverse = 1.0 / total
        q = others * inverse  # Σ_{k≠y} p_k = 1 − p_y without the cancellation
        inverse_total[i] = inverse
        label_p[i] = at_label * inverse
        others_p[i] = q
        per_row[i] = 2.0 * q


@parallel_kernel(fastmath={"reassoc"})
def _mae_backward_rows(shifted_exp, y, inverse_total, label_p, others_p, weight, g_z):
    num_classes = shifted_exp.shape[1]
    for i in prange(shifted_exp.shape[0]):
        factor = 2.0 * weight[i] * label_p[i]  # z̄_j = 2 w p_y p_j off the label
        scale = factor * inverse_total[i]
        for k in range(num_classes):
            g_z[i, k] = scale * np.float64(shifted_exp[i, k])
        g_z[i, y[i]] = -factor * others_p[i]  # −2 w p_y Σ_{k≠y} p_k at the label


def mae_loss_forward(z, y, *, reduction="mean"):
    logits = np.ascontiguousarray(z)
    labels = np.ascontiguousarray(y, dtype=np.int64)
    batch = logits.shape[0]
    shifted_exp = np.empty(logits.shape, dtype=logits.dtype)
    per_row, inverse_total, label_p, others_p = (np.empty(batch, dtype=np.float64) for _ in range(4))
    _mae_rows(logits, labels, shifted_exp, per_row, inverse_total, label_p, others_p)
    loss = reduce_rows(per_row, reduction, z.dtype)
    return loss, (shifted_exp, labels, inverse_total, label_p, others_p, reduction)


def mae_loss_backward(residuals, g_loss):
    shifted_exp, labels, inverse_total, label_p, others_p, reduction = residuals
    batch = shifted_exp.shape[0]
    weight = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, batch)
    g_z = np.empty(shifted_exp.shape, dtype=shifted_exp.dtype)
    _mae_backward_rows(shifted_exp, labels, inverse_total, label_p, others_p, weight, g_z)
    return (g_z,)


IMPLS = {"mae_loss": Impl(mae_loss_forward, mae_loss_backward)}
