"""PRESTO (cumulative-logit NLL, fused penalty) on CuPy: matrix products + fused elementwise kernels.

Mirrors ``refimpl/losses/presto.py``. ``cumulative_logit_nll``: ``η = α + Xβ`` (cuBLAS), the
labelled interval's ends ``u``, ``l`` gathered from η padded with ∓inf, one fused kernel for
``log P = log F(u) + log F(−l) + log(1 − e^{−d})`` and the derivatives ``∂ℓ/∂u``, ``∂ℓ/∂l``;
the backward builds G with one fused kernel (the label's column and the one before) and
``β̄ = XᵀG``. ``presto_penalty``: ψ as first differences, ``|ψ|`` and ``sign ψ`` fused.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl, reduce_rows, row_weights
from refimpl.losses.presto import standardization_scale

from .._fuse import kernel_set, xp_of

LOG_2 = math.log(2.0)


def _kernels(xp, fuse):
    @fuse
    def nll_terms(upper, lower, crossed):
        gap = xp.where(crossed, xp.inf, upper - lower)  # d > 0 on valid rows, +∞ for the end classes
        e_upper = xp.exp(-abs(upper))
        e_lower = xp.exp(-abs(lower))
        log_f_upper = xp.minimum(upper, 0) - xp.log1p(e_upper)  # log F(u)
        log_f_minus_lower = xp.minimum(-lower, 0) - xp.log1p(e_lower)  # log F(−l)
        small = gap < LOG_2
        log_gap = xp.where(small, xp.log(-xp.expm1(-xp.where(small, gap, 1))), xp.log1p(-xp.exp(-gap)))
        r = 1 / xp.expm1(gap)  # 0 at d = +∞
        f_minus_upper = xp.where(upper >= 0, e_upper / (1 + e_upper), 1 / (1 + e_upper))  # F(−u)
        f_lower = xp.where(lower >= 0, 1 / (1 + e_lower), e_lower / (1 + e_lower))  # F(l)
        per_row = xp.where(crossed, xp.inf, -(log_f_upper + log_f_minus_lower + log_gap))
        d_upper = xp.where(crossed, 0, -(f_minus_upper + r))
        d_lower = xp.where(crossed, 0, f_lower + r)
        return per_row, d_upper, d_lower

    @fuse
    def scatter(column, label, weight, d_upper, d_lower):
        return weight * ((column == label) * d_upper + (column == label - 1) * d_lower)

    @fuse
    def abs_and_sign(psi):
        return abs(psi), xp.sign(psi)  # sign(0) = 0

    @fuse
    def penalty_grad(sign, next_sign, weight):
        return weight * (sign - next_sign)

    return SimpleNamespace(
        nll_terms=nll_terms, scatter=scatter, abs_and_sign=abs_and_sign, penalty_grad=penalty_grad
    )


kernels_for = kernel_set(_kernels)


def cumulative_logit_nll_forward(X, y, alpha, beta, *, reduction="mean", allow_crossing=False):
    xp = xp_of(X)
    k = kernels_for(X)
    n = X.shape[0]
    labels = y.astype(xp.int64)[:, None]
    eta = alpha + X @ beta
    infinity = xp.full((n, 1), xp.inf, dtype=X.dtype)
    padded = xp.concatenate([-infinity, eta, infinity], axis=1)  # η_{−1} = −∞, η_T = +∞
    upper = xp.take_along_axis(padded, labels + 1, axis=1)[:, 0]
    lower = xp.take_along_axis(padded, labels, axis=1)[:, 0]
    crossed = xp.any(eta[:, 1:] <= eta[:, :-1], axis=1)
    per_row, d_upper, d_lower = k.nll_terms(upper, lower, crossed)
    return reduce_rows(per_row, reduction, X.dtype), (X, labels, d_upper, d_lower, alpha.shape[0], reduction)


def cumulative_logit_nll_backward(residuals, g_loss):
    X, labels, d_upper, d_lower, thresholds, reduction = residuals
    xp = xp_of(X)
    k = kernels_for(X)
    weight = row_weights(g_loss.astype(X.dtype), reduction, X.shape[0])[:, None]
    columns = xp.arange(thresholds)[None, :]
    G = k.scatter(columns, labels, weight, d_upper[:, None], d_lower[:, None]).astype(X.dtype)
    return G.sum(axis=0), X.T @ G


def presto_penalty_forward(beta, X, *, lam, standardize=True):
    xp = xp_of(beta)
    k = kernels_for(beta)
    dtype = beta.dtype
    scale = standardization_scale(X).astype(dtype) if standardize else xp.ones(beta.shape[0], dtype=dtype)
    weight = dtype.type(lam) * scale  # λ s_j
    psi = xp.concatenate([beta[:, :1], beta[:, 1:] - beta[:, :-1]], axis=1)
    magnitude, sign = k.abs_and_sign(psi)
    penalty = (weight * magnitude.sum(axis=1)).sum()
    return xp.asarray(penalty, dtype=dtype), (sign, weight)


def presto_penalty_backward(residuals, g_penalty):
    sign, weight = residuals
    xp = xp_of(sign)
    k = kernels_for(sign)
    next_sign = xp.concatenate([sign[:, 1:], xp.zeros_like(sign[:, :1])], axis=1)  # σ_{j,T} = 0
    g_beta = k.penalty_grad(sign, next_sign, (g_penalty.astype(sign.dtype) * weight)[:, None])
    return (g_beta.astype(sign.dtype),)


IMPLS = {
    "cumulative_logit_nll": Impl(cumulative_logit_nll_forward, cumulative_logit_nll_backward),
    "presto_penalty": Impl(presto_penalty_forward, presto_penalty_backward),
}
