"""Per-step DPO and the advantage-weighted loss: fused Numba kernels, parallel over pairs/steps.

Mirrors ``refimpl/losses/rl_incorrect_synthetic.py``. Per-step DPO: the margin
``Δ = (log π⁺ − log π_ref⁺) − (log π⁻ − log π_ref⁻)`` in float64, then ``e = exp(−|u|)``
(``_vmath.exp``, u = −βΔ), the weight ``σ(u)`` and the stable softplus
``ℓ = max(u, 0) + log1p(e)`` (``_vmath.log1p``) in one pass that vectorizes; the backward is
one scaling pass ``ḡ⁺ = −wβσ(−βΔ) = −ḡ⁻``. The
advantage-weighted loss is linear: ``ℓ_i = −Â_i log π_i`` and ``ḡ_i = −w_i Â_i``, one
elementwise pass each way.
``mc_step_advantages`` (a Monte-Carlo estimate, not differentiable) stays reference-only.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel
from .._vmath import exp, log1p


@njit(cache=True, inline="always")
def _minus_beta_margin(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta, i):
    """``u = −βΔ`` of pair i, the two log-ratios formed first, in float64."""
    chosen_log_ratio = np.float64(policy_chosen[i]) - np.float64(reference_chosen[i])
    rejected_log_ratio = np.float64(policy_rejected[i]) - np.float64(reference_rejected[i])
    return -beta * (chosen_log_ratio - rejected_log_ratio)


@parallel_kernel(fastmath={"reassoc"})
def _dpo_pairs(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta, per_pair, weight):
    # exp and log1p from _vmath: no library call, so the loop vectorizes
    for i in prange(policy_chosen.shape[0]):
        u = _minus_beta_margin(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta, i)
        e = exp(-abs(u))  # exp never sees a positive argument
        numerator = 1.0 if u >= 0 else e
        weight[i] = numerator / (1.0 + e)  # σ(u) = σ(−βΔ) without overflow
        per_pair[i] = max(u, 0.0) + log1p(e)  # softplus(u) = −log σ(βΔ)


@parallel_kernel(fastmath={"reassoc"})
def _dpo_backward(weight, row_cotangent, beta, g_chosen, g_rejected):
    for i in prange(weight.shape[0]):
        g = -beta * row_cotangent[i] * weight[i]  # −wβσ(−βΔ)
        g_chosen[i] = g
        g_rejected[i] = -g


def per_step_dpo_loss_forward(
    policy_chosen_logps,
    policy_rejected_logps,
    reference_chosen_logps,
    reference_rejected_logps,
    *,
    beta,
    reduction="mean",
):
    inputs = [
        np.ascontiguousarray(a)
        for a in (
            policy_chosen_logps,
            policy_rejected_logps,
            reference_chosen_logps,
            reference_rejected_logps,
        )
    ]
    batch = inputs[0].shape[0]
    per_pair, weight = np.empty(batch), np.empty(batch)
    _dpo_pairs(*inputs, float(beta), per_pair, weight)
    dtype = policy_chosen_logps.dtype
    return reduce_rows(per_pair, reduction, dtype), (weight, float(beta), reduction, dtype)


def per_step_dpo_loss_backward(residuals, g_loss):
    weight, beta, reduction, dtype = residuals
    row_cotangent = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, weight.shape[0])
    g_chosen, g_rejected = np.empty(weight.shape, dtype=dtype), np.empty(weight.shape, dtype=dtype)
    _dpo_backward(weight, row_cotangent, beta, g_chosen, g_rejected)
    return g_chosen, g_rejected


@parallel_kernel(fastmath={"reassoc"})
def _weighted_steps_total(log_probs, advantages):
    total = 0.0  # float64 accumulator; no per-step array for "sum"/"mean"
    for i in prange(log_probs.shape[0]):
        total += -np.float64(advantages[i]) * np.float64(log_probs[i])  # −Â_i log π_i
    return total


@parallel_kernel(fastmath={"reassoc"})
def _weighted_steps(log_probs, advantages, per_step):
    for i in prange(log_probs.shape[0]):
        per_step[i] = -np.float64(advantages[i]) * np.float64(log_probs[i])


@parallel_kernel(fastmath={"reassoc"})
def _weighted_steps_backward(advantages, scale, g_log_probs):
    for i in prange(advantages.shape[0]):
        g_log_probs[i] = -scale * np.float64(advantages[i])  # −w Â_i, one w for "sum"/"mean"


@parallel_kernel(fastmath={"reassoc"})
def _weighted_steps_backward_rows(advantages, row_cotangent, g_log_probs):
    for i in prange(advantages.shape[0]):
        g_log_probs[i] = -np.float64(row_cotangent[i]) * np.float64(advantages[i])  # −w_i Â_i


def advantage_weighted_loss_forward(log_probs, advantages, *, reduction="sum"):
    log_probs_c, advantages_c = np.ascontiguousarray(log_probs), np.ascontiguousarray(advantages)
    steps = log_probs_c.shape[0]
    if reduction == "none":
        loss = np.empty(steps, dtype=log_probs.dtype)
        _weighted_steps(log_probs_c, advantages_c, loss)
    else:
        total = _weighted_steps_total(log_probs_c, advantages_c)
        loss = np.asarray(total / steps if reduction == "mean" else total, dtype=log_probs.dtype)
    return loss, (advantages_c, reduction)


def advantage_weighted_loss_backward(residuals, g_loss):
    advantages, reduction = residuals
    steps = advantages.shape[0]
    g_log_probs = np.empty(steps, dtype=advantages.dtype)
    if reduction == "none":
        _weighted_steps_backward_rows(advantages, np.ascontiguousarray(g_loss, dtype=np.float64), g_log_probs)
    else:
        g = float(np.asarray(g_loss, dtype=np.float64))
        _weighted_steps_backward(advantages, g / steps if reduction == "mean" else g, g_log_probs)
    return (g_log_probs,)


IMPLS = {
    "per_step_dpo_loss": Impl(per_step_dpo_loss_forward, per_step_dpo_loss_backward),
    "advantage_weighted_loss": Impl(advantage_weighted_loss_forward, advantage_weighted_loss_backward),
}
