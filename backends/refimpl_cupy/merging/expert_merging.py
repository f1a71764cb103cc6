"""Expert Merging on CuPy: a gathered per-element α, fused multiply-adds, per-chunk dot products.

Mirrors ``refimpl/merging/expert_merging.py``. The chunk of every flattened element is an
index array built once on the host from ``chunk_bounds`` (C is small); the merge gathers
``α_{k, c(j)}`` and accumulates ``Σ_k α τ_k`` with one fused multiply-add kernel per expert,
in the reference's order (expert sum first, then θ₀). Its backward is one matrix-vector
product ``θ̄|_c · τ|_c`` per non-empty chunk. The MSE is one fused squared-difference
reduction and one fused elementwise backward. Everything stays on the device.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl, sigmoid_and_slope
from refimpl.merging.expert_merging import chunk_bounds

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def multiply_add(accumulated, alpha, tau):
        return accumulated + alpha * tau

    @fuse
    def sum_of_squares(h_merged, h_expert):
        d = h_merged - h_expert
        return xp.sum(d * d)

    @fuse
    def mse_grad(h_merged, h_expert, scale):
        return scale * (h_merged - h_expert)

    @fuse
    def regularizer_grad(sign, slope, scale):
        return scale * sign * slope

    return SimpleNamespace(
        multiply_add=multiply_add,
        sum_of_squares=sum_of_squares,
        mse_grad=mse_grad,
        regularizer_grad=regularizer_grad,
    )


kernels_for = kernel_set(_kernels)


def expert_merging_forward(theta_base, task_vectors, a, *, official_chunking=True):
    xp = xp_of(theta_base)
    k = kernels_for(theta_base)
    n = theta_base.size
    num_experts, num_chunks = a.shape
    alpha, slope = sigmoid_and_slope(a)
    bounds = chunk_bounds(n, num_chunks, official_chunking)
    chunk_of = xp.asarray(np.repeat(np.arange(num_chunks), np.diff(bounds)))  # c(j), host-built
    tau = task_vectors.reshape(n, num_experts)
    combined = xp.zeros(n, dtype=theta_base.dtype)
    for expert in range(num_experts):  # the official order: Σ_k first, then θ₀ + Σ
        combined = k.multiply_add(combined, alpha[expert][chunk_of], tau[:, expert])
    theta = theta_base + combined.reshape(theta_base.shape)
    return theta, (tau, slope, bounds)


def expert_merging_backward(residuals, g_theta):
    tau, slope, bounds = residuals
    xp = xp_of(tau)
    g_flat = g_theta.reshape(-1)
    num_experts, num_chunks = slope.shape
    g_alpha = xp.zeros((num_experts, num_chunks), dtype=tau.dtype)
    for c in range(num_chunks):
        start, end = int(bounds[c]), int(bounds[c + 1])
        if end > start:
            g_alpha[:, c] = g_flat[start:end] @ tau[start:end]  # ⟨θ̄|_c, τ_{k,c}⟩ for every k
    return (g_alpha * slope,)


def expert_merging_coefficient_regularizer_forward(a, *, weight=0.1, num_experts, target=0.1):
    xp = xp_of(a)
    dtype = a.dtype.type
    alpha, slope = sigmoid_and_slope(a)
    per_expert = a.size // num_experts  # N/K
    deviation = alpha - dtype(target)
    loss = dtype(weight) * abs(deviation).sum() / dtype(per_expert)
    return xp.asarray(loss, dtype=a.dtype), (xp.sign(deviation), slope, dtype(weight / per_expert))


def expert_merging_coefficient_regularizer_backward(residuals, g_loss):
    sign, slope, scale = residuals
    xp = xp_of(sign)
    return (kernels_for(sign).regularizer_grad(sign, slope, xp.asarray(g_loss * scale, dtype=slope.dtype)),)


def hidden_state_mse_forward(h_merged, h_expert):
    xp = xp_of(h_merged)
    total = kernels_for(h_merged).sum_of_squares(h_merged, h_expert)
    loss = total / h_merged.dtype.type(h_merged.size)
    return xp.asarray(loss, dtype=h_merged.dtype), (h_merged, h_expert)


def hidden_state_mse_backward(residuals, g_loss):
    h_merged, h_expert = residuals
    xp = xp_of(h_merged)
    scale = xp.asarray(g_loss * (2 / h_merged.size), dtype=h_merged.dtype)
    g_merged = kernels_for(h_merged).mse_grad(h_merged, h_expert, scale)
    return g_merged, -g_merged


IMPLS = {
    "expert_merging": Impl(expert_merging_forward, expert_merging_backward),
    "expert_merging_coefficient_regularizer": Impl(
        expert_merging_coefficient_regularizer_forward, expert_merging_coefficient_regularizer_backward
    ),
    "hidden_state_mse": Impl(hidden_state_mse_forward, hidden_state_mse_backward),
}
