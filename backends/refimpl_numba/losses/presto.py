"""PRESTO (cumulative-logit NLL, fused penalty): Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/presto.py``. ``cumulative_logit_nll``: the linear predictors
``η = α + Xβ`` and the VJP product ``β̄ = XᵀG`` go through NumPy's BLAS; one kernel per row
forms ``log P = log F(u) + log F(−l) + log(1 − e^{−d})`` and the two derivatives
``∂ℓ/∂u = −(F(−u) + r)``, ``∂ℓ/∂l = F(l) + r`` (``r = 1/expm1(d)``), another scatters them into
G. ``presto_penalty``: one kernel per feature row, the first differences ψ, their signs and
``λ s_j (σ_k − σ_{k+1})``. Row scalars are float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl, reduce_rows, row_weights
from refimpl.losses.presto import standardization_scale

from .._jit import parallel_kernel

LOG_2 = math.log(2.0)


@njit(cache=True)
def _log_sigmoid(x):
    """log F(x) = −softplus(−x) = min(x, 0) − log1p(e^{−|x|})."""
    return min(x, 0.0) - math.log1p(math.exp(-abs(x)))


@njit(cache=True)
def _sigmoid(x):
    e = math.exp(-abs(x))  # exp only sees −|x|: no overflow
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


@parallel_kernel()
def _nll_rows(eta, y, allow_crossing, per_row, d_upper, d_lower):
    thresholds = eta.shape[1]
    for i in prange(eta.shape[0]):
        crossed = False
        for k in range(1, thresholds):
            if eta[i, k] <= eta[i, k - 1]:
                crossed = True
        if crossed:  # only reached with allow_crossing (the op layer refuses it otherwise)
            per_row[i] = math.inf
            d_upper[i] = 0.0
            d_lower[i] = 0.0
            continue
        label = y[i]
        log_p = 0.0
        r = 0.0  # 1/expm1(d); 0 for the end classes (d = +∞)
        has_upper = label < thresholds
        has_lower = label > 0
        u = np.float64(eta[i, label]) if has_upper else 0.0
        lo = np.float64(eta[i, label - 1]) if has_lower else 0.0
        if has_upper:
            log_p += _log_sigmoid(u)
        if has_lower:
            log_p += _log_sigmoid(-lo)
        if has_upper and has_lower:
            d = u - lo
            if d < LOG_2:
                log_p += math.log(-math.expm1(-d))
            else:
                log_p += math.log1p(-math.exp(-d))
            r = 1.0 / math.expm1(d)
        per_row[i] = -log_p
        d_upper[i] = -(_sigmoid(-u) + r) if has_upper else 0.0
        d_lower[i] = (_sigmoid(lo) + r) if has_lower else 0.0


@parallel_kernel()
def _nll_scatter_rows(y, weight, d_upper, d_lower, G):
    thresholds = G.shape[1]
    for i in prange(G.shape[0]):
        for k in range(thresholds):
            G[i, k] = 0.0
        label = y[i]
        if label < thresholds:
            G[i, label] = weight[i] * d_upper[i]
        if label > 0:
            G[i, label - 1] = weight[i] * d_lower[i]


def cumulative_logit_nll_forward(X, y, alpha, beta, *, reduction="mean", allow_crossing=False):
    work = np.ascontiguousarray(X)
    labels = np.ascontiguousarray(y, dtype=np.int64)
    eta = np.dot(work, beta) + alpha  # BLAS
    n = work.shape[0]
    per_row, d_upper, d_lower = (np.empty(n, dtype=np.float64) for _ in range(3))
    _nll_rows(eta, labels, bool(allow_crossing), per_row, d_upper, d_lower)
    loss = reduce_rows(per_row, reduction, X.dtype)
    return loss, (work, labels, d_upper, d_lower, alpha.shape[0], reduction)


def cumulative_logit_nll_backward(residuals, g_loss):
    work, labels, d_upper, d_lower, thresholds, reduction = residuals
    n = work.shape[0]
    weight = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, n)
    G = np.empty((n, thresholds), dtype=work.dtype)
    _nll_scatter_rows(labels, weight, d_upper, d_lower, G)
    g_alpha = G.sum(axis=0)
    g_beta = np.dot(work.T, G)  # BLAS
    return g_alpha, g_beta


@parallel_kernel()
def _penalty_rows(beta, weight, per_row, g_beta_unit):
    thresholds = beta.shape[1]
    for j in prange(beta.shape[0]):
        total = 0.0
        previous = 0.0
        for k in range(thresholds):
            value = np.float64(beta[j, k])
            psi = value - previous  # ψ_{j,0} = β_{j,0}; ψ_{j,k} = β_{j,k} − β_{j,k−1}
            total += abs(psi)
            sign = 1.0 if psi > 0 else (-1.0 if psi < 0 else 0.0)  # sign(0) = 0
            g_beta_unit[j, k] = sign * weight[j]
            if k > 0:
                g_beta_unit[j, k - 1] -= sign * weight[j]  # −σ_{j,k} on β_{j,k−1}
            previous = value
        per_row[j] = weight[j] * total


def presto_penalty_forward(beta, X, *, lam, standardize=True):
    work = np.ascontiguousarray(beta)
    p = work.shape[0]
    scale = standardization_scale(X).astype(np.float64) if standardize else np.ones(p)
    weight = np.float64(lam) * scale  # λ s_j
    per_row = np.empty(p, dtype=np.float64)
    g_beta_unit = np.empty(work.shape, dtype=np.float64)
    _penalty_rows(work, weight, per_row, g_beta_unit)
    return np.asarray(per_row.sum(), dtype=beta.dtype), (g_beta_unit, beta.dtype)


def presto_penalty_backward(residuals, g_penalty):
    g_beta_unit, dtype = residuals
    return ((np.float64(g_penalty) * g_beta_unit).astype(dtype),)


IMPLS = {
    "cumulative_logit_nll": Impl(cumulative_logit_nll_forward, cumulative_logit_nll_backward),
    "presto_penalty": Impl(presto_penalty_forward, presto_penalty_backward),
}
