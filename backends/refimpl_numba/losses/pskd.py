"""PS-KD soft-target cross-entropy: fused Numba kernels, parallel over rows.

Mirrors ``pskd_loss`` in ``refimpl/losses/pskd.py``. One pass per row gives the max and
the log-normalizer, ``ℓ = −Σ_k t_k ((z_k − m) − log Σ exp(z − m))`` and ``Σ_k t_k``; the
backward recomputes ``p``: ``z̄ = w (p Σt − t)``. Row scalars are float64; ``exp`` is the
vectorizable one of ``_vmath``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel
from .._vmath import row_log_sum_exp, vexp


@parallel_kernel(fastmath={"reassoc"})
def _pskd_rows(z, t, per_row, shift, target_mass):
    for i in prange(z.shape[0]):
        m, log_total = row_log_sum_exp(z, i)
        loss, mass = 0.0, 0.0
        for k in range(z.shape[1]):
            loss -= t[i, k] * ((z[i, k] - m) - log_total)
            mass += t[i, k]
        per_row[i] = loss
        shift[i] = m + log_total
        target_mass[i] = mass


@parallel_kernel(fastmath={"reassoc"})
def _pskd_backward_rows(z, t, shift, target_mass, weight, g_z):
    for i in prange(z.shape[0]):
        w, row_shift, mass = weight[i], shift[i], target_mass[i]
        for k in range(z.shape[1]):
            g_z[i, k] = w * (vexp(z.dtype.type(z[i, k] - row_shift)) * mass - t[i, k])


def pskd_loss_forward(z, targets, *, reduction="mean"):
    work, soft = np.ascontiguousarray(z), np.ascontiguousarray(targets)
    batch = work.shape[0]
    per_row, shift, target_mass = (np.empty(batch, dtype=np.float64) for _ in range(3))
    _pskd_rows(work, soft, per_row, shift, target_mass)
    loss = reduce_rows(per_row, reduction, z.dtype)
    return loss, (work, soft, shift, target_mass, reduction)


def pskd_loss_backward(residuals, g_loss):
    work, soft, shift, target_mass, reduction = residuals
    batch = work.shape[0]
    weight = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, batch)
    g_z = np.empty(work.shape, dtype=work.dtype)
    _pskd_backward_rows(work, soft, shift, target_mass, weight, g_z)
    return (g_z,)


IMPLS = {"pskd_loss": Impl(pskd_loss_forward, pskd_loss_backward)}
