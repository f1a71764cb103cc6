"""SSL4Rec cosine InfoNCE and logQ sampled softmax: Numba row kernels (+ BLAS for the similarity matrix).

Mirrors ``refimpl/losses/ssl_recommendation.py``. Row kernels do the guarded normalization
``ẑ = z/sqrt(‖z‖² + eps)`` and its VJP ``(ẑ̄ − ẑ⟨ẑ, ẑ̄⟩)/n``, and one pass per row of the
similarity (or score) matrix computes the max-shifted log-sum-exp, the row loss and the
softmax probabilities that the backward needs; the N×N similarity and the two products of
the backward go through NumPy's BLAS matmul. Sums accumulate in float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl import Impl


@njit(parallel=True, cache=True)
def _normalize_rows(z, eps, z_hat, norm):
    for i in prange(z.shape[0]):
        total = eps
        for d in range(z.shape[1]):
            total += np.float64(z[i, d]) ** 2
        n = np.sqrt(total)
        norm[i] = n
        for d in range(z.shape[1]):
            z_hat[i, d] = z[i, d] / n


@njit(parallel=True, cache=True)
def _normalize_backward_rows(z_hat, norm, g_hat, g_z):
    for i in prange(z_hat.shape[0]):
        dot = 0.0
        for d in range(z_hat.shape[1]):
            dot += np.float64(z_hat[i, d]) * g_hat[i, d]
        for d in range(z_hat.shape[1]):
            g_z[i, d] = (g_hat[i, d] - z_hat[i, d] * dot) / norm[i]


@njit(parallel=True, cache=True)
def _softmax_ce_rows(u, shift, loss, p):
    """Row i of ``u_ij − shift_j``: softmax into p (float64) and ``loss_i = LSE − u_ii``."""
    for i in prange(u.shape[0]):
        largest = -np.inf
        for j in range(u.shape[1]):
            largest = max(largest, np.float64(u[i, j]) - shift[j])
        total = 0.0
        for j in range(u.shape[1]):
            e = np.exp(np.float64(u[i, j]) - shift[j] - largest)  # the max is subtracted: no overflow
            p[i, j] = e
            total += e
        for j in range(u.shape[1]):
            p[i, j] /= total
        loss[i] = largest + np.log(total) - (np.float64(u[i, i]) - shift[i])


def _guarded_normalize(z, eps):
    z = np.ascontiguousarray(z)
    z_hat = np.empty_like(z)
    norm = np.empty(z.shape[0], dtype=np.float64)
    _normalize_rows(z, float(eps), z_hat, norm)
    return z_hat, norm


def cosine_infonce_forward(z, z_prime, *, temperature, alpha, eps=0.0, symmetric=False):
    z_hat, norm = _guarded_normalize(z, eps)
    z_prime_hat, norm_prime = _guarded_normalize(z_prime, eps)
    s = (z_hat.astype(np.float64) @ z_prime_hat.T.astype(np.float64)) / temperature
    batch = s.shape[0]
    zero_shift = np.zeros(batch)
    rows, p = np.empty(batch), np.empty((batch, batch))
    _softmax_ce_rows(s, zero_shift, rows, p)
    loss = rows.mean()
    p_transposed = None
    if symmetric:
        rows_t, p_transposed = np.empty(batch), np.empty((batch, batch))
        _softmax_ce_rows(np.ascontiguousarray(s.T), zero_shift, rows_t, p_transposed)
        loss = (loss + rows_t.mean()) / 2
    residuals = (z_hat, norm, z_prime_hat, norm_prime, p, p_transposed, temperature, alpha, z.dtype)
    return np.asarray(loss * alpha, dtype=z.dtype), residuals


def cosine_infonce_backward(residuals, g_loss):
    z_hat, norm, z_prime_hat, norm_prime, p, p_transposed, temperature, alpha, dtype = residuals
    batch = p.shape[0]
    g_s = p.copy()
    g_s[np.arange(batch), np.arange(batch)] -= 1
    if p_transposed is not None:
        g_t = p_transposed.copy()
        g_t[np.arange(batch), np.arange(batch)] -= 1
        g_s = (g_s + g_t.T) / 2
    g_s *= float(g_loss) * alpha / batch / temperature
    g_z_hat = g_s @ z_prime_hat.astype(np.float64)
    g_z_prime_hat = g_s.T @ z_hat.astype(np.float64)
    g_z = np.empty(z_hat.shape, dtype=dtype)
    g_z_prime = np.empty(z_prime_hat.shape, dtype=dtype)
    _normalize_backward_rows(z_hat, norm, g_z_hat, g_z)
    _normalize_backward_rows(z_prime_hat, norm_prime, g_z_prime_hat, g_z_prime)
    return g_z, g_z_prime


@njit(parallel=True, cache=True)
def _softmax_ce_backward_rows(p, w, g_u):
    for i in prange(p.shape[0]):
        for j in range(p.shape[1]):
            g_u[i, j] = w[i] * p[i, j]
        g_u[i, i] -= w[i]


def sampled_softmax_logq_forward(scores, log_p, *, reduction="mean"):
    scores = np.ascontiguousarray(scores)
    batch = scores.shape[0]
    rows, p = np.empty(batch), np.empty((batch, batch))
    _softmax_ce_rows(scores, np.ascontiguousarray(log_p, dtype=np.float64), rows, p)
    if reduction == "mean":
        loss = np.asarray(rows.mean(), dtype=scores.dtype)
    elif reduction == "sum":
        loss = np.asarray(rows.sum(), dtype=scores.dtype)
    else:
        loss = rows.astype(scores.dtype)
    return loss, (p, reduction, scores.dtype)


def sampled_softmax_logq_backward(residuals, g_loss):
    p, reduction, dtype = residuals
    batch = p.shape[0]
    if reduction == "none":
        w = np.asarray(g_loss, dtype=np.float64)
    else:
        w = np.full(batch, float(g_loss) / (batch if reduction == "mean" else 1))
    g_u = np.empty(p.shape, dtype=dtype)
    _softmax_ce_backward_rows(p, w, g_u)
    return (g_u,)


IMPLS = {
    "cosine_infonce": Impl(cosine_infonce_forward, cosine_infonce_backward),
    "sampled_softmax_logq": Impl(sampled_softmax_logq_forward, sampled_softmax_logq_backward),
}
