"""Comp-sum losses Φ_τ: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/comp_sum.py``. One pass per row finds the max and the log-sum-exp,
so ``log p_y = (z_y − m) − log Σ exp(z − m)``; the loss is ``−expm1((τ−1) log p_y)/(τ−1)``
(``−log p_y`` at τ = 1). The backward recomputes ``p`` from the saved row max and
log-normalizer: ``z̄ = w p_y^{τ−1} (p − e_y)``. Row scalars are float64; ``exp`` is the
vectorizable one of ``_vmath`` (the row loops are compiled with ``reassoc`` so the sums
vectorize too).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel
from .._vmath import row_log_sum_exp, vexp


@parallel_kernel(fastmath={"reassoc"})
def _comp_sum_rows(z, y, tau, per_row, row_max, log_normalizer, p_y_power):
    s = tau - 1.0
    for i in prange(z.shape[0]):
        m, log_total = row_log_sum_exp(z, i)
        log_p_y = (z[i, y[i]] - m) - log_total
        per_row[i] = -log_p_y if s == 0.0 else -math.expm1(s * log_p_y) / s
        row_max[i] = m
        log_normalizer[i] = log_total
        p_y_power[i] = math.exp(s * log_p_y)


@parallel_kernel(fastmath={"reassoc"})
def _comp_sum_backward_rows(z, y, row_max, log_normalizer, factor, g_z):
    for i in prange(z.shape[0]):
        f = factor[i]
        shift = row_max[i] + log_normalizer[i]
        for k in range(z.shape[1]):
            g_z[i, k] = f * vexp(z.dtype.type(z[i, k] - shift))
        g_z[i, y[i]] -= f


def comp_sum_loss_forward(z, y, *, tau, reduction="mean"):
    work = np.ascontiguousarray(z)
    labels = np.ascontiguousarray(y, dtype=np.int64)
    batch = work.shape[0]
    per_row, row_max, log_normalizer, p_y_power = (np.empty(batch, dtype=np.float64) for _ in range(4))
    _comp_sum_rows(work, labels, float(tau), per_row, row_max, log_normalizer, p_y_power)
    loss = reduce_rows(per_row, reduction, z.dtype)
    return loss, (work, labels, row_max, log_normalizer, p_y_power, reduction)


def comp_sum_loss_backward(residuals, g_loss):
    work, labels, row_max, log_normalizer, p_y_power, reduction = residuals
    batch = work.shape[0]
    weight = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, batch)
    g_z = np.empty(work.shape, dtype=work.dtype)
    _comp_sum_backward_rows(
        work, labels, row_max, log_normalizer, np.ascontiguousarray(weight * p_y_power), g_z
    )
    return (g_z,)


IMPLS = {"comp_sum_loss": Impl(comp_sum_loss_forward, comp_sum_loss_backward)}
