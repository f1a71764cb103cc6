"""WiSE-FT / BANG on CuPy: a fused interpolation and a fused log-space ensemble.

Mirrors ``refimpl/merging/wise_ft.py``. The interpolation is one fused elementwise kernel
in the input dtype. The ensemble takes the max over the members, one fused kernel for
``e_k = exp(s_k − m)``, a sum over the members, ``log p̄ = m + log Σ e`` and the
responsibilities ``r_k = e_k/Σ e``; the backward ``r_k·ḡ`` is one fused product. Everything
stays on the device.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def interpolate(pre, ft, one_minus_alpha, alpha):
        return one_minus_alpha * pre + alpha * ft

    @fuse
    def shifted_exp(log_probs, log_weights, m):
        return xp.exp(log_probs + log_weights - m)  # ≤ 1: no overflow

    @fuse
    def log_mean_of(m, total):
        return m + xp.log(total)

    @fuse
    def scale(responsibilities, g):
        return responsibilities * g

    return SimpleNamespace(
        interpolate=interpolate, shifted_exp=shifted_exp, log_mean_of=log_mean_of, scale=scale
    )


kernels_for = kernel_set(_kernels)


def wise_ft_interpolate_forward(theta_pre, theta_ft, *, alpha=0.5):
    xp = xp_of(theta_pre)
    dtype = theta_pre.dtype.type
    theta = kernels_for(theta_pre).interpolate(theta_pre, theta_ft, dtype(1.0 - alpha), dtype(alpha))
    return xp.asarray(theta, dtype=theta_pre.dtype), None


def output_space_ensemble_forward(log_probs, weights=None):
    xp = xp_of(log_probs)
    k = kernels_for(log_probs)
    count = log_probs.shape[-1]
    if weights is None:
        log_weights = xp.full(count, -math.log(count), dtype=log_probs.dtype)  # w_k = 1/K
    else:
        with np.errstate(divide="ignore"):  # w_k = 0: log w_k = −inf, the member is ignored
            log_weights = xp.log(weights)
    m = (log_probs + log_weights).max(axis=-1, keepdims=True)  # finite: some weight is positive
    e = k.shifted_exp(log_probs, log_weights, m)
    total = e.sum(axis=-1, keepdims=True)
    log_mean = k.log_mean_of(m, total)[..., 0]
    return xp.asarray(log_mean, dtype=log_probs.dtype), (e / total,)


def output_space_ensemble_backward(residuals, g_log_mean):
    (responsibilities,) = residuals
    g = g_log_mean.astype(responsibilities.dtype)[..., None]
    return (kernels_for(responsibilities).scale(responsibilities, g),)


IMPLS = {
    "wise_ft_interpolate": Impl(wise_ft_interpolate_forward),
    "output_space_ensemble": Impl(output_space_ensemble_forward, output_space_ensemble_backward),
}
