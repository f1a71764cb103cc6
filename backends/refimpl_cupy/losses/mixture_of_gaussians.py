"""Mixture-of-Gaussians NLL on CuPy: fused elementwise kernels + row reductions.

Mirrors ``refimpl/losses/mixture_of_gaussians.py``: one fused kernel per element for
``½t² + s`` (``t = (e − μ)·exp(−s)``), summed over C; ``log π`` and the log-sum-exp over
components by the shared blocks (max subtracted); the backward is one fused kernel that
recomputes ``t`` and returns ``γt/σ`` and ``−γ(t² − 1)`` (no (N, M, C) residuals kept).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl, log_softmax, logsumexp, reduce_rows, row_weights

from .._fuse import kernel_set, xp_of

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _kernels(xp, fuse):
    @fuse
    def energy(e, mu, log_sigma):  # ½t² + log σ
        t = (e - mu) * xp.exp(-log_sigma)
        return 0.5 * (t * t) + log_sigma

    @fuse
    def grads(e, mu, log_sigma, w_gamma):
        inverse_sigma = xp.exp(-log_sigma)
        t = (e - mu) * inverse_sigma
        pull = w_gamma * t * inverse_sigma  # γ_m t/σ
        return pull, -w_gamma * (t * t - 1)

    return SimpleNamespace(energy=energy, grads=grads)


kernels_for = kernel_set(_kernels)


def mixture_of_gaussians_nll_forward(e, logits, mu, log_sigma, *, reduction="mean"):
    xp = xp_of(e)
    k = kernels_for(e)
    dtype = e.dtype.type
    log_pi = log_softmax(logits)
    log_joint = (
        log_pi - k.energy(e[:, None, :], mu, log_sigma).sum(axis=-1) - dtype(e.shape[-1] * HALF_LOG_2PI)
    )
    log_likelihood = logsumexp(log_joint, axis=-1)
    gamma = xp.exp(log_joint - log_likelihood[:, None])
    residuals = (e, mu, log_sigma, gamma, xp.exp(log_pi), reduction)
    return reduce_rows(-log_likelihood, reduction, e.dtype), residuals


def mixture_of_gaussians_nll_backward(residuals, g_loss):
    e, mu, log_sigma, gamma, pi, reduction = residuals
    k = kernels_for(e)
    w = row_weights(g_loss.astype(e.dtype), reduction, e.shape[0])
    pull, g_log_sigma = k.grads(e[:, None, :], mu, log_sigma, (w[:, None] * gamma)[:, :, None])
    g_logits = w[:, None] * (pi - gamma)
    return tuple(g.astype(e.dtype) for g in (pull.sum(axis=1), g_logits, -pull, g_log_sigma))


IMPLS = {
    "mixture_of_gaussians_nll": Impl(mixture_of_gaussians_nll_forward, mixture_of_gaussians_nll_backward)
}
