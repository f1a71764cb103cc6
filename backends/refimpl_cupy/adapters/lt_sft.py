"""LT-SFT's L1 regularizer on CuPy: one fused |θ − θ₀| reduction, one fused sign kernel.

Mirrors ``refimpl/adapters/lt_sft.py``: ``R = λ·Σ|θ − θ₀|/N_params`` summed in float64, and
``θ̄ = R̄·λ·sign(θ − θ₀)/N_params`` (sign 0 at θ = θ₀). The mask selection stays in the
reference.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def abs_difference(theta, theta0):
        return abs(theta - theta0)

    @fuse
    def signed_scale(theta, theta0, scale):
        return xp.sign(theta - theta0) * scale

    return SimpleNamespace(abs_difference=abs_difference, signed_scale=signed_scale)


kernels_for = kernel_set(_kernels)


def lt_sft_l1_regularizer_forward(theta, theta0, *, l1_reg=0.0, num_params=None):
    xp = xp_of(theta)
    k = kernels_for(theta)
    count = theta.size if num_params is None else num_params
    total = k.abs_difference(theta, theta0).sum(dtype=xp.float64)
    penalty = (total * (l1_reg / count)).astype(theta.dtype)
    return penalty, (theta, theta0, l1_reg / count)


def lt_sft_l1_regularizer_backward(residuals, g_penalty):
    theta, theta0, scale = residuals
    k = kernels_for(theta)
    factor = (g_penalty.astype(theta.dtype) * theta.dtype.type(scale)).astype(theta.dtype)
    return (k.signed_scale(theta, theta0, factor).astype(theta.dtype),)


IMPLS = {"lt_sft_l1_regularizer": Impl(lt_sft_l1_regularizer_forward, lt_sft_l1_regularizer_backward)}
