"""AR-Net sparsity regularizer on CuPy: one fused elementwise kernel per direction and a sum.

Mirrors ``refimpl/regularizers/arnet.py``: ``tanh(c1 u/2) = −expm1(−y)/(1 + e^{−y})`` with ``u =
(ε + |θ|)^{1/c2}``; the backward recomputes ``u`` and writes ``w·c1·2e/(1 + e)²·u/(c2(ε + |θ|))·
sign(θ)`` (0 at θ = 0).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def arnet_terms(theta, c1, inverse_c2, eps):
        y = c1 * (eps + abs(theta)) ** inverse_c2
        return -xp.expm1(-y) / (1 + xp.exp(-y))

    @fuse
    def arnet_grad(theta, c1, inverse_c2, eps, weight):
        shifted = eps + abs(theta)
        root = shifted**inverse_c2
        decay = xp.exp(-c1 * root)
        slope = c1 * 2 * decay / ((1 + decay) * (1 + decay))
        safe = xp.where(theta == 0, 1.0, shifted)  # sign(0) = 0: no 0·∞ when ε = 0
        return weight * slope * root * inverse_c2 / safe * xp.sign(theta)

    return SimpleNamespace(arnet_terms=arnet_terms, arnet_grad=arnet_grad)


kernels_for = kernel_set(_kernels)


def _scale(sparsity):
    return 1.0 if sparsity is None else 0.02 * (1.0 / sparsity - 1.0)


def arnet_sparsity_regularizer_forward(theta, *, c1=3.0, c2=3.0, eps=1e-12, sparsity=None):
    xp = xp_of(theta)
    terms = kernels_for(theta).arnet_terms(theta.astype(xp.float64), float(c1), 1.0 / float(c2), float(eps))
    penalty = xp.asarray(_scale(sparsity) * terms.mean(), dtype=theta.dtype)
    return penalty, (theta, float(c1), 1.0 / float(c2), float(eps), _scale(sparsity))


def arnet_sparsity_regularizer_backward(residuals, g_penalty):
    theta, c1, inverse_c2, eps, scale = residuals
    xp = xp_of(theta)
    weight = xp.asarray(g_penalty, dtype=xp.float64) * (scale / theta.size)
    g_theta = kernels_for(theta).arnet_grad(theta.astype(xp.float64), c1, inverse_c2, eps, weight)
    return (g_theta.astype(theta.dtype),)


IMPLS = {
    "arnet_sparsity_regularizer": Impl(
        arnet_sparsity_regularizer_forward, arnet_sparsity_regularizer_backward
    ),
}
