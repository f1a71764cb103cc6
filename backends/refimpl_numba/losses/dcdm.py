"""The DCDM loss: BLAS products with A, then fused Numba passes per sample, parallel over the batch.

Mirrors ``refimpl/losses/dcdm.py``. ``Aq`` and ``Ar`` (A symmetric, so ``q @ A`` gives the
rows ``(A q_i)ᵀ``) go through NumPy's matmul; one pass per sample forms ``κ = qᵀAq``,
``α = qᵀb/κ``, ``r = b − αAq`` and ``‖r‖²`` with float64 sums (the products and r are kept in
the input dtype, as the reference's), and the backward pass forms
``−2[α A r + (qᵀA r)(b − 2α A q)/κ]/B``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _dcdm_rows(b, q, a_q, alpha, curvature, r, loss_rows):
    for i in prange(q.shape[0]):
        kappa = 0.0
        q_b = 0.0
        for j in range(q.shape[1]):
            kappa += np.float64(q[i, j]) * a_q[i, j]
            q_b += np.float64(q[i, j]) * b[i, j]
        a = q_b / kappa
        total = 0.0
        for j in range(q.shape[1]):
            value = b[i, j] - a * a_q[i, j]
            r[i, j] = value
            total += value * value
        alpha[i] = a
        curvature[i] = kappa
        loss_rows[i] = total


@parallel_kernel(fastmath={"reassoc"})
def _dcdm_backward_rows(b, a_q, a_r, r, alpha, curvature, scale, g_q):
    for i in prange(b.shape[0]):
        q_a_r = 0.0
        for j in range(b.shape[1]):
            q_a_r += a_q[i, j] * r[i, j]
        ratio = q_a_r / curvature[i]
        for j in range(b.shape[1]):
            grad = alpha[i] * a_r[i, j] + ratio * (b[i, j] - 2.0 * alpha[i] * a_q[i, j])
            g_q[i, j] = -2.0 * scale * grad


def dcdm_loss_forward(A, b, q):  # noqa: N803
    a, b_rows, q_rows = (np.ascontiguousarray(x) for x in (A, b, q))
    a_q = q_rows @ a  # BLAS in the input dtype, as the reference (A symmetric: (Aq)ᵀ = qᵀA)
    batch = q.shape[0]
    alpha, curvature, loss_rows = np.empty(batch), np.empty(batch), np.empty(batch)
    r = np.empty_like(b_rows)
    _dcdm_rows(b_rows, q_rows, a_q, alpha, curvature, r, loss_rows)
    return np.asarray(loss_rows.mean(), dtype=q.dtype), (a, b_rows, a_q, r, alpha, curvature)


def dcdm_loss_backward(residuals, g_loss):
    a, b_rows, a_q, r, alpha, curvature = residuals
    a_r = r @ a
    g_q = np.empty_like(b_rows)
    _dcdm_backward_rows(b_rows, a_q, a_r, r, alpha, curvature, float(g_loss) / b_rows.shape[0], g_q)
    return (g_q,)


IMPLS = {"dcdm_loss": Impl(dcdm_loss_forward, dcdm_loss_backward)}
