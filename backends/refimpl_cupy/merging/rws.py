"""Robust weight signatures on CuPy: fused float64 differences, two reductions, one fused
projection; the patch as fused multiply-adds and its backward as one matrix-vector product.

Mirrors ``refimpl/merging/rws.py``: Δ and a in float64, scaled by powers of two above their
largest magnitudes (exact), ``c = ⟨Δ̂, â⟩/‖â‖²``, ``RWS = 2^p·(Δ̂ − c·â)`` rounded once. The
patch accumulates ``Σ_c β_c RWS_c`` in float64 (one fused kernel per signature) and adds
θ_clean; ``β̄ = θ̄ᵀ·[RWS_1 … RWS_C]``. Everything stays on the device (two scalars come
back to the host for the scales).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl
from refimpl.merging.rws import _power_of_two_at_least

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def difference(theta, base):
        return theta - base

    @fuse
    def remove_component(delta, clean, inverse_delta_scale, inverse_clean_scale, coefficient, delta_scale):
        return delta_scale * (delta * inverse_delta_scale - coefficient * (clean * inverse_clean_scale))

    @fuse
    def multiply_add(accumulated, beta, signature):
        return accumulated + beta * signature

    return SimpleNamespace(
        difference=difference, remove_component=remove_component, multiply_add=multiply_add
    )


kernels_for = kernel_set(_kernels)


def robust_weight_signature_forward(theta_robust, theta_clean, theta_pre):
    xp = xp_of(theta_robust)
    k = kernels_for(theta_robust)
    pre = theta_pre.astype(xp.float64)
    delta = k.difference(theta_robust.astype(xp.float64), pre).reshape(-1)  # Δ = θ_c − θ_pre
    clean = k.difference(theta_clean.astype(xp.float64), pre).reshape(-1)  # a = θ_clean − θ_pre
    delta_max, clean_max = float(xp.abs(delta).max()), float(xp.abs(clean).max())
    if clean_max == 0.0 or delta_max == 0.0:  # nothing to remove, or nothing to project: RWS = Δ
        return delta.reshape(theta_robust.shape).astype(theta_robust.dtype), None
    delta_scale, clean_scale = _power_of_two_at_least(delta_max), _power_of_two_at_least(clean_max)
    delta_hat, clean_hat = delta * (1.0 / delta_scale), clean * (1.0 / clean_scale)
    coefficient = (delta_hat @ clean_hat) / (clean_hat @ clean_hat)  # ⟨Δ̂, â⟩/‖â‖², on the device
    signature = k.remove_component(
        delta, clean, 1.0 / delta_scale, 1.0 / clean_scale, coefficient, delta_scale
    )
    return signature.reshape(theta_robust.shape).astype(theta_robust.dtype), None


def rws_patch_forward(theta_clean, signatures, alpha, *, official_squared_alpha=False):
    xp = xp_of(theta_clean)
    k = kernels_for(theta_clean)
    beta = (alpha * alpha if official_squared_alpha else alpha).astype(xp.float64)
    combination = xp.zeros(theta_clean.shape, dtype=xp.float64)
    for c in range(signatures.shape[-1]):  # Σ_c β_c RWS_c in float64, c = 1, 2, …
        combination = k.multiply_add(combination, beta[c], signatures[..., c].astype(xp.float64))
    theta = (theta_clean.astype(xp.float64) + combination).astype(theta_clean.dtype)
    return theta, (signatures, alpha, official_squared_alpha)


def rws_patch_backward(residuals, g_theta):
    signatures, alpha, official_squared_alpha = residuals
    xp = xp_of(signatures)
    count = signatures.shape[-1]
    g_beta = g_theta.reshape(-1).astype(xp.float64) @ signatures.reshape(-1, count).astype(xp.float64)
    g_alpha = 2 * alpha * g_beta if official_squared_alpha else g_beta
    return (g_alpha.astype(alpha.dtype),)


IMPLS = {
    "robust_weight_signature": Impl(robust_weight_signature_forward),
    "rws_patch": Impl(rws_patch_forward, rws_patch_backward),
}
