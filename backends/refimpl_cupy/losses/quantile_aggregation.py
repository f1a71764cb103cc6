"""Pinball loss, weighted interval score and quantile aggregation on CuPy: fused terms + reductions.

Mirrors ``refimpl/losses/quantile_aggregation.py``. The per-entry losses and subgradients
are fused kernels (branch-free: ``H(v) = (sign(v) + 1)/2`` gives the tie midpoint ½); the
sums are CuPy reductions and the aggregation is an einsum (cuBLAS-backed). The WIS
cotangent is assembled lower | median | upper with one concatenation, no scatter.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, reduce_rows

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def pinball_terms(y_col, q, tau):
        u = y_col - q
        return xp.maximum(tau * u, (tau - 1) * u)

    @fuse
    def pinball_grad(y_col, q, tau, g):
        # −τ (y > q), 1 − τ (y < q), ½ − τ at a tie
        return ((xp.sign(q - y_col) + 1) / 2 - tau) * g

    @fuse
    def weighted_interval_terms(lower, upper, target, alpha):
        interval = (upper - lower) + (2 / alpha) * xp.maximum(lower - target, 0)
        interval = interval + (2 / alpha) * xp.maximum(target - upper, 0)
        return alpha / 2 * interval

    @fuse
    def lower_grad(lower, target, half_alpha, scale):
        return scale * ((xp.sign(lower - target) + 1) / 2 - half_alpha)

    @fuse
    def upper_grad(upper, target, half_alpha, scale):
        return scale * (half_alpha - (xp.sign(target - upper) + 1) / 2)

    @fuse
    def median_grad(median, target, scale):
        return scale * xp.sign(median - target) / 2

    return SimpleNamespace(
        pinball_terms=pinball_terms,
        pinball_grad=pinball_grad,
        weighted_interval_terms=weighted_interval_terms,
        lower_grad=lower_grad,
        upper_grad=upper_grad,
        median_grad=median_grad,
    )


kernels_for = kernel_set(_kernels)


def pinball_loss_forward(y, q, tau, *, reduction="mean"):
    rho = kernels_for(q).pinball_terms(y[:, None], q, tau)
    return reduce_rows(rho, reduction, q.dtype), (y, q, tau, reduction)


def pinball_loss_backward(residuals, g_loss):
    y, q, tau, reduction = residuals
    g = g_loss / q.size if reduction == "mean" else g_loss
    return (kernels_for(q).pinball_grad(y[:, None], q, tau, g).astype(q.dtype, copy=False),)


def weighted_interval_score_forward(y, q, tau, *, reduction="mean"):
    xp = xp_of(q)
    k = kernels_for(q)
    levels = q.shape[1]
    count = levels // 2
    lower = q[:, :count]
    upper = xp.flip(q[:, count + 1 :], axis=1)  # u_k paired with l_k
    alpha = 2 * tau[:count]
    target = y[:, None]
    c = q.dtype.type(1 / (count + 0.5))
    intervals = k.weighted_interval_terms(lower, upper, target, alpha).sum(axis=1)
    per_sample = c * (abs(y - q[:, count]) / 2 + intervals)
    return reduce_rows(per_sample, reduction, q.dtype), (y, q, tau, reduction)


def weighted_interval_score_backward(residuals, g_loss):
    y, q, tau, reduction = residuals
    xp = xp_of(q)
    k = kernels_for(q)
    levels = q.shape[1]
    count = levels // 2
    c = q.dtype.type(1 / (count + 0.5))
    if reduction == "none":
        scale = (c * g_loss)[:, None]
    else:
        scale = c * (g_loss / q.shape[0] if reduction == "mean" else g_loss)  # 0-d: broadcast
    target = y[:, None]
    half_alpha = tau[:count]
    g_lower = k.lower_grad(q[:, :count], target, half_alpha, scale)
    # the upper columns in ascending order pair with the lower levels reversed
    g_upper = k.upper_grad(q[:, count + 1 :], target, xp.flip(half_alpha), scale)
    g_median = k.median_grad(q[:, count : count + 1], target, scale)
    g_q = xp.concatenate([g_lower, g_median, g_upper], axis=1)
    return (g_q.astype(q.dtype, copy=False),)


def _softmax_members(xp, theta):
    """softmax over axis 0 (the members), max-shifted."""
    e = xp.exp(theta - theta.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def quantile_aggregation_forward(member_quantiles, theta):
    xp = xp_of(member_quantiles)
    w = _softmax_members(xp, theta)
    w_full = xp.broadcast_to(w[:, None] if theta.ndim == 1 else w, member_quantiles.shape[1:])
    quantiles = xp.einsum("njl,jl->nl", member_quantiles, w_full)
    return quantiles, (member_quantiles, w, w_full)


def quantile_aggregation_backward(residuals, g_quantiles):
    member_quantiles, w, w_full = residuals
    xp = xp_of(member_quantiles)
    g_members = g_quantiles[:, None, :] * w_full[None, :, :]
    g_w = xp.einsum("nl,njl->jl", g_quantiles, member_quantiles)
    if w.ndim == 1:
        g_w = g_w.sum(axis=1)
    g_theta = w * (g_w - (w * g_w).sum(axis=0, keepdims=True))  # the softmax VJP over the members
    return g_members.astype(w.dtype, copy=False), g_theta.astype(w.dtype, copy=False)


IMPLS = {
    "pinball_loss": Impl(pinball_loss_forward, pinball_loss_backward),
    "weighted_interval_score": Impl(weighted_interval_score_forward, weighted_interval_score_backward),
    "quantile_aggregation": Impl(quantile_aggregation_forward, quantile_aggregation_backward),
}
