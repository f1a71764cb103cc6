"""Temperature distillation KL: fused Numba row kernels, parallel over rows.

Mirrors ``refimpl/losses/distillation.py``. Each row (every index of the leading axes) is
read once per pass: both max-shifted log-sum-exps of ``z/T``, then ``ℓ = Σ p (log p − log q)``
(form "kl") or ``−Σ p log q`` ("cross_entropy"), in float64 with the exponentials in the
input's precision (``_vmath.vexp``). Only the logits and the per-row values (both
log-sum-exps among them) are kept for the backward, which recomputes ``log p`` and ``log q``
per element instead of storing three (rows, K) arrays, and writes both cotangents in one pass::

    z̄_s = w·(q − p)
    z̄_t = w·p·(log p − log q − ℓ_KL)              form "kl"
    z̄_t = −w·p·(log q − Σ_k p_k log q_k)           form "cross_entropy"

with ``w`` the row weight of the reduction times the cotangent times ``s/T`` (s = T² or 1).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .._vmath import row_log_sum_exp, vexp

KL, CROSS_ENTROPY = 0, 1


@njit(cache=True, inline="always")
def _row_lse(z, i, inverse_t):
    """log Σ exp(u) of ``u = z[i]/T`` (float64)."""
    largest, log_total = row_log_sum_exp(z, i, inverse_t)
    return largest + log_total


@parallel_kernel(fastmath={"reassoc"})
def _rows(z_s, z_t, inverse_t, form, per_row, cross, lse):
    for i in prange(z_s.shape[0]):
        lse_s = _row_lse(z_s, i, inverse_t)
        lse_t = _row_lse(z_t, i, inverse_t)
        lse[0, i] = lse_s  # kept for the backward: two exp passes fewer
        lse[1, i] = lse_t
        kl = 0.0
        p_log_q = 0.0
        for k in range(z_s.shape[1]):
            log_q = np.float64(z_s[i, k]) * inverse_t - lse_s
            log_p = np.float64(z_t[i, k]) * inverse_t - lse_t
            p = vexp(z_t.dtype.type(log_p))
            kl += p * (log_p - log_q)
            p_log_q += p * log_q
        per_row[i] = kl if form == KL else -p_log_q
        cross[i] = p_log_q if form == CROSS_ENTROPY else kl


@parallel_kernel(fastmath={"reassoc"})
def _rows_backward(z_s, z_t, inverse_t, form, cross, lse, w, g_s, g_t):
    for i in prange(z_s.shape[0]):
        lse_s = lse[0, i]
        lse_t = lse[1, i]
        for k in range(z_s.shape[1]):
            log_q = np.float64(z_s[i, k]) * inverse_t - lse_s
            log_p = np.float64(z_t[i, k]) * inverse_t - lse_t
            p = vexp(z_t.dtype.type(log_p))
            g_s[i, k] = w[i] * (vexp(z_s.dtype.type(log_q)) - p)
            if form == KL:  # cross[i] = ℓ_KL of the row
                g_t[i, k] = w[i] * (p * (log_p - log_q - cross[i]))
            else:  # cross[i] = Σ_k p_k log q_k
                g_t[i, k] = -w[i] * (p * (log_q - cross[i]))


def distillation_kl_forward(z_student, z_teacher, *, temperature, scale="T2", form="kl", reduction="mean"):
    classes = z_student.shape[-1]
    leading = z_student.shape[:-1]
    z_s = np.ascontiguousarray(z_student).reshape(-1, classes)
    z_t = np.ascontiguousarray(z_teacher).reshape(-1, classes)
    rows = z_s.shape[0]
    form_code = KL if form == "kl" else CROSS_ENTROPY
    per_row = np.empty(rows, dtype=np.float64)
    cross = np.empty(rows, dtype=np.float64)
    lse = np.empty((2, rows), dtype=np.float64)
    _rows(z_s, z_t, 1.0 / temperature, form_code, per_row, cross, lse)
    factor = temperature * temperature if scale == "T2" else 1.0
    if reduction == "mean":
        loss, row_weight = factor * per_row.sum() / max(rows, 1), 1 / max(rows, 1)
    elif reduction == "batchmean":
        loss, row_weight = factor * per_row.sum() / z_student.shape[0], 1 / z_student.shape[0]
    elif reduction == "sum":
        loss, row_weight = factor * per_row.sum(), 1.0
    else:
        loss, row_weight = (factor * per_row).reshape(leading), None
    residuals = (
        z_s,
        z_t,
        temperature,
        form_code,
        cross,
        lse,
        factor / temperature,
        row_weight,
        z_student.shape,
    )
    return np.asarray(loss, dtype=z_student.dtype), residuals


def distillation_kl_backward(residuals, g_loss):
    z_s, z_t, temperature, form_code, cross, lse, factor_over_t, row_weight, shape = residuals
    if row_weight is None:  # reduction="none": one cotangent per row
        w = np.asarray(g_loss, dtype=np.float64).reshape(-1) * factor_over_t
    else:
        w = np.full(z_s.shape[0], float(g_loss) * row_weight * factor_over_t)
    g_s = np.empty_like(z_s)
    g_t = np.empty_like(z_t)
    _rows_backward(z_s, z_t, 1.0 / temperature, form_code, cross, lse, w, g_s, g_t)
    return g_s.reshape(shape), g_t.reshape(shape)


IMPLS = {"distillation_kl": Impl(distillation_kl_forward, distillation_kl_backward)}
