"""SSL4Rec cosine InfoNCE and logQ sampled softmax: Numba row kernels (+ BLAS for the similarity matrix).

Mirrors ``refimpl/losses/ssl_recommendation.py``. Row kernels do the guarded normalization
``ẑ = z/sqrt(‖z‖² + eps)`` and its VJP ``(ẑ̄ − ẑ⟨ẑ, ẑ̄⟩)/n``, and one pass per row of the
similarity (or score) matrix computes the max-shifted log-sum-exp and the row loss; the
backward rebuilds the softmax from the saved log-sum-exp (no N×N probabilities kept). The
N×N similarity and the two products of the backward go through NumPy's BLAS matmul in the
input dtype, as the reference does. Sums accumulate in float64; ``exp`` is the vectorizable
one of ``_vmath``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel
from .._vmath import exp


@parallel_kernel(fastmath={"reassoc"})
def _normalize_rows(z, eps, z_hat, norm):
    for i in prange(z.shape[0]):
        total = eps
        for d in range(z.shape[1]):
            total += np.float64(z[i, d]) ** 2
        n = np.sqrt(total)
        norm[i] = n
        for d in range(z.shape[1]):
            z_hat[i, d] = z[i, d] / n


@parallel_kernel(fastmath={"reassoc"})
def _normalize_backward_rows(z_hat, norm, g_hat, g_z):
    for i in prange(z_hat.shape[0]):
        dot = 0.0
        for d in range(z_hat.shape[1]):
            dot += np.float64(z_hat[i, d]) * g_hat[i, d]
        for d in range(z_hat.shape[1]):
            g_z[i, d] = (g_hat[i, d] - z_hat[i, d] * dot) / norm[i]


@parallel_kernel(fastmath={"reassoc"})
def _log_sum_exp_rows(u, shift, lse, loss):
    """Row i of ``v_ij = u_ij − shift_j``: ``lse[:, i] = (m_i, log Σ_j exp(v_ij − m_i))``
    (max-shifted, float64) and the row loss ``log Σ_j exp(v_ij − m_i) − (v_ii − m_i)``.

    The log-sum-exp stays split in two: ``m_i + log Σ`` would round at the size of the
    scores (1/τ = 1000 and more), and a confident row's loss is far smaller than that.
    """
    for i in prange(u.shape[0]):
        largest = -np.inf
        for j in range(u.shape[1]):
            largest = max(largest, np.float64(u[i, j]) - shift[j])
        total = 0.0
        for j in range(u.shape[1]):
            total += exp(np.float64(u[i, j]) - shift[j] - largest)  # the max is subtracted: no overflow
        lse[0, i] = largest
        lse[1, i] = math.log(total)
        loss[i] = lse[1, i] - ((np.float64(u[i, i]) - shift[i]) - largest)


@parallel_kernel(fastmath={"reassoc"})
def _softmax_minus_identity_rows(u, shift, lse, w, g_u):
    """``g_u[i, j] = w_i (softmax_j(v_i) − δ_ij)``, the softmax rebuilt from the saved (m, log Σ)."""
    for i in prange(u.shape[0]):
        w_i, largest, log_total = w[i], lse[0, i], lse[1, i]
        for j in range(u.shape[1]):
            g_u[i, j] = w_i * exp((np.float64(u[i, j]) - shift[j] - largest) - log_total)
        g_u[i, i] -= w_i


def _guarded_normalize(z, eps):
    z = np.ascontiguousarray(z)
    z_hat = np.empty_like(z)
    norm = np.empty(z.shape[0], dtype=np.float64)
    _normalize_rows(z, float(eps), z_hat, norm)
    return z_hat, norm


def cosine_infonce_forward(z, z_prime, *, temperature, alpha, eps=0.0, symmetric=False):
    z_hat, norm = _guarded_normalize(z, eps)
    z_prime_hat, norm_prime = _guarded_normalize(z_prime, eps)
    s = z_hat @ z_prime_hat.T  # BLAS, in the input dtype (as the reference)
    s *= s.dtype.type(1 / temperature)
    batch = s.shape[0]
    zero_shift = np.zeros(batch)
    lse, rows = np.empty((2, batch)), np.empty(batch)
    _log_sum_exp_rows(s, zero_shift, lse, rows)
    loss = rows.mean()
    lse_t = None
    if symmetric:
        lse_t, rows_t = np.empty((2, batch)), np.empty(batch)
        _log_sum_exp_rows(np.ascontiguousarray(s.T), zero_shift, lse_t, rows_t)
        loss = (loss + rows_t.mean()) / 2
    residuals = (z_hat, norm, z_prime_hat, norm_prime, s, lse, lse_t, temperature, alpha)
    return np.asarray(loss * alpha, dtype=z.dtype), residuals


def cosine_infonce_backward(residuals, g_loss):
    z_hat, norm, z_prime_hat, norm_prime, s, lse, lse_t, temperature, alpha = residuals
    batch = s.shape[0]
    zero_shift = np.zeros(batch)
    factor = float(g_loss) * alpha / batch / temperature
    g_s = np.empty_like(s)
    _softmax_minus_identity_rows(s, zero_shift, lse, np.full(batch, factor), g_s)
    if lse_t is not None:  # ½[(softmax_rows(S) − I) + (softmax_rows(Sᵀ) − I)ᵀ]
        g_t = np.empty_like(s)
        _softmax_minus_identity_rows(
            np.ascontiguousarray(s.T), zero_shift, lse_t, np.full(batch, factor), g_t
        )
        g_s = (g_s + g_t.T) * g_s.dtype.type(0.5)
    g_z_hat = g_s @ z_prime_hat
    g_z_prime_hat = g_s.T @ z_hat
    g_z = np.empty_like(z_hat)
    g_z_prime = np.empty_like(z_prime_hat)
    _normalize_backward_rows(z_hat, norm, g_z_hat, g_z)
    _normalize_backward_rows(z_prime_hat, norm_prime, g_z_prime_hat, g_z_prime)
    return g_z, g_z_prime


def sampled_softmax_logq_forward(scores, log_p, *, reduction="mean"):
    scores = np.ascontiguousarray(scores)
    shift = np.ascontiguousarray(log_p, dtype=np.float64)
    batch = scores.shape[0]
    lse, rows = np.empty((2, batch)), np.empty(batch)
    _log_sum_exp_rows(scores, shift, lse, rows)
    loss = reduce_rows(rows, reduction, scores.dtype)
    return loss, (scores, shift, lse, reduction)


def sampled_softmax_logq_backward(residuals, g_loss):
    scores, shift, lse, reduction = residuals
    batch = scores.shape[0]
    w = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, batch)
    g_u = np.empty_like(scores)
    _softmax_minus_identity_rows(scores, shift, lse, w, g_u)
    return (g_u,)


IMPLS = {
    "cosine_infonce": Impl(cosine_infonce_forward, cosine_infonce_backward),
    "sampled_softmax_logq": Impl(sampled_softmax_logq_forward, sampled_softmax_logq_backward),
}
