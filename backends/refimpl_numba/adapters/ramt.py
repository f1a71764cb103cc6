"""R-AMT: Numba kernels for the masked weight and the distillation loss.

Mirrors ``refimpl/adapters/ramt.py``. The masked weight is one parallel elementwise
selection ``where(m_real > τ, W, 0)``; its straight-through backward ``m̄ = G ⊙ W`` is the
elementwise product (NumPy, one pass). The distillation loss is row-parallel: per row the
maxima of ``u = z_stu/T`` and of the mixed logits ``(α z_tea + (1 − α) z_stu)/T`` (mixed in
the dtype, as the reference), one ``_vmath.vexp`` per softmax and element with the max
subtracted, float64 sums, and ``Σ_k t_k ℓ_k``; the two softmaxes ``q`` and ``t`` are kept,
so the backward ``(T/B)·L̄·[(q − t) + (1 − α) t ⊙ (ℓ − ⟨t, ℓ⟩)]`` evaluates no exponential.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .._vmath import vexp


# -- the masked weight ---------------------------------------------------------------------------
@parallel_kernel()
def _select(W, m_real, threshold, w_eff):  # noqa: N803
    for j in prange(W.shape[0]):
        w_eff[j] = W[j] if m_real[j] > threshold else 0.0


def mask_tuning_weight_forward(W, m_real, *, threshold):  # noqa: N803
    flat = np.ascontiguousarray(W).reshape(-1)
    w_eff = np.empty(flat.shape, dtype=W.dtype)
    _select(flat, np.ascontiguousarray(m_real).reshape(-1), np.float64(threshold), w_eff)
    return w_eff.reshape(W.shape), (W,)


def mask_tuning_weight_backward(residuals, g_w_eff):
    (W,) = residuals
    return ((g_w_eff * W).astype(W.dtype, copy=False),)  # straight through: G ⊙ W


# -- the distillation loss -------------------------------------------------------------------------
@parallel_kernel(fastmath={"reassoc"})
def _loss_rows(z_stu, z_tea, alpha, beta, inverse_t, q, t, per_row, lse_u):
    classes = z_stu.shape[1]
    for i in prange(z_stu.shape[0]):
        m_u = -math.inf
        m_v = -math.inf
        for k in range(classes):
            mixed = alpha * z_tea[i, k] + beta * z_stu[i, k]  # in the dtype, as the reference
            m_u = max(m_u, np.float64(z_stu[i, k]) * inverse_t)
            m_v = max(m_v, np.float64(mixed) * inverse_t)
        total_u = 0.0
        total_v = 0.0
        for k in range(classes):  # one exponential per softmax and element, kept for the backward
            mixed = alpha * z_tea[i, k] + beta * z_stu[i, k]
            e_u = vexp(z_stu.dtype.type(np.float64(z_stu[i, k]) * inverse_t - m_u))  # ≤ 0: no overflow
            e_v = vexp(z_stu.dtype.type(np.float64(mixed) * inverse_t - m_v))
            q[i, k] = e_u
            t[i, k] = e_v
            total_u += e_u
            total_v += e_v
        shift_u = m_u + math.log(total_u)  # the row's log-sum-exp of u
        inverse_u, inverse_v = 1.0 / total_u, 1.0 / total_v
        cross = 0.0
        for k in range(classes):
            q[i, k] = np.float64(q[i, k]) * inverse_u
            t_k = np.float64(t[i, k]) * inverse_v
            t[i, k] = t_k
            cross += t_k * (shift_u - np.float64(z_stu[i, k]) * inverse_t)  # t_k ℓ_k
        per_row[i] = cross  # ⟨t, ℓ⟩, reused by the backward
        lse_u[i] = shift_u


@parallel_kernel(fastmath={"reassoc"})
def _loss_backward_rows(z_stu, inverse_t, q, t, per_row, lse_u, factor, through_target, g_z):
    for i in prange(z_stu.shape[0]):
        for k in range(z_stu.shape[1]):
            t_k = np.float64(t[i, k])
            ell_k = lse_u[i] - np.float64(z_stu[i, k]) * inverse_t
            g_z[i, k] = factor * ((np.float64(q[i, k]) - t_k) + through_target * t_k * (ell_k - per_row[i]))


def ramt_distillation_loss_forward(z_stu, z_tea, *, alpha, temperature, detach_target=False):
    dtype = z_stu.dtype.type
    work = np.ascontiguousarray(z_stu)
    batch = work.shape[0]
    q, t = np.empty(work.shape, dtype=work.dtype), np.empty(work.shape, dtype=work.dtype)
    per_row, lse_u = np.empty(batch, dtype=np.float64), np.empty(batch, dtype=np.float64)
    inverse_t = float(dtype(1.0 / temperature))  # the reference's u = z·(1/T) with the dtype's 1/T
    _loss_rows(
        work, np.ascontiguousarray(z_tea), dtype(alpha), dtype(1.0 - alpha), inverse_t, q, t, per_row, lse_u
    )
    loss = np.asarray(temperature**2 * per_row.sum() / batch, dtype=z_stu.dtype)
    return loss, (work, inverse_t, q, t, per_row, lse_u, alpha, temperature, detach_target)


def ramt_distillation_loss_backward(residuals, g_loss):
    work, inverse_t, q, t, per_row, lse_u, alpha, temperature, detach_target = residuals
    factor = float(g_loss) * temperature / work.shape[0]
    through_target = 0.0 if detach_target else 1.0 - alpha
    g_z = np.empty(work.shape, dtype=work.dtype)
    _loss_backward_rows(work, inverse_t, q, t, per_row, lse_u, factor, through_target, g_z)
    return (g_z,)


IMPLS = {
    "mask_tuning_weight": Impl(mask_tuning_weight_forward, mask_tuning_weight_backward),
    "ramt_distillation_loss": Impl(ramt_distillation_loss_forward, ramt_distillation_loss_backward),
}
