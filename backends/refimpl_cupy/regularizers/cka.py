"""Linear CKA and the representational-alignment loss on CuPy: cuBLAS Grams and fused kernels.

Mirrors ``refimpl/regularizers/cka.py``: the columns centred and divided by a power of two
near their largest magnitude, the Grams ``K = X̂X̂ᵀ``, ``L = ŶŶᵀ`` by cuBLAS, the three
Frobenius sums from one fused product each, and the backward ``X̄ = C(2 w(L − cK) X̂)/s``
with the combination fused.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl
from refimpl.regularizers.bido import _power_of_two_scale

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def center_scale(x, mean, inverse_scale):
        return (x - mean) * inverse_scale

    @fuse
    def combine(other, own, weight, ratio):
        return weight * (other - ratio * own)

    return SimpleNamespace(center_scale=center_scale, combine=combine)


kernels_for = kernel_set(_kernels)


def _centered_scaled(X):
    xp = xp_of(X)
    k = kernels_for(X)
    mean = X.mean(axis=0)
    scale = _power_of_two_scale(np.asarray(float(xp.max(xp.abs(X - mean)))))
    return k.center_scale(X, mean, X.dtype.type(1 / scale)).astype(X.dtype), scale


def _cka_value(X, Y):
    xp = xp_of(X)
    X_hat, scale_x = _centered_scaled(X)
    Y_hat, scale_y = _centered_scaled(Y)
    K = X_hat @ X_hat.T
    L = Y_hat @ Y_hat.T
    h = xp.sum(K * L)
    norm_K = xp.sqrt(xp.sum(K * K))
    norm_L = xp.sqrt(xp.sum(L * L))
    return h / (norm_K * norm_L), (X_hat, Y_hat, scale_x, scale_y, K, L, h, norm_K, norm_L)


def _side_backward(A_hat, scale, own, other, h, norm_own, weight):
    k = kernels_for(A_hat)
    dtype = A_hat.dtype.type
    g_gram = k.combine(other, own, weight, h / norm_own / norm_own)
    product = g_gram @ A_hat
    return k.center_scale(product, product.mean(axis=0), dtype(2 / scale)).astype(A_hat.dtype)


def _cka_backward(residuals, g, need_y=True):
    X_hat, Y_hat, scale_x, scale_y, K, L, h, norm_K, norm_L = residuals
    weight = X_hat.dtype.type(g) / (norm_K * norm_L)
    g_X = _side_backward(X_hat, scale_x, K, L, h, norm_K, weight)
    g_Y = _side_backward(Y_hat, scale_y, L, K, h, norm_L, weight) if need_y else None
    return g_X, g_Y


def linear_cka_forward(X, Y):
    cka, residuals = _cka_value(X, Y)
    return cka.astype(X.dtype), residuals


def linear_cka_backward(residuals, g_cka):
    return _cka_backward(residuals, g_cka)


def representational_alignment_loss_forward(target, guide, *, alpha=1.0, token_sim=False):
    xp = xp_of(target)
    batch = target.shape[0]
    if token_sim:
        pairs = [(target[:, t], guide[:, t]) for t in range(target.shape[1])]
    else:
        pairs = [(target.reshape(batch, -1), guide.reshape(batch, -1))]
    terms = [_cka_value(xp.ascontiguousarray(A), xp.ascontiguousarray(G)) for A, G in pairs]
    total = sum(1 - cka for cka, _ in terms)
    loss = (target.dtype.type(alpha) * total).astype(target.dtype)
    return loss, ([residuals for _, residuals in terms], target.shape, alpha, token_sim)


def representational_alignment_loss_backward(residuals, g_loss):
    per_term, shape, alpha, token_sim = residuals
    g_terms = [_cka_backward(r, -alpha * float(g_loss), need_y=False)[0] for r in per_term]
    xp = xp_of(g_terms[0])
    g_target = xp.stack(g_terms, axis=1) if token_sim else g_terms[0].reshape(shape)
    return (g_target,)


IMPLS = {
    "linear_cka": Impl(linear_cka_forward, linear_cka_backward),
    "representational_alignment_loss": Impl(
        representational_alignment_loss_forward, representational_alignment_loss_backward
    ),
}
