"""Per-step DPO and the advantage-weighted loss on CuPy: fused elementwise kernels.

Mirrors ``refimpl/losses/rl_incorrect_synthetic.py``. Per-step DPO: one fused kernel forms
``u = −β[(log π⁺ − log π_ref⁺) − (log π⁻ − log π_ref⁻)]``, the stable softplus ``softplus(u)``
and ``σ(u)`` from one ``exp(−|u|)``; the backward is ``ḡ⁺ = −wβσ(u) = −ḡ⁻``. The
advantage-weighted loss: ``ℓ = −Â log π`` and ``ḡ = −wÂ``. ``mc_step_advantages`` (not
differentiable) stays reference-only.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._fuse import kernel_set


def _kernels(xp, fuse):
    @fuse
    def dpo_softplus_and_sigmoid(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):
        u = -beta * ((policy_chosen - reference_chosen) - (policy_rejected - reference_rejected))
        e = xp.exp(-abs(u))
        return xp.maximum(u, 0) + xp.log1p(e), xp.where(u >= 0, 1 / (1 + e), e / (1 + e))

    @fuse
    def scaled_negative(w, x):
        return -(w * x)

    return SimpleNamespace(dpo_softplus_and_sigmoid=dpo_softplus_and_sigmoid, scaled_negative=scaled_negative)


kernels_for = kernel_set(_kernels)


def per_step_dpo_loss_forward(
    policy_chosen_logps,
    policy_rejected_logps,
    reference_chosen_logps,
    reference_rejected_logps,
    *,
    beta,
    reduction="mean",
):
    k = kernels_for(policy_chosen_logps)
    dtype = policy_chosen_logps.dtype
    per_pair, weight = k.dpo_softplus_and_sigmoid(
        policy_chosen_logps,
        policy_rejected_logps,
        reference_chosen_logps,
        reference_rejected_logps,
        dtype.type(beta),
    )
    return reduce_rows(per_pair, reduction, dtype), (weight, beta, reduction)


def per_step_dpo_loss_backward(residuals, g_loss):
    weight, beta, reduction = residuals
    k = kernels_for(weight)
    dtype = weight.dtype
    w = row_weights(g_loss.astype(dtype), reduction, weight.shape[0])
    g_chosen = k.scaled_negative(w * dtype.type(beta), weight).astype(dtype)  # −wβσ(−βΔ)
    return g_chosen, -g_chosen


def advantage_weighted_loss_forward(log_probs, advantages, *, reduction="sum"):
    k = kernels_for(log_probs)
    per_step = k.scaled_negative(advantages, log_probs)  # −Â log π
    return reduce_rows(per_step, reduction, log_probs.dtype), (advantages, reduction)


def advantage_weighted_loss_backward(residuals, g_loss):
    advantages, reduction = residuals
    k = kernels_for(advantages)
    w = row_weights(g_loss.astype(advantages.dtype), reduction, advantages.shape[0])
    return (k.scaled_negative(w, advantages).astype(advantages.dtype),)


IMPLS = {
    "per_step_dpo_loss": Impl(per_step_dpo_loss_forward, per_step_dpo_loss_backward),
    "advantage_weighted_loss": Impl(advantage_weighted_loss_forward, advantage_weighted_loss_backward),
}
