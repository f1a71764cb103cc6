"""BA-LoRA's regularizers: fused Numba kernels, parallel over rows (positions).

Mirrors ``refimpl/regularizers/balora.py``:

* consistency, "nlu": one pass per row for both norms (clamped at eps) and Σ(ẑ_ft − ẑ_pre)²;
  the backward recomputes ẑ from the saved norms, ``(ā − ẑ⟨ẑ, ā⟩)/n`` (``ā/eps`` if clamped);
  "nlg": the two max-shifted log-sum-exps (``_vmath.row_log_sum_exp``), ``Σ r(log r − log q)``,
  and the backward ``(ḡ/B)(q − r)`` from the saved log-sum-exps;
* diversity, "nlu": the two products ``Z_cᵀZ_c`` and ``Z_c C_off`` by NumPy's BLAS, the
  centring, the zeroed diagonal and the sums elementwise; "nlg": per position the log-sum-exp,
  ``Σ p log(p + ε)`` (ε = 0: the log-softmax itself) and ``s = Σ p·a`` with
  ``a = ∂(p log(p + ε))/∂p``; the backward is ``w·p(a − s)``;
* SVD: the library SVD (``np.linalg.svd``), then ``U diag(c) Vᵀ`` by BLAS.

Row scalars and sums are float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .._vmath import row_log_sum_exp, vexp


# -- consistency --------------------------------------------------------------------------------------
@parallel_kernel(fastmath={"reassoc"})
def _normalized_mse_rows(z_ft, z_pre, eps, per_row, norm_ft, norm_pre):
    d = z_ft.shape[1]
    for i in prange(z_ft.shape[0]):
        squares_ft = 0.0
        squares_pre = 0.0
        for k in range(d):
            a = np.float64(z_ft[i, k])
            b = np.float64(z_pre[i, k])
            squares_ft += a * a
            squares_pre += b * b
        n_ft = max(math.sqrt(squares_ft), eps)  # F.normalize's clamp
        n_pre = max(math.sqrt(squares_pre), eps)
        total = 0.0
        for k in range(d):
            difference = np.float64(z_ft[i, k]) / n_ft - np.float64(z_pre[i, k]) / n_pre
            total += difference * difference
        per_row[i] = total
        norm_ft[i] = n_ft
        norm_pre[i] = n_pre


@parallel_kernel(fastmath={"reassoc"})
def _normalized_mse_backward_rows(z_ft, z_pre, norm_ft, norm_pre, eps, scale, g_z_ft):
    d = z_ft.shape[1]
    for i in prange(z_ft.shape[0]):
        n_ft, n_pre = norm_ft[i], norm_pre[i]
        dot = 0.0  # ⟨ẑ, ā⟩
        for k in range(d):
            z_hat = np.float64(z_ft[i, k]) / n_ft
            dot += z_hat * scale * (z_hat - np.float64(z_pre[i, k]) / n_pre)
        if n_ft <= eps:  # clamp active: ẑ = z/eps
            dot = 0.0
        for k in range(d):
            z_hat = np.float64(z_ft[i, k]) / n_ft
            g_z_hat = scale * (z_hat - np.float64(z_pre[i, k]) / n_pre)
            g_z_ft[i, k] = (g_z_hat - z_hat * dot) / n_ft


@parallel_kernel(fastmath={"reassoc"})
def _kl_rows(z_ft, z_pre, per_row, lse_ft, lse_pre):
    for i in prange(z_ft.shape[0]):
        m_q, log_total_q = row_log_sum_exp(z_ft, i)
        m_r, log_total_r = row_log_sum_exp(z_pre, i)
        shift_q, shift_r = m_q + log_total_q, m_r + log_total_r
        total = 0.0
        for k in range(z_ft.shape[1]):
            log_r = np.float64(z_pre[i, k]) - shift_r
            log_q = np.float64(z_ft[i, k]) - shift_q
            total += vexp(log_r) * (log_r - log_q)
        per_row[i] = total
        lse_ft[i] = shift_q
        lse_pre[i] = shift_r


@parallel_kernel(fastmath={"reassoc"})
def _kl_backward_rows(z_ft, z_pre, lse_ft, lse_pre, weight, g_z_ft):
    for i in prange(z_ft.shape[0]):
        for k in range(z_ft.shape[1]):
            q = vexp(np.float64(z_ft[i, k]) - lse_ft[i])
            r = vexp(np.float64(z_pre[i, k]) - lse_pre[i])
            g_z_ft[i, k] = weight * (q - r)


def _rows(array):
    return np.ascontiguousarray(array).reshape(-1, array.shape[-1])


def balora_consistency_loss_forward(z_ft, z_pre, *, variant, eps=1e-12):
    work_ft, work_pre = _rows(z_ft), _rows(z_pre)
    rows = work_ft.shape[0]
    per_row, first, second = (np.empty(rows, dtype=np.float64) for _ in range(3))
    if variant == "nlu":
        _normalized_mse_rows(work_ft, work_pre, float(eps), per_row, first, second)
        loss = per_row.sum() / work_ft.size
    else:
        _kl_rows(work_ft, work_pre, per_row, first, second)
        loss = per_row.sum() / z_ft.shape[0]
    residuals = (variant, work_ft, work_pre, first, second, float(eps), z_ft.shape)
    return np.asarray(loss, dtype=z_ft.dtype), residuals


def balora_consistency_loss_backward(residuals, g_loss):
    variant, work_ft, work_pre, first, second, eps, shape = residuals
    g = float(np.asarray(g_loss, dtype=np.float64))
    g_z_ft = np.empty(work_ft.shape, dtype=work_ft.dtype)
    if variant == "nlu":
        _normalized_mse_backward_rows(work_ft, work_pre, first, second, eps, 2.0 * g / work_ft.size, g_z_ft)
    else:
        _kl_backward_rows(work_ft, work_pre, first, second, g / shape[0], g_z_ft)
    return (g_z_ft.reshape(shape),)


# -- diversity ----------------------------------------------------------------------------------------
@parallel_kernel(fastmath={"reassoc"})
def _entropy_rows(z, log_eps, per_row, lse, mean_slope):
    for i in prange(z.shape[0]):
        m, log_total = row_log_sum_exp(z, i)
        shift = m + log_total
        total = 0.0
        slope_total = 0.0
        for k in range(z.shape[1]):
            log_p = np.float64(z[i, k]) - shift
            p = vexp(log_p)
            if log_eps == 0.0:
                total += p * log_p
                slope_total += p * (log_p + 1.0)
            else:
                log_shifted = math.log(p + log_eps)
                total += p * log_shifted
                slope_total += p * (log_shifted + p / (p + log_eps))
        per_row[i] = total
        lse[i] = shift
        mean_slope[i] = slope_total


@parallel_kernel(fastmath={"reassoc"})
def _entropy_backward_rows(z, log_eps, lse, mean_slope, weight, g_z):
    for i in prange(z.shape[0]):
        for k in range(z.shape[1]):
            log_p = np.float64(z[i, k]) - lse[i]
            p = vexp(log_p)
            if log_eps == 0.0:
                slope = log_p + 1.0
            else:
                slope = math.log(p + log_eps) + p / (p + log_eps)
            g_z[i, k] = weight * p * (slope - mean_slope[i])


def balora_diversity_loss_forward(z, *, variant, log_eps=0.0):
    if variant == "nlu":
        batch, num_dims = z.shape
        z_centered = z - z.mean(axis=0, keepdims=True)
        covariance_off = np.dot(z_centered.T, z_centered) / (batch - 1)  # BLAS
        np.fill_diagonal(covariance_off, 0)
        loss = np.dot(covariance_off.ravel(), covariance_off.ravel()) / num_dims
        return np.asarray(loss, dtype=z.dtype), (variant, z_centered, covariance_off, 0.0, z.shape)
    work = _rows(z)
    rows = work.shape[0]
    per_row, lse, mean_slope = (np.empty(rows, dtype=np.float64) for _ in range(3))
    _entropy_rows(work, float(log_eps), per_row, lse, mean_slope)
    loss = per_row.sum() / rows
    return np.asarray(loss, dtype=z.dtype), (variant, work, lse, mean_slope, float(log_eps), z.shape)


def balora_diversity_loss_backward(residuals, g_loss):
    variant = residuals[0]
    g = float(np.asarray(g_loss, dtype=np.float64))
    if variant == "nlu":
        _, z_centered, covariance_off, _, shape = residuals
        batch, num_dims = shape
        scale = z_centered.dtype.type(4.0 * g / (num_dims * (batch - 1)))
        g_centered = np.dot(z_centered, covariance_off) * scale  # BLAS
        g_z = g_centered - g_centered.mean(axis=0, keepdims=True)
        return (g_z.astype(z_centered.dtype, copy=False),)
    _, work, lse, mean_slope, log_eps, shape = residuals
    g_z = np.empty(work.shape, dtype=work.dtype)
    _entropy_backward_rows(work, log_eps, lse, mean_slope, g / work.shape[0], g_z)
    return (g_z.reshape(shape),)


# -- SVD ----------------------------------------------------------------------------------------------
def balora_svd_loss_forward(z, *, k=3):
    matrix = z.reshape(z.shape[0], -1)
    u, sigma, vt = np.linalg.svd(matrix, full_matrices=False)  # the library SVD
    sigma64 = sigma.astype(np.float64)
    top, total = sigma64[:k].sum(), sigma64.sum()
    return np.asarray(-top / total, dtype=z.dtype), (u, vt, min(k, sigma.size), top, total, z.shape)


def balora_svd_loss_backward(residuals, g_loss):
    u, vt, k, top, total, shape = residuals
    g = float(np.asarray(g_loss, dtype=np.float64))
    coefficients = np.full(u.shape[1], (g / total) * (top / total))  # c_i = ḡ(T/S² − 1[i ≤ k]/S)
    coefficients[:k] -= g / total
    g_matrix = np.dot(u * coefficients.astype(u.dtype), vt)  # BLAS
    return (g_matrix.reshape(shape),)


IMPLS = {
    "balora_consistency_loss": Impl(balora_consistency_loss_forward, balora_consistency_loss_backward),
    "balora_diversity_loss": Impl(balora_diversity_loss_forward, balora_diversity_loss_backward),
    "balora_svd_loss": Impl(balora_svd_loss_forward, balora_svd_loss_backward),
}
