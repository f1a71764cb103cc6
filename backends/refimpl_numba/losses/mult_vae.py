"""Mult-VAE multinomial log-likelihood and β-ELBO: fused Numba kernels, parallel over users.

Mirrors ``refimpl/losses/mult_vae.py``. One pass per user computes the row max, the
log-sum-exp over the items and the click total, then ``Σ_i x_i (f_i − lse)``; the backward
recomputes ``softmax(f)`` from the saved log-sum-exp (no (B, I) probabilities kept).
Row scalars are carried in float64; outputs take the input dtype. ``exp`` and ``expm1`` are
the vectorizable ones of ``_vmath``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .._vmath import exp, expm1, row_log_sum_exp, vexp


@parallel_kernel(fastmath={"reassoc"})
def _likelihood_rows(f, x, log_likelihood, lse, clicks):
    for i in prange(f.shape[0]):
        m, log_total = row_log_sum_exp(f, i)
        row_lse = m + log_total
        weighted, count = 0.0, 0.0
        for j in range(f.shape[1]):
            weighted += x[i, j] * (f[i, j] - row_lse)
            count += x[i, j]
        log_likelihood[i] = weighted
        lse[i] = row_lse
        clicks[i] = count


@parallel_kernel(fastmath={"reassoc"})
def _likelihood_backward_rows(f, x, lse, clicks, weight, g_f):
    # g_f = w·(x − softmax(f)·Σx): the log-softmax VJP with cotangent w·x
    for i in prange(f.shape[0]):
        w, row_lse, count = weight[i], lse[i], clicks[i]
        for j in range(f.shape[1]):
            g_f[i, j] = w * (x[i, j] - vexp(f.dtype.type(f[i, j] - row_lse)) * count)


def _likelihood(logits, x):
    rows = np.ascontiguousarray(logits).reshape(-1, logits.shape[-1])
    counts = np.ascontiguousarray(x).reshape(rows.shape)
    log_likelihood = np.empty(rows.shape[0], dtype=np.float64)
    lse = np.empty(rows.shape[0], dtype=np.float64)
    clicks = np.empty(rows.shape[0], dtype=np.float64)
    _likelihood_rows(rows, counts, log_likelihood, lse, clicks)
    return rows, counts, log_likelihood, lse, clicks


def multinomial_log_likelihood_forward(logits, x):
    rows, counts, log_likelihood, lse, clicks = _likelihood(logits, x)
    output = log_likelihood.astype(logits.dtype).reshape(logits.shape[:-1])
    return output, (rows, counts, lse, clicks, logits.shape)


def multinomial_log_likelihood_backward(residuals, g_log_likelihood):
    rows, counts, lse, clicks, shape = residuals
    weight = np.ascontiguousarray(g_log_likelihood, dtype=np.float64).reshape(-1)
    g_f = np.empty(rows.shape, dtype=rows.dtype)
    _likelihood_backward_rows(rows, counts, lse, clicks, weight, g_f)
    return (g_f.reshape(shape),)


@parallel_kernel(fastmath={"reassoc"})
def _kl_rows(mu, logvar, kl):
    for i in prange(mu.shape[0]):
        total = 0.0
        for j in range(mu.shape[1]):
            v = np.float64(logvar[i, j])
            m = np.float64(mu[i, j])
            total += 0.5 * (-v + exp(v) + m * m - 1.0)
        kl[i] = total


@parallel_kernel(fastmath={"reassoc"})
def _kl_backward(mu, logvar, scale, g_mu, g_logvar):
    for i in prange(mu.shape[0]):
        for j in range(mu.shape[1]):
            g_mu[i, j] = scale * mu[i, j]
            g_logvar[i, j] = scale * 0.5 * expm1(np.float64(logvar[i, j]))


def mult_vae_loss_forward(logits, x, mu, logvar, *, beta):
    rows, counts, log_likelihood, lse, clicks = _likelihood(logits, x)
    mu_c, logvar_c = np.ascontiguousarray(mu), np.ascontiguousarray(logvar)
    kl = np.empty(mu.shape[0], dtype=np.float64)
    _kl_rows(mu_c, logvar_c, kl)
    loss = -log_likelihood.mean() + beta * kl.mean()
    return np.asarray(loss, dtype=logits.dtype), (rows, counts, lse, clicks, mu_c, logvar_c, beta)


def mult_vae_loss_backward(residuals, g_loss):
    rows, counts, lse, clicks, mu, logvar, beta = residuals
    batch = rows.shape[0]
    w = float(g_loss) / batch
    g_f = np.empty(rows.shape, dtype=rows.dtype)
    _likelihood_backward_rows(rows, counts, lse, clicks, np.full(batch, -w), g_f)
    g_mu = np.empty(mu.shape, dtype=mu.dtype)
    g_logvar = np.empty(logvar.shape, dtype=logvar.dtype)
    _kl_backward(mu, logvar, w * beta, g_mu, g_logvar)
    return g_f, g_mu, g_logvar


IMPLS = {
    "multinomial_log_likelihood": Impl(
        multinomial_log_likelihood_forward, multinomial_log_likelihood_backward
    ),
    "mult_vae_loss": Impl(mult_vae_loss_forward, mult_vae_loss_backward),
}
