"""Temperature distillation KL on CuPy: max-shifted log-softmaxes, fused per-element pieces.

Mirrors ``refimpl/losses/distillation.py``. The row maxima and log-sum-exps are CuPy
reductions over the last axis; the per-element terms ``p (log p − log q)`` (or ``−p log q``)
and both cotangents are fused kernels. Nothing leaves the device; the scalar reductions
stay 0-d arrays.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def shifted(z, z_max, inverse_t):
        # (z − max z)/T: the max is subtracted first, so exp cannot overflow
        return (z - z_max) * inverse_t

    @fuse
    def kl_terms(log_p, log_q):
        return xp.exp(log_p) * (log_p - log_q)

    @fuse
    def cross_terms(log_p, log_q):
        return xp.exp(log_p) * log_q

    @fuse
    def student_grad(log_q, log_p, w):
        return w * (xp.exp(log_q) - xp.exp(log_p))

    @fuse
    def teacher_grad_kl(log_q, log_p, kl_row, w):
        return w * (xp.exp(log_p) * (log_p - log_q - kl_row))

    @fuse
    def teacher_grad_cross(log_q, log_p, cross_row, w):
        return -w * (xp.exp(log_p) * (log_q - cross_row))

    return SimpleNamespace(
        shifted=shifted,
        kl_terms=kl_terms,
        cross_terms=cross_terms,
        student_grad=student_grad,
        teacher_grad_kl=teacher_grad_kl,
        teacher_grad_cross=teacher_grad_cross,
    )


kernels_for = kernel_set(_kernels)


def _log_softmax(k, xp, z, inverse_t):
    """``log softmax(z/T)`` over the last axis; T > 0, so the max of z/T is max(z)/T."""
    u = k.shifted(z, z.max(axis=-1, keepdims=True), inverse_t)
    return u - xp.log(xp.exp(u).sum(axis=-1, keepdims=True))


def distillation_kl_forward(z_student, z_teacher, *, temperature, scale="T2", form="kl", reduction="mean"):
    xp = xp_of(z_student)
    k = kernels_for(z_student)
    dtype = z_student.dtype.type
    inverse_t = dtype(1 / temperature)
    log_q = _log_softmax(k, xp, z_student, inverse_t)
    log_p = _log_softmax(k, xp, z_teacher, inverse_t)
    if form == "kl":
        per_row = k.kl_terms(log_p, log_q).sum(axis=-1)
    else:
        per_row = -k.cross_terms(log_p, log_q).sum(axis=-1)
    factor = dtype(temperature * temperature) if scale == "T2" else dtype(1)
    scaled = factor * per_row
    if reduction == "mean":
        loss, row_weight = scaled.mean(), 1 / max(scaled.size, 1)
    elif reduction == "batchmean":
        loss, row_weight = scaled.sum() / dtype(z_student.shape[0]), 1 / z_student.shape[0]
    elif reduction == "sum":
        loss, row_weight = scaled.sum(), 1.0
    else:
        loss, row_weight = scaled, None
    residuals = (log_q, log_p, per_row, factor * inverse_t, row_weight, form)
    return xp.asarray(loss, dtype=z_student.dtype), residuals


def distillation_kl_backward(residuals, g_loss):
    log_q, log_p, per_row, factor_over_t, row_weight, form = residuals
    xp = xp_of(log_q)
    k = kernels_for(log_q)
    dtype = log_q.dtype
    if row_weight is None:  # reduction="none": one cotangent per row
        w = (xp.asarray(g_loss, dtype=dtype) * factor_over_t)[..., None]
    else:
        w = xp.asarray(g_loss * (row_weight * factor_over_t), dtype=dtype)
    g_student = k.student_grad(log_q, log_p, w)
    if form == "kl":
        g_teacher = k.teacher_grad_kl(log_q, log_p, per_row[..., None], w)
    else:
        cross = k.cross_terms(log_p, log_q).sum(axis=-1, keepdims=True)
        g_teacher = k.teacher_grad_cross(log_q, log_p, cross, w)
    return g_student.astype(dtype, copy=False), g_teacher.astype(dtype, copy=False)


IMPLS = {"distillation_kl": Impl(distillation_kl_forward, distillation_kl_backward)}
