"""R-AMT on CuPy: a fused selection for the masked weight, row log-softmaxes and one fused
gradient kernel for the distillation loss.

Mirrors ``refimpl/adapters/ramt.py``: ``W_eff = where(m_real > τ, W, 0)`` with the
straight-through ``m̄ = G ⊙ W``; the loss ``T²·mean_i Σ_k t_k ℓ_k`` from the shared
``log_softmax``/``softmax`` blocks (max subtracted), and its backward
``(T/B)·L̄·[(q − t) + (1 − α) t ⊙ (ℓ − ⟨t, ℓ⟩)]`` fused.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, log_softmax, softmax

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def select(W, m_real, threshold):  # noqa: N803
        return xp.where(m_real > threshold, W, 0)

    @fuse
    def multiply(g, W):  # noqa: N803
        return g * W

    @fuse
    def loss_grad(log_q, target, mean_ell, through_target, factor):
        return factor * ((xp.exp(log_q) - target) + through_target * target * (-log_q - mean_ell))

    return SimpleNamespace(select=select, multiply=multiply, loss_grad=loss_grad)


kernels_for = kernel_set(_kernels)


def mask_tuning_weight_forward(W, m_real, *, threshold):  # noqa: N803
    k = kernels_for(W)
    return k.select(W, m_real, W.dtype.type(threshold)).astype(W.dtype), (W,)


def mask_tuning_weight_backward(residuals, g_w_eff):
    (W,) = residuals
    k = kernels_for(W)
    return (k.multiply(g_w_eff.astype(W.dtype), W).astype(W.dtype),)


def ramt_distillation_loss_forward(z_stu, z_tea, *, alpha, temperature, detach_target=False):
    xp = xp_of(z_stu)
    dtype = z_stu.dtype.type
    inverse_t = dtype(1.0 / temperature)
    log_q = log_softmax(z_stu * inverse_t)
    target = softmax((dtype(alpha) * z_tea + dtype(1.0 - alpha) * z_stu) * inverse_t)
    per_row = -(target * log_q).sum(axis=-1, dtype=xp.float64)
    batch = z_stu.shape[0]
    loss = (per_row.sum() * (temperature**2 / batch)).astype(z_stu.dtype)
    return loss, (log_q, target, per_row, alpha, temperature, detach_target)


def ramt_distillation_loss_backward(residuals, g_loss):
    log_q, target, per_row, alpha, temperature, detach_target = residuals
    k = kernels_for(log_q)
    dtype = log_q.dtype.type
    factor = (g_loss.astype(log_q.dtype) * dtype(temperature / log_q.shape[0])).astype(log_q.dtype)
    through_target = dtype(0.0 if detach_target else 1.0 - alpha)
    mean_ell = per_row.astype(log_q.dtype)[:, None]  # ⟨t, ℓ⟩ per row
    return (k.loss_grad(log_q, target, mean_ell, through_target, factor).astype(log_q.dtype),)


IMPLS = {
    "mask_tuning_weight": Impl(mask_tuning_weight_forward, mask_tuning_weight_backward),
    "ramt_distillation_loss": Impl(ramt_distillation_loss_forward, ramt_distillation_loss_backward),
}
