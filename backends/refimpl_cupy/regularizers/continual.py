"""Continual-learning regularizers on CuPy: fused elementwise kernels + float64 sums.

Mirrors ``refimpl/regularizers/continual.py``: the forward squares Δ = θ − θ* (formed in the
input dtype) in float64 in one fused kernel and sums it; the backward is one fused kernel
``w·Δ`` (``w·F·Δ``) recomputing Δ from the inputs. The Fisher diagonal is a float64 column
sum of squares.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def squared_distance(theta, theta_star):
        difference = (theta - theta_star).astype(xp.float64)
        return difference * difference

    @fuse
    def weighted_squared_distance(theta, theta_star, fisher):
        difference = (theta - theta_star).astype(xp.float64)
        return fisher.astype(xp.float64) * (difference * difference)

    @fuse
    def scaled_difference(theta, theta_star, w):
        return w * (theta - theta_star)

    @fuse
    def weighted_scaled_difference(theta, theta_star, fisher, w):
        return w * fisher * (theta - theta_star)

    @fuse
    def squared(values):
        wide = values.astype(xp.float64)
        return wide * wide

    return SimpleNamespace(
        squared_distance=squared_distance,
        weighted_squared_distance=weighted_squared_distance,
        scaled_difference=scaled_difference,
        weighted_scaled_difference=weighted_scaled_difference,
        squared=squared,
    )


kernels_for = kernel_set(_kernels)


def _cotangent_weight(factor, g, dtype):
    """``factor·ḡ`` in the input dtype, formed as the reference forms it."""
    return dtype.type(factor) * g.astype(dtype)


def l2_anchor_regularizer_forward(theta, theta_star, *, lam):
    k = kernels_for(theta)
    penalty = 0.5 * lam * k.squared_distance(theta, theta_star).sum()
    return xp_of(theta).asarray(penalty, dtype=theta.dtype), (theta, theta_star, lam)


def l2_anchor_regularizer_backward(residuals, g_penalty):
    theta, theta_star, lam = residuals
    w = _cotangent_weight(lam, g_penalty, theta.dtype)
    return (kernels_for(theta).scaled_difference(theta, theta_star, w).astype(theta.dtype),)


def ewc_penalty_forward(theta, theta_star, fisher, *, lam):
    k = kernels_for(theta)
    penalty = 0.5 * lam * k.weighted_squared_distance(theta, theta_star, fisher).sum()
    return xp_of(theta).asarray(penalty, dtype=theta.dtype), (theta, theta_star, fisher, lam)


def ewc_penalty_backward(residuals, g_penalty):
    theta, theta_star, fisher, lam = residuals
    w = _cotangent_weight(lam, g_penalty, theta.dtype)
    return (kernels_for(theta).weighted_scaled_difference(theta, theta_star, fisher, w).astype(theta.dtype),)


def feature_distillation_loss_forward(h_new, h_old, *, reduction="batchmean"):
    count = h_new.shape[0] if reduction == "batchmean" else h_new.size
    loss = kernels_for(h_new).squared_distance(h_new, h_old).sum() / count
    return xp_of(h_new).asarray(loss, dtype=h_new.dtype), (h_new, h_old, count)


def feature_distillation_loss_backward(residuals, g_loss):
    h_new, h_old, count = residuals
    w = _cotangent_weight(2.0 / count, g_loss, h_new.dtype)
    return (kernels_for(h_new).scaled_difference(h_new, h_old, w).astype(h_new.dtype),)


def empirical_fisher_diagonal_forward(per_sample_grads):
    sums = kernels_for(per_sample_grads).squared(per_sample_grads).sum(axis=0)
    return (sums / per_sample_grads.shape[0]).astype(per_sample_grads.dtype), None


IMPLS = {
    "l2_anchor_regularizer": Impl(l2_anchor_regularizer_forward, l2_anchor_regularizer_backward),
    "ewc_penalty": Impl(ewc_penalty_forward, ewc_penalty_backward),
    "feature_distillation_loss": Impl(feature_distillation_loss_forward, feature_distillation_loss_backward),
    "empirical_fisher_diagonal": Impl(empirical_fisher_diagonal_forward),
}
