"""Mixture-of-Gaussians NLL: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/mixture_of_gaussians.py``. Per row: ``log π`` from the logits'
log-sum-exp (``row_log_sum_exp``), ``a_m = log π_m − Σ_c(½t² + s) − C·½log(2π)`` with
``t = (e − μ)·exp(−s)``, and ``ℓ = −LSE_m a_m`` (max subtracted), all in float64; the
responsibilities ``γ`` and ``π`` are kept (N, M). The backward recomputes ``t`` and
``1/σ = exp(−s)`` per element (the vectorizable ``exp`` of ``_vmath``) rather than keeping
two (N, M, C) arrays, and accumulates ``ē`` in a float64 row buffer.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel
from .._vmath import exp, row_log_sum_exp

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@parallel_kernel(fastmath={"reassoc"})
def _mog_rows(e, logits, mu, log_sigma, per_row, log_joint, gamma, pi):
    num_components, num_dims = mu.shape[1], mu.shape[2]
    normalizer = num_dims * HALF_LOG_2PI
    for i in prange(e.shape[0]):
        logit_max, logit_log_total = row_log_sum_exp(logits, i)
        best = -math.inf
        target = e[i]
        for m in range(num_components):
            means, log_sigmas = mu[i, m], log_sigma[i, m]  # row views: the inner loop vectorizes
            quadratic = 0.0
            log_det = 0.0
            for c in range(num_dims):
                s = np.float64(log_sigmas[c])
                t = (np.float64(target[c]) - np.float64(means[c])) * exp(-s)
                quadratic += t * t
                log_det += s
            log_pi = (np.float64(logits[i, m]) - logit_max) - logit_log_total
            pi[i, m] = exp(log_pi)
            a = log_pi - 0.5 * quadratic - log_det - normalizer
            log_joint[i, m] = a
            best = max(best, a)
        total = 0.0
        for m in range(num_components):
            total += exp(log_joint[i, m] - best)  # ≤ 0: no overflow
        log_likelihood = best + math.log(total)
        per_row[i] = -log_likelihood
        for m in range(num_components):
            gamma[i, m] = exp(log_joint[i, m] - log_likelihood)


@parallel_kernel(fastmath={"reassoc"})
def _mog_backward_rows(e, mu, log_sigma, gamma, pi, weight, pull_sum, g_e, g_logits, g_mu, g_log_sigma):
    num_components, num_dims = mu.shape[1], mu.shape[2]
    for i in prange(e.shape[0]):
        w = weight[i]
        target, pulls = e[i], pull_sum[i]
        for c in range(num_dims):
            pulls[c] = 0.0
        for m in range(num_components):
            w_gamma = w * gamma[i, m]
            g_logits[i, m] = w * (pi[i, m] - gamma[i, m])
            means, log_sigmas = mu[i, m], log_sigma[i, m]  # row views: the inner loop vectorizes
            g_means, g_log_sigmas = g_mu[i, m], g_log_sigma[i, m]
            for c in range(num_dims):
                inverse_sigma = exp(-np.float64(log_sigmas[c]))
                t = (np.float64(target[c]) - np.float64(means[c])) * inverse_sigma
                pull = w_gamma * t * inverse_sigma  # γ_m t/σ
                g_means[c] = -pull
                g_log_sigmas[c] = -w_gamma * (t * t - 1.0)
                pulls[c] += pull
        g_targets = g_e[i]
        for c in range(num_dims):
            g_targets[c] = pulls[c]


def mixture_of_gaussians_nll_forward(e, logits, mu, log_sigma, *, reduction="mean"):
    inputs = tuple(np.ascontiguousarray(a) for a in (e, logits, mu, log_sigma))
    batch, num_components = logits.shape
    per_row = np.empty(batch, dtype=np.float64)
    log_joint, gamma, pi = (np.empty((batch, num_components), dtype=np.float64) for _ in range(3))
    _mog_rows(*inputs, per_row, log_joint, gamma, pi)
    loss = reduce_rows(per_row, reduction, e.dtype)
    return loss, (inputs, gamma, pi, reduction)


def mixture_of_gaussians_nll_backward(residuals, g_loss):
    (e, logits, mu, log_sigma), gamma, pi, reduction = residuals
    batch = e.shape[0]
    weight = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, batch)
    pull_sum = np.empty(e.shape, dtype=np.float64)
    g_e = np.empty(e.shape, dtype=e.dtype)
    g_logits = np.empty(logits.shape, dtype=e.dtype)
    g_mu = np.empty(mu.shape, dtype=e.dtype)
    g_log_sigma = np.empty(mu.shape, dtype=e.dtype)
    _mog_backward_rows(e, mu, log_sigma, gamma, pi, weight, pull_sum, g_e, g_logits, g_mu, g_log_sigma)
    return g_e, g_logits, g_mu, g_log_sigma


IMPLS = {
    "mixture_of_gaussians_nll": Impl(mixture_of_gaussians_nll_forward, mixture_of_gaussians_nll_backward)
}
