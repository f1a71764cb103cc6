"""The AMCL loss on CuPy: a stable argsort for the top-k negatives, fused elementwise kernels.

Mirrors ``refimpl/losses/amcl.py``: the temperatures ``τ = τ_min + (τ_max − τ_min)σ(−t)`` of the
positive and the kept negatives, the per-pair terms and their partial derivatives in one fused
kernel each; the backward scatters the kept columns' cotangents into zeros.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def temperature(t, tau_min, width):
        e = xp.exp(-abs(t))  # σ(−t) from exp(−|t|): no overflow
        alpha = xp.where(t <= 0, 1 / (1 + e), e / (1 + e))
        return tau_min + width * alpha, -width * e / ((1 + e) * (1 + e))

    @fuse
    def positive_terms(s, tau, slope, beta, half_d):
        inverse = 1 / tau
        value = -s * inverse + beta * (half_d * xp.log(tau) + inverse)
        g_tau = s * inverse * inverse + beta * (half_d * inverse - inverse * inverse)
        return value, -inverse, g_tau * slope

    @fuse
    def negative_terms(s, tau, slope, beta, inverse_k):
        inverse = 1 / tau
        value = s * inverse * inverse_k - beta * (xp.log(tau) + inverse)
        g_tau = -s * inverse * inverse * inverse_k - beta * (inverse - inverse * inverse)
        return value, inverse * inverse_k, g_tau * slope

    return SimpleNamespace(
        temperature=temperature, positive_terms=positive_terms, negative_terms=negative_terms
    )


kernels_for = kernel_set(_kernels)


def amcl_loss_forward(s_pos, t_pos, s_neg, t_neg, *, dim, beta=0.01, tau_min=1e-5, tau_max=2.0, top_k=100):
    xp = xp_of(s_pos)
    kern = kernels_for(s_pos)
    dtype = s_pos.dtype.type
    k = min(top_k, s_neg.shape[-1])
    selected = xp.argsort(-s_neg, axis=-1, kind="stable")[..., :k]  # ties: the lowest index first
    s_sel = xp.take_along_axis(s_neg, selected, axis=-1)
    t_sel = xp.take_along_axis(t_neg, selected, axis=-1)
    width = dtype(tau_max - tau_min)
    tau_pos, slope_pos = kern.temperature(t_pos, dtype(tau_min), width)
    tau_sel, slope_sel = kern.temperature(t_sel, dtype(tau_min), width)
    value_pos, g_s_pos, g_t_pos = kern.positive_terms(
        s_pos, tau_pos, slope_pos, dtype(beta), dtype(0.5 * dim)
    )
    value_sel, g_s_sel, g_t_sel = kern.negative_terms(s_sel, tau_sel, slope_sel, dtype(beta), dtype(1 / k))
    per_row = value_pos + value_sel.sum(axis=-1)
    loss = per_row.mean(axis=-1).sum().astype(s_pos.dtype)
    return loss, (selected, g_s_pos, g_t_pos, g_s_sel, g_t_sel, s_neg.shape)


def amcl_loss_backward(residuals, g_loss):
    selected, g_s_pos, g_t_pos, g_s_sel, g_t_sel, shape = residuals
    xp = xp_of(g_s_pos)
    dtype = g_s_pos.dtype
    weight = g_loss.astype(dtype) / dtype.type(shape[1])  # mean over rows, sum over heads
    g_s_neg = xp.zeros(shape, dtype=dtype)
    g_t_neg = xp.zeros(shape, dtype=dtype)
    xp.put_along_axis(g_s_neg, selected, weight * g_s_sel, axis=-1)  # outside the kept set: 0
    xp.put_along_axis(g_t_neg, selected, weight * g_t_sel, axis=-1)
    return (weight * g_s_pos).astype(dtype), (weight * g_t_pos).astype(dtype), g_s_neg, g_t_neg


IMPLS = {"amcl_loss": Impl(amcl_loss_forward, amcl_loss_backward)}
